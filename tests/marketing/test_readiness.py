"""
Sender readiness (`manage.py check_sender`, marketing/readiness.py): each check against the
real thing, and the command's exit status.
"""

from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from common import dkim as common_dkim
from common.dkim import generate_key
from consents.models import ConsentEvent, Source
from consents.services import consent_grant, consent_withdraw
from customers.models import Customer
from marketing import readiness
from marketing.models import Campaign, Delivery, DeliveryEvent
from marketing.readiness import Level

from .helpers import customer_who_consents, purpose

pytestmark = pytest.mark.django_db


@pytest.fixture
def ready_sender(settings, purposes):
    private_pem, _ = generate_key("rsa-sha256")
    settings.DKIM_DOMAIN = "example.com"
    settings.DKIM_SELECTOR = "s2026"
    settings.DKIM_PRIVATE_KEY = private_pem
    settings.DKIM_ALGORITHM = "rsa-sha256"
    settings.DEFAULT_FROM_EMAIL = "Example Software <news@example.com>"


def levels(**kwargs) -> dict[str, Level]:
    return {check.key: check.level for check in readiness.sender_readiness(**kwargs)}


def check(key: str) -> readiness.ReadinessCheck:
    return next(c for c in readiness.sender_readiness() if c.key == key)


def sent_messages(count: int, *, make_campaign, at=None) -> Campaign:
    """A sent campaign with `count` messages delivered `at` (default an hour ago)."""
    at = at or timezone.now() - timedelta(hours=1)
    campaign = make_campaign(name=f"Sent {count}", scheduled_at=at)
    Campaign.objects.filter(pk=campaign.pk).update(status=Campaign.Status.SENT)
    customers = Customer.objects.bulk_create(
        Customer(email=f"reader{n}.{campaign.pk}@example.com", first_name="Reader") for n in range(count)
    )
    Delivery.objects.bulk_create(
        Delivery(campaign=campaign, customer=c, status=Delivery.Status.SENT, sent_at=at, claimed_at=at)
        for c in customers
    )
    return campaign


def reported(kind: str, count: int, campaign: Campaign) -> None:
    """The provider reported `count` of the campaign's messages as spam, or as hard bounces."""
    deliveries = list(Delivery.objects.filter(campaign=campaign).order_by("pk")[:count])
    if kind == "bounce":
        Delivery.objects.filter(pk__in=[d.pk for d in deliveries]).update(status=Delivery.Status.BOUNCED)
        return
    DeliveryEvent.objects.bulk_create(
        DeliveryEvent(
            provider="postmark",
            provider_event_id=f"complaint-{d.pk}",
            kind=DeliveryEvent.Kind.COMPLAINED,
            occurred_at=timezone.now() - timedelta(minutes=5),
            delivery=d,
            campaign=campaign,
        )
        for d in deliveries
    )


def test_a_configured_sender_passes_every_check_and_the_command_says_so(ready_sender, capsys):
    call_command("check_sender")

    out = capsys.readouterr().out
    assert out.count("PASS") == 6
    assert "The sender is ready." in out
    assert "both covered by the DKIM signature, which verifies" in out


def test_without_dkim_the_command_fails_and_exits_non_zero(settings, purposes, capsys):
    settings.DKIM_DOMAIN = ""
    with pytest.raises(CommandError) as failed:
        call_command("check_sender")
    assert failed.value.returncode == 1
    out = capsys.readouterr().out
    assert "FAIL  DKIM signing: DKIM_DOMAIN is not set" in out
    assert "DKIM signing" in str(failed.value)


def test_a_campaign_from_another_domain_is_not_aligned(ready_sender, make_campaign):
    make_campaign(from_email="Offers <offers@example-deals.net>")
    result = check("alignment")
    assert result.level == Level.FAIL
    assert "example-deals.net" in result.detail


def test_a_subdomain_of_the_signing_domain_is_aligned(ready_sender, settings):
    settings.DEFAULT_FROM_EMAIL = "news@mail.example.com"
    assert check("alignment").level == Level.PASS


def test_one_click_needs_an_https_unsubscribe_url(ready_sender, settings):
    settings.SITE_URL = "http://consent.example.com"
    result = check("one_click")
    assert result.level == Level.FAIL
    assert "not an https URL" in result.detail


def test_a_key_that_does_not_match_its_published_record_fails(ready_sender, monkeypatch):
    # the record published for another key: the signature cannot verify
    other_record = generate_key("rsa-sha256")[1]
    monkeypatch.setattr(common_dkim.DkimKey, "dns_record", lambda self: other_record)
    result = check("one_click")
    assert result.level == Level.FAIL
    assert "does not verify" in result.detail


