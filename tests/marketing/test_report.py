"""
The campaign report: figures, rates and their course over time on the campaign page, the
rates on the campaign list, from the deliveries and the ledger's unsubscribes that name the
campaign; charts as SVG without script, each followed by its figures as a table.
"""

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from consents.models import Source
from consents.services import consent_grant, consent_withdraw
from marketing import charts, selectors
from marketing.models import Campaign, Delivery, DeliveryEvent
from tests.factories import CustomerFactory

from .helpers import purpose

pytestmark = pytest.mark.django_db

DISPATCHED = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


def customer_who_consents(email: str):
    """A customer since before the campaign, consenting since the day before it."""
    customer = CustomerFactory.create(email=email, created_at=DISPATCHED - timedelta(days=30))
    consent_grant(
        customer=customer,
        purpose=purpose("newsletter"),
        source=Source.SIGNUP_FORM,
        occurred_at=DISPATCHED - timedelta(days=1),
    )
    return customer


def sent_campaign(make_campaign, *, name="Spring newsletter", sent=6, dispatched=DISPATCHED) -> Campaign:
    """A campaign dispatched at 09:00 whose messages went out over two hours, with every other outcome too."""
    prefix = "".join(name.lower().split()[:1] + [c for c in name if c.isdigit()])  # "spring", "extra2"
    campaign = make_campaign(name=name, scheduled_at=dispatched)
    Campaign.objects.filter(pk=campaign.pk).update(
        status=Campaign.Status.SENT, dispatched_at=dispatched, finished_at=dispatched + timedelta(hours=2)
    )
    campaign.refresh_from_db()
    for n in range(sent):
        at = dispatched + timedelta(minutes=20 * n)  # 09:00, 09:20, 09:40, 10:00, ...
        Delivery.objects.create(
            campaign=campaign,
            customer=customer_who_consents(email=f"{prefix}{n}@example.com"),
            status=Delivery.Status.SENT,
            sent_at=at,
            claimed_at=at,
        )
    outcomes = [
        (Delivery.Status.SKIPPED, Delivery.SkipReason.CONSENT_WITHDRAWN),
        (Delivery.Status.SKIPPED, Delivery.SkipReason.FREQUENCY_CAP),
        (Delivery.Status.SKIPPED, Delivery.SkipReason.FREQUENCY_CAP),
        (Delivery.Status.FAILED, ""),
        (Delivery.Status.UNKNOWN, ""),
    ]
    for n, (status, reason) in enumerate(outcomes):
        Delivery.objects.create(
            campaign=campaign,
            customer=customer_who_consents(email=f"{prefix}-other{n}@example.com"),
            status=status,
            skip_reason=reason,
        )
    return campaign


def unsubscribe(campaign: Campaign, email: str, source: Source, at: datetime) -> None:
    customer = Delivery.objects.get(campaign=campaign, customer__email=email).customer
    consent_withdraw(
        customer=customer,
        purpose=purpose("newsletter"),
        source=source,
        occurred_at=at,
        reference=f"campaign:{campaign.public_id}",
    )


@pytest.fixture
def campaign_with_responses(make_campaign):
    campaign = sent_campaign(make_campaign)
    unsubscribe(campaign, "spring0@example.com", Source.ONE_CLICK, DISPATCHED + timedelta(minutes=30))
    unsubscribe(campaign, "spring1@example.com", Source.UNSUBSCRIBE_LINK, DISPATCHED + timedelta(hours=1, minutes=5))
    # Not this campaign's: a withdrawal on the preference page, and one prompted by another campaign.
    consent_withdraw(
        customer=Delivery.objects.get(campaign=campaign, customer__email="spring2@example.com").customer,
        purpose=purpose("newsletter"),
        source=Source.PREFERENCE_PAGE,
    )
    other = sent_campaign(make_campaign, name="Autumn offers", sent=1)
    unsubscribe(other, "autumn0@example.com", Source.ONE_CLICK, DISPATCHED + timedelta(minutes=10))
    return campaign


