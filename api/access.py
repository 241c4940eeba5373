from __future__ import annotations

from customers.models import Customer
from privacy.models import AccessLog
from privacy.services import access_log_record

from .models import ApiKey


def record_api_access(*, api_key: ApiKey, customer: Customer, changed: bool, detail: str) -> None:
    """Every API call that reads or changes a customer is in the access log, naming the key."""
    access_log_record(
        staff_user=None,
        api_key_label=api_key.label,
        action=AccessLog.Action.API_CHANGED if changed else AccessLog.Action.API_READ,
        customer=customer,
        detail=detail,
    )
