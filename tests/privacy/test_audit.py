"""The audit trail: who viewed a customer's page, who exported, who changed which field, who erased."""

import re

import pytest
from auditlog.models import LogEntry
from django.utils.html import escape

from customers.models import Customer
from marketing.exports import call_list_export
from privacy.models import AccessLog
from privacy.services import customer_erase
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db

ACCESS_LOG = "/admin/privacy/accesslog/"


@pytest.fixture
def ada(purposes):
    return CustomerFactory(email="ada@example.com", first_name="Ada", last_name="Lovelace", job_title="Engineer")


def test_a_view_and_an_export_of_a_customer_appear_in_the_audit_trail(client, officer, support, ada):
    client.force_login(support)
    client.get(f"/admin/customers/customer/{ada.pk}/change/")
    client.force_login(officer)
    client.get(f"/admin/export/customer/{ada.public_id}/export.json")

    entries = list(AccessLog.objects.filter(customer=ada).order_by("at", "id"))
    assert [(e.staff_user, e.action) for e in entries] == [(support, "viewed"), (officer, "exported")]
    viewed = '<td class="field-action">Viewed the customer&#x27;s page</td>'
    exported = '<td class="field-action">Downloaded the customer&#x27;s data export</td>'
    for query in ({"customer": ada.pk}, {"q": "ada@example.com"}, {"q": str(ada.public_id)}):
        page = client.get(ACCESS_LOG, query).content.decode()
        assert viewed in page and exported in page
    by_support = client.get(ACCESS_LOG, {"staff_user__id__exact": support.pk}).content.decode()
    assert viewed in by_support and exported not in by_support
    other = CustomerFactory(email="grace@example.com")
    assert viewed not in client.get(ACCESS_LOG, {"customer": other.pk}).content.decode()


def test_the_customer_page_links_to_its_access_log_export_and_erasure_for_an_officer(client, officer, support, ada):
    client.force_login(officer)
    page = client.get(f"/admin/customers/customer/{ada.pk}/change/").content.decode()
    assert f"{ACCESS_LOG}?customer={ada.pk}" in page
    assert f"/admin/export/customer/{ada.public_id}/export.json" in page
    assert f"/admin/privacy/customererasure/erase/{ada.pk}/" in page
    client.force_login(support)
    page = client.get(f"/admin/customers/customer/{ada.pk}/change/").content.decode()
    assert "export.json" not in page and "/erase/" not in page and ACCESS_LOG not in page


def test_a_staff_change_in_admin_records_the_field_with_old_and_new_value(client, support, officer, ada):
    client.force_login(support)
    url = f"/admin/customers/customer/{ada.pk}/change/"
    form = client.get(url).context["adminform"].form
    data = {k: ("" if v is None else v) for k, v in form.initial.items() if k in form.fields}
    data.update({"job_title": "Chief Engineer", "phone": ""})
    for prefix in ("registrations", "changes", "consent_events", "disclosures"):
        data.update({f"{prefix}-TOTAL_FORMS": "0", f"{prefix}-INITIAL_FORMS": "0"})
    response = client.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors

    entry = LogEntry.objects.get_for_object(ada).filter(action=LogEntry.Action.UPDATE).get()
    assert entry.actor == support
    assert entry.changes_dict["job_title"] == ["Engineer", "Chief Engineer"]
    client.force_login(officer)
    trail = client.get(f"/admin/auditlog/logentry/{entry.pk}/change/").content.decode()
    assert "Engineer" in trail and "Chief Engineer" in trail and "sam-support" in trail


def test_list_exports_and_erasures_are_in_the_access_log(officer, ada):
    call_list_export(user=officer)
    customer_erase(customer=ada, staff_user=officer)
    actions = set(AccessLog.objects.filter(staff_user=officer).values_list("action", flat=True))
    assert actions == {"list_exported", "erased"}
    assert Customer.objects.get(pk=ada.pk).is_erased


@pytest.mark.parametrize("value", ["999999", "²", "nobody", "99999999999999999999999"])
def test_an_unknown_customer_in_the_access_log_filter_shows_no_entries(client, officer, ada, value):
    client.force_login(officer)
    client.get(f"/admin/customers/customer/{ada.pk}/change/")
    response = client.get(ACCESS_LOG, {"customer": value})
    assert response.status_code == 200
    viewed = '<td class="field-action">Viewed the customer'
    assert viewed not in response.content.decode()
    assert viewed in client.get(ACCESS_LOG, {"customer": ada.pk}).content.decode()


