"""
Outgoing webhooks, delivered to a real HTTP server on 127.0.0.1 and verified as a receiver
would, with the standardwebhooks package: signatures, retries with backoff, the limit of
attempts, disabling a failing endpoint, "send again", personal data only where allowed, and
erasure reaching queued and logged payloads. Runs on SQLite and, with DATABASE_URL set, PostgreSQL.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.contrib.auth.models import Group, Permission
from django.core import mail
from django.db import transaction
from django.utils import timezone
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from api import webhooks
from api.models import WebhookAttempt, WebhookEndpoint, WebhookMessage, webhook_secret_new
from api.parts import ApiPart
from config.celery import app as celery_app
from consents.models import Purpose, Source
from consents.services import consent_set
from customers.models import CustomerChange
from customers.services import customer_update
from marketing.models import Suppression
from marketing.suppression import suppression_add
from privacy.services import customer_erase, retention_apply
from tests.factories import CustomerFactory
from tests.marketing.conftest import celery_worker_thread  # noqa: F401 (a fixture)
from tests.marketing.test_workers import wait_for
from tests.privacy.people import staff_in

pytestmark = pytest.mark.django_db

ALL_EVENTS = ["consent.changed", "customer.updated", "customer.erased", "suppression.added"]
GRACE_EMAIL = "grace.hopper@navy.example"


class Receiver:
    """An HTTP server on 127.0.0.1 that records what it is sent and answers with `statuses` in turn (then 200)."""

    def __init__(self, statuses: list[int] | None = None, body: bytes = b'{"ok": true}'):
        self.statuses = list(statuses or [])
        self.body = body
        self.received: list[dict] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                receiver.received.append(
                    {"headers": dict(self.headers.items()), "body": self.rfile.read(length).decode(), "path": self.path}
                )
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(receiver.body)))
                self.end_headers()
                self.wfile.write(receiver.body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/consentdesk"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def payloads(self) -> list[dict]:
        return [json.loads(r["body"]) for r in self.received]


@pytest.fixture(autouse=True)
def _private_urls_allowed(settings):
    # The receivers run on loopback, which production refuses.
    settings.WEBHOOK_ALLOW_PRIVATE_URLS = True
    settings.WEBHOOK_RETRY_BASE_SECONDS = 60
    settings.WEBHOOK_MAX_ATTEMPTS = 8
    settings.WEBHOOK_DISABLE_AFTER_HOURS = 24


@pytest.fixture
def receiver():
    with Receiver() as server:
        yield server


@pytest.fixture
def eager_celery():
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = previous


@pytest.fixture
def delivered_on_commit(eager_celery, django_capture_on_commit_callbacks):
    """Changes made inside it are delivered as a worker would, once their transaction commits."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


@pytest.fixture
def grace(db):
    return CustomerFactory(email=GRACE_EMAIL, first_name="Grace", last_name="Hopper")


@pytest.fixture
def newsletter(db):
    return Purpose.objects.get(code="newsletter")


@pytest.fixture
def officer(django_user_model):
    return staff_in(django_user_model, "Privacy officer", "olga-officer")


@pytest.fixture
def superuser(django_user_model):
    return django_user_model.objects.create_superuser("root", "root@staff.example", "correct horse battery")


def endpoint_for(url: str, *, events=None, personal: bool = False, name: str = "CRM") -> WebhookEndpoint:
    endpoint = WebhookEndpoint(name=name, url=url, events=events or ALL_EVENTS, may_receive_personal_data=personal)
    webhooks.webhook_endpoint_save(endpoint=endpoint)
    return endpoint


def only_message() -> WebhookMessage:
    (message,) = WebhookMessage.objects.all()
    return message


# ---------------------------------------------------------------------------------------
# Signatures


