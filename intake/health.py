"""Reseller notifications not yet processed, for the dashboard's health panel (one query)."""

from __future__ import annotations

from django.db.models import Count
from django.urls import reverse

from common.health import HealthItem

from .models import WebhookEvent

UNFINISHED = [WebhookEvent.Status.RECEIVED, WebhookEvent.Status.WAITING, WebhookEvent.Status.NEEDS_ATTENTION]


def unfinished_notifications(user) -> list[HealthItem]:
    if not user.has_perm("intake.view_webhookevent"):
        return []
    counts: dict[str, int] = dict.fromkeys(UNFINISHED, 0)
    # Served by the partial index webhook_event_unfinished.
    for row in WebhookEvent.objects.filter(status__in=UNFINISHED).values("status").annotate(n=Count("id")).order_by():
        counts[row["status"]] = row["n"]
    url = reverse("admin:intake_webhookevent_changelist")
    return [
        HealthItem(
            section="Reseller notifications",
            label=WebhookEvent.Status(status).label,
            count=count,
            url=f"{url}?status__exact={status}",
            bad=bool(count) and status == WebhookEvent.Status.NEEDS_ATTENTION,
        )
        for status, count in counts.items()
    ]