def test_the_report_counts_every_outcome_and_this_campaigns_unsubscribes(campaign_with_responses):
    report = selectors.campaign_report(campaign_with_responses, now=DISPATCHED + timedelta(hours=3))

    assert (report.total, report.sent, report.failed, report.unknown) == (11, 6, 1, 1)
    assert report.skipped == {
        "consent_withdrawn": 1,
        "suppressed": 0,
        "erased": 0,
        "cancelled": 0,
        "frequency_cap": 2,
    }
    assert report.unsubscribed == {"one_click": 1, "link": 1, "provider": 0}
    assert report.rates["sent"] == pytest.approx(6 / 11)
    assert report.rates["unsubscribed"] == pytest.approx(2 / 6)
    assert report.rates["skipped"] == pytest.approx(3 / 11)


def test_the_report_runs_per_hour_for_a_recent_campaign_with_the_empty_hours_between(campaign_with_responses):
    report = selectors.campaign_report(campaign_with_responses, now=DISPATCHED + timedelta(hours=3))

    assert report.interval == "hour"
    assert [(b.start.hour, b.sent, b.unsubscribed) for b in report.series] == [(9, 3, 1), (10, 3, 1)]


def test_the_report_runs_per_day_for_an_older_campaign(campaign_with_responses):
    report = selectors.campaign_report(campaign_with_responses, now=DISPATCHED + timedelta(days=10))
    assert report.interval == "day"
    assert [(b.start.date().isoformat(), b.sent, b.unsubscribed) for b in report.series] == [("2026-11-30", 6, 2)]
    assert selectors.campaign_report(campaign_with_responses, interval="hour").interval == "hour"


def test_the_report_takes_the_same_number_of_queries_for_a_small_and_a_larger_campaign(
    make_campaign, django_assert_num_queries, django_assert_max_num_queries
):
    small = sent_campaign(make_campaign, name="Small", sent=1)
    larger = sent_campaign(make_campaign, name="Larger", sent=12)
    with django_assert_max_num_queries(5) as for_small:
        selectors.campaign_report(small)
    with django_assert_num_queries(len(for_small.captured_queries)):
        selectors.campaign_report(larger)


def test_the_charts_are_svg_without_script_each_followed_by_its_figures(campaign_with_responses):
    report = selectors.campaign_report(campaign_with_responses, now=DISPATCHED + timedelta(hours=3))

    sent_chart, responses_chart = charts.report_charts(report)

    for chart in (sent_chart, responses_chart):
        assert chart.svg.startswith("<svg")
        assert "<script" not in chart.svg
        assert "javascript" not in chart.svg.lower()
    assert sent_chart.rows == [["2026-11-30 09:00", 3], ["2026-11-30 10:00", 3]]
    assert responses_chart.headers == ["Hour", "Unsubscribed", "Bounced", "Complained"]
    assert responses_chart.rows[0][:2] == ["2026-11-30 09:00", 1]


def test_the_campaign_page_shows_the_figures_the_charts_and_their_tables(client, staff_user, campaign_with_responses):
    client.force_login(staff_user)

    page = client.get(f"/admin/marketing/campaign/{campaign_with_responses.pk}/change/?report=hour").content.decode()

    figures = re.search(r'<table id="report-figures"[^>]*>.*?</table>', page, re.S).group(0)
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", figures))
    assert "Outcomes, of the 11 deliveries Sent 6 54.5% Skipped 3 27.3%" in text
    assert "Frequency cap 2 18.2%" in text
    assert "Responses, of the 6 messages sent" in text
    assert "Unsubscribed from this campaign 2 33.3%" in text
    assert "one-click (mail client) 1 16.7%" in text
    assert page.count('class="report-chart"') == 2
    assert page.count('class="pygal-chart"') == 2
    report = page[page.index('id="campaign-report"') :]
    assert "<script" not in report[: report.index("</figure>", report.rindex("report-chart"))]
    assert "<caption>Messages sent per hour (UTC)</caption>" in page
    assert '<th scope="row">2026-11-30 09:00</th><td>3</td>' in page


