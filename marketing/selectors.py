"""Reads that admin pages, tasks and benchmarks share: progress counts and audience size."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Count
from django.utils import timezone

from . import sql
from .models import Campaign, Delivery


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
