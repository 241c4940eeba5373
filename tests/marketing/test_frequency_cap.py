"""
The frequency cap: at most MARKETING_MAX_PER_CUSTOMER marketing messages per MARKETING_CAP_DAYS.
A delivery beyond it is skipped ("frequency cap") by the claim's own statement, counted in the
campaign's summary and in the audience estimate. Runs on the database in use (SQLite here,
PostgreSQL in CI), over a real SMTP server.
"""

from datetime import timedelta

import pytest
from django.utils import timezone

from marketing import campaigns, dispatch, selectors, sending, sql, tasks
from marketing.models import Campaign, Delivery
from tests.factories import CustomerFactory

from .helpers import customer_who_consents

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("eager_celery")]


@pytest.fixture
def cap_of_two_per_week(settings):
    settings.MARKETING_MAX_PER_CUSTOMER = 2
    settings.MARKETING_CAP_DAYS = 7


def earlier_messages(make_campaign, customer, *, ago: list[timedelta], status=Delivery.Status.SENT):
    """Messages of earlier campaigns that this customer received (or not) that long ago."""
    now = timezone.now()
    for age in ago:
        earlier = make_campaign(name=f"Earlier {age}", scheduled_at=now - age)
        Campaign.objects.filter(pk=earlier.pk).update(status=Campaign.Status.SENT)
        Delivery.objects.create(
            campaign=earlier,
            customer=customer,
            status=status,
            sent_at=now - age if status == Delivery.Status.SENT else None,
            claimed_at=now - age,
        )


def send_now(campaign, user, capture):
    with capture(execute=True):
        tasks.work_enqueue(campaigns.campaign_send_now(campaign=campaign, user=user))
    campaign.refresh_from_db()


def test_a_customer_at_the_cap_is_skipped_and_the_others_receive_the_campaign(
    smtp, make_campaign, staff_user, cap_of_two_per_week, django_capture_on_commit_callbacks
):
    # given
    ada = customer_who_consents(email="ada@example.com")  # two messages this week: at the cap
    earlier_messages(make_campaign, ada, ago=[timedelta(days=1), timedelta(days=6)])
    bob = customer_who_consents(email="bob@example.com")  # one this week, one eight days ago
    earlier_messages(make_campaign, bob, ago=[timedelta(days=2), timedelta(days=8)])
    carol = customer_who_consents(email="carol@example.com")  # two that failed: nothing arrived
    earlier_messages(make_campaign, carol, ago=[timedelta(days=1), timedelta(days=2)], status=Delivery.Status.FAILED)
    dan = customer_who_consents(email="dan@example.com")  # one that may have gone out (worker died)
    earlier_messages(make_campaign, dan, ago=[timedelta(days=1)], status=Delivery.Status.UNKNOWN)
    earlier_messages(make_campaign, dan, ago=[timedelta(days=3)])
    campaign = make_campaign(name="Summer news")

    # when: the audience is estimated, then the campaign sent
    estimate = selectors.audience_estimate(campaign)
    send_now(campaign, staff_user, django_capture_on_commit_callbacks)

    # then
    assert (estimate.consenting, estimate.capped, estimate.reachable) == (4, 2, 2)
    assert smtp.handler.recipients() == ["bob@example.com", "carol@example.com"]
    rows = {d.customer_id: d for d in Delivery.objects.filter(campaign=campaign)}
    assert (rows[ada.pk].status, rows[ada.pk].skip_reason) == ("skipped", "frequency_cap")
    assert (rows[dan.pk].status, rows[dan.pk].skip_reason) == ("skipped", "frequency_cap")
    assert rows[ada.pk].attempts == 0
    assert rows[bob.pk].status == rows[carol.pk].status == "sent"
    assert campaign.status == Campaign.Status.SENT
    assert selectors.campaign_status_counts(campaign)["skipped"] == 2
    assert selectors.campaigns_skip_reason_counts(campaign_ids=[campaign.pk])[campaign.pk]["frequency_cap"] == 2


def test_the_cap_counts_the_messages_of_campaigns_sent_one_after_the_other(
    smtp, make_campaign, staff_user, settings, django_capture_on_commit_callbacks
):
    # given: one message a week
    settings.MARKETING_MAX_PER_CUSTOMER = 1
    settings.MARKETING_CAP_DAYS = 7
    customer_who_consents(email="ada@example.com")
    first, second = make_campaign(name="First"), make_campaign(name="Second")

    # when
    send_now(first, staff_user, django_capture_on_commit_callbacks)
    send_now(second, staff_user, django_capture_on_commit_callbacks)

    # then: the second finds her at the cap
    assert smtp.handler.recipients() == ["ada@example.com"]
    assert Delivery.objects.get(campaign=second).skip_reason == Delivery.SkipReason.FREQUENCY_CAP
    assert second.status == Campaign.Status.SENT


