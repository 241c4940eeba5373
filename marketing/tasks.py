"""Celery entry points: they take ids and call services."""

import logging

from celery import shared_task
from django.db import InterfaceError, OperationalError

from . import services

logger = logging.getLogger(__name__)


@shared_task(ignore_result=True)
def campaigns_tick() -> dict[str, int]:
    """Beat, every minute: mark rows of dead workers unknown, dispatch due campaigns, finish done ones."""
    return services.campaigns_tick()


@shared_task(ignore_result=True)
def dispatch_due_campaigns() -> list[int]:
    return services.campaigns_dispatch_due()


# A database that restarts or fails over mid-batch: the batch comes back later and takes the
# rows still queued (rows it had claimed stay "sending", later "unknown": never sent twice).
@shared_task(
    ignore_result=True,
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=5,
    retry_backoff_max=300,
    retry_jitter=True,
    max_retries=8,
)
def send_batch(campaign_id: int, first_id: int, last_id: int) -> dict[str, int]:
    result = services.deliveries_send_batch(campaign_id=campaign_id, first_id=first_id, last_id=last_id)
    if result.retry_in is not None:
        # Transient errors: the rows are queued again with their own next attempt time; this
        # task comes back for them. Running it early or twice is harmless (claims are conditional).
        send_batch.apply_async((campaign_id, first_id, last_id), countdown=result.retry_in)
    return {"sent": result.sent, "skipped": result.skipped, "failed": result.failed, "retrying": result.retrying}
