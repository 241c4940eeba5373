"""
Provider feedback, one scenario per provider and kind of report: the payloads are the
providers' own shapes (tests/marketing/payloads/), posted to anymail's tracking webhook with
the webhook secret and each provider's signature; the campaign went out over real SMTP first,
so each report names a Message-ID the send path really set.
"""

import pytest

from consents.models import ConsentEvent, Purpose, Source
from customers.models import email_hashes
from marketing.models import Delivery, DeliveryEvent, Suppression

from .feedback_helpers import anymail_settings, granted, post_event, provider_of, send_campaign
from .helpers import customer_who_consents

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _webhooks(settings):
    settings.ANYMAIL = anymail_settings()


def suppression_of(address):
    return Suppression.objects.filter(address_hash__in=email_hashes(address)).first()


def no_address_stored(address: str) -> None:
    for event in DeliveryEvent.objects.all():
        for value in (event.reason, event.address_hash, event.provider_event_id):
            assert address not in value


HARD_BOUNCES = [
    ("postmark_bounce", DeliveryEvent.Kind.BOUNCED),
    ("sendgrid_bounce", DeliveryEvent.Kind.BOUNCED),
    ("mailgun_failed_permanent", DeliveryEvent.Kind.BOUNCED),
    ("brevo_hard_bounce", DeliveryEvent.Kind.BOUNCED),
    ("postal_bounce", DeliveryEvent.Kind.BOUNCED),
    ("postal_delivery_failed", DeliveryEvent.Kind.FAILED),
    ("amazon_ses_bounce", DeliveryEvent.Kind.BOUNCED),
]


@pytest.mark.parametrize(("payload_name", "kind"), HARD_BOUNCES)
def test_a_hard_bounce_suppresses_the_address_and_marks_the_delivery_bounced(
    client, ada_received_the_newsletter, payload_name, kind
):
    # given the newsletter reached Ada's provider
    ada, campaign, delivery = ada_received_the_newsletter

    # when the provider reports that her mailbox does not exist
    response = post_event(client, payload_name, message_id=delivery.message_id, recipient=ada.email)

    # then the address is suppressed and the delivery is marked bounced, tied by its Message-ID
    assert response.status_code == 200, response.content
    assert suppression_of("ada@example.com").reason == Suppression.Reason.HARD_BOUNCE
    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.BOUNCED
    event = DeliveryEvent.objects.get()
    assert (event.kind, event.delivery, event.campaign, event.effect) == (
        kind,
        delivery,
        campaign,
        DeliveryEvent.Effect.SUPPRESSED,
    )
    assert event.provider == provider_of(payload_name)
    # and what was recorded names nobody (the server's reply quoted the address)
    no_address_stored("ada@example.com")
    assert "ada@" not in suppression_of("ada@example.com").note
    # and her consent is untouched: a bounce is not a decision of hers
    assert granted(ada, "newsletter") and granted(ada, "promotions")


COMPLAINTS = [
    "postmark_spam_complaint",
    "sendgrid_spamreport",
    "mailgun_complained",
    "brevo_spam",
    "amazon_ses_complaint",
]


@pytest.mark.parametrize("payload_name", COMPLAINTS)
def test_a_spam_complaint_suppresses_and_withdraws_every_marketing_purpose_in_the_ledger(
    client, ada_received_the_newsletter, payload_name
):
    # given Ada consents to the newsletter, promotions and internal analysis (not marketing)
    ada, campaign, delivery = ada_received_the_newsletter
    before = ConsentEvent.objects.filter(customer=ada).count()

    # when she marks the newsletter as spam and the provider reports it
    response = post_event(client, payload_name, message_id=delivery.message_id, recipient=ada.email)

    # then the address is suppressed for a complaint
    assert response.status_code == 200, response.content
    assert suppression_of("ada@example.com").reason == Suppression.Reason.COMPLAINT
    # and every marketing purpose is withdrawn in the ledger, with the complaint as source and
    # the campaign as reference; internal analysis (not marketing) stays as it was
    marketing = set(Purpose.objects.filter(is_marketing=True).values_list("code", flat=True))
    withdrawals = ConsentEvent.objects.filter(customer=ada, granted=False)
    assert {e.purpose.code for e in withdrawals} == marketing
    assert {(e.source, e.reference) for e in withdrawals} == {
        (Source.PROVIDER_COMPLAINT, f"campaign:{campaign.public_id}")
    }
    assert ConsentEvent.objects.filter(customer=ada).count() == before + len(marketing)
    assert not granted(ada, "newsletter") and not granted(ada, "promotions")
    assert granted(ada, "internal_analysis")
    event = DeliveryEvent.objects.get()
    assert (event.kind, event.delivery, event.effect) == (
        DeliveryEvent.Kind.COMPLAINED,
        delivery,
        DeliveryEvent.Effect.SUPPRESSED_AND_WITHDRAWN,
    )
    no_address_stored("ada@example.com")