def test_a_consent_change_reaches_the_receiver_signed_as_standard_webhooks_and_verifies(
    receiver, grace, newsletter, delivered_on_commit
):
    # given the CRM's endpoint, subscribed to every event
    endpoint = endpoint_for(receiver.url)

    # when Grace subscribes to the newsletter on her preference page
    with delivered_on_commit():
        consent_set(customer=grace, purpose=newsletter, granted=True, source=Source.PREFERENCE_PAGE)

    # then the CRM received one request, and the standardwebhooks package verifies it
    (request,) = receiver.received
    assert request["headers"]["webhook-signature"].startswith("v1,")
    payload = Webhook(endpoint.secret).verify(request["body"], request["headers"])
    assert payload["type"] == "consent.changed"
    assert payload["data"] == {
        "customer": str(grace.public_id),
        "purpose": "newsletter",
        "granted": True,
        "occurred_at": grace.consents.get(purpose=newsletter).since.isoformat(),
        "source": "preference_page",
    }
    message = only_message()
    assert request["headers"]["webhook-id"] == message.message_id
    assert message.status == WebhookMessage.Status.DELIVERED
    (attempt,) = message.attempt_log.all()
    assert (attempt.outcome, attempt.response_status, attempt.error) == ("succeeded", 200, "")
    assert attempt.response_excerpt == '{"ok": true}'


def test_a_signature_checked_with_another_secret_fails(receiver, grace, newsletter, delivered_on_commit):
    endpoint = endpoint_for(receiver.url)
    with delivered_on_commit():
        consent_set(customer=grace, purpose=newsletter, granted=True, source=Source.PREFERENCE_PAGE)
    (request,) = receiver.received

    with pytest.raises(WebhookVerificationError):
        Webhook(webhook_secret_new()).verify(request["body"], request["headers"])
    # and a body changed on the way fails with the right secret too
    with pytest.raises(WebhookVerificationError):
        Webhook(endpoint.secret).verify(request["body"].replace("true", "false"), request["headers"])


def test_each_endpoint_has_a_secret_of_its_own_in_the_standard_form():
    first, second = endpoint_for("http://127.0.0.1:9/a"), endpoint_for("http://127.0.0.1:9/b")
    assert first.secret.startswith("whsec_") and second.secret.startswith("whsec_")
    assert first.secret != second.secret
    Webhook(first.secret)  # the package accepts it


# ---------------------------------------------------------------------------------------
# Retries, the limit of attempts, disabling


def test_a_receiver_that_fails_twice_then_succeeds_gets_the_event_three_times_and_no_more(grace, newsletter):
    with Receiver(statuses=[500, 503]) as receiver:
        endpoint_for(receiver.url)
        consent_set(customer=grace, purpose=newsletter, granted=True, source=Source.PREFERENCE_PAGE)
        message = only_message()
        start = timezone.now()

        # the first attempt fails: the next waits a minute
        first = webhooks.webhook_message_deliver(message_pk=message.pk, now=start)
        assert (first.attempted, first.succeeded, first.retry_in) == (True, False, 60)
        assert len(receiver.received) == 1
        # nothing goes out before then, however often a worker or the sweep asks
        assert not webhooks.webhook_message_deliver(message_pk=message.pk, now=start + timedelta(seconds=59)).attempted
        assert webhooks.webhook_messages_due(now=start + timedelta(seconds=59)) == []
        assert len(receiver.received) == 1

        # the second fails after a minute: the next waits two
        second = webhooks.webhook_message_deliver(message_pk=message.pk, now=start + timedelta(seconds=60))
        assert (second.succeeded, second.retry_in) == (False, 120)
        assert not webhooks.webhook_message_deliver(message_pk=message.pk, now=start + timedelta(seconds=179)).attempted

        # the third succeeds
        third = webhooks.webhook_message_deliver(message_pk=message.pk, now=start + timedelta(seconds=180))
        assert third.succeeded and third.retry_in is None

        # and nothing more is sent, a day later either
        later = start + timedelta(days=1)
        assert webhooks.webhook_messages_due(now=later) == []
        assert not webhooks.webhook_message_deliver(message_pk=message.pk, now=later).attempted

    assert len(receiver.received) == 3
    assert {r["headers"]["webhook-id"] for r in receiver.received} == {message.message_id}
    message.refresh_from_db()
    assert (message.status, message.attempts) == (WebhookMessage.Status.DELIVERED, 3)
    outcomes = list(message.attempt_log.order_by("attempted_at").values_list("outcome", "response_status", "error"))
    assert outcomes == [("failed", 500, "HTTP 500"), ("failed", 503, "HTTP 503"), ("succeeded", 200, "")]
    assert WebhookEndpoint.objects.get().failing_since is None


