"""Reads that admin pages, tasks and benchmarks share: progress counts and audience size."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db.models import Count

from consents.models import Purpose

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
