"""Reads about customers that several apps share."""

from __future__ import annotations

from .models import Customer, CustomerChange, normalise_email


def customer_addresses_ever_held(customer: Customer) -> list[str]:
    """The customer's address and every earlier or later one the correction history names."""
    addresses = {normalise_email(customer.email)}
    changes = CustomerChange.objects.filter(customer=customer, field="email").values_list("old_value", "new_value")
    for old, new in changes:
        addresses.update({normalise_email(old), normalise_email(new)})
    return sorted(address for address in addresses if "@" in address)
