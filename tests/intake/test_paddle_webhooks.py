"""
Paddle Billing notifications: verified before anything else, stored once, applied by Celery in
the order things happened, with the checkout's consent recorded as the customer gave it.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from consents.models import Consent, ConsentEvent, Source
from customers.models import Customer, Product, ProductRegistration
from intake import services
from intake.models import WebhookEvent
from intake.resellers.base import SignatureRefused
from intake.resellers.paddle import PaddleAdapter
from tests.consents.conftest import eager_celery  # noqa: F401 (fixture)
from tests.consents.people import ensure_purposes

from . import paddle
from .paddle import event, post

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def paddle_configured(settings):
    settings.PADDLE_WEBHOOK_SECRETS = [paddle.SECRET]
    settings.PADDLE_MARKETING_PURPOSES = ["newsletter"]
    settings.PADDLE_MARKETING_CONSENT_WORDING = paddle.WORDING
    settings.INTAKE_WAIT_MAX_ATTEMPTS = 3
    ensure_purposes()


@pytest.fixture
def photoforge(db):
    return Product.objects.create(
        name="PhotoForge Pro", code="photoforge-pro", paddle_product_id="pro_01htz88xpr0mm7b3ta2pjkr7w2"
    )


@pytest.fixture
def deliver(client, eager_celery, django_capture_on_commit_callbacks):  # noqa: F811
    """Post a signed notification as Paddle does and let the worker apply it."""

    def deliver_(document, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            response = post(client, document, **kwargs)
        return response

    return deliver_


def fiona_created(consent=False, *, event_id="evt_01hv6y1jf5v0q6dj2e3rzzk3c9", occurred_at="2026-11-20T10:00:00.000Z"):
    return event("customer.created", paddle.customer(consent=consent), event_id=event_id, occurred_at=occurred_at)


# --- verification ----------------------------------------------------------------------


def test_the_sdks_published_test_vector_verifies_with_the_third_of_three_secrets(settings):
    # Paddle's SDK test suite: body "hello-world", signed at ts=1696195954 with the third secret.
    settings.PADDLE_WEBHOOK_SECRETS = [
        "pdl_ntf_01hbpjmytsa32fhr36nqgc3kgb_TjIG2BXbm83HPXqNfziwe506sBEdqL/4",
        "pdl_ntf_01hbpjmytsa32fhr36nqgc3kgb_vB/yIOnTOCWIvpBadM5jzBZPHc7OmdSo",
        "pdl_ntf_01hbpjmytsa32fhr36nqgc3kgb_WvRO0eL4Bj9rgYYIBZY6wZhG4EHy9jzh",
    ]
    header = "ts=1696195954;h1=dummy;h1=d96299976a6eb066f484d7fde011ac56fc32b38fc9940bc419d6e537fdc6ef02"
    PaddleAdapter().verify(headers={"Paddle-Signature": header}, body=b"hello-world", now=1696195954)

    settings.PADDLE_WEBHOOK_SECRETS = settings.PADDLE_WEBHOOK_SECRETS[:2]
    with pytest.raises(SignatureRefused):
        PaddleAdapter().verify(headers={"Paddle-Signature": header}, body=b"hello-world", now=1696195954)


def test_a_notification_signed_with_the_second_of_two_rotated_secrets_is_accepted(settings, deliver):
    settings.PADDLE_WEBHOOK_SECRETS = [paddle.SECRET, paddle.ROTATED_SECRET]

    response = deliver(fiona_created(), secret=paddle.ROTATED_SECRET)

    assert response.status_code == 200
    assert Customer.objects.filter(email="fiona.naylor@example.com").exists()


@pytest.mark.parametrize(
    "signature",
    [
        False,
        "ts=1;h1=0000",
        "ts=abc;h1=00",
        "nonsense",
        f"ts={int(time.time())};h1=deadbeef",
        f"ts={int(time.time())}",
    ],
    ids=["missing", "ancient-and-wrong", "not-a-number", "no-pairs", "wrong-hash", "no-hash"],
)
def test_an_unsigned_or_badly_signed_notification_is_refused_and_nothing_is_stored(client, signature):
    response = post(client, fiona_created(), signature=signature)

    assert response.status_code in (400, 401)
    assert response.json()["status"] == "signature_refused"
    assert WebhookEvent.objects.count() == 0
    assert not Customer.objects.exists()


def test_a_notification_signed_with_another_secret_gets_401(client):
    response = post(client, fiona_created(), secret="pdl_ntfset_someone_elses_secret")

    assert response.status_code == 401
    assert WebhookEvent.objects.count() == 0


def test_a_replayed_notification_with_a_stale_timestamp_gets_400_and_stores_nothing(client):
    response = post(client, fiona_created(), ts=int(time.time()) - 60)

    assert response.status_code == 400
    assert "seconds" in response.json()["detail"]
    assert WebhookEvent.objects.count() == 0


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1, 2]",
        b'{"event_id": "evt_1", "event_type": "customer.created"}',
        b'{"event_id": 5}',
        b'{"event_id": "evt_1", "event_type": "x", "occurred_at": "yesterday", "data": {}}',
        b"\xff\xfe",
    ],
    ids=["not-json", "a-list", "no-occurred-at", "id-not-a-string", "bad-time", "not-utf8"],
)
def test_a_signed_body_that_is_not_a_notification_gets_400_and_stores_nothing(client, body):
    response = post(client, body)

    assert response.status_code == 400
    assert WebhookEvent.objects.count() == 0


def test_with_no_secret_configured_the_endpoint_answers_404(client, settings):
    settings.PADDLE_WEBHOOK_SECRETS = []

    assert post(client, fiona_created()).status_code == 404


def test_the_endpoint_refuses_get_and_answers_without_the_final_slash(client):
    assert client.get(paddle.URL).status_code == 405
    body = b'{"event_id": "evt_x", "event_type": "customer.created", "occurred_at": "2026-11-20T10:00:00Z", "data": {}}'
    response = client.post(
        "/webhooks/paddle", body, content_type="application/json", headers={"Paddle-Signature": paddle.sign(body)}
    )
    assert response.status_code == 200


# --- storing and processing once -------------------------------------------------------


def test_a_repeated_event_id_is_answered_200_and_applied_once(deliver):
    first = deliver(fiona_created(consent=True))
    again = deliver(fiona_created(consent=True))

    assert (first.json()["status"], again.json()["status"]) == ("stored", "duplicate")
    assert WebhookEvent.objects.get().status == WebhookEvent.Status.PROCESSED
    assert ConsentEvent.objects.count() == 1


def test_customer_created_brings_the_customer_with_the_checkout_consent_as_the_customer_gave_it(deliver):
    deliver(fiona_created(consent=True, occurred_at="2026-11-20T10:00:00.000Z"))

    fiona = Customer.objects.get(email="fiona.naylor@example.com")
    assert (fiona.first_name, fiona.last_name, fiona.language) == ("Fiona", "Naylor", "de")
    assert fiona.paddle_customer_id == "ctm_01hv6y1jedq4p1n0yqn5ba3ky4"
    grant = ConsentEvent.objects.get(customer=fiona)
    assert grant.granted and grant.source == Source.RESELLER_CHECKOUT
    assert grant.occurred_at == datetime(2026, 11, 20, 10, 0, tzinfo=UTC)  # when she ticked, not when we heard
    assert grant.wording == paddle.WORDING
    assert grant.reference == "paddle:evt_01hv6y1jf5v0q6dj2e3rzzk3c9"
    assert Consent.objects.get(customer=fiona, purpose__code="newsletter").granted


def test_marketing_consent_true_then_false_records_a_grant_then_a_withdrawal(deliver):
    deliver(fiona_created(consent=True))
    deliver(
        event(
            "customer.updated",
            paddle.customer(consent=False),
            event_id="evt_01hv7000000000000000000002",
            occurred_at="2026-11-21T08:00:00.000Z",
        )
    )

    decisions = list(ConsentEvent.objects.order_by("occurred_at").values_list("granted", "source", "wording"))
    assert decisions == [
        (True, Source.RESELLER_CHECKOUT, paddle.WORDING),
        (False, Source.RESELLER_CHECKOUT, paddle.WORDING),
    ]
    assert not Consent.objects.get(purpose__code="newsletter").granted


def test_a_customer_who_never_ticked_the_box_gets_no_withdrawal_recorded(deliver):
    deliver(fiona_created(consent=False))

    assert not ConsentEvent.objects.exists()


def test_an_older_customer_update_arriving_late_does_not_overwrite_newer_details(deliver):
    deliver(fiona_created())
    newer = paddle.customer(name="Fiona Naylor-Smith")
    older = paddle.customer(name="Fiona Oldname")
    deliver(event("customer.updated", newer, event_id="evt_newer", occurred_at="2026-11-22T09:00:00Z"))
    deliver(event("customer.updated", older, event_id="evt_older", occurred_at="2026-11-21T09:00:00Z"))

    fiona = Customer.objects.get()
    assert fiona.last_name == "Naylor-Smith"
    assert WebhookEvent.objects.get(event_id="evt_older").status == WebhookEvent.Status.OUTDATED


def test_address_and_business_fill_the_postal_address_and_company(deliver):
    deliver(fiona_created())
    deliver(event("address.created", paddle.address(), event_id="evt_address", occurred_at="2026-11-20T10:00:01Z"))
    deliver(event("business.created", paddle.business(), event_id="evt_business", occurred_at="2026-11-20T10:00:02Z"))

    fiona = Customer.objects.get()
    assert (fiona.address_line1, fiona.city, fiona.postal_code, str(fiona.country)) == (
        "4050 Jefferson Plaza",
        "Leeds",
        "LS1 4AP",
        "GB",
    )
    assert fiona.company == "Naylor Photography Ltd"
    assert set(fiona.changes.values_list("changed_by", flat=True)) == {"reseller"}


def test_a_transaction_before_its_customer_waits_and_is_applied_once_the_customer_arrives(deliver, photoforge):
    deliver(
        event("transaction.completed", paddle.transaction(), event_id="evt_txn", occurred_at="2026-11-20T10:01:05Z")
    )
    waiting = WebhookEvent.objects.get(event_id="evt_txn")
    # The eager worker retried it up to the limit while the customer had not arrived.
    assert waiting.status == WebhookEvent.Status.NEEDS_ATTENTION
    assert "has not arrived" in waiting.error
    assert not ProductRegistration.objects.exists()

    deliver(fiona_created())
    from intake import services

    services.webhook_events_reset(events=[waiting])
    services.webhook_event_process(event=waiting)

    registration = ProductRegistration.objects.get()
    assert registration.customer.email == "fiona.naylor@example.com"
    assert registration.order_reference == "txn_01hv8m0mnx3sj85e7gxc6kga03"
    assert registration.reseller.name == "Paddle"
    assert registration.currency == "EUR"
    assert registration.purchased_at == datetime(2026, 11, 20, 10, 1, tzinfo=UTC)


def test_a_waiting_transaction_is_retried_with_backoff_until_the_customer_arrives(settings, photoforge):
    from intake import tasks

    stored = WebhookEvent.objects.create(
        provider="paddle",
        event_id="evt_txn_wait",
        event_type="transaction.completed",
        occurred_at=datetime(2026, 11, 20, 10, 1, tzinfo=UTC),
        subject_id="txn_01hv8m0mnx3sj85e7gxc6kga03",
        payload=event(
            "transaction.completed", paddle.transaction(), event_id="evt_txn_wait", occurred_at="2026-11-20T10:01:05Z"
        ),
    )
    from celery.exceptions import Retry

    with pytest.raises(Retry):
        tasks.webhook_event_process.apply(args=[stored.pk], throw=True).get()
    stored.refresh_from_db()
    assert (stored.status, stored.attempts) == (WebhookEvent.Status.WAITING, 1)

    # The customer arrives meanwhile.
    Customer.objects.create(email="fiona.naylor@example.com", paddle_customer_id="ctm_01hv6y1jedq4p1n0yqn5ba3ky4")
    assert tasks.webhook_event_process.apply(args=[stored.pk]).get() == WebhookEvent.Status.PROCESSED
    assert ProductRegistration.objects.count() == 1


def test_a_transaction_for_an_unknown_product_needs_attention_with_nothing_half_written(deliver, photoforge):
    deliver(fiona_created())
    unknown = paddle.transaction(product_id="pro_unknown")
    unknown["items"].insert(0, {"price": {"product_id": "pro_01htz88xpr0mm7b3ta2pjkr7w2"}, "quantity": 1})
    deliver(event("transaction.completed", unknown, event_id="evt_txn_unknown", occurred_at="2026-11-20T10:01:05Z"))

    stored = WebhookEvent.objects.get(event_id="evt_txn_unknown")
    assert stored.status == WebhookEvent.Status.NEEDS_ATTENTION
    assert "pro_unknown" in stored.error
    assert not ProductRegistration.objects.exists()


def test_an_approved_refund_marks_the_registration_refunded_even_after_the_money_back_deadline(
    deliver, photoforge, settings
):
    settings.MONEY_BACK_DAYS = 1
    deliver(fiona_created())
    deliver(
        event("transaction.completed", paddle.transaction(), event_id="evt_txn", occurred_at="2026-11-20T10:01:05Z")
    )
    deliver(
        event(
            "adjustment.created",
            paddle.refund(status="pending_approval"),
            event_id="evt_adj1",
            occurred_at="2026-11-25T09:00:00Z",
        )
    )
    assert ProductRegistration.objects.get().refunded_at is None

    deliver(event("adjustment.updated", paddle.refund(), event_id="evt_adj2", occurred_at="2026-11-25T09:30:00Z"))

    registration = ProductRegistration.objects.get()
    assert registration.refunded_at == datetime(2026, 11, 25, 9, 30, tzinfo=UTC)
    assert registration.refunded_by_reseller
    assert "adj_01hvgf2s84dr6reszzg29zbvcm" in registration.refund_note


def test_a_notification_for_an_erased_address_creates_no_one(deliver, admin_user):
    staff = admin_user
    from privacy.services import customer_erase

    fiona = Customer.objects.create(email="fiona.naylor@example.com")
    customer_erase(customer=fiona, staff_user=staff)

    deliver(fiona_created(consent=True, event_id="evt_after_erasure"))

    assert Customer.objects.count() == 1 and Customer.objects.get().is_erased
    assert not ConsentEvent.objects.exists()
    assert WebhookEvent.objects.get().status == WebhookEvent.Status.IGNORED


def test_erasure_empties_every_stored_notification_about_the_customer(deliver, photoforge, admin_user):
    staff = admin_user
    from privacy.services import customer_erase

    deliver(fiona_created(consent=True))
    deliver(event("address.created", paddle.address(), event_id="evt_address", occurred_at="2026-11-20T10:00:01Z"))
    fiona = Customer.objects.get()

    customer_erase(customer=fiona, staff_user=staff)

    for stored in WebhookEvent.objects.all():
        assert stored.payload == {}
        assert stored.redacted_at is not None


def test_staff_see_how_many_notifications_need_attention_on_the_admin_home_page_and_can_process_them_again(
    admin_client, deliver, photoforge
):
    deliver(fiona_created())
    deliver(
        event(
            "transaction.completed",
            paddle.transaction(product_id="pro_unknown"),
            event_id="evt_txn_unknown",
            occurred_at="2026-11-20T10:01:05Z",
        )
    )

    home = admin_client.get("/admin/")
    assert "1 reseller notification needs attention" in home.content.decode()

    # Staff set the product's Paddle id, then process the notification again.
    photoforge.paddle_product_id = "pro_unknown"
    photoforge.save()
    stuck = WebhookEvent.objects.get(event_id="evt_txn_unknown")
    response = admin_client.post(
        "/admin/intake/webhookevent/", {"action": "process_again", "_selected_action": [stuck.pk]}, follow=True
    )
    assert response.status_code == 200
    stuck.refresh_from_db()
    assert stuck.status == WebhookEvent.Status.RECEIVED
    assert services.webhook_event_process(event=stuck).status == WebhookEvent.Status.PROCESSED
    assert ProductRegistration.objects.count() == 1
    assert "needs attention" not in admin_client.get("/admin/").content.decode()
