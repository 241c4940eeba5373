import json
import re
from datetime import timedelta

import pytest
from django.utils import timezone

from consents.models import ConsentEvent, Disclosure, LegalBasis, Source
from consents.receipt_signing import receipt_verify
from consents.receipts import kantara_schema_errors
from consents.services import RequestMeta, consent_grant, consent_withdraw, disclosure_record
from customers.models import Customer, ThirdParty
from privacy.models import AccessLog
from tests.consents.people import disclosure_purpose

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client, admin_user):
    client.force_login(admin_user)
    return client


@pytest.fixture
def histories(ada, grace, linus, newsletter):
    consent_grant(
        customer=ada,
        purpose=newsletter,
        source=Source.SIGNUP_FORM,
        request_meta=RequestMeta(ip_address="203.0.113.5", user_agent="Firefox"),
    )
    consent_grant(customer=grace, purpose=newsletter, source=Source.SIGNUP_FORM)
    consent_withdraw(customer=grace, purpose=newsletter, source=Source.ONE_CLICK)
    return ada, grace, linus


def change_url(customer):
    return f"/admin/customers/customer/{customer.pk}/change/"


def test_the_customer_page_shows_each_purpose_state_and_the_full_ledger(staff_client, histories, newsletter):
    ada, grace, _linus = histories
    page = staff_client.get(change_url(grace)).content.decode()
    assert "Withdrawn" in page
    assert "One-click unsubscribe" in page
    assert "Never asked" in page  # promotions, market research, internal analysis
    # the ledger inline: both decisions, with the wording shown and the policy version
    assert page.count(newsletter.wording) >= 2
    assert "Privacy policy 1.0" in page
    assert "Signup or registration form" in page

    page = staff_client.get(change_url(ada)).content.decode()
    assert "Granted" in page
    assert "203.0.113.5" in page


def test_the_customer_page_shows_disclosures(staff_client, ada, market_research):
    event = consent_grant(customer=ada, purpose=market_research, source=Source.PREFERENCE_PAGE)
    partner = ThirdParty.objects.create(name="Northwind Research", kind=ThirdParty.Kind.PARTNER)
    disclosure_record(
        customer=ada,
        third_party=partner,
        data_categories=["contact"],
        legal_basis=LegalBasis.CONSENT,
        disclosure_purpose=disclosure_purpose("market_research"),
        purpose="Survey invitation",
        consent_event=event,
    )
    page = staff_client.get(change_url(ada)).content.decode()
    assert "Northwind Research" in page
    assert "Survey invitation" in page


def test_saving_the_customer_leaves_the_ledger_untouched(staff_client, histories):
    ada, *_ = histories
    page = staff_client.get(change_url(ada))
    form = page.context["adminform"].form
    data = {k: ("" if v is None else v) for k, v in form.initial.items() if k in form.fields}
    data.update({"job_title": "Analyst", "phone": ""})
    for prefix in ("registrations", "changes"):
        data.update({f"{prefix}-TOTAL_FORMS": "0", f"{prefix}-INITIAL_FORMS": "0"})
    response = staff_client.post(change_url(ada), data)
    assert response.status_code == 302
    ada.refresh_from_db()
    assert ada.job_title == "Analyst"
    assert ConsentEvent.objects.filter(customer=ada).count() == 1


@pytest.mark.parametrize(
    ("state", "expected"),
    [("granted", "ada@example.com"), ("withdrawn", "grace@example.com"), ("never_asked", "linus@example.com")],
)
def test_the_customer_list_filters_by_consent_state(staff_client, histories, state, expected):
    response = staff_client.get("/admin/customers/customer/", {"consent_newsletter": state})
    assert response.status_code == 200
    shown = [e for e in ("ada@example.com", "grace@example.com", "linus@example.com") if e in response.text]
    assert shown == [expected]
    assert "consents to Newsletter" in response.text


# Record consent on the customer's behalf


def record_url(customer):
    return f"/admin/customers/customer/{customer.pk}/record-consent/"


def test_the_staff_form_refuses_an_empty_note(staff_client, linus, newsletter):
    response = staff_client.post(
        record_url(linus),
        {
            "purpose": newsletter.pk,
            "decision": "granted",
            "method": "phone",
            "language": "en",
            "given_on": timezone.localdate().isoformat(),
            "note": "   ",
        },
    )
    assert response.status_code == 200
    assert "This field is required" in response.text or "Say how and when" in response.text
    assert "nothing was recorded" in response.text
    assert not ConsentEvent.objects.filter(customer=linus).exists()


