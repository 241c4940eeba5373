"""What privacy does when the customers app announces something (customers never imports privacy)."""

from __future__ import annotations

from typing import Any

from . import services
from .models import AccessLog, RecipientNotification


def notify_recipients_of_correction(sender: Any, *, customer: Any, fields: list[str], **kwargs: Any) -> None:
    services.recipients_to_notify(customer=customer, reason=RecipientNotification.Reason.CORRECTION, fields=fields)


def log_customer_viewed(sender: Any, *, customer: Any, staff_user: Any, **kwargs: Any) -> None:
    services.access_log_record(staff_user=staff_user, action=AccessLog.Action.VIEWED, customer=customer)
