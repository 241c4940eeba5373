"""
Celery entry points for outgoing webhooks: they take ids, call the service in api.webhooks,
and enqueue what it returns. No service imports this module.
"""

from __future__ import annotations

from celery import shared_task
from django.db import InterfaceError, OperationalError, transaction

from . import webhooks


def webhook_messages_enqueue(message_pks: list[int]) -> None:
    """Deliver these messages once the current transaction has committed (at once outside one)."""
    if not message_pks:
        return

    def enqueue() -> None:
        for pk in message_pks:
            webhook_deliver.delay(pk)

    transaction.on_commit(enqueue)


@shared_task(
    name="api.tasks.webhook_deliver",
    ignore_result=True,
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=5,
    max_retries=5,
)
def webhook_deliver(message_pk: int) -> bool:
    """One attempt at a message; after a failure the next one is scheduled with its backoff."""
    result = webhooks.webhook_message_deliver(message_pk=message_pk)
    if result.retry_in is not None:
        webhook_deliver.apply_async((message_pk,), countdown=result.retry_in)
    return result.succeeded


@shared_task(name="api.tasks.webhooks_deliver_due", ignore_result=True)
def webhooks_deliver_due() -> int:
    """Beat, every minute: enqueue messages whose attempt is due (a lost task, a re-enabled endpoint)."""
    due = webhooks.webhook_messages_due()
    for pk in due:
        webhook_deliver.delay(pk)
    return len(due)
