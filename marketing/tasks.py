"""
Celery entry points, named like the services they call: they take ids, call the service, and
enqueue what it returns once the transaction has committed. No service imports this module.
"""

from __future__ import annotations

import logging

from celery import shared_task
from django.db import InterfaceError, OperationalError, transaction

from . import dispatch, sending
from .dispatch import SendWork

logger = logging.getLogger(__name__)


def work_enqueue(work: SendWork) -> None:
    """
    Enqueue what a service left for the workers once the current transaction has committed
    (at once outside one): one send task per batch range, and the dispatcher if a campaign is due.
    """
    if not work.batches and not work.dispatch_due:
        return

    def enqueue() -> None:
        for batch in work.batches:
            deliveries_send_batch.delay(batch.campaign_id, batch.first_id, batch.last_id)
        if work.dispatch_due:
            campaigns_dispatch_due.delay()

    transaction.on_commit(enqueue)


# The task names stay those queued messages already carry, so a deploy loses no queued task.


@shared_task(name="marketing.tasks.campaigns_tick", ignore_result=True)
def campaigns_tick() -> dict[str, int]:
    """Beat, every minute: mark rows of dead workers unknown, dispatch due campaigns, finish done ones."""
    tick = dispatch.campaigns_tick()
    work_enqueue(tick.work)
    return tick.counts


@shared_task(name="marketing.tasks.dispatch_due_campaigns", ignore_result=True)
def campaigns_dispatch_due() -> list[int]:
    work = dispatch.campaigns_dispatch_due()
    work_enqueue(work)
    return work.campaign_ids


# A database that restarts or fails over mid-batch: the batch comes back later and takes the
# rows still queued (rows it had claimed stay "sending", later "unknown": never sent twice).
@shared_task(
    name="marketing.tasks.send_batch",
    ignore_result=True,
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=5,
    retry_backoff_max=300,
    retry_jitter=True,
    max_retries=8,
)
def deliveries_send_batch(campaign_id: int, first_id: int, last_id: int) -> dict[str, int]:
    result = sending.deliveries_send_batch(campaign_id=campaign_id, first_id=first_id, last_id=last_id)
    if result.retry_in is not None:
        # Transient errors: the rows are queued again with their own next attempt time; this
        # task comes back for them. Running it early or twice is harmless (claims are conditional).
        deliveries_send_batch.apply_async((campaign_id, first_id, last_id), countdown=result.retry_in)
    return {"sent": result.sent, "skipped": result.skipped, "failed": result.failed, "retrying": result.retrying}
