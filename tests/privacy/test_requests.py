"""Data-subject requests in admin: entered by staff, due in a month, extended once, closed with a reason."""

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from privacy.models import AccessLog, PrivacyRequest, add_months
from privacy.services import privacy_request_extend, privacy_request_open
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db

LIST = "/admin/privacy/privacyrequest/"


@pytest.fixture
def ada(db):
    return CustomerFactory(email="ada@example.com", first_name="Ada", last_name="Lovelace")


@pytest.fixture
def late_and_timely(ada):
    """Ada's access request came 40 days ago (overdue); Grace's erasure request yesterday."""
    late = privacy_request_open(
        customer=ada, kind="access", channel="letter", received_at=timezone.now() - timedelta(days=40)
    )
    grace = CustomerFactory(email="grace@example.com")
    timely = privacy_request_open(
        customer=grace, kind="erasure", channel="email", received_at=timezone.now() - timedelta(days=1)
    )
    return late, timely


def test_staff_enter_a_request_that_came_by_letter(client, officer, ada):
    client.force_login(officer)
    received = timezone.localtime() - timedelta(days=2)
    response = client.post(
        LIST + "add/",
        {
            "customer": ada.pk,
            "kind": "correction",
            "channel": "letter",
            "details": "Her company name is misspelt",
            "received_at_0": received.strftime("%Y-%m-%d"),
            "received_at_1": received.strftime("%H:%M:%S"),
        },
    )
    assert response.status_code == 302, response.content.decode()
    request = PrivacyRequest.objects.get(customer=ada)
    assert (request.kind, request.channel, request.status) == ("correction", "letter", "open")
    assert request.due_at == add_months(request.received_at, 1)


def test_a_request_received_in_the_future_is_refused_with_a_message(client, officer, ada):
    client.force_login(officer)
    later = timezone.localtime() + timedelta(days=3)
    response = client.post(
        LIST + "add/",
        {
            "customer": ada.pk,
            "kind": "access",
            "channel": "phone",
            "received_at_0": later.strftime("%Y-%m-%d"),
            "received_at_1": later.strftime("%H:%M:%S"),
        },
    )
    assert response.status_code == 200
    assert "cannot be received in the future" in response.content.decode()
    assert not PrivacyRequest.objects.exists()


def test_overdue_requests_show_as_overdue(client, officer, late_and_timely):
    late, timely = late_and_timely
    client.force_login(officer)

    page = client.get(LIST).content.decode()
    assert "Overdue by 9 days" in page or "Overdue by 10 days" in page
    overdue = client.get(LIST, {"deadline": "overdue"}).content.decode()
    assert f"/{late.pk}/change/" in overdue
    assert f"/{timely.pk}/change/" not in overdue
    assert list(PrivacyRequest.objects.overdue()) == [late]


def test_the_list_shows_open_requests_unless_asked(client, officer, late_and_timely, ada):
    late, _timely = late_and_timely
    client.force_login(officer)
    client.post(f"{LIST}{late.pk}/close/", {"outcome": "done"})
    assert f"/{late.pk}/change/" not in client.get(LIST).content.decode()
    assert f"/{late.pk}/change/" in client.get(LIST, {"status": "done"}).content.decode()
    assert f"/{late.pk}/change/" in client.get(LIST, {"status": "all"}).content.decode()


def test_a_deadline_is_extended_once_by_two_months_with_a_reason(client, officer, late_and_timely):
    _late, timely = late_and_timely
    client.force_login(officer)
    url = f"{LIST}{timely.pk}/extend/"

    without_reason = client.post(url, {"reason": ""})
    assert without_reason.status_code == 200 and "This field is required" in without_reason.content.decode()
    assert client.post(url, {"reason": "Archive boxes in two offices"}).status_code == 302

    timely.refresh_from_db()
    assert timely.extended_due_at == add_months(timely.due_at, 2)
    assert (timely.extension_reason, timely.handled_by) == ("Archive boxes in two offices", officer)
    again = client.post(url, {"reason": "Still looking"})
    assert "already extended once" in again.content.decode()


