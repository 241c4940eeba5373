"""Reads that admin pages, tasks and benchmarks share: progress counts and audience size."""

from __future__ import annotations

from django.conf import settings
from django.db.models import Count

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