def test_the_staff_form_refuses_a_date_in_the_future(staff_client, linus, newsletter):
    response = staff_client.post(
        record_url(linus),
        {
            "purpose": newsletter.pk,
            "decision": "granted",
            "method": "letter",
            "language": "en",
            "given_on": (timezone.localdate() + timedelta(days=2)).isoformat(),
            "note": "letter dated next week",
        },
    )
    assert "cannot be in the future" in response.text
    assert not ConsentEvent.objects.exists()


def test_the_staff_form_records_the_decision_under_the_staff_users_name(staff_client, admin_user, linus, newsletter):
    Customer.objects.filter(pk=linus.pk).update(created_at=timezone.now() - timedelta(days=30))
    given_on = timezone.localdate() - timedelta(days=3)
    response = staff_client.post(
        record_url(linus),
        {
            "purpose": newsletter.pk,
            "decision": "granted",
            "method": "phone",
            "language": "en",
            "given_on": given_on.isoformat(),
            "note": "customer phoned, call ref 4471",
        },
        follow=True,
    )
    assert "Recorded: Newsletter granted" in response.text
    event = ConsentEvent.objects.get(customer=linus)
    assert (event.granted, event.source, event.method, event.note) == (
        True,
        "staff",
        "phone",
        "customer phoned, call ref 4471",
    )
    assert event.staff_user == admin_user
    assert timezone.localtime(event.occurred_at).date() == given_on
    assert event.wording == newsletter.wording


def test_the_staff_form_records_nothing_when_the_state_is_already_so(staff_client, histories, newsletter):
    ada, *_ = histories
    response = staff_client.post(
        record_url(ada),
        {
            "purpose": newsletter.pk,
            "decision": "granted",
            "method": "email",
            "language": "en",
            "given_on": timezone.localdate().isoformat(),
            "note": "email of today",
        },
        follow=True,
    )
    assert "already granted" in response.text
    assert ConsentEvent.objects.filter(customer=ada).count() == 1


def test_staff_without_permission_to_record_consent_are_refused(client, django_user_model, linus):
    support = django_user_model.objects.create_user("support", password="pw", is_staff=True)
    client.force_login(support)
    assert client.get(record_url(linus)).status_code == 403


# The ledger list


def test_the_ledger_list_filters_and_searches_by_email(staff_client, histories, newsletter):
    response = staff_client.get("/admin/consents/consentevent/", {"source__exact": "one_click"})
    assert response.status_code == 200
    assert "grace@example.com" in response.text
    assert "ada@example.com" not in response.text

    response = staff_client.get("/admin/consents/consentevent/", {"q": "ADA@example"})
    assert "ada@example.com" in response.text
    assert "grace@example.com" not in response.text

    response = staff_client.get(
        "/admin/consents/consentevent/", {"granted__exact": "0", "purpose__id__exact": newsletter.pk}
    )
    assert "grace@example.com" in response.text
    assert "ada@example.com" not in response.text

    since = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0).isoformat()
    response = staff_client.get("/admin/consents/consentevent/", {"occurred_at__gte": since})
    assert response.status_code == 200
    assert "ada@example.com" in response.text


def test_nobody_can_add_change_or_delete_ledger_events_in_admin(staff_client, histories):
    ada, *_ = histories
    event = ConsentEvent.objects.get(customer=ada)
    page = staff_client.get(f"/admin/consents/consentevent/{event.pk}/change/")
    assert page.status_code == 200
    assert 'name="_save"' not in page.text  # view only
    assert staff_client.post(f"/admin/consents/consentevent/{event.pk}/change/", {"granted": ""}).status_code == 403
    assert staff_client.post(f"/admin/consents/consentevent/{event.pk}/delete/", {"post": "yes"}).status_code == 403
    assert staff_client.get("/admin/consents/consentevent/add/").status_code == 403
    event.refresh_from_db()
    assert event.granted is True


# Disclosures


def disclosure_form(customer, partner, **overrides):
    data = {
        "customer": customer.pk,
        "third_party": partner.pk,
        "data_categories": ["identity", "contact"],
        "legal_basis": "consent",
        "consent_event": "",
        "disclosure_purpose": disclosure_purpose("market_research").pk,
        "purpose": "Survey invitation",
        "disclosed_at_0": timezone.localdate().isoformat(),
        "disclosed_at_1": timezone.localtime().strftime("%H:%M:%S"),
        "reference": "NWR-7",
    }
    return {**data, **overrides}


