"""
The consent app's part of erasure, log retention and GDPR Art. 19, registered in
customers.registry from ConsentsConfig.ready().
"""

from __future__ import annotations

from datetime import datetime

from customers.models import Customer

from .models import ConsentEvent, Disclosure
from .services import consent_events_redact


def erase_customer(customer: Customer) -> dict[str, int]:
    """
    The ledger keeps every decision (purpose, granted or withdrawn, source, policy, wording,
    time) and loses the IP address, user agent and note. Nothing is withdrawn or deleted:
    an erased customer is never mailed because they are erased, and the ledger still shows
    what they decided and when.
    """
    return {"consent_events_redacted": consent_events_redact(customer=customer)}


def clear_old_request_details(cutoff: datetime) -> int:
    """Retention: IP addresses and user agents of decisions recorded before the cut-off (notes are evidence: kept)."""
    return consent_events_redact(
        queryset=ConsentEvent.objects.filter(recorded_at__lt=cutoff), fields=("ip_address", "user_agent")
    )


def recipients(customer: Customer) -> list[int]:
    """Third parties that received the customer's data, from the disclosures."""
    return list(Disclosure.objects.filter(customer_id=customer.pk).values_list("third_party_id", flat=True).distinct())
