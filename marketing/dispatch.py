"""
Due campaigns become Delivery rows; the beat's tick. Nothing here enqueues a task: each function
returns the work it leaves (`SendWork`: batch id ranges, or "run the dispatcher now"), and the
entry points in tasks.py enqueue it once the transaction has committed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from . import sql
from .models import Campaign, Delivery
from .sending import campaigns_finish, deliveries_mark_unknown

logger = logging.getLogger(__name__)

# The end of the last batch's id range: it takes every queued row after its start.
LAST_ID = 2**62


@dataclass(frozen=True)
class BatchRange:
    """One send task's share of a campaign: its queued rows with ids in [first_id, last_id]."""

    campaign_id: int
    first_id: int
    last_id: int


@dataclass
class SendWork:
    """What a change leaves for the workers, to be enqueued after it commits (tasks.work_enqueue)."""

    batches: list[BatchRange] = field(default_factory=list)
    # A campaign became due: run the dispatcher now rather than at the next tick.
    dispatch_due: bool = False
    # The campaigns dispatched (or enqueued again), for the caller's log and tests.
    campaign_ids: list[int] = field(default_factory=list)

    def add(self, other: SendWork) -> None:
        self.batches += other.batches
        self.dispatch_due = self.dispatch_due or other.dispatch_due
        self.campaign_ids += other.campaign_ids


@dataclass
class Tick:
    counts: dict[str, int]
    work: SendWork


def batch_ranges(campaign_id: int) -> list[BatchRange]:
    """One range per MARKETING_BATCH_SIZE queued rows of the campaign (none when nothing is queued)."""
    starts = sql.batch_starts(campaign_id, settings.MARKETING_BATCH_SIZE)
    ends = [start - 1 for start in starts[1:]] + [LAST_ID]
    return [BatchRange(campaign_id, first, last) for first, last in zip(starts, ends, strict=False)]


def campaigns_dispatch_due(*, now: datetime | None = None) -> SendWork:
    """
    Take each due campaign under a row lock (SKIP LOCKED on PostgreSQL: two schedulers never
    both take one), create its deliveries in one INSERT … SELECT, and return its batches. No
    Python loop over recipients. Each campaign commits on its own.
    """
    now = now or timezone.now()
    work = SendWork()
    while True:
        with transaction.atomic():
            due = (
                Campaign.objects.filter(status=Campaign.Status.SCHEDULED, scheduled_at__lte=now)
                .exclude(pk__in=work.campaign_ids)
                .order_by("scheduled_at", "id")
            )
            if connection.features.has_select_for_update_skip_locked:
                due = due.select_for_update(skip_locked=True)
            campaign = due.first()
            if campaign is None:
                return work
            created = sql.insert_deliveries(campaign, now)
            if created >= sql.ANALYZE_AFTER_ROWS:
                sql.deliveries_analyze()
            campaign.status = Campaign.Status.SENDING
            campaign.dispatched_at = now
            campaign.save(update_fields=["status", "dispatched_at"])
            work.batches += batch_ranges(campaign.pk)
            logger.info("Campaign %s dispatched: %s deliveries queued", campaign.pk, created)
        work.campaign_ids.append(campaign.pk)


def campaigns_requeue_stalled(*, now: datetime | None = None) -> SendWork:
    """
    The batches again for sending campaigns whose queued rows nobody works on: the broker lost
    their tasks (a Redis restarted without persistence), or a worker died with tasks it had
    reserved. Only when no worker has a row in flight anywhere and the campaign sent nothing
    for MARKETING_STALL_TIMEOUT, so busy workers are never given duplicates; and a duplicate
    would be harmless anyway (claims are conditional).
    """
    now = now or timezone.now()
    recent = now - settings.MARKETING_STALL_TIMEOUT
    work = SendWork()
    if Delivery.objects.filter(status=Delivery.Status.SENDING, claimed_at__gt=recent).exists():
        return work
    # A campaign dispatched a moment ago has had no time to start.
    stalled = Campaign.objects.filter(status=Campaign.Status.SENDING, dispatched_at__lt=recent)
    for campaign_id in stalled.values_list("pk", flat=True):
        rows = Delivery.objects.filter(campaign_id=campaign_id)
        if not rows.filter(status=Delivery.Status.QUEUED, next_attempt_at__lte=now).exists():
            continue
        if rows.filter(status=Delivery.Status.SENT, sent_at__gt=recent).exists():
            continue
        with transaction.atomic():
            campaign = Campaign.objects.select_for_update().filter(pk=campaign_id).first()
            if campaign is None or campaign.status != Campaign.Status.SENDING:
                continue
            work.batches += batch_ranges(campaign_id)
        logger.warning("Campaign %s had queued rows nobody worked on: its batches are enqueued again", campaign_id)
        work.campaign_ids.append(campaign_id)
    return work


def campaigns_tick(*, now: datetime | None = None) -> Tick:
    """What beat runs every minute."""
    unknown = deliveries_mark_unknown(now=now)
    dispatched = campaigns_dispatch_due(now=now)
    requeued = campaigns_requeue_stalled(now=now)
    finished = campaigns_finish(now=now)
    work = SendWork()
    work.add(dispatched)
    work.add(requeued)
    counts = {
        "unknown": unknown,
        "dispatched": len(dispatched.campaign_ids),
        "requeued": len(requeued.campaign_ids),
        "finished": finished,
    }
    return Tick(counts=counts, work=work)
