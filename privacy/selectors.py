"""Reads about a customer's personal data that several places share."""

from __future__ import annotations

from typing import Any

from customers.models import Customer, email_hashes

from . import registry
from .models import CustomerErasure, ErasedAddress


def customer_export(*, customer: Customer) -> dict[str, Any]:
    """Everything held about one customer, each registered part adding its sections."""
    document: dict[str, Any] = {}
    for part in registry.parts():
        document.update(part.export(customer))
    return document


def customer_recipient_ids(customer: Customer) -> set[int]:
    """The third parties that received the customer's data (GDPR Art. 19), from every part."""
    ids: set[int] = set()
    for part in registry.parts():
        ids.update(part.recipients(customer))
    return ids


def customer_address_was_erased(email: str, *, erased_hashes: set[str] | None = None) -> bool:
    """True when a customer with this address was erased (only the address's hash is kept)."""
    digests = email_hashes(email)  # the keyed hash, or the plain SHA-256 of older erasures
    if erased_hashes is not None:
        return any(digest in erased_hashes for digest in digests)
    return (
        CustomerErasure.objects.filter(address_hash__in=digests).exists()
        or ErasedAddress.objects.filter(address_hash__in=digests).exists()
    )


def erased_address_hashes() -> set[str]:
    """Every erased address's hash, for a file-sized check (erasures are few)."""
    return set(CustomerErasure.objects.values_list("address_hash", flat=True)) | set(
        ErasedAddress.objects.values_list("address_hash", flat=True)
    )


def refuse_erased_addresses(addresses: list[str]) -> dict[str, str]:
    """An import's check: an erased customer's address, current or former, is never given a record again."""
    erased = erased_address_hashes()
    if not erased:
        return {}  # nobody was erased: no address to hash (a million-row import hashed each)
    return {
        address: (
            "a customer with this address asked for their data to be erased, and it was: "
            "the address is not given a new customer record (only its hash is kept, to recognise it)"
        )
        for address in addresses
        if customer_address_was_erased(address, erased_hashes=erased)
    }