@pytest.mark.parametrize(
    "complaints, level", [(0, Level.PASS), (1, Level.WARN), (3, Level.FAIL)], ids=["none", "0.1%", "0.3%"]
)
def test_the_complaint_rate_is_held_against_gmails_limits(ready_sender, make_campaign, complaints, level):
    campaign = sent_messages(1000, make_campaign=make_campaign)
    reported("complaint", complaints, campaign)
    result = check("complaint_rate")
    assert result.level == level
    assert f"{complaints / 10:.2f}%: {complaints} complaint" in result.detail
    assert "of 1000 messages sent in the last 30 days" in result.detail


def test_messages_older_than_thirty_days_do_not_count(ready_sender, make_campaign):
    sent_messages(100, make_campaign=make_campaign, at=timezone.now() - timedelta(days=31))
    sent_messages(10, make_campaign=make_campaign)
    assert "of 10 messages" in check("complaint_rate").detail


@pytest.mark.parametrize("bounces, level", [(1, Level.PASS), (3, Level.WARN), (5, Level.FAIL)])
def test_the_bounce_rate_warns_from_two_and_fails_from_five_percent(ready_sender, make_campaign, bounces, level):
    campaign = sent_messages(100, make_campaign=make_campaign)
    reported("bounce", bounces, campaign)
    assert check("bounce_rate").level == level


def test_a_message_sent_long_after_a_withdrawal_fails_the_withdrawal_check(ready_sender, make_campaign):
    # given: Ada withdrew; a message went out to her ten minutes later (never happens: the claim re-checks)
    ada = customer_who_consents(email="ada@example.com")
    consent_withdraw(customer=ada, purpose=purpose("newsletter"), source=Source.ONE_CLICK)
    withdrawn_at = ConsentEvent.objects.filter(customer=ada, granted=False).get().recorded_at
    campaign = make_campaign()
    Delivery.objects.create(
        campaign=campaign, customer=ada, status=Delivery.Status.SENT, sent_at=withdrawn_at + timedelta(minutes=10)
    )

    result = check("withdrawals")

    assert result.level == Level.FAIL
    assert "1 message of the last 30 days went out after the recipient's withdrawal" in result.detail


def test_messages_after_a_new_consent_or_within_a_claims_sending_are_not_late(ready_sender, make_campaign):
    # Bob withdrew and consented again before the message; Carol's message left while her
    # withdrawal waited for the claim that was sending it.
    bob = customer_who_consents(email="bob@example.com")
    consent_withdraw(customer=bob, purpose=purpose("newsletter"), source=Source.ONE_CLICK)
    consent_grant(customer=bob, purpose=purpose("newsletter"), source=Source.PREFERENCE_PAGE)
    carol = customer_who_consents(email="carol@example.com")
    consent_withdraw(customer=carol, purpose=purpose("newsletter"), source=Source.ONE_CLICK)
    campaign = make_campaign()
    later = timezone.now() + timedelta(minutes=1)
    for customer in (bob, carol):
        Delivery.objects.create(campaign=campaign, customer=customer, status=Delivery.Status.SENT, sent_at=later)

    result = check("withdrawals")

    assert result.level == Level.PASS
    assert "Gmail and Yahoo allow 48 hours" in result.detail


def test_the_checks_take_a_constant_number_of_queries(ready_sender, make_campaign, django_assert_max_num_queries):
    sent_messages(50, make_campaign=make_campaign)
    with django_assert_max_num_queries(8):
        readiness.sender_readiness()


def test_the_published_dkim_record_must_hold_the_configured_key(ready_sender, settings):
    key = common_dkim.configured_key()
    published = {f"{key.dns_name()}.".encode(): key.dns_record().encode()}

    def lookup(name, timeout=5):
        return published.get(name)

    assert readiness.published_record_check(lookup).level == Level.PASS
    published[f"{key.dns_name()}.".encode()] = generate_key("rsa-sha256")[1].encode()
    wrong = readiness.published_record_check(lookup)
    assert wrong.level == Level.FAIL
    assert "another key" in wrong.detail
    published.clear()
    missing = readiness.published_record_check(lookup)
    assert (missing.level, missing.detail.startswith("No TXT record at s2026._domainkey.example.com")) == (
        Level.FAIL,
        True,
    )


def test_through_a_providers_api_the_dkim_check_says_the_provider_signs(ready_sender, settings):
    settings.DKIM_SIGNED_EMAIL_BACKEND = "anymail.backends.postmark.EmailBackend"
    result = check("dkim")
    assert result.level == Level.WARN
    assert "postmark" in result.detail
