"""Reseller notifications carry personal data: they are exported, erased and expire like the rest."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import Q, TextField
from django.db.models.functions import Cast
from django.utils import timezone

from customers.models import Customer

from .models import WebhookEvent


def _about(customer: Customer) -> Q:
    condition = Q(customer=customer)
    if customer.paddle_customer_id:
        condition |= Q(subject_id=customer.paddle_customer_id)
    return condition


def export_notifications(customer: Customer) -> list[dict[str, Any]]:
    return [
        {
            "provider": event.provider,
            "event_id": event.event_id,
            "event_type": event.event_type,
            "occurred_at": event.occurred_at.isoformat(),
            "received_at": event.received_at.isoformat(),
            "status": event.status,
            "payload": event.payload,
        }
        for event in WebhookEvent.objects.filter(_about(customer)).order_by("occurred_at", "id")
    ]


def erase_customer(customer: Customer) -> dict[str, int]:
    """Empty every stored payload about the customer, also those not yet tied to them (by address)."""
    condition = _about(customer)
    addresses = {customer.email, *customer.changes.filter(field="email").values_list("old_value", flat=True)}
    matching = WebhookEvent.objects.annotate(payload_text=Cast("payload", TextField()))
    for address in filter(None, addresses):
        condition |= Q(payload_text__icontains=f'"{address}"')
    erased = matching.filter(condition).update(payload={}, error="", redacted_at=timezone.now())
    return {"reseller_notifications": erased}


def clear_old_payloads(cutoff: datetime) -> int:
    """Finished notifications keep their payload only as long as log data is kept."""
    return (
        WebhookEvent.objects.filter(received_at__lt=cutoff, redacted_at__isnull=True)
        .exclude(status__in=["received", "waiting", "needs_attention"])
        .update(payload={}, redacted_at=timezone.now())
    )
