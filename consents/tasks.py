"""Celery entry points of the preference centre: they re-read what they need and call a service."""

from celery import shared_task

from customers.models import Customer, PendingEmailChange

from . import preferences
from .tokens import SensitiveAction


@shared_task(autoretry_for=(OSError,), retry_backoff=30, retry_backoff_max=600, max_retries=5)
def send_preference_link(email: str) -> None:
    # Takes the address rather than a customer id: the view enqueues this for every request,
    # known address or not, so its answer and its timing say nothing about who is a customer.
    preferences.preference_link_send(email=email)


@shared_task(autoretry_for=(OSError,), retry_backoff=30, retry_backoff_max=600, max_retries=5)
def send_sensitive_link(customer_public_id: str, action: str) -> None:
    customer = Customer.objects.not_erased().filter(public_id=customer_public_id).first()
    if customer is None or action not in SensitiveAction.values:
        return
    preferences.sensitive_link_send(customer=customer, action=SensitiveAction(action))


# The two messages of a change of address take the change's id, not a token: each token is
# made when its message is sent, so no link waits in the queue.


@shared_task(autoretry_for=(OSError,), retry_backoff=30, retry_backoff_max=600, max_retries=5)
def send_email_change_confirmation(change_id: int) -> None:
    change = PendingEmailChange.objects.select_related("customer").filter(pk=change_id, used_at__isnull=True).first()
    if change is None or change.customer.is_erased:
        return
    preferences.email_change_confirmation_send(change=change)


@shared_task(autoretry_for=(OSError,), retry_backoff=30, retry_backoff_max=600, max_retries=5)
def send_email_change_notice(change_id: int) -> None:
    change = PendingEmailChange.objects.select_related("customer").filter(pk=change_id, undone_at__isnull=True).first()
    if change is None or change.customer.is_erased:
        return
    preferences.email_change_notice_send(change=change)