def test_an_overdue_request_cannot_be_extended_and_the_page_says_why(client, officer, late_and_timely):
    # given Ada's access request, received 40 days ago and never answered
    late, _timely = late_and_timely
    client.force_login(officer)

    # then its page offers no extension and says the first month has ended
    page = client.get(f"{LIST}{late.pk}/change/").content.decode()
    assert f"{LIST}{late.pk}/extend/" not in page
    assert "It can no longer be extended: the first month ended on" in page

    # and an extension asked for anyway changes nothing: the request stays overdue
    response = client.post(f"{LIST}{late.pk}/extend/", {"reason": "We were busy"}, follow=True)
    assert "can no longer be extended" in response.content.decode()
    late.refresh_from_db()
    assert late.extended_due_at is None
    assert late.is_overdue()
    with pytest.raises(ValidationError, match="a deadline can only be extended within it"):
        privacy_request_extend(privacy_request=late, reason="We were busy", staff_user=officer)


def test_a_second_open_request_of_the_same_kind_is_only_reported_as_not_added(client, officer, late_and_timely, ada):
    # given Ada already has an open access request
    late, _timely = late_and_timely
    client.force_login(officer)
    now = timezone.localtime()

    # when staff enter another access request for her
    response = client.post(
        LIST + "add/",
        {
            "customer": ada.pk,
            "kind": "access",
            "channel": "phone",
            "received_at_0": now.strftime("%Y-%m-%d"),
            "received_at_1": now.strftime("%H:%M:%S"),
        },
        follow=True,
    )

    # then they are told it was not added, and nothing says it was
    shown = [str(message) for message in response.context["messages"]]
    assert len(shown) == 1 and "it was not added a second time" in shown[0]
    assert "added successfully" not in response.content.decode()
    assert response.redirect_chain[-1][0] == f"{LIST}{late.pk}/change/"
    assert PrivacyRequest.objects.filter(customer=ada).count() == 1


def test_the_request_form_finds_the_customer_by_autocomplete_not_by_row_id(client, officer, ada):
    client.force_login(officer)
    page = client.get(LIST + "add/").content.decode()
    assert "admin-autocomplete" in page
    assert "vForeignKeyRawIdAdminField" not in page
    found = client.get(
        "/admin/autocomplete/",
        {"term": "ada@", "app_label": "privacy", "model_name": "privacyrequest", "field_name": "customer"},
    ).json()
    assert [result["id"] for result in found["results"]] == [str(ada.pk)]


def test_a_refusal_needs_a_reason_and_names_who_refused(client, officer, late_and_timely):
    late, _timely = late_and_timely
    client.force_login(officer)
    url = f"{LIST}{late.pk}/close/"
    assert "Say why the request is refused" in client.post(url, {"outcome": "refused"}).content.decode()
    client.post(url, {"outcome": "refused", "reason": "Manifestly unfounded: the fifth identical request"})
    late.refresh_from_db()
    assert (late.status, late.handled_by) == ("refused", officer)
    assert late.closed_at is not None


def test_an_erasure_request_is_done_only_by_erasing(client, officer, late_and_timely):
    _late, timely = late_and_timely
    client.force_login(officer)
    page = client.get(f"{LIST}{timely.pk}/change/").content.decode()
    assert f"/admin/privacy/customererasure/erase/{timely.customer_id}/?request={timely.pk}" in page
    response = client.post(f"{LIST}{timely.pk}/close/", {"outcome": "done"})
    assert "Erase the customer first" in response.content.decode()
    timely.refresh_from_db()
    assert timely.status == "open"


def test_an_access_request_gives_the_same_export_and_it_is_logged(client, officer, late_and_timely, ada):
    late, _timely = late_and_timely
    client.force_login(officer)
    page = client.get(f"{LIST}{late.pk}/change/").content.decode()
    link = f"/admin/export/customer/{ada.public_id}/export.json?request={late.pk}"
    assert link.replace("&", "&amp;") in page
    response = client.get(link)
    assert response.status_code == 200
    assert response.json()["customer"]["email"] == "ada@example.com"
    entry = AccessLog.objects.get(action=AccessLog.Action.EXPORTED)
    assert (entry.customer, entry.staff_user, entry.detail) == (ada, officer, f"for privacy request {late.pk}")