def test_without_a_cap_everyone_who_consents_receives_it(
    smtp, make_campaign, staff_user, settings, django_capture_on_commit_callbacks
):
    settings.MARKETING_MAX_PER_CUSTOMER = 0
    ada = customer_who_consents(email="ada@example.com")
    earlier_messages(make_campaign, ada, ago=[timedelta(hours=n) for n in range(1, 6)])
    campaign = make_campaign(name="Summer news")

    assert selectors.audience_estimate(campaign).capped == 0
    send_now(campaign, staff_user, django_capture_on_commit_callbacks)

    assert smtp.handler.recipients() == ["ada@example.com"]


def test_of_two_claims_at_the_same_instant_only_the_earlier_keeps_its_message(
    make_campaign, staff_user, settings, cap_of_two_per_week
):
    # given: Ada has one message this week; two campaigns claim her row at the same instant,
    # each statement unable to see the other's (as two PostgreSQL transactions would be)
    ada = customer_who_consents(email="ada@example.com")
    earlier_messages(make_campaign, ada, ago=[timedelta(days=1)])
    summer, autumn = make_campaign(name="Summer"), make_campaign(name="Autumn")
    for campaign in (summer, autumn):
        campaigns.campaign_send_now(campaign=campaign, user=staff_user)
    dispatch.campaigns_dispatch_due()
    now = timezone.now()
    Delivery.objects.filter(campaign__in=[summer, autumn]).update(status=Delivery.Status.SENDING, claimed_at=now)
    first = Delivery.objects.get(campaign=summer)
    second = Delivery.objects.get(campaign=autumn)
    assert first.pk < second.pk

    # when: each claim re-checks the cap in its transaction, before sending
    kept_first = sql.skip_capped(ids=[first.pk], now=now)
    kept_second = sql.skip_capped(ids=[second.pk], now=now)

    # then
    first.refresh_from_db()
    second.refresh_from_db()
    assert (kept_first, first.status) == (0, "sending")
    assert (kept_second, second.status, second.skip_reason) == (1, "skipped", "frequency_cap")


def test_the_admin_page_and_confirmation_show_how_many_the_cap_would_skip(
    client, make_campaign, staff_user, cap_of_two_per_week
):
    ada = customer_who_consents(email="ada@example.com")
    earlier_messages(make_campaign, ada, ago=[timedelta(days=1), timedelta(days=2)])
    customer_who_consents(email="bob@example.com")
    CustomerFactory(email="carol@example.com")  # never asked
    campaign = make_campaign(name="Summer news")
    client.force_login(staff_user)

    page = client.get(f"/admin/marketing/campaign/{campaign.pk}/change/").content.decode()
    confirm = client.get(f"/admin/marketing/campaign/{campaign.pk}/send-now/").content.decode()

    assert "Audience now:</strong> 2 customers currently consenting" in page
    assert "1 of them reached the frequency cap (2 messages per 7 days)" in page
    assert "will send <strong>now</strong> to <strong>1 customer</strong>" in confirm
    assert "1 more consent but reached the frequency cap" in confirm


def test_a_batch_keeps_going_past_a_claim_of_only_capped_rows(
    smtp, make_campaign, staff_user, settings, django_capture_on_commit_callbacks
):
    # given: claims of two rows; the first four customers are at the cap, the fifth is not
    settings.MARKETING_MAX_PER_CUSTOMER = 1
    settings.MARKETING_CAP_DAYS = 7
    settings.MARKETING_CLAIM_SIZE = 2
    for n in range(4):
        capped = customer_who_consents(email=f"capped{n}@example.com")
        earlier_messages(make_campaign, capped, ago=[timedelta(days=1)])
    customer_who_consents(email="fresh@example.com")
    campaign = make_campaign(name="Summer news")

    send_now(campaign, staff_user, django_capture_on_commit_callbacks)

    assert smtp.handler.recipients() == ["fresh@example.com"]
    assert campaign.status == Campaign.Status.SENT
    assert selectors.campaigns_skip_reason_counts(campaign_ids=[campaign.pk])[campaign.pk]["frequency_cap"] == 4


def test_sending_rows_left_by_a_claim_are_untouched_without_a_cap(make_campaign, staff_user, settings):
    settings.MARKETING_MAX_PER_CUSTOMER = 0
    assert sql.skip_capped(ids=[1, 2], now=timezone.now()) == 0
    assert sending.claim_size() == settings.MARKETING_CLAIM_SIZE
