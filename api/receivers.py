"""
The lower apps announce by signal what outgoing webhooks report (they never import api):
each receiver turns an announcement into messages in the announcing transaction, and has them
enqueued once it commits.
"""

from __future__ import annotations

from django.dispatch import receiver

from consents.signals import consent_changed
from customers.signals import customer_updated
from marketing.signals import suppression_added
from privacy.signals import customer_erased

from . import webhooks
from .models import WebhookEventType
from .tasks import webhook_messages_enqueue


@receiver(consent_changed, dispatch_uid="api.webhooks.consent_changed")
def on_consent_changed(sender, *, event, **kwargs) -> None:
    data, personal = webhooks.consent_changed_data(event)
    webhook_messages_enqueue(
        webhooks.webhook_messages_queue(
            event_type=WebhookEventType.CONSENT_CHANGED, data=data, personal=personal, customer=event.customer
        )
    )


@receiver(customer_updated, dispatch_uid="api.webhooks.customer_updated")
def on_customer_updated(sender, *, customer, fields, changed_by, **kwargs) -> None:
    found = webhooks.customer_updated_data(customer, fields, changed_by)
    if found is None:
        return
    data, personal = found
    webhook_messages_enqueue(
        webhooks.webhook_messages_queue(
            event_type=WebhookEventType.CUSTOMER_UPDATED, data=data, personal=personal, customer=customer
        )
    )


@receiver(customer_erased, dispatch_uid="api.webhooks.customer_erased")
def on_customer_erased(sender, *, customer, erasure, **kwargs) -> None:
    webhook_messages_enqueue(
        webhooks.webhook_messages_queue(
            event_type=WebhookEventType.CUSTOMER_ERASED,
            data=webhooks.customer_erased_data(customer, erasure.erased_at),
            customer=customer,
        )
    )


@receiver(suppression_added, dispatch_uid="api.webhooks.suppression_added")
def on_suppression_added(sender, *, suppression, email, **kwargs) -> None:
    if suppression.reason == "erasure":
        # The erasure suppresses every address the customer had: customer.erased reports it,
        # and a message naming those addresses would outlive the erasure that is under way.
        return
    data, personal, customer = webhooks.suppression_added_data(suppression, email)
    webhook_messages_enqueue(
        webhooks.webhook_messages_queue(
            event_type=WebhookEventType.SUPPRESSION_ADDED, data=data, personal=personal, customer=customer
        )
    )