def test_a_draft_has_no_report(client, staff_user, make_campaign):
    client.force_login(staff_user)
    page = client.get(f"/admin/marketing/campaign/{make_campaign().pk}/change/").content.decode()
    assert 'id="campaign-report"' not in page


def test_the_campaign_list_shows_the_rates_in_a_constant_number_of_queries(
    client, staff_user, make_campaign, campaign_with_responses, django_assert_max_num_queries
):
    client.force_login(staff_user)
    page = client.get("/admin/marketing/campaign/").content.decode()
    row = re.search(rf"<tr[^>]*>(?:(?!</tr>).)*{campaign_with_responses.name}(?:(?!</tr>).)*</tr>", page, re.S).group(0)
    cells = [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
    assert "6&nbsp;sent0.0%&nbsp;bounced0.0%&nbsp;complained33.3%&nbsp;unsubscribed" in cells

    with django_assert_max_num_queries(20) as few:
        client.get("/admin/marketing/campaign/")
    for n in range(3):
        sent_campaign(make_campaign, name=f"Extra {n}", sent=2, dispatched=timezone.now() - timedelta(days=n + 1))
    with django_assert_max_num_queries(len(few.captured_queries)):
        client.get("/admin/marketing/campaign/")


@pytest.mark.parametrize(
    "highest, ticks",
    [(0, [0, 1]), (2, [0, 1, 2]), (9, [0, 2, 4, 6, 8, 10]), (245, [0, 50, 100, 150, 200, 250])],
)
def test_the_y_axis_has_whole_numbers_only(highest, ticks):
    assert charts.integer_ticks(highest) == ticks


def provider_report(campaign: Campaign, email: str, kind: str, at: datetime, event_id: str) -> None:
    delivery = Delivery.objects.get(campaign=campaign, customer__email=email)
    DeliveryEvent.objects.create(
        provider="postmark",
        provider_event_id=event_id,
        kind=kind,
        occurred_at=at,
        delivery=delivery,
        campaign=campaign,
    )
    if kind in (DeliveryEvent.Kind.BOUNCED, DeliveryEvent.Kind.REJECTED):
        Delivery.objects.filter(pk=delivery.pk).update(status=Delivery.Status.BOUNCED)


def test_bounces_complaints_and_provider_unsubscribes_count_once_each(make_campaign, django_assert_max_num_queries):
    # given: a hard bounce reported twice (bounced, then rejected), one complaint reported twice,
    # a soft bounce (not a bounce), and an unsubscribe at the provider
    campaign = sent_campaign(make_campaign)
    ten = DISPATCHED + timedelta(hours=1, minutes=10)
    provider_report(campaign, "spring3@example.com", DeliveryEvent.Kind.BOUNCED, ten, "b1")
    provider_report(campaign, "spring3@example.com", DeliveryEvent.Kind.REJECTED, ten, "b2")
    provider_report(campaign, "spring4@example.com", DeliveryEvent.Kind.COMPLAINED, ten, "c1")
    provider_report(campaign, "spring4@example.com", DeliveryEvent.Kind.COMPLAINED, ten, "c2")
    provider_report(campaign, "spring5@example.com", DeliveryEvent.Kind.SOFT_BOUNCED, ten, "s1")
    unsubscribe(campaign, "spring0@example.com", Source.PROVIDER_UNSUBSCRIBE, DISPATCHED + timedelta(minutes=50))

    # when
    with django_assert_max_num_queries(5):
        report = selectors.campaign_report(campaign, now=DISPATCHED + timedelta(hours=3))
    rates = selectors.campaigns_rates(campaigns=[campaign])[campaign.pk]

    # then
    assert (report.sent, report.bounced, report.complained) == (6, 1, 1)
    assert report.unsubscribed == {"one_click": 0, "link": 0, "provider": 1}
    assert report.rates["bounced"] == pytest.approx(1 / 6)
    assert [(b.start.hour, b.sent, b.unsubscribed, b.bounced, b.complained) for b in report.series] == [
        (9, 3, 1, 0, 0),
        (10, 3, 0, 1, 1),
    ]
    assert (rates.sent, rates.bounced, rates.complained, rates.unsubscribed) == (6, 1, 1, 1)
