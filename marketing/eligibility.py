"""Whether an address may receive marketing mail of a purpose now: the rule sending applies."""

from __future__ import annotations

from enum import StrEnum

from consents.models import Consent, Purpose
from customers.models import Customer, email_hashes

from .models import Suppression


class NotMailable(StrEnum):
    UNKNOWN_CUSTOMER = "unknown_customer"
    ERASED = "erased"
    SUPPRESSED = "suppressed"
    NO_CONSENT = "no_consent"


def marketing_eligibility(*, email: str, purpose: Purpose) -> NotMailable | None:
    """None when a message of `purpose` may go to `email` now; else why not (consent, suppression, erasure)."""
    if Suppression.objects.filter(address_hash__in=email_hashes(email)).exists():
        return NotMailable.SUPPRESSED
    customer = Customer.objects.by_email(email).only("id", "erased_at").first()
    if customer is None:
        return NotMailable.UNKNOWN_CUSTOMER
    if customer.erased_at is not None:
        return NotMailable.ERASED
    if not Consent.objects.filter(customer=customer, purpose=purpose, granted=True).exists():
        return NotMailable.NO_CONSENT
    return None