def test_the_celery_task_schedules_the_retry_with_its_backoff(grace, newsletter, monkeypatch):
    from api import tasks

    scheduled = []
    monkeypatch.setattr(
        tasks.webhook_deliver, "apply_async", lambda args, countdown: scheduled.append((args, countdown))
    )
    with Receiver(statuses=[500]) as receiver:
        endpoint_for(receiver.url)
        consent_set(customer=grace, purpose=newsletter, granted=True, source=Source.PREFERENCE_PAGE)
        message = only_message()
        assert tasks.webhook_deliver(message.pk) is False
    assert scheduled == [((message.pk,), 60)]


def test_a_receiver_that_is_down_is_a_failed_attempt_staff_can_read(grace, newsletter):
    with Receiver() as receiver:
        url = receiver.url  # nothing listens there once it stopped
    endpoint_for(url)
    consent_set(customer=grace, purpose=newsletter, granted=True, source=Source.PREFERENCE_PAGE)

    result = webhooks.webhook_message_deliver(message_pk=only_message().pk)

    assert result.attempted and result.retry_in == 60
    attempt = WebhookAttempt.objects.get()
    assert attempt.response_status is None
    assert attempt.error.startswith("Could not connect: ") and "Connection refused" in attempt.error


def test_a_message_is_given_up_after_the_maximum_of_attempts(settings, grace, newsletter):
    settings.WEBHOOK_MAX_ATTEMPTS = 3
    with Receiver(statuses=[500] * 10) as receiver:
        endpoint_for(receiver.url)
        consent_set(customer=grace, purpose=newsletter, granted=True, source=Source.PREFERENCE_PAGE)
        message = only_message()
        moment = timezone.now()
        for _ in range(6):
            webhooks.webhook_message_deliver(message_pk=message.pk, now=moment)
            moment += timedelta(hours=1)
    assert len(receiver.received) == 3
    message.refresh_from_db()
    assert message.status == WebhookMessage.Status.FAILED and message.next_attempt_at is None


def test_an_endpoint_failing_for_the_set_time_is_disabled_and_staff_are_told(
    settings, grace, newsletter, officer, superuser, client, django_capture_on_commit_callbacks
):
    # given an endpoint disabled after one hour of failures, and staff with addresses
    settings.WEBHOOK_DISABLE_AFTER_HOURS = 1
    settings.WEBHOOK_RETRY_BASE_SECONDS = 30 * 60
    with Receiver(statuses=[502] * 10) as receiver:
        endpoint = endpoint_for(receiver.url)
        consent_set(customer=grace, purpose=newsletter, granted=True, source=Source.PREFERENCE_PAGE)
        message = only_message()
        start = timezone.now()
        # failing for 30 minutes: still active
        webhooks.webhook_message_deliver(message_pk=message.pk, now=start)
        webhooks.webhook_message_deliver(message_pk=message.pk, now=start + timedelta(minutes=30))
        endpoint.refresh_from_db()
        assert endpoint.is_active and endpoint.failing_since == start
        assert mail.outbox == []

        # when it still fails two hours after the first failure
        with django_capture_on_commit_callbacks(execute=True):  # the mail leaves on commit
            result = webhooks.webhook_message_deliver(message_pk=message.pk, now=start + timedelta(hours=2))
        assert result.endpoint_disabled and result.retry_in is None

        # then nothing more is sent, and the message waits
        assert webhooks.webhook_messages_due(now=start + timedelta(days=2)) == []
        assert not webhooks.webhook_message_deliver(message_pk=message.pk, now=start + timedelta(days=2)).attempted
    assert len(receiver.received) == 3
    endpoint.refresh_from_db()
    assert not endpoint.is_active and endpoint.disabled_at == start + timedelta(hours=2)
    assert "failed for 1 hours" in endpoint.disabled_reason
    message.refresh_from_db()
    assert message.status == WebhookMessage.Status.PENDING

    # and the superuser and the privacy officer were mailed, with a link to the endpoint
    (sent,) = mail.outbox
    assert sorted(sent.to) == ["olga-officer@staff.example", "root@staff.example"]
    assert "“CRM” was disabled" in sent.subject
    assert f"/admin/api/webhookendpoint/{endpoint.pk}/change/" in sent.body

    # and the admin shows it
    client.force_login(officer)
    listing = client.get("/admin/api/webhookendpoint/")
    assert "Disabled" in listing.content.decode() and "failed for 1 hours" in listing.content.decode()


