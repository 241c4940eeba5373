"""What privacy does when the customers app announces something (customers never imports privacy)."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from . import services
from .models import AccessLog, RecipientNotification


def notify_recipients_of_correction(sender: Any, *, customer: Any, fields: list[str], **kwargs: Any) -> None:
    services.recipients_to_notify(customer=customer, reason=RecipientNotification.Reason.CORRECTION, fields=fields)


def log_customer_viewed(sender: Any, *, customer: Any, staff_user: Any, **kwargs: Any) -> None:
    services.access_log_record(staff_user=staff_user, action=AccessLog.Action.VIEWED, customer=customer)


def log_customers_looked_up(sender: Any, *, customers: list[Any], staff_user: Any, field: str, **kwargs: Any) -> None:
    # One row per customer shown (a page holds at most 20): the access log is read per customer,
    # and the typed term is not kept (it is often an address).
    with transaction.atomic():
        for customer in customers:
            services.access_log_record(
                staff_user=staff_user,
                action=AccessLog.Action.LOOKED_UP,
                customer=customer,
                detail=f"look-up in {field}",
            )
