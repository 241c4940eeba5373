"""
Erasure (GDPR Art. 17) through the admin page a privacy officer uses. Runs on SQLite and,
with DATABASE_URL set, on PostgreSQL (where the ledger trigger also has its say).
"""

import io

import pytest
from django.core.exceptions import PermissionDenied
from django.core.management import CommandError, call_command

from consents.models import Consent, ConsentEvent
from customers.imports import ImportRefused, customers_import
from customers.models import ERASED_MARKER, Customer, email_hash
from marketing.models import Suppression
from privacy.models import AccessLog, CustomerErasure, PrivacyRequest, RecipientNotification
from privacy.services import AlreadyErased, customer_erase

from .people import AUGUSTA, CONSENT_IP, CONSENT_USER_AGENT, LICENCE_KEY, OLD_EMAIL, text_columns_containing

pytestmark = pytest.mark.django_db

HER_DETAILS = [
    *AUGUSTA.values(),
    OLD_EMAIL,
    CONSENT_IP,
    CONSENT_USER_AGENT,
    LICENCE_KEY,
    "Augustaqx",
    "Byronqx",
    "analytical-engines.example",
]


def erase_in_admin(client, officer, customer, privacy_request=None):
    client.force_login(officer)
    url = f"/admin/privacy/customererasure/erase/{customer.pk}/"
    page = client.get(url, {"request": privacy_request.pk} if privacy_request else {})
    assert page.status_code == 200
    assert "cannot be undone" in page.content.decode()
    data = {"confirm": "on"}
    if privacy_request:
        data["privacy_request"] = privacy_request.pk
    response = client.post(url, data)
    assert response.status_code == 302, response.content.decode()
    customer.refresh_from_db()
    return response


def test_an_erased_customer_appears_nowhere_in_the_database(client, officer, augusta_and_request):
    augusta, request = augusta_and_request
    # staff looked at her page and downloaded her data before the erasure
    client.force_login(officer)
    assert client.get(f"/admin/customers/customer/{augusta.pk}/change/").status_code == 200
    assert client.get(f"/admin/export/customer/{augusta.public_id}/export.json").status_code == 200
    before = text_columns_containing(HER_DETAILS)
    assert "customers_customer.email" in before  # the search finds what is there
    assert "consents_consentevent.ip_address" in before
    assert "auditlog_logentry.changes" in before

    erase_in_admin(client, officer, augusta, request)

    assert text_columns_containing(HER_DETAILS) == {}
    assert augusta.first_name == ERASED_MARKER
    assert augusta.email.startswith("erased-") and augusta.email.endswith("@erased.invalid")
    assert (augusta.phone, augusta.signup_ip, augusta.signup_user_agent) == ("", None, "")


def test_the_ledger_still_shows_consent_given_and_withdrawn_and_when(client, officer, augusta_and_request):
    augusta, request = augusta_and_request
    before = list(ConsentEvent.objects.filter(customer=augusta).order_by("id").values())

    erase_in_admin(client, officer, augusta, request)

    after = list(ConsentEvent.objects.filter(customer=augusta).order_by("id").values())
    assert [(e["purpose_id"], e["granted"], e["occurred_at"], e["source"]) for e in after] == [
        (e["purpose_id"], e["granted"], e["occurred_at"], e["source"]) for e in before
    ]
    assert [e["granted"] for e in after] == [True, False, True]
    assert all(e["ip_address"] is None and e["user_agent"] == "" and e["note"] == "" for e in after)
    assert all(e["redacted_at"] is not None for e in after)
    # the current state is unchanged: erasure withdraws nothing, the customer is simply unreachable
    assert Consent.objects.filter(customer=augusta).count() == 2
    ledger = client.get("/admin/consents/consentevent/", {"q": augusta.email}).content.decode()
    assert ledger.count("withdrawn") >= 1 and ledger.count("granted") >= 2


