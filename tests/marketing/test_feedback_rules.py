"""
Provider feedback's rules whatever the provider: repeated and out-of-order reports are
harmless, a report about an erased customer keeps nothing of theirs, unauthenticated or
malformed posts get a 4xx and write nothing, a report without our Message-ID is tied by the
address; and a message sent through a provider's API carries the Message-ID as metadata.
"""

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from consents.models import ConsentEvent, Source
from customers.models import Customer, email_hashes
from marketing.models import Delivery, DeliveryEvent, Suppression
from privacy.services import customer_erase

from .feedback_helpers import anymail_settings, basic_auth, granted, payload, post_event, post_payload, send_campaign
from .helpers import customer_who_consents

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _webhooks(settings):
    settings.ANYMAIL = anymail_settings()


def nothing_written(before_ledger: int) -> None:
    assert DeliveryEvent.objects.count() == 0
    assert Suppression.objects.count() == 0
    assert ConsentEvent.objects.count() == before_ledger
    assert not Delivery.objects.filter(status=Delivery.Status.BOUNCED).exists()


# ---------------------------------------------------------------------------------------
# Repeated and out of order


@pytest.mark.parametrize("payload_name", ["postmark_spam_complaint", "brevo_spam", "amazon_ses_complaint"])
def test_a_repeated_complaint_is_recorded_and_applied_once(client, ada_received_the_newsletter, payload_name):
    # given a complaint about Ada's newsletter (Brevo's events carry no ID: a digest stands in)
    ada, _campaign, delivery = ada_received_the_newsletter
    data = payload(payload_name, message_id=delivery.message_id, recipient=ada.email)
    assert post_payload(client, payload_name, data).status_code == 200
    ledger = ConsentEvent.objects.count()

    # when the provider sends the same report again
    response = post_payload(client, payload_name, data)

    # then it is answered 200 (no retry storm) and changes nothing
    assert response.status_code == 200
    assert DeliveryEvent.objects.count() == 1
    assert ConsentEvent.objects.count() == ledger
    assert Suppression.objects.count() == 1


def test_a_delivery_report_arriving_after_the_bounce_leaves_the_delivery_bounced(client, ada_received_the_newsletter):
    ada, _campaign, delivery = ada_received_the_newsletter
    now = timezone.now()
    post_event(client, "postmark_bounce", message_id=delivery.message_id, recipient=ada.email, at=now)

    response = post_event(
        client, "postmark_delivery", message_id=delivery.message_id, recipient=ada.email, at=now - timedelta(minutes=1)
    )

    assert response.status_code == 200
    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.BOUNCED
    assert list(DeliveryEvent.objects.order_by("occurred_at").values_list("kind", flat=True)) == [
        DeliveryEvent.Kind.DELIVERED,
        DeliveryEvent.Kind.BOUNCED,
    ]


def test_a_provider_unsubscribe_dated_before_a_later_grant_is_kept_as_history(client, ada_received_the_newsletter):
    # given Ada (a customer since yesterday) said yes to the newsletter a moment ago
    ada, _campaign, delivery = ada_received_the_newsletter
    Customer.objects.filter(pk=ada.pk).update(created_at=timezone.now() - timedelta(days=1))
    ledger = ConsentEvent.objects.filter(customer=ada, purpose__code="newsletter").count()

    # when the provider's report of an unsubscribe she made an hour ago arrives late
    unsubscribed_at = timezone.now() - timedelta(hours=1)
    response = post_event(
        client, "postmark_subscription_change", message_id=delivery.message_id, recipient=ada.email, at=unsubscribed_at
    )

    # then it is in the ledger as history, dated when she decided, and her later "yes" stands
    assert response.status_code == 200
    late = ConsentEvent.objects.get(customer=ada, purpose__code="newsletter", granted=False)
    assert late.source == Source.PROVIDER_UNSUBSCRIBE
    assert abs(late.occurred_at - unsubscribed_at) < timedelta(seconds=1)
    assert ConsentEvent.objects.filter(customer=ada, purpose__code="newsletter").count() == ledger + 1
    assert granted(ada, "newsletter")