def test_re_enabling_a_disabled_endpoint_sends_its_waiting_messages(grace, newsletter, officer, client, eager_celery):
    with Receiver() as receiver:
        endpoint = endpoint_for(receiver.url, events=["consent.changed"])
        consent_set(customer=grace, purpose=newsletter, granted=True, source=Source.PREFERENCE_PAGE)
        WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
            is_active=False, disabled_at=timezone.now(), disabled_reason="Every attempt failed"
        )
        client.force_login(officer)
        response = client.post(
            f"/admin/api/webhookendpoint/{endpoint.pk}/change/",
            {
                "name": "CRM",
                "url": receiver.url,
                "events": ["consent.changed"],
                "is_active": "on",
            },
            follow=True,
        )
        assert "1 waiting message(s) queued to be sent." in response.content.decode()
        webhooks.webhook_message_deliver(message_pk=only_message().pk)
    assert len(receiver.received) == 1
    endpoint.refresh_from_db()
    assert endpoint.is_active and endpoint.disabled_at is None and endpoint.disabled_reason == ""


def test_editing_an_active_endpoint_keeps_the_backoff_of_its_waiting_messages(grace, newsletter):
    with Receiver(statuses=[500]) as receiver:
        endpoint = endpoint_for(receiver.url)
        consent_set(customer=grace, purpose=newsletter, granted=True, source=Source.PREFERENCE_PAGE)
        webhooks.webhook_message_deliver(message_pk=only_message().pk)
    waiting_until = only_message().next_attempt_at

    endpoint.name = "CRM (new name)"
    assert webhooks.webhook_endpoint_save(endpoint=endpoint) == []

    assert only_message().next_attempt_at == waiting_until


# ---------------------------------------------------------------------------------------
# Send again


def test_send_again_delivers_a_message_once_more_with_the_same_webhook_id(
    receiver, grace, newsletter, officer, client, delivered_on_commit
):
    endpoint_for(receiver.url)
    with delivered_on_commit():
        consent_set(customer=grace, purpose=newsletter, granted=True, source=Source.PREFERENCE_PAGE)
    message = only_message()
    client.force_login(officer)

    with delivered_on_commit():
        response = client.post(
            "/admin/api/webhookmessage/",
            {"action": "send_again", "_selected_action": [message.pk]},
            follow=True,
        )

    assert "1 message(s) queued to be sent again." in response.content.decode()
    assert len(receiver.received) == 2
    assert receiver.received[0]["body"] == receiver.received[1]["body"]
    assert receiver.received[1]["headers"]["webhook-id"] == message.message_id
    assert message.attempt_log.count() == 2
    message.refresh_from_db()
    assert message.status == WebhookMessage.Status.DELIVERED


def test_send_again_retries_a_message_that_was_given_up(settings, grace, newsletter, officer, client):
    settings.WEBHOOK_MAX_ATTEMPTS = 1
    with Receiver(statuses=[500]) as receiver:
        endpoint_for(receiver.url)
        consent_set(customer=grace, purpose=newsletter, granted=True, source=Source.PREFERENCE_PAGE)
        message = only_message()
        webhooks.webhook_message_deliver(message_pk=message.pk)
        message.refresh_from_db()
        assert message.status == WebhookMessage.Status.FAILED

        client.force_login(officer)
        client.post("/admin/api/webhookmessage/", {"action": "send_again", "_selected_action": [message.pk]})
        assert webhooks.webhook_message_deliver(message_pk=message.pk).succeeded
    assert len(receiver.received) == 2


def test_send_again_is_refused_for_a_disabled_endpoint_with_a_message(grace, newsletter, officer, client):
    endpoint = endpoint_for("http://127.0.0.1:9/hooks")
    consent_set(customer=grace, purpose=newsletter, granted=True, source=Source.PREFERENCE_PAGE)
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(is_active=False, disabled_at=timezone.now())
    client.force_login(officer)

    response = client.post(
        "/admin/api/webhookmessage/", {"action": "send_again", "_selected_action": [only_message().pk]}, follow=True
    )

    assert response.status_code == 200
    assert "Not sent again: CRM is not active." in response.content.decode()