def test_registrations_keep_the_purchase_record_and_lose_the_licence_key(client, officer, augusta_and_request):
    augusta, request = augusta_and_request
    erase_in_admin(client, officer, augusta, request)
    registration = augusta.registrations.get()
    assert registration.licence_key == ""
    assert registration.order_reference == "PAD-QX-1"
    assert registration.purchased_at is not None and registration.product.code == "photoforge-pro"


def test_the_erasure_is_recorded_and_closes_the_request(client, officer, augusta_and_request):
    augusta, request = augusta_and_request
    erase_in_admin(client, officer, augusta, request)

    erasure = CustomerErasure.objects.get(customer=augusta)
    assert (erasure.erased_by, erasure.privacy_request) == (officer, request)
    assert erasure.address_hash == email_hash(AUGUSTA["email"])
    assert erasure.summary["consents"] == {"consent_events_redacted": 3}
    request.refresh_from_db()
    assert (request.status, request.handled_by) == (PrivacyRequest.Status.DONE, officer)
    assert request.details == ERASED_MARKER
    assert AccessLog.objects.filter(customer=augusta, action="erased", staff_user=officer).exists()
    assert Suppression.objects.filter(address_hash=email_hash(AUGUSTA["email"]), reason="erasure").exists()
    page = client.get(f"/admin/customers/customer/{augusta.pk}/change/").content.decode()
    assert "Erased customer" in page
    assert 'name="_save"' not in page  # read-only from now on


def test_third_parties_that_received_her_data_are_listed_to_notify(client, officer, augusta_and_request):
    augusta, request = augusta_and_request
    # the staff correction already listed Paddle (it received her data) for the corrected field
    correction = RecipientNotification.objects.get(customer=augusta, reason="correction")
    assert (correction.third_party.name, correction.fields) == ("Paddle", ["job_title"])

    erase_in_admin(client, officer, augusta, request)

    erasure = RecipientNotification.objects.get(customer=augusta, reason="erasure")
    assert erasure.third_party.name == "Paddle" and erasure.notified_at is None
    listing = client.get("/admin/privacy/recipientnotification/").content.decode()
    assert "Paddle" in listing and "Erasure" in listing

    response = client.post(
        "/admin/privacy/recipientnotification/",
        {"action": "mark_notified", "_selected_action": [erasure.pk, correction.pk]},
    )
    assert response.status_code == 302
    erasure.refresh_from_db()
    assert erasure.notified_by == officer and erasure.notified_at is not None
    assert "Paddle" not in client.get("/admin/privacy/recipientnotification/").content.decode()
    assert "Paddle" in client.get("/admin/privacy/recipientnotification/", {"state": "done"}).content.decode()


def test_importing_the_erased_address_again_is_refused_with_the_reason(client, officer, augusta_and_request, tmp_path):
    augusta, request = augusta_and_request
    erase_in_admin(client, officer, augusta, request)
    path = tmp_path / "old-crm.csv"
    path.write_text(
        "email,first_name,consent_newsletter,consent_promotions\n"
        f"{AUGUSTA['email'].upper()},Augusta,yes,yes\n"
        "linus@example.com,Linus,yes,\n",
        encoding="utf-8",
    )
    err = io.StringIO()

    with pytest.raises(CommandError, match="nothing was imported"):
        call_command(
            "import_customers",
            str(path),
            "--evidence",
            "Old CRM export",
            "--no-progress",
            stdout=io.StringIO(),
            stderr=err,
        )

    assert "row 2, email: a customer with this address asked for their data to be erased" in err.getvalue()
    assert not Customer.objects.by_email(AUGUSTA["email"]).exists()
    assert not Customer.objects.by_email("linus@example.com").exists()


def test_only_a_privacy_officer_may_erase(client, support, augusta_and_request):
    augusta, _request = augusta_and_request
    client.force_login(support)
    assert client.get(f"/admin/privacy/customererasure/erase/{augusta.pk}/").status_code == 403
    assert client.post(f"/admin/privacy/customererasure/erase/{augusta.pk}/", {"confirm": "on"}).status_code == 403
    with pytest.raises(PermissionDenied):
        customer_erase(customer=augusta, staff_user=support)
    augusta.refresh_from_db()
    assert augusta.erased_at is None


