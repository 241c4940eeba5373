"""Reads that admin pages, tasks, the API and benchmarks share: progress counts, audience size, the campaign report."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db.models import Case, Count, Q, QuerySet, Value, When
from django.db.models.functions import TruncDay, TruncHour
from django.db.models.functions.datetime import TruncBase
from django.utils import timezone

from consents.models import ConsentEvent, Purpose, Source

from . import sql
from .models import AudienceSegment, Campaign, Delivery, DeliveryEvent


def campaign_status_counts(campaign: Campaign) -> dict[str, int]:
    return campaigns_status_counts(campaign_ids=[campaign.pk])[campaign.pk]


def campaigns_status_counts(*, campaign_ids: list[int]) -> dict[int, dict[str, int]]:
    """Deliveries per status for each campaign, in one query (the index on campaign and status)."""
    counts = {pk: dict.fromkeys(Delivery.Status.values, 0) for pk in campaign_ids}
    if not campaign_ids:
        return counts
    rows = (
        Delivery.objects.filter(campaign_id__in=campaign_ids)
        .values("campaign_id", "status")
        .annotate(n=Count("id"))
        .order_by()
    )
    for row in rows:
        counts[row["campaign_id"]][row["status"]] = row["n"]
    return counts


def campaigns_cancelled_counts(*, campaign_ids: list[int]) -> dict[int, int]:
    """Messages of each campaign that its cancellation stopped before they were sent, in one query."""
    counts = dict.fromkeys(campaign_ids, 0)
    if not campaign_ids:
        return counts
    rows = (
        Delivery.objects.filter(
            campaign_id__in=campaign_ids,
            status=Delivery.Status.SKIPPED,
            skip_reason=Delivery.SkipReason.CANCELLED,
        )
        .values("campaign_id")
        .annotate(n=Count("id"))
        .order_by()
    )
    for row in rows:
        counts[row["campaign_id"]] = row["n"]
    return counts


def audience_by_variant(campaign: Campaign) -> dict[str, int]:
    """
    How many of the audience receive each language's variant (one grouped COUNT): customers
    whose language has no variant receive the fallback's, counted with it.
    """
    counts: dict[str, int] = dict.fromkeys(campaign.variant_languages(), 0)
    for language, count in sql.audience_count_by_language(campaign):
        variant = campaign.language_for(language)
        counts[variant] = counts.get(variant, 0) + count
    order = list(settings.CUSTOMER_LANGUAGES)
    return dict(sorted(counts.items(), key=lambda item: order.index(item[0])))


def audience_size(campaign: Campaign) -> int:
    """Customers who would receive the campaign if it were dispatched now (one COUNT query)."""
    return sql.audience_count(campaign)


def segment_audience_sizes(segment: AudienceSegment, *, products: list[object] | None = None) -> dict[str, int]:
    """
    Customers a campaign for the segment would reach now, per marketing purpose: one COUNT per
    purpose. `products` stands in for the segment's own while it is not saved yet.
    """
    return {
        purpose.name: sql.segment_audience_count(segment, purpose_id=purpose.pk, products=products)
        for purpose in Purpose.objects.filter(is_marketing=True)
    }


@dataclass(frozen=True)
class AudienceEstimate:
    consenting: int  # customers in the audience now (consenting, not erased, not suppressed, in the filters)
    capped: int  # of them, those the frequency cap would skip now

    @property
    def reachable(self) -> int:
        return self.consenting - self.capped


def audience_estimate(campaign: Campaign, *, now: datetime | None = None) -> AudienceEstimate:
    """The audience now and how many of it the frequency cap would skip, in one query."""
    consenting, capped = sql.audience_counts(campaign, now=now or timezone.now())
    return AudienceEstimate(consenting=consenting, capped=capped)


def campaigns_skip_reason_counts(*, campaign_ids: list[int]) -> dict[int, dict[str, int]]:
    """Skipped deliveries per reason for each campaign, in one query."""
    counts = {pk: dict.fromkeys(Delivery.SkipReason.values[1:], 0) for pk in campaign_ids}
    if not campaign_ids:
        return counts
    rows = (
        Delivery.objects.filter(campaign_id__in=campaign_ids, status=Delivery.Status.SKIPPED)
        .values("campaign_id", "skip_reason")
        .annotate(n=Count("id"))
        .order_by()
    )
    for row in rows:
        counts[row["campaign_id"]][row["skip_reason"]] = row["n"]
    return counts


# --- the campaign report -----------------------------------------------------------------------

# The ledger's sources that are an unsubscribe from a campaign's message, by the report's name.
UNSUBSCRIBE_SOURCES = {
    "one_click": Source.ONE_CLICK,
    "link": Source.UNSUBSCRIBE_LINK,
    "provider": Source.PROVIDER_UNSUBSCRIBE,
}
# An hourly chart for a campaign whose figures span up to this long, else daily.
HOURLY_SPAN = timedelta(hours=72)
INTERVALS = ("hour", "day")


def campaign_reference(campaign: Campaign) -> str:
    """What the ledger's events name as their reference when a campaign's message prompted them."""
    return f"campaign:{campaign.public_id}"


@dataclass(frozen=True)
class ReportBucket:
    start: datetime
    sent: int = 0
    bounced: int = 0
    complained: int = 0
    unsubscribed: int = 0


@dataclass(frozen=True)
class CampaignReport:
    campaign_id: int
    total: int  # deliveries created for the campaign
    queued: int
    sending: int
    sent: int  # messages that left (a bounced message left too)
    skipped: dict[str, int]  # by reason
    failed: int
    unknown: int
    bounced: int
    complained: int
    unsubscribed: dict[str, int]  # one_click, link, provider
    interval: str  # "hour" or "day"
    series: list[ReportBucket] = field(default_factory=list)

    @property
    def skipped_total(self) -> int:
        return sum(self.skipped.values())

    @property
    def unsubscribed_total(self) -> int:
        return sum(self.unsubscribed.values())

    def of_total(self, value: int) -> float:
        return value / self.total if self.total else 0.0

    def of_sent(self, value: int) -> float:
        return value / self.sent if self.sent else 0.0

    @property
    def rates(self) -> dict[str, float]:
        """Sent, skipped, failed and unknown among all deliveries; the responses among messages sent."""
        return {
            "sent": self.of_total(self.sent),
            "skipped": self.of_total(self.skipped_total),
            "failed": self.of_total(self.failed),
            "unknown": self.of_total(self.unknown),
            "bounced": self.of_sent(self.bounced),
            "complained": self.of_sent(self.complained),
            "unsubscribed": self.of_sent(self.unsubscribed_total),
        }


def _sent_statuses() -> list[str]:
    return [status for status in ("sent", "bounced") if status in Delivery.Status.values]


def _truncate(interval: str, field_name: str) -> TruncBase:
    return (TruncHour if interval == "hour" else TruncDay)(field_name, tzinfo=UTC)


def _unsubscribe_rows(references: list[str]) -> QuerySet[ConsentEvent]:
    return ConsentEvent.objects.filter(
        reference__in=references, granted=False, source__in=list(UNSUBSCRIBE_SOURCES.values())
    )


def _feedback_rows(campaign_ids: list[int], *, interval: str | None) -> list[tuple[int, str, datetime | None, int]]:
    """
    The provider's reports on the campaigns' messages, one query: (campaign id, "bounced" or
    "complained", the hour or day it happened or None, deliveries). A bounce is a hard bounce or a
    rejection that left its delivery bounced (marketing.feedback); each delivery counts once per
    figure (and interval), however often the provider reported it.
    """
    if not campaign_ids:
        return []
    figure = Case(When(kind=DeliveryEvent.Kind.COMPLAINED, then=Value("complained")), default=Value("bounced"))
    events = (
        DeliveryEvent.objects.filter(campaign_id__in=campaign_ids, delivery__isnull=False)
        .filter(
            Q(kind=DeliveryEvent.Kind.COMPLAINED)
            | Q(
                kind__in=[DeliveryEvent.Kind.BOUNCED, DeliveryEvent.Kind.REJECTED],
                delivery__status=Delivery.Status.BOUNCED,
            )
        )
        .annotate(figure=figure)
    )
    group = ["campaign_id", "figure"]
    if interval is not None:
        events = events.annotate(at=_truncate(interval, "occurred_at"))
        group.append("at")
    rows = events.values(*group).annotate(n=Count("delivery_id", distinct=True)).order_by()
    return [(row["campaign_id"], row["figure"], row.get("at"), row["n"]) for row in rows]


def campaign_report(campaign: Campaign, *, interval: str | None = None, now: datetime | None = None) -> CampaignReport:
    """
    The campaign's figures and their course over time (per hour, or per day when they span more
    than HOURLY_SPAN; `interval` forces one). Five queries whatever the campaign's size: the
    deliveries per status, per skip reason, messages sent per interval, unsubscribes in the ledger
    (the events whose reference is this campaign) per interval and source, provider reports.
    """
    now = now or timezone.now()
    counts = campaign_status_counts(campaign)
    skipped = campaigns_skip_reason_counts(campaign_ids=[campaign.pk])[campaign.pk]
    if interval not in INTERVALS:
        start = campaign.dispatched_at or campaign.scheduled_at or now
        interval = "hour" if now - start <= HOURLY_SPAN else "day"
    buckets: dict[datetime, dict[str, int]] = {}

    def bucket(start: datetime) -> dict[str, int]:
        return buckets.setdefault(start, {"sent": 0, "bounced": 0, "complained": 0, "unsubscribed": 0})

    sent_rows = (
        Delivery.objects.filter(campaign=campaign, status__in=_sent_statuses(), sent_at__isnull=False)
        .annotate(at=_truncate(interval, "sent_at"))
        .values("at")
        .annotate(n=Count("id"))
        .order_by()
    )
    for row in sent_rows:
        bucket(row["at"])["sent"] += row["n"]
    unsubscribed = dict.fromkeys(UNSUBSCRIBE_SOURCES, 0)
    by_source = {str(source): name for name, source in UNSUBSCRIBE_SOURCES.items()}
    unsubscribe_rows = (
        _unsubscribe_rows([campaign_reference(campaign)])
        .annotate(at=_truncate(interval, "occurred_at"))
        .values("at", "source")
        .annotate(n=Count("customer_id", distinct=True))
        .order_by()
    )
    for row in unsubscribe_rows:
        unsubscribed[by_source[row["source"]]] += row["n"]
        bucket(row["at"])["unsubscribed"] += row["n"]
    complained = 0
    for _campaign_id, kind, at, n in _feedback_rows([campaign.pk], interval=interval):
        if kind == "complained":
            complained += n
        assert at is not None, "rows asked for with an interval carry their hour or day"
        bucket(at)[kind] += n
    series = _filled(buckets, interval)
    return CampaignReport(
        campaign_id=campaign.pk,
        total=sum(counts.values()),
        queued=counts["queued"],
        sending=counts["sending"],
        sent=sum(counts.get(status, 0) for status in _sent_statuses()),
        skipped=skipped,
        failed=counts["failed"],
        unknown=counts["unknown"],
        bounced=counts.get("bounced", 0),
        complained=complained,
        unsubscribed=unsubscribed,
        interval=interval,
        series=series,
    )


# A chart of more buckets than this is unreadable: the empty ones between are not filled in.
MAX_FILLED_BUCKETS = 400


def _filled(buckets: dict[datetime, dict[str, int]], interval: str) -> list[ReportBucket]:
    """The buckets in order, with the empty hours or days between them (a chart's gaps are real)."""
    if not buckets:
        return []
    step = timedelta(hours=1) if interval == "hour" else timedelta(days=1)
    first, last = min(buckets), max(buckets)
    if (last - first) / step > MAX_FILLED_BUCKETS:
        starts = sorted(buckets)
    else:
        starts = [first + n * step for n in range(int((last - first) / step) + 1)]
    return [ReportBucket(start=start, **buckets.get(start, {})) for start in starts]


@dataclass(frozen=True)
class CampaignRates:
    sent: int
    bounced: int
    complained: int
    unsubscribed: int

    def rate(self, value: int) -> float:
        return value / self.sent if self.sent else 0.0


def campaigns_rates(*, campaigns: list[Campaign]) -> dict[int, CampaignRates]:
    """Sent, bounced, complained and unsubscribed for a page of campaigns: three queries, whatever the page's size."""
    ids = [c.pk for c in campaigns]
    counts = campaigns_status_counts(campaign_ids=ids)
    by_reference = {campaign_reference(c): c.pk for c in campaigns}
    unsubscribed = dict.fromkeys(ids, 0)
    if campaigns:
        rows = (
            _unsubscribe_rows(list(by_reference))
            .values("reference")
            .annotate(n=Count("customer_id", distinct=True))
            .order_by()
        )
        for row in rows:
            unsubscribed[by_reference[row["reference"]]] += row["n"]
    complained = dict.fromkeys(ids, 0)
    for campaign_id, kind, _at, n in _feedback_rows(ids, interval=None):
        if kind == "complained":
            complained[campaign_id] += n
    return {
        pk: CampaignRates(
            sent=sum(counts[pk].get(status, 0) for status in _sent_statuses()),
            bounced=counts[pk].get("bounced", 0),
            complained=complained[pk],
            unsubscribed=unsubscribed[pk],
        )
        for pk in ids
    }


@dataclass(frozen=True)
class FeedbackRates:
    """A campaign's hard bounces and complaints among its messages sent (since `since`, its last resume)."""

    sent: int
    bounced: int
    complained: int
    since: datetime | None = None

    @property
    def bounce_rate(self) -> float:
        return self.bounced / self.sent if self.sent else 0.0

    @property
    def complaint_rate(self) -> float:
        return self.complained / self.sent if self.sent else 0.0

    @property
    def bounce_percent(self) -> str:
        return f"{self.bounce_rate:.1%}"

    @property
    def complaint_percent(self) -> str:
        return f"{self.complaint_rate:.2%}"

    def pause_reason(self) -> str:
        """Why these figures pause the campaign (MARKETING_PAUSE_*), or "" when they do not."""
        if self.sent < settings.MARKETING_PAUSE_MIN_SAMPLE:
            return ""
        reasons = []
        if self.bounce_rate > settings.MARKETING_PAUSE_BOUNCE_RATE:
            reasons.append(
                f"hard-bounce rate {self.bounce_percent} ({self.bounced} of {self.sent} messages) "
                f"exceeds {settings.MARKETING_PAUSE_BOUNCE_RATE:.1%}"
            )
        if self.complaint_rate > settings.MARKETING_PAUSE_COMPLAINT_RATE:
            reasons.append(
                f"complaint rate {self.complaint_percent} ({self.complained} of {self.sent} messages) "
                f"exceeds {settings.MARKETING_PAUSE_COMPLAINT_RATE:.2%}"
            )
        return "; ".join(reasons).capitalize()


def campaign_feedback_rates(campaign: Campaign) -> FeedbackRates:
    """
    Messages sent, hard-bounced and complained about, counting only those sent since the
    campaign was last resumed: staff who resumed it have seen the earlier figures. Three
    COUNT queries over the campaign's deliveries (the index on campaign and status).
    """
    sent = Delivery.objects.filter(campaign=campaign, status__in=[Delivery.Status.SENT, Delivery.Status.BOUNCED])
    if campaign.resumed_at is not None:
        sent = sent.filter(sent_at__gte=campaign.resumed_at)
    complained = (
        DeliveryEvent.objects.filter(campaign=campaign, kind=DeliveryEvent.Kind.COMPLAINED, delivery__in=sent)
        .values("delivery")
        .distinct()
        .count()
    )
    return FeedbackRates(
        sent=sent.count(),
        bounced=sent.filter(status=Delivery.Status.BOUNCED).count(),
        complained=complained,
        since=campaign.resumed_at,
    )
