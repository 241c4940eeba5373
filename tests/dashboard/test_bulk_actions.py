"""Bulk actions on the customer list: export the selected (recorded), one consent decision each, privacy requests."""

from __future__ import annotations

import json

import pytest

from consents.models import Consent, ConsentEvent, Purpose, Source
from consents.services import consent_grant
from privacy.models import AccessLog, PrivacyRequest
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db

LIST = "/admin/customers/customer/"


@pytest.fixture
def trio():
    return [CustomerFactory(email=f"{name}@example.com", first_name=name.title()) for name in ("ada", "bob", "carol")]


def actions_on_the_list(client) -> set[str]:
    response = client.get(LIST)
    return {value for value, _label in response.context["action_form"].fields["action"].choices}


def test_each_role_is_offered_only_the_actions_it_may_take(client, support, officer):
    client.force_login(support)
    offered = actions_on_the_list(client)
    assert "record_consent" in offered
    assert "export_selected" not in offered and "file_privacy_requests" not in offered
    client.force_login(officer)
    offered = actions_on_the_list(client)
    assert {"export_selected", "file_privacy_requests"} <= offered and "record_consent" not in offered


def test_a_consent_decision_for_the_selected_is_one_staff_event_each_with_the_note(client, support, trio):
    newsletter = Purpose.objects.get(code="newsletter")
    consent_grant(customer=trio[0], purpose=newsletter, source=Source.SIGNUP_FORM)  # Ada already consents
    client.force_login(support)
    selected = {"action": "record_consent", "_selected_action": [c.pk for c in trio]}

    form_page = client.post(LIST, selected)
    assert form_page.status_code == 200 and "3 customers selected" in form_page.content.decode()
    refused = client.post(
        LIST, {**selected, "apply": "1", "purpose": newsletter.pk, "decision": "granted", "method": "phone", "note": ""}
    )
    assert "This field is required" in refused.content.decode()
    assert ConsentEvent.objects.filter(source=Source.STAFF).count() == 0

    done = client.post(
        LIST,
        {
            **selected,
            "apply": "1",
            "purpose": newsletter.pk,
            "decision": "granted",
            "method": "phone",
            "note": "Trade fair sign-up sheet, 2 Dec",
        },
        follow=True,
    )

    events = ConsentEvent.objects.filter(source=Source.STAFF)
    assert sorted(e.customer_id for e in events) == sorted([trio[1].pk, trio[2].pk])
    assert {(e.note, e.method, e.staff_user_id, e.granted) for e in events} == {
        ("Trade fair sign-up sheet, 2 Dec", "phone", support.pk, True)
    }
    assert Consent.objects.filter(purpose=newsletter, granted=True).count() == 3
    assert "recorded for 2 customer(s), 1 already had it" in done.content.decode()


def test_exporting_the_selected_downloads_their_data_and_logs_each(client, officer, trio):
    client.force_login(officer)

    response = client.post(LIST, {"action": "export_selected", "_selected_action": [trio[0].pk, trio[2].pk]})

    assert response.status_code == 200 and response["Content-Type"].startswith("application/json")
    document = json.loads(response.content)
    assert document["format"] == "consentdesk.customer-export-list/1"
    assert len(document["customers"]) == 2
    logged = AccessLog.objects.filter(staff_user=officer, action=AccessLog.Action.EXPORTED)
    assert sorted(logged.values_list("customer_id", flat=True)) == [trio[0].pk, trio[2].pk]


def test_filing_privacy_requests_for_the_selected(client, officer, trio):
    client.force_login(officer)
    selected = {"action": "file_privacy_requests", "_selected_action": [c.pk for c in trio]}

    client.post(LIST, {**selected, "apply": "1", "kind": "access", "channel": "letter", "details": "Asked at the fair"})
    again = client.post(
        LIST, {**selected, "apply": "1", "kind": "access", "channel": "letter", "details": "Asked again"}, follow=True
    )

    assert PrivacyRequest.objects.filter(kind="access", status="open").count() == 3
    assert "0 request(s) filed, 3 customer(s) already had one open" in again.content.decode()


def test_a_bulk_action_over_too_many_customers_is_refused(client, support, trio, monkeypatch):
    from dashboard import admin as dashboard_admin

    monkeypatch.setattr(dashboard_admin, "BULK_MAX", 2)
    client.force_login(support)
    response = client.post(LIST, {"action": "record_consent", "_selected_action": [c.pk for c in trio]}, follow=True)
    assert "a bulk action takes at most 2" in response.content.decode()