def test_erasure_needs_the_confirmation_and_happens_once(client, officer, augusta_and_request):
    augusta, _request = augusta_and_request
    client.force_login(officer)
    unconfirmed = client.post(f"/admin/privacy/customererasure/erase/{augusta.pk}/", {})
    assert unconfirmed.status_code == 200
    assert "Tick the box to confirm" in unconfirmed.content.decode()
    augusta.refresh_from_db()
    assert augusta.erased_at is None

    customer_erase(customer=augusta, staff_user=officer)
    with pytest.raises(AlreadyErased):
        customer_erase(customer=augusta, staff_user=officer)
    again = client.get(f"/admin/privacy/customererasure/erase/{augusta.pk}/", follow=True)
    assert "already erased" in again.content.decode()


@pytest.mark.parametrize("corrections", [1, 12])
def test_the_audit_trail_is_redacted_in_one_statement_whatever_its_length(officer, purposes, corrections):
    from auditlog.context import set_actor
    from auditlog.models import LogEntry
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from tests.factories import CustomerFactory, RegistrationFactory

    # given Ada, whose record and registration staff corrected again and again
    ada = CustomerFactory(email="ada.qz@example.com", first_name="Adaqz", last_name="Lovelaceqz", city="Londonqz")
    registration = RegistrationFactory(customer=ada, licence_key="QZQZ-1111")
    with set_actor(officer):
        for n in range(corrections):
            ada.job_title = f"Engineer qz {n}"
            ada.save()
            registration.version = f"{n}.0"
            registration.save()

    def audit_trail():
        return [*LogEntry.objects.get_for_object(ada), *LogEntry.objects.get_for_object(registration)]

    assert len(audit_trail()) == 2 + 2 * corrections  # each created, then corrected

    # when she is erased
    with CaptureQueriesContext(connection) as queries:
        erasure = customer_erase(customer=ada, staff_user=officer)

    # then one UPDATE redacted every entry: who changed which field and when stay, values go
    updates = [q["sql"] for q in queries.captured_queries if q["sql"].startswith('UPDATE "auditlog_logentry"')]
    assert len(updates) == 1
    trail = audit_trail()
    assert erasure.summary["audit_entries_redacted"] == len(trail) == 2 + 2 * corrections
    for entry in trail:
        assert entry.changes and all(values == [ERASED_MARKER, ERASED_MARKER] for values in entry.changes.values())
        assert entry.changes_text == "" and entry.serialized_data is None and entry.additional_data is None
        assert "qz" not in entry.object_repr.lower()
    updated = [e for e in trail if e.action == LogEntry.Action.UPDATE]
    assert all(e.actor == officer for e in updated)
    assert {field for e in updated for field in e.changes} >= {"job_title", "version"}


def test_an_update_import_does_not_write_details_back_onto_a_customer_erased_meanwhile(officer):
    ben = Customer.objects.create(email="ben@example.com", first_name="Ben", city="Leeds")
    looked_up = []

    def progress(rows):
        # The file's addresses have been looked up; a privacy officer erases Ben meanwhile.
        if not looked_up:
            looked_up.append(True)
            customer_erase(customer=Customer.objects.get(pk=ben.pk), staff_user=officer)
        return iter(rows)

    with pytest.raises(ImportRefused) as refused:
        customers_import(
            headers=["email", "first_name", "city"],
            rows=[{"email": "ben@example.com", "first_name": "Ben", "city": "York"}],
            update=True,
            progress=progress,
        )
    assert [(e.line, e.field) for e in refused.value.errors] == [(2, "email")]
    assert "erased while the file was being imported" in refused.value.errors[0].message
    ben.refresh_from_db()
    assert ben.erased_at is not None and ben.city == "" and ben.first_name != "Ben"
