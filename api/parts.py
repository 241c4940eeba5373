"""
The API's part of a customer's data (privacy.registry): the answers kept for idempotent
retries hold what the API returned about a customer; they are exported, erased with the
customer, and deleted once no retry can come (API_IDEMPOTENCY_DAYS). The outgoing webhook
messages about the customer, queued or sent, are exported with the personal data their
payloads carry (for endpoints that may receive it), which the erasure removes.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Q, TextField
from django.db.models.functions import Cast
from django.utils import timezone

from customers.models import Customer
from customers.selectors import customer_addresses_ever_held
from privacy.registry import PersonalDataPart

from . import webhooks
from .models import IdempotencyRecord, WebhookMessage


def _about(customer: Customer):
    """Kept answers that name the customer (by public id or by an address they had)."""
    addresses = {customer.email, *customer.changes.filter(field="email").values_list("old_value", flat=True)}
    condition = Q(response_text__contains=str(customer.public_id))
    for address in filter(None, addresses):
        condition |= Q(response_text__icontains=address)
    return IdempotencyRecord.objects.annotate(response_text=Cast("response", TextField())).filter(condition)


class ApiPart(PersonalDataPart):
    name = "api"
    personal_fields = {"api_answers_kept": ("response",), "webhook_messages": ("personal_data",)}

    def export(self, customer: Customer) -> dict[str, Any]:
        messages = webhooks.messages_about(customer, customer_addresses_ever_held(customer))
        return {
            "api_answers_kept": [
                {"method": r.method, "path": r.path, "at": r.created_at.isoformat(), "response": r.response}
                for r in _about(customer).order_by("created_at", "id")
            ],
            "webhook_messages": [
                {
                    "event": m.event_type,
                    "endpoint": m.endpoint.name,
                    "webhook_id": m.message_id,
                    "at": m.created_at.isoformat(),
                    "status": m.status,
                    "personal_data": webhooks.personal_part(m.payload),
                }
                for m in messages.select_related("endpoint").order_by("created_at", "id")
            ],
        }

    def erase(self, customer: Customer) -> dict[str, int]:
        deleted, _ = IdempotencyRecord.objects.filter(
            pk__in=list(_about(customer).values_list("pk", flat=True))
        ).delete()
        redacted = webhooks.webhook_messages_redact(customer=customer, addresses=customer_addresses_ever_held(customer))
        return {"api_answers_deleted": deleted, **redacted}

    def retention(self, cutoff: datetime) -> int:
        too_old = timezone.now() - timedelta(days=settings.API_IDEMPOTENCY_DAYS)
        deleted, _ = IdempotencyRecord.objects.filter(created_at__lt=too_old).delete()
        # Webhook messages are a delivery log: finished ones go with the other log data.
        finished = [WebhookMessage.Status.DELIVERED, WebhookMessage.Status.FAILED]
        _, by_model = WebhookMessage.objects.filter(status__in=finished, created_at__lt=cutoff).delete()
        return deleted + by_model.get(WebhookMessage._meta.label, 0)