# ---------------------------------------------------------------------------------------
# Erased customers


def test_a_complaint_about_an_erased_customer_records_nothing_of_theirs(
    client, ada_received_the_newsletter, django_user_model
):
    # given Ada received the newsletter and was then erased
    ada, _campaign, delivery = ada_received_the_newsletter
    officer = django_user_model.objects.create_superuser("po", "po@staff.example", "correct horse battery")
    customer_erase(customer=ada, staff_user=officer)
    ledger = ConsentEvent.objects.count()

    # when her provider reports a complaint and a bounce quoting her old address
    for name in ("postmark_spam_complaint", "sendgrid_bounce"):
        response = post_event(client, name, message_id=delivery.message_id, recipient="ada@example.com")
        assert response.status_code == 200

    # then nothing personal is recorded: no reason text, no address hash, no new decision
    events = list(DeliveryEvent.objects.all())
    assert len(events) == 2
    for event in events:
        assert (event.effect, event.reason, event.address_hash) == (DeliveryEvent.Effect.ERASED, "", "")
    assert ConsentEvent.objects.count() == ledger
    # and she stays suppressed as erasure left her (no note naming her)
    suppression = Suppression.objects.get(address_hash__in=email_hashes("ada@example.com"))
    assert (suppression.reason, suppression.note) == (Suppression.Reason.ERASURE, "")


# ---------------------------------------------------------------------------------------
# Refused posts


def test_a_post_without_credentials_is_challenged_and_writes_nothing(client, ada_received_the_newsletter):
    ada, _campaign, delivery = ada_received_the_newsletter
    ledger = ConsentEvent.objects.count()

    response = post_event(
        client, "postmark_spam_complaint", message_id=delivery.message_id, recipient=ada.email, auth=""
    )

    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Basic ")
    nothing_written(ledger)


@pytest.mark.parametrize(
    "payload_name",
    [
        "postmark_bounce",
        "sendgrid_bounce",
        "mailgun_failed_permanent",
        "brevo_hard_bounce",
        "postal_bounce",
        "amazon_ses_bounce",
    ],
)
def test_a_post_with_the_wrong_secret_is_refused_and_writes_nothing(client, ada_received_the_newsletter, payload_name):
    ada, _campaign, delivery = ada_received_the_newsletter
    ledger = ConsentEvent.objects.count()

    response = post_event(
        client, payload_name, message_id=delivery.message_id, recipient=ada.email, auth=basic_auth("mailhooks:guess")
    )

    assert response.status_code == 403
    assert b"basic auth" in response.content
    nothing_written(ledger)


@pytest.mark.parametrize("payload_name", ["mailgun_failed_permanent", "postal_bounce"])
def test_a_post_without_the_providers_signature_is_refused_and_writes_nothing(
    client, ada_received_the_newsletter, payload_name
):
    # given the right basic auth, but a body the provider did not sign
    ada, _campaign, delivery = ada_received_the_newsletter
    ledger = ConsentEvent.objects.count()

    response = post_event(client, payload_name, message_id=delivery.message_id, recipient=ada.email, sign=False)

    assert response.status_code == 403
    assert b"signature" in response.content.lower()
    nothing_written(ledger)


def test_webhooks_are_off_until_the_secret_is_set(client, settings, ada_received_the_newsletter):
    ada, _campaign, delivery = ada_received_the_newsletter
    settings.ANYMAIL = {**anymail_settings(), "WEBHOOK_SECRET": ""}
    ledger = ConsentEvent.objects.count()

    response = post_event(client, "postmark_bounce", message_id=delivery.message_id, recipient=ada.email)

    assert response.status_code == 403
    assert b"ANYMAIL_WEBHOOK_SECRET is not set" in response.content
    nothing_written(ledger)