def test_the_disclosure_admin_refuses_consent_basis_without_a_valid_consent(staff_client, grace, market_research):
    partner = ThirdParty.objects.create(name="Northwind Research", kind=ThirdParty.Kind.PARTNER)
    response = staff_client.post("/admin/consents/disclosure/add/", disclosure_form(grace, partner))
    assert response.status_code == 200
    assert "must name the customer&#x27;s consent" in response.text
    granted = consent_grant(customer=grace, purpose=market_research, source=Source.SIGNUP_FORM)
    consent_withdraw(customer=grace, purpose=market_research, source=Source.UNSUBSCRIBE_LINK)
    response = staff_client.post(
        "/admin/consents/disclosure/add/", disclosure_form(grace, partner, consent_event=granted.pk)
    )
    assert "not in force" in response.text
    assert not Disclosure.objects.exists()


def test_the_disclosure_admin_records_a_disclosure_with_a_consent_in_force(
    staff_client, admin_user, ada, market_research
):
    partner = ThirdParty.objects.create(name="Northwind Research", kind=ThirdParty.Kind.PARTNER)
    event = consent_grant(customer=ada, purpose=market_research, source=Source.PREFERENCE_PAGE)
    response = staff_client.post(
        "/admin/consents/disclosure/add/", disclosure_form(ada, partner, consent_event=event.pk)
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    disclosure = Disclosure.objects.get()
    assert disclosure.consent_event == event
    assert disclosure.recorded_by == admin_user
    assert disclosure.data_categories == ["contact", "identity"]


def test_policy_purpose_and_disclosure_admin_pages_open(staff_client):
    for url in (
        "/admin/consents/purpose/",
        "/admin/consents/policyversion/",
        "/admin/consents/disclosure/",
        "/admin/consents/disclosure/add/",
        "/admin/consents/policyversion/add/",
        "/admin/customers/thirdparty/",
    ):
        assert staff_client.get(url).status_code == 200, url


def test_a_policy_version_in_force_cannot_be_edited_but_may_get_a_missing_translation(staff_client):
    from consents.models import PolicyVersion

    current = PolicyVersion.objects.current()
    page = staff_client.get(f"/admin/consents/policyversion/{current.pk}/change/")
    assert 'name="text_en"' not in page.text
    assert 'name="text_de"' in page.text


def test_the_receipt_downloads_from_the_customer_page(staff_client, histories, settings):
    ada, *_ = histories
    settings.COMPANY_NAME = "PhotoForge Software GmbH"
    settings.COMPANY_POSTAL_ADDRESS = "Hauptstraße 1, 10115 Berlin, Germany"
    page = staff_client.get(change_url(ada))
    assert f"/admin/customers/customer/{ada.pk}/consent-receipt/?format=kantara" in page.text
    assert f"/admin/customers/customer/{ada.pk}/consent-receipt/?format=iso27560" in page.text
    response = staff_client.get(f"/admin/customers/customer/{ada.pk}/consent-receipt/?format=kantara")
    assert response.status_code == 200
    assert response["Content-Disposition"] == f'attachment; filename="consent-receipt-{ada.public_id}-kantara.json"'
    signed = json.loads(response.content)
    assert kantara_schema_errors(signed["receipt"]) == []
    assert receipt_verify(signed) == signed["receipt"]
    (controller,) = signed["receipt"]["piiControllers"]
    assert controller["piiController"] == "PhotoForge Software GmbH"
    assert controller["address"]["streetAddress"] == "Hauptstraße 1, 10115 Berlin, Germany"
    assert AccessLog.objects.filter(customer=ada, action=AccessLog.Action.RECEIPT_DOWNLOADED).count() == 1

    record = json.loads(
        staff_client.get(f"/admin/customers/customer/{ada.pk}/consent-receipt/?format=iso27560").content
    )
    assert record["receipt"]["dct:conformsTo"] == "https://w3id.org/dpv/schema/dpv-27560#record"
    assert receipt_verify(record) == record["receipt"]


def test_an_erased_customers_receipt_is_refused_with_a_message(staff_client, ada, admin_user):
    from privacy.services import customer_erase

    customer_erase(customer=ada, staff_user=admin_user)

    assert "consent-receipt/" not in staff_client.get(change_url(ada)).text
    response = staff_client.get(f"/admin/customers/customer/{ada.pk}/consent-receipt/?format=kantara", follow=True)
    assert response.status_code == 200
    assert "This customer&#x27;s data was erased: there is no receipt to issue." in response.text


def test_an_unknown_receipt_format_is_refused_with_a_message(staff_client, ada):
    response = staff_client.get(f"/admin/customers/customer/{ada.pk}/consent-receipt/?format=pdf", follow=True)
    assert response.status_code == 200
    assert "Unknown receipt format" in response.text


def test_the_disclosure_form_says_which_consents_qualify_and_asks_for_no_row_ids(staff_client):
    page = staff_client.get("/admin/consents/disclosure/add/").content.decode()

    assert "Market research (surveys, interviews, panels): consent to Market research" in page
    assert "No consent allows: Completing a purchase" in page
    # customer, third party and consent are searched for, not typed as numbers
    for field in ("customer", "third_party", "consent_event"):
        assert re.search(rf'<select name="{field}"[^>]*class="admin-autocomplete', page), field
    assert "vForeignKeyRawIdAdminField" not in page


def test_the_disclosure_admin_refuses_a_newsletter_grant_for_market_research(staff_client, ada, newsletter):
    partner = ThirdParty.objects.create(name="Northwind Research", kind=ThirdParty.Kind.PARTNER)
    newsletter_grant = consent_grant(customer=ada, purpose=newsletter, source=Source.SIGNUP_FORM)

    response = staff_client.post(
        "/admin/consents/disclosure/add/", disclosure_form(ada, partner, consent_event=newsletter_grant.pk)
    )

    assert response.status_code == 200
    assert "Consent to Newsletter does not allow a disclosure for Market research" in response.text
    assert not Disclosure.objects.exists()


def test_the_consent_search_of_the_disclosure_form_offers_only_consents_in_force(
    staff_client, ada, grace, newsletter, market_research
):
    adas = consent_grant(customer=ada, purpose=market_research, source=Source.PREFERENCE_PAGE)
    graces = consent_grant(customer=grace, purpose=market_research, source=Source.SIGNUP_FORM)
    consent_withdraw(customer=grace, purpose=market_research, source=Source.UNSUBSCRIBE_LINK)

    def search(term):
        response = staff_client.get(
            "/admin/autocomplete/",
            {"app_label": "consents", "model_name": "disclosure", "field_name": "consent_event", "term": term},
        )
        assert response.status_code == 200
        return response.json()["results"]

    found = search("ada@")
    assert [result["id"] for result in found] == [str(adas.pk)]
    assert found[0]["text"].startswith("Market research granted on ")
    assert "ada@example.com" not in found[0]["text"]
    assert search("grace@") == []
    assert str(graces.pk) not in {result["id"] for result in search("")}


def test_ledger_entries_are_labelled_by_purpose_decision_and_date_not_row_ids(staff_client, grace, newsletter):
    consent_grant(customer=grace, purpose=newsletter, source=Source.SIGNUP_FORM)
    withdrawal = consent_withdraw(customer=grace, purpose=newsletter, source=Source.UNSUBSCRIBE_LINK)

    day = timezone.localtime(withdrawal.occurred_at)
    label = f"Newsletter withdrawn on {day.day} {day:%b %Y %H:%M}, customer {str(grace.public_id)[:8]}"
    assert str(withdrawal) == label
    state = grace.consents.get()
    assert str(state) == f"Newsletter withdrawn since {day.day} {day:%b %Y}, customer {str(grace.public_id)[:8]}"
    page = staff_client.get(f"/admin/consents/consentevent/{withdrawal.pk}/change/").content.decode()
    assert label in page


def test_the_customer_page_labels_ledger_rows_without_a_query_per_row(staff_client, grace, newsletter):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def queries_for_page() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert staff_client.get(change_url(grace)).status_code == 200
        return len(captured)

    consent_grant(customer=grace, purpose=newsletter, source=Source.SIGNUP_FORM)
    with_one = queries_for_page()
    for _ in range(3):
        consent_withdraw(customer=grace, purpose=newsletter, source=Source.UNSUBSCRIBE_LINK)
        consent_grant(customer=grace, purpose=newsletter, source=Source.PREFERENCE_PAGE)

    assert queries_for_page() == with_one
