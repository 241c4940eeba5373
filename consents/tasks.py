"""Celery entry points of the preference centre: they re-read what they need and call a service."""

from celery import shared_task

from customers.models import Customer

from . import preferences


@shared_task(autoretry_for=(OSError,), retry_backoff=30, retry_backoff_max=600, max_retries=5)
def send_preference_link(email: str) -> None:
    # Takes the address rather than a customer id: the view enqueues this for every request,
    # known address or not, so its answer and its timing say nothing about who is a customer.
    preferences.preference_link_send(email=email)


@shared_task(autoretry_for=(OSError,), retry_backoff=30, retry_backoff_max=600, max_retries=5)
def send_email_change_confirmation(customer_public_id: str, new_email: str) -> None:
    customer = Customer.objects.not_erased().filter(public_id=customer_public_id).first()
    if customer is None:
        return
    preferences.email_change_confirmation_send(customer=customer, new_email=new_email)
