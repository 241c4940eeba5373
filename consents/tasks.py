"""Celery entry points of the preference centre: they re-read what they need and call a service."""

import logging
import smtplib
from collections.abc import Callable

from celery import shared_task

from customers.models import Customer, PendingEmailChange

from . import preferences
from .tokens import SensitiveAction

logger = logging.getLogger(__name__)


def _permanent_smtp_code(error: OSError) -> int | None:
    """The 5xx reply code when the mail server refused for good (retrying would only repeat it), else None."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _text in error.recipients.values()]
        return codes[0] if codes and all(500 <= code < 600 for code in codes) else None
    if isinstance(error, smtplib.SMTPResponseException) and 500 <= error.smtp_code < 600:
        return error.smtp_code
    return None


def _send_once_if_refused(send: Callable[[], object], what: str) -> None:
    """
    Send; a permanent refusal (5xx) is final and logged, without the server's text (it names
    the address). Anything else that fails (4xx, a connection lost) is raised, and retried.
    """
    try:
        send()
    except OSError as error:
        code = _permanent_smtp_code(error)
        if code is None:
            raise
        logger.warning("The mail server refused the %s for good (%s): not retried", what, code)


@shared_task(autoretry_for=(OSError,), retry_backoff=30, retry_backoff_max=600, max_retries=5)
def send_preference_link(email: str) -> None:
    # Takes the address rather than a customer id: the view enqueues this for every request,
    # known address or not, so its answer and its timing say nothing about who is a customer.
    _send_once_if_refused(lambda: preferences.preference_link_send(email=email), "preference link email")


@shared_task(autoretry_for=(OSError,), retry_backoff=30, retry_backoff_max=600, max_retries=5)
def send_sensitive_link(customer_public_id: str, action: str) -> None:
    customer = Customer.objects.not_erased().filter(public_id=customer_public_id).first()
    if customer is None or action not in SensitiveAction.values:
        return
    _send_once_if_refused(
        lambda: preferences.sensitive_link_send(customer=customer, action=SensitiveAction(action)),
        "link for a sensitive action",
    )


# The two messages of a change of address take the change's id, not a token: each token is
# made when its message is sent, so no link waits in the queue.


@shared_task(autoretry_for=(OSError,), retry_backoff=30, retry_backoff_max=600, max_retries=5)
def send_email_change_confirmation(change_id: int) -> None:
    change = PendingEmailChange.objects.select_related("customer").filter(pk=change_id, used_at__isnull=True).first()
    if change is None or change.customer.is_erased:
        return
    _send_once_if_refused(
        lambda: preferences.email_change_confirmation_send(change=change), "address confirmation email"
    )


@shared_task(autoretry_for=(OSError,), retry_backoff=30, retry_backoff_max=600, max_retries=5)
def send_email_change_notice(change_id: int) -> None:
    change = PendingEmailChange.objects.select_related("customer").filter(pk=change_id, undone_at__isnull=True).first()
    if change is None or change.customer.is_erased:
        return
    _send_once_if_refused(lambda: preferences.email_change_notice_send(change=change), "address change notice")