def test_the_access_log_cannot_be_edited(client, officer, ada):
    client.force_login(officer)
    client.get(f"/admin/customers/customer/{ada.pk}/change/")
    entry = AccessLog.objects.get()
    page = client.get(f"{ACCESS_LOG}{entry.pk}/change/").content.decode()
    assert 'name="_save"' not in page
    assert client.post(f"{ACCESS_LOG}{entry.pk}/delete/").status_code == 403


# ---------------------------------------------------------------------------------------
# The field audit log, per customer

AUDIT_LOG = "/admin/auditlog/logentry/"


@pytest.fixture
def two_histories(ada, support):
    """Ada and Grace: each record, registration and request changed; Ada's data went to a reseller."""
    from auditlog.context import set_actor

    from consents.models import DisclosurePurpose, Purpose, Source
    from consents.services import consent_grant, disclosure_record
    from privacy.services import privacy_request_open
    from tests.factories import RegistrationFactory, ResellerFactory

    grace = CustomerFactory(email="grace@example.com", first_name="Grace", last_name="Hopper")
    records = {}
    with set_actor(support):
        for person in (ada, grace):
            person.job_title = "Rear Admiral" if person == grace else "Countess"
            person.save()
            registration = RegistrationFactory(customer=person, order_reference=f"PAD-{person.first_name}")
            request = privacy_request_open(customer=person, kind="access", channel="email")
            records[person.first_name] = [
                f"/admin/customers/customer/{person.pk}/change/",
                f"/admin/customers/productregistration/{registration.pk}/change/",
                f"/admin/privacy/privacyrequest/{request.pk}/change/",
            ]
        event = consent_grant(
            customer=ada,
            purpose=Purpose.objects.get(code="market_research"),
            source=Source.STAFF,
            staff_user=support,
            note="phoned",
        )
        disclosure = disclosure_record(
            customer=ada,
            third_party=ResellerFactory(name="Northwind Research"),
            data_categories=["contact"],
            legal_basis="consent",
            disclosure_purpose=DisclosurePurpose.objects.get(code="market_research"),
            purpose="Research interview",
            consent_event=event,
        )
    records["Ada"].append(f"/admin/consents/disclosure/{disclosure.pk}/change/")
    return ada, grace, records


def test_the_audit_log_filters_by_customer_with_their_registrations_requests_and_disclosures(
    client, officer, two_histories
):
    ada, _grace, records = two_histories
    client.force_login(officer)
    page = client.get(AUDIT_LOG, {"customer": ada.pk}).content.decode()
    for link in records["Ada"]:
        assert f'href="{link}"' in page, link
    for link in records["Grace"]:
        assert f'href="{link}"' not in page, link
    assert escape(str(ada)) in page  # the chosen filter names her

    everyone = client.get(AUDIT_LOG).content.decode()
    assert all(f'href="{link}"' in everyone for link in records["Ada"] + records["Grace"])


@pytest.mark.parametrize("term", ["ada@example.com", "ADA@example.com ", "public_id"])
def test_searching_the_audit_log_for_an_address_or_public_id_finds_that_customers_entries(
    client, officer, two_histories, term
):
    ada, _grace, records = two_histories
    client.force_login(officer)
    page = client.get(AUDIT_LOG, {"q": str(ada.public_id) if term == "public_id" else term}).content.decode()
    assert all(f'href="{link}"' in page for link in records["Ada"])
    assert not any(f'href="{link}"' in page for link in records["Grace"])


def test_an_unknown_customer_filter_shows_nothing_rather_than_everything(client, officer, two_histories):
    client.force_login(officer)
    for value in ("999999", "²", "nobody", "9223372036854775808"):
        response = client.get(AUDIT_LOG, {"customer": value})
        assert response.status_code == 200
        assert not re.search(r"/admin/(customers|consents)/\w+/\d+/change/", response.content.decode())


def test_the_customer_page_links_to_its_audit_log_for_an_officer_only(client, officer, support, ada):
    client.force_login(officer)
    page = client.get(f"/admin/customers/customer/{ada.pk}/change/").content.decode()
    assert f"{AUDIT_LOG}?customer={ada.pk}" in page
    client.force_login(support)
    page = client.get(f"/admin/customers/customer/{ada.pk}/change/").content.decode()
    assert AUDIT_LOG not in page


def test_an_erased_customers_redacted_audit_entries_stay_findable(client, officer, two_histories):
    ada, _grace, records = two_histories
    customer_erase(customer=ada, staff_user=officer)
    client.force_login(officer)
    page = client.get(AUDIT_LOG, {"customer": ada.pk}).content.decode()
    assert all(f'href="{link}"' in page for link in records["Ada"][:3])
    assert "Countess" not in page and "ada@example.com" not in page