def test_the_mailgun_webhook_is_off_without_its_signing_key(client, settings, ada_received_the_newsletter):
    ada, _campaign, delivery = ada_received_the_newsletter
    settings.ANYMAIL = {"WEBHOOK_SECRET": anymail_settings()["WEBHOOK_SECRET"]}
    ledger = ConsentEvent.objects.count()

    response = post_event(client, "mailgun_failed_permanent", message_id=delivery.message_id, recipient=ada.email)

    assert response.status_code == 403
    assert b"MAILGUN_WEBHOOK_SIGNING_KEY" in response.content
    assert client.head("/anymail/mailgun/tracking/").status_code == 403
    nothing_written(ledger)


@pytest.mark.parametrize(
    ("esp", "body"),
    [
        ("postmark", b"{not json"),
        ("postmark", b'"a string"'),
        ("sendgrid", b'{"event": "bounce"}'),
        ("brevo", b"[1, 2]"),
        (
            "postmark",
            '{"RecordType": "Bounce", "Email": "ada@example.com", "ID": "\udcff"}'.encode("utf-8", "surrogatepass"),
        ),
    ],
)
def test_a_malformed_payload_gets_400_and_writes_nothing(client, db, esp, body):
    ledger = ConsentEvent.objects.count()

    response = client.post(
        f"/anymail/{esp}/tracking/", data=body, content_type="application/json", HTTP_AUTHORIZATION=basic_auth()
    )

    assert response.status_code == 400
    assert b"nothing was recorded" in response.content
    nothing_written(ledger)


def test_a_batch_with_one_bad_event_writes_none_of_it(client, ada_received_the_newsletter):
    # given SendGrid posts two events, the second of which is not an event
    ada, _campaign, delivery = ada_received_the_newsletter
    data = [*payload("sendgrid_bounce", message_id=delivery.message_id, recipient=ada.email), "not an event"]
    ledger = ConsentEvent.objects.count()

    response = post_payload(client, "sendgrid_bounce", data)

    assert response.status_code == 400
    nothing_written(ledger)


def test_the_webhook_answers_only_post(client, db):
    assert client.get("/anymail/postmark/tracking/").status_code == 405
    assert client.head("/anymail/postmark/tracking/").status_code == 200  # providers check the URL so


# ---------------------------------------------------------------------------------------
# Tying reports to deliveries


def test_a_report_without_our_message_id_is_tied_to_the_latest_message_to_the_address(
    client, smtp, make_campaign, staff_user
):
    # given two campaigns reached Grace, and Postmark relayed them by SMTP (its report names
    # Postmark's own message ID only)
    grace = customer_who_consents(email="grace@example.com")
    customer_who_consents(email="zoe@example.com")
    older = make_campaign(name="Spring")
    send_campaign(older, staff_user)
    newer = make_campaign(name="Summer")
    send_campaign(newer, staff_user)

    # when Postmark reports a hard bounce for her address
    response = post_event(client, "postmark_bounce", message_id="", recipient="GRACE@example.com")

    # then the latest message sent to her is the one that bounced
    assert response.status_code == 200
    event = DeliveryEvent.objects.get()
    assert (event.delivery.customer, event.campaign) == (grace, newer)
    assert Delivery.objects.get(campaign=newer, customer=grace).status == Delivery.Status.BOUNCED
    assert Delivery.objects.get(campaign=older, customer=grace).status == Delivery.Status.SENT


def test_a_forged_message_id_with_a_real_delivery_number_ties_nothing(client, ada_received_the_newsletter):
    _ada, _campaign, delivery = ada_received_the_newsletter
    forged = delivery.message_id.replace(delivery.message_id.split(".")[2][:6], "000000")

    response = post_event(client, "postal_bounce", message_id=forged, recipient="someone@example.org")

    assert response.status_code == 200
    event = DeliveryEvent.objects.get()
    assert (event.delivery, event.campaign, event.effect) == (None, None, DeliveryEvent.Effect.SUPPRESSED)
    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.SENT