# ---------------------------------------------------------------------------------------
# Personal data


def test_no_address_reaches_an_endpoint_not_allowed_personal_data(grace, newsletter, delivered_on_commit):
    with Receiver() as plain, Receiver() as personal:
        endpoint_for(plain.url, name="Support desk")
        endpoint_for(personal.url, name="CRM", personal=True)
        with delivered_on_commit():
            consent_set(customer=grace, purpose=newsletter, granted=True, source=Source.PREFERENCE_PAGE)
            customer_update(
                customer=grace, data={"first_name": "Amazing Grace"}, changed_by=CustomerChange.ChangedBy.CUSTOMER
            )
            suppression_add(email=GRACE_EMAIL, reason=Suppression.Reason.COMPLAINT)

    assert [p["type"] for p in plain.payloads()] == ["consent.changed", "customer.updated", "suppression.added"]
    for request in plain.received:
        assert GRACE_EMAIL not in request["body"] and "Amazing" not in request["body"]
        assert json.loads(request["body"])["data"]["customer"] == str(grace.public_id)
    # the endpoint allowed personal data gets the address and the new values
    by_type = {p["type"]: p["data"] for p in personal.payloads()}
    assert by_type["consent.changed"]["email"] == GRACE_EMAIL
    assert by_type["customer.updated"]["values"] == {"first_name": "Amazing Grace"}
    assert by_type["suppression.added"]["email"] == GRACE_EMAIL


def test_a_receivers_reply_is_kept_only_as_a_short_masked_excerpt(grace, newsletter, delivered_on_commit):
    echo = json.dumps({"received_for": GRACE_EMAIL, "log": "x" * 5000}).encode()
    with Receiver(statuses=[500], body=echo) as receiver:
        endpoint_for(receiver.url, personal=True)
        with delivered_on_commit():
            consent_set(customer=grace, purpose=newsletter, granted=True, source=Source.PREFERENCE_PAGE)
    (attempt,) = WebhookAttempt.objects.all()
    assert len(attempt.response_excerpt) <= 200
    assert GRACE_EMAIL not in attempt.response_excerpt and "g***@***" in attempt.response_excerpt


def test_erasure_removes_the_address_from_queued_and_logged_payloads(grace, newsletter, officer, delivered_on_commit):
    # given an endpoint allowed personal data that received one message and has another queued
    with Receiver(body=json.dumps({"thanks": GRACE_EMAIL}).encode()) as receiver:
        endpoint_for(receiver.url, personal=True)
        with delivered_on_commit():
            consent_set(customer=grace, purpose=newsletter, granted=True, source=Source.PREFERENCE_PAGE)
    consent_set(customer=grace, purpose=newsletter, granted=False, source=Source.PREFERENCE_PAGE)
    assert sorted(WebhookMessage.objects.values_list("status", flat=True)) == ["delivered", "pending"]
    exported = ApiPart().export(grace)["webhook_messages"]
    assert [m["personal_data"] for m in exported] == [{"email": GRACE_EMAIL}, {"email": GRACE_EMAIL}]

    # when she is erased
    customer_erase(customer=grace, staff_user=officer)

    # then no stored payload or reply holds her address, and the export shows none
    for message in WebhookMessage.objects.all():
        assert GRACE_EMAIL not in json.dumps(message.payload)
        assert message.payload["data"]["customer"] == str(grace.public_id)
    assert not WebhookAttempt.objects.exclude(response_excerpt="").exists()
    grace.refresh_from_db()
    assert [m["personal_data"] for m in ApiPart().export(grace)["webhook_messages"]] == [None, None, None]
    # and the queued message still goes out, without the address
    with Receiver() as receiver:
        WebhookEndpoint.objects.update(url=receiver.url)
        pending = WebhookMessage.objects.get(status="pending", event_type="consent.changed")
        assert webhooks.webhook_message_deliver(message_pk=pending.pk).succeeded
    assert GRACE_EMAIL not in receiver.received[0]["body"]


