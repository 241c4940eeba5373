"""Reads that admin pages, tasks and benchmarks share: progress counts and audience size."""

from __future__ import annotations

from django.db.models import Count

from consents.models import Purpose

from . import sql
from .models import AudienceSegment, Campaign, Delivery


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


def segment_audience_sizes(segment: AudienceSegment, *, products: list | None = None) -> dict[str, int]:
    """
    Customers a campaign for the segment would reach now, per marketing purpose: one COUNT per
    purpose. `products` stands in for the segment's own while it is not saved yet.
    """
    return {
        purpose.name: sql.segment_audience_count(segment, purpose_id=purpose.pk, products=products)
        for purpose in Purpose.objects.filter(is_marketing=True)
    }