def test_an_unsubscribe_without_its_message_withdraws_nothing(client, db):
    # A provider unsubscribe names a list only through the message: without it there is no guess.
    dan = customer_who_consents(email="dan@example.com")
    ledger = ConsentEvent.objects.count()

    response = post_event(client, "sendgrid_unsubscribe", message_id="", recipient=dan.email)

    assert response.status_code == 200
    assert DeliveryEvent.objects.get().effect == DeliveryEvent.Effect.NOT_FOUND
    assert ConsentEvent.objects.count() == ledger


# ---------------------------------------------------------------------------------------
# Sending through a provider's API


def test_a_message_sent_through_a_providers_api_carries_its_message_id_as_metadata(settings, make_campaign, staff_user):
    # given sending goes through anymail (its test backend records what a provider's API gets)
    settings.EMAIL_BACKEND = "anymail.backends.test.EmailBackend"
    customer_who_consents(email="ada@example.com", first_name="Ada")
    campaign = make_campaign()

    # when the campaign sends
    send_campaign(campaign, staff_user)

    # then the provider gets the text, the HTML, the one-click headers and the Message-ID, in
    # the headers and as metadata (which Postmark, SendGrid and Amazon SES echo in their webhooks)
    delivery = Delivery.objects.get(campaign=campaign)
    assert delivery.status == Delivery.Status.SENT
    [message] = mail.outbox
    params = message.anymail_test_params
    assert params["metadata"] == {"message_id": delivery.message_id}
    assert message.extra_headers["Message-ID"] == delivery.message_id
    assert message.extra_headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message.extra_headers["List-Unsubscribe"].startswith("<https://consent.example.com/unsubscribe/")
    assert "ada@example.com" in message.to[0]
    assert "PhotoForge 5 is out." in message.body
    assert message.alternatives[0][1] == "text/html"
    assert f".{delivery.pk}." in delivery.message_id


# ---------------------------------------------------------------------------------------
# Who reads the reports


def test_marketing_staff_read_the_provider_reports_without_addresses(
    client, ada_received_the_newsletter, django_user_model
):
    # given a complaint about Ada's newsletter, and a member of the Marketing group
    from django.contrib.auth.models import Group

    ada, campaign, delivery = ada_received_the_newsletter
    post_event(client, "postmark_spam_complaint", message_id=delivery.message_id, recipient=ada.email)
    mia = django_user_model.objects.create_user("mia", "mia@staff.example", "correct horse battery", is_staff=True)
    mia.groups.add(Group.objects.get(name="Marketing"))
    client.force_login(mia)

    # when she opens the delivery events and the report
    listing = client.get("/admin/marketing/deliveryevent/")
    event = DeliveryEvent.objects.get()
    detail = client.get(f"/admin/marketing/deliveryevent/{event.pk}/change/")

    # then she sees what happened to which campaign, and nobody's address
    assert listing.status_code == detail.status_code == 200
    assert campaign.name in listing.content.decode()
    assert "Spam complaint" in detail.content.decode()
    assert "ada@example.com" not in listing.content.decode() + detail.content.decode()
    assert not mia.has_perm("marketing.change_deliveryevent")


def test_a_complaint_dated_before_our_first_privacy_policy_is_recorded_as_of_now(client, ada_received_the_newsletter):
    # given a provider whose clock (or replay) dates a complaint before our first policy took effect
    from consents.models import PolicyVersion

    ada, _campaign, delivery = ada_received_the_newsletter
    now = timezone.now()
    Customer.objects.filter(pk=ada.pk).update(created_at=now - timedelta(days=3))
    first = PolicyVersion.objects.order_by("effective_at").first()
    PolicyVersion.objects.filter(pk=first.pk).update(effective_at=now - timedelta(days=2))

    # when it is reported
    response = post_event(
        client,
        "postmark_spam_complaint",
        message_id=delivery.message_id,
        recipient=ada.email,
        at=now - timedelta(days=2, hours=12),
    )

    # then her "no" is recorded all the same, dated when we heard of it
    assert response.status_code == 200
    withdrawal = ConsentEvent.objects.get(customer=ada, purpose__code="newsletter", granted=False)
    assert withdrawal.occurred_at >= now
    assert not granted(ada, "newsletter")