UNSUBSCRIBES = [
    "postmark_subscription_change",
    "sendgrid_unsubscribe",
    "amazon_ses_subscription",
    "mailgun_unsubscribed",
    "brevo_unsubscribe",
]


@pytest.mark.parametrize("payload_name", UNSUBSCRIBES)
def test_an_unsubscribe_at_the_provider_withdraws_the_campaigns_purpose_only(
    client, ada_received_the_newsletter, payload_name
):
    # given the newsletter reached Ada, who also consents to promotions
    ada, campaign, delivery = ada_received_the_newsletter

    # when she uses the provider's own unsubscribe (its List-Unsubscribe or list management)
    response = post_event(client, payload_name, message_id=delivery.message_id, recipient=ada.email)

    # then the newsletter is withdrawn, with the provider's unsubscribe as source
    assert response.status_code == 200, response.content
    event = ConsentEvent.objects.get(customer=ada, granted=False)
    assert (event.purpose.code, event.source, event.reference) == (
        "newsletter",
        Source.PROVIDER_UNSUBSCRIBE,
        f"campaign:{campaign.public_id}",
    )
    assert not granted(ada, "newsletter")
    # and nothing else: promotions stay granted, the address is not suppressed
    assert granted(ada, "promotions")
    assert suppression_of("ada@example.com") is None
    assert DeliveryEvent.objects.get().effect == DeliveryEvent.Effect.WITHDRAWN


SOFT_BOUNCES = [
    ("postmark_soft_bounce", DeliveryEvent.Kind.SOFT_BOUNCED),
    ("sendgrid_deferred", DeliveryEvent.Kind.DEFERRED),
    ("mailgun_failed_temporary", DeliveryEvent.Kind.DEFERRED),
    ("brevo_soft_bounce", DeliveryEvent.Kind.SOFT_BOUNCED),
    ("postal_delayed", DeliveryEvent.Kind.DEFERRED),
    ("amazon_ses_transient_bounce", DeliveryEvent.Kind.SOFT_BOUNCED),
]


@pytest.mark.parametrize(("payload_name", "kind"), SOFT_BOUNCES)
def test_a_soft_bounce_is_counted_and_suppresses_nothing_on_its_own(
    client, ada_received_the_newsletter, payload_name, kind
):
    ada, _campaign, delivery = ada_received_the_newsletter

    response = post_event(client, payload_name, message_id=delivery.message_id, recipient=ada.email)

    assert response.status_code == 200, response.content
    event = DeliveryEvent.objects.get()
    assert (event.kind, event.delivery, event.effect) == (kind, delivery, DeliveryEvent.Effect.COUNTED)
    assert event.address_hash in email_hashes("ada@example.com")
    assert suppression_of("ada@example.com") is None
    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.SENT


def test_soft_bounces_of_three_messages_within_the_window_suppress_the_address(
    client, settings, smtp, make_campaign, staff_user
):
    # given three campaigns reached Grace, and the limit is 3 soft bounces in 30 days
    settings.MARKETING_SOFT_BOUNCE_LIMIT = 3
    settings.MARKETING_SOFT_BOUNCE_WINDOW_DAYS = 30
    grace = customer_who_consents(email="grace@example.com")
    deliveries = []
    for name in ("Spring", "Summer", "Autumn"):
        campaign = make_campaign(name=name)
        send_campaign(campaign, staff_user)
        deliveries.append(Delivery.objects.get(campaign=campaign))

    # when her mailbox is full for the first (reported twice: the provider retried) and the second
    for delivery in (deliveries[0], deliveries[0], deliveries[1]):
        post_event(client, "postmark_soft_bounce", message_id=delivery.message_id, recipient=grace.email)
    # then two messages bounced softly: not yet suppressed
    assert suppression_of("grace@example.com") is None

    # when the third message soft-bounces too
    post_event(client, "sendgrid_deferred", message_id=deliveries[2].message_id, recipient=grace.email)

    # then the address is suppressed
    assert suppression_of("grace@example.com").reason == Suppression.Reason.HARD_BOUNCE
    assert "3 soft bounces within 30 days" in suppression_of("grace@example.com").note
    assert DeliveryEvent.objects.filter(effect=DeliveryEvent.Effect.SUPPRESSED).count() == 1