def test_finished_messages_leave_with_the_other_log_data_and_waiting_ones_stay(settings, grace, newsletter):
    endpoint_for("http://127.0.0.1:9/hooks")
    for granted in (True, False, True):
        consent_set(customer=grace, purpose=newsletter, granted=granted, source=Source.PREFERENCE_PAGE)
    old = timezone.now() - timedelta(days=settings.RETENTION_IP_DAYS + 1)
    delivered, failed, waiting = WebhookMessage.objects.order_by("id")
    WebhookMessage.objects.filter(pk=delivered.pk).update(status="delivered", created_at=old)
    WebhookMessage.objects.filter(pk=failed.pk).update(status="failed", created_at=old)
    WebhookMessage.objects.filter(pk=waiting.pk).update(created_at=old)
    WebhookAttempt.objects.create(message=delivered, outcome="succeeded", response_status=200)

    retention_apply()

    assert list(WebhookMessage.objects.values_list("pk", flat=True)) == [waiting.pk]
    assert not WebhookAttempt.objects.exists()


# ---------------------------------------------------------------------------------------
# Each event from its real service call


def _types() -> list[str]:
    return list(WebhookMessage.objects.order_by("id").values_list("event_type", flat=True))


def test_each_event_type_is_queued_once_from_the_service_that_makes_the_change(grace, newsletter, officer):
    endpoint_for("http://127.0.0.1:9/hooks")

    consent_set(customer=grace, purpose=newsletter, granted=True, source=Source.PREFERENCE_PAGE)
    consent_set(customer=grace, purpose=newsletter, granted=True, source=Source.PREFERENCE_PAGE)  # no change
    assert _types() == ["consent.changed"]

    customer_update(customer=grace, data={"city": "Arlington"}, changed_by=CustomerChange.ChangedBy.API)
    customer_update(customer=grace, data={"notes": "internal only"}, changed_by=CustomerChange.ChangedBy.STAFF)
    assert _types() == ["consent.changed", "customer.updated"]

    suppression_add(email=GRACE_EMAIL, reason=Suppression.Reason.STAFF, user=officer)
    suppression_add(email=GRACE_EMAIL, reason=Suppression.Reason.STAFF, user=officer)  # already suppressed
    assert _types() == ["consent.changed", "customer.updated", "suppression.added"]

    customer_erase(customer=grace, staff_user=officer)
    assert _types() == ["consent.changed", "customer.updated", "suppression.added", "customer.erased"]
    erased = WebhookMessage.objects.get(event_type="customer.erased")
    grace.refresh_from_db()
    assert erased.payload["data"] == {"customer": str(grace.public_id), "erased_at": grace.erased_at.isoformat()}


def test_an_endpoint_gets_only_the_events_it_subscribed_to(grace, newsletter):
    endpoint_for("http://127.0.0.1:9/hooks", events=["customer.erased"])
    consent_set(customer=grace, purpose=newsletter, granted=True, source=Source.PREFERENCE_PAGE)
    assert _types() == []


def test_a_change_that_is_rolled_back_sends_nothing(grace, newsletter):
    endpoint_for("http://127.0.0.1:9/hooks")
    with pytest.raises(RuntimeError), transaction.atomic():
        consent_set(customer=grace, purpose=newsletter, granted=True, source=Source.PREFERENCE_PAGE)
        raise RuntimeError("the request failed after the change")
    assert _types() == []


# ---------------------------------------------------------------------------------------
# Endpoint addresses and the admin


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "http://localhost/hook",
        "https://10.1.2.3/hook",
        "http://[::1]/hook",
        "http://169.254.169.254/",
    ],
)
def test_the_admin_refuses_an_endpoint_on_a_private_address_and_says_why(settings, superuser, client, url):
    settings.WEBHOOK_ALLOW_PRIVATE_URLS = False
    client.force_login(superuser)
    form = client.get("/admin/api/webhookendpoint/add/").content.decode()
    assert "WEBHOOK_ALLOW_PRIVATE_URLS allows them" in form

    response = client.post(
        "/admin/api/webhookendpoint/add/",
        {"name": "Intranet", "url": url, "events": ["consent.changed"], "is_active": "on"},
    )

    assert response.status_code == 200
    assert "loopback, private or reserved address" in response.content.decode()
    assert not WebhookEndpoint.objects.exists()


