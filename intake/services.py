"""
Reseller notifications: verified and stored first (the answer to the reseller), applied later
by Celery, once per event, in the order the events happened.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from common.logging import mask_emails

from .models import WebhookEvent
from .resellers import adapter_for
from .resellers.base import NeedsAttention, WaitForData

logger = logging.getLogger(__name__)

# Statuses that are final: processing such an event again changes nothing.
FINISHED = {WebhookEvent.Status.PROCESSED, WebhookEvent.Status.OUTDATED, WebhookEvent.Status.IGNORED}


def webhook_receive(*, provider: str, headers: Mapping[str, str], body: bytes) -> tuple[WebhookEvent, bool]:
    """
    Verify and store one notification. Returns the stored event and whether it is new (a
    repeat of an event already stored is not stored again). Raises SignatureRefused or
    NotificationRefused, having written nothing.
    """
    adapter = adapter_for(provider)
    adapter.verify(headers=headers, body=body, now=time.time())
    notification = adapter.parse(body)
    with transaction.atomic():
        event, created = WebhookEvent.objects.get_or_create(
            provider=provider,
            event_id=notification.event_id,
            defaults={
                "event_type": notification.event_type,
                "occurred_at": notification.occurred_at,
                "subject_id": notification.subject_id,
                "payload": notification.payload,
            },
        )
    return event, created


def webhook_event_process(*, event: WebhookEvent) -> WebhookEvent:
    """
    Apply a stored event once. An event older than one already applied to the same subject
    (Paddle sends them out of order) is kept as `outdated` and changes nothing; one whose
    customer has not arrived is `waiting` (the task retries it); one that cannot be applied
    without a person is `needs attention`, with nothing half-written.
    """
    with transaction.atomic():
        event = WebhookEvent.objects.select_for_update().get(pk=event.pk)
        if event.status in FINISHED:
            return event
        event.attempts += 1
        event.error = ""
        newer = (
            WebhookEvent.objects.filter(
                provider=event.provider,
                subject_id=event.subject_id,
                status=WebhookEvent.Status.PROCESSED,
                occurred_at__gt=event.occurred_at,
            )
            .exclude(pk=event.pk)
            .exists()
        )
        if event.subject_id and newer:
            event.status = WebhookEvent.Status.OUTDATED
        else:
            try:
                with transaction.atomic():
                    outcome = adapter_for(event.provider).apply(event)
            except WaitForData as waiting:
                event.status, event.error = WebhookEvent.Status.WAITING, str(waiting)
            except (NeedsAttention, ValidationError) as problem:
                message = "; ".join(problem.messages) if isinstance(problem, ValidationError) else str(problem)
                event.status, event.error = WebhookEvent.Status.NEEDS_ATTENTION, mask_emails(message)
            else:
                event.status = WebhookEvent.Status.PROCESSED if outcome.applied else WebhookEvent.Status.IGNORED
                event.error = mask_emails(outcome.message)
                if outcome.customer is not None:
                    event.customer = outcome.customer
        event.processed_at = timezone.now()
        event.save(update_fields=["status", "attempts", "error", "processed_at", "customer"])
    if event.status == WebhookEvent.Status.NEEDS_ATTENTION:
        logger.warning("Reseller notification %s (%s) needs attention: %s", event.pk, event.event_type, event.error)
    return event


def webhook_event_give_up(*, event: WebhookEvent) -> WebhookEvent:
    """A waiting event whose data never came: staff decide (and can process it again)."""
    with transaction.atomic():
        event = WebhookEvent.objects.select_for_update().get(pk=event.pk)
        if event.status == WebhookEvent.Status.WAITING:
            event.status = WebhookEvent.Status.NEEDS_ATTENTION
            event.error = f"Gave up waiting after {event.attempts} attempts: {event.error}"
            event.save(update_fields=["status", "error"])
    return event


def webhook_events_reset(*, events: list[WebhookEvent]) -> int:
    """Staff's "process again": unfinished events go back to received (finished ones stay)."""
    return (
        WebhookEvent.objects.filter(pk__in=[e.pk for e in events])
        .exclude(status__in=FINISHED)
        .update(status=WebhookEvent.Status.RECEIVED, attempts=0, error="")
    )