def test_an_address_that_became_private_is_not_called(settings, grace, newsletter):
    with Receiver() as receiver:
        endpoint_for(receiver.url)
        consent_set(customer=grace, purpose=newsletter, granted=True, source=Source.PREFERENCE_PAGE)
        settings.WEBHOOK_ALLOW_PRIVATE_URLS = False
        result = webhooks.webhook_message_deliver(message_pk=only_message().pk)
    assert receiver.received == []
    assert result.attempted and not result.succeeded
    assert WebhookAttempt.objects.get().error.startswith("Not sent: 127.0.0.1 is a loopback")


def test_a_new_endpoint_shows_its_secret_once_after_saving(superuser, client):
    client.force_login(superuser)
    response = client.post(
        "/admin/api/webhookendpoint/add/",
        {"name": "CRM", "url": "http://127.0.0.1:9/hooks", "events": ["consent.changed", "customer.erased"]},
        follow=True,
    )
    endpoint = WebhookEndpoint.objects.get()
    assert endpoint.events == ["consent.changed", "customer.erased"] and endpoint.created_by == superuser
    assert f"The signing secret of CRM is {endpoint.secret}" in response.content.decode()


def test_only_superusers_and_privacy_officers_see_the_whole_secret(officer, django_user_model, client):
    endpoint = endpoint_for("http://127.0.0.1:9/hooks")
    client.force_login(officer)
    assert endpoint.secret in client.get(f"/admin/api/webhookendpoint/{endpoint.pk}/change/").content.decode()

    viewer = django_user_model.objects.create_user("vic", "vic@staff.example", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_webhookendpoint"))
    client.force_login(viewer)
    page = client.get(f"/admin/api/webhookendpoint/{endpoint.pk}/change/").content.decode()
    assert endpoint.secret not in page and "only superusers and privacy officers" in page


def test_privacy_officers_may_manage_endpoints_and_support_may_not(officer, django_user_model):
    group = Group.objects.get(name="Privacy officer")
    codenames = set(group.permissions.filter(content_type__app_label="api").values_list("codename", flat=True))
    assert {"add_webhookendpoint", "change_webhookendpoint", "view_webhook_secret", "view_webhookattempt"} <= codenames
    support = staff_in(django_user_model, "Support", "sam-support")
    assert not support.has_perm("api.view_webhookendpoint")


def test_the_admin_pages_show_messages_and_every_attempt(
    receiver, grace, newsletter, officer, client, delivered_on_commit
):
    endpoint = endpoint_for(receiver.url)
    with delivered_on_commit():
        consent_set(customer=grace, purpose=newsletter, granted=True, source=Source.PREFERENCE_PAGE)
    message = only_message()
    client.force_login(officer)
    pages = {
        "/admin/api/webhookendpoint/": "CRM",
        f"/admin/api/webhookendpoint/{endpoint.pk}/change/": message.message_id,
        "/admin/api/webhookmessage/": message.message_id[:14],
        f"/admin/api/webhookmessage/{message.pk}/change/": message.message_id,
        "/admin/api/webhookattempt/": "consent.changed",
    }
    for url, expected in pages.items():
        response = client.get(url)
        assert response.status_code == 200, url
        assert expected in response.content.decode(), url
    attempts = client.get("/admin/api/webhookattempt/").content.decode()
    assert "Succeeded" in attempts and "200" in attempts


# ---------------------------------------------------------------------------------------
# A real worker on the Redis broker


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("celery_worker_thread")
def test_a_real_worker_delivers_after_commit_and_retries_with_its_backoff(settings):
    settings.WEBHOOK_RETRY_BASE_SECONDS = 1
    grace = CustomerFactory(email=GRACE_EMAIL)
    with Receiver(statuses=[500]) as receiver:
        endpoint = endpoint_for(receiver.url)

        consent_set(
            customer=grace, purpose=Purpose.objects.get(code="newsletter"), granted=True, source=Source.PREFERENCE_PAGE
        )

        assert wait_for(lambda: WebhookMessage.objects.filter(status="delivered").exists())
        time.sleep(2)  # nothing more arrives
    assert len(receiver.received) == 2
    for request in receiver.received:
        assert Webhook(endpoint.secret).verify(request["body"], request["headers"])["type"] == "consent.changed"
    assert list(WebhookAttempt.objects.order_by("attempted_at").values_list("response_status", flat=True)) == [500, 200]
