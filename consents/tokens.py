"""
Signed links to a customer's preference page. The token names the customer's public
UUID (never a row id), is signed with its own salt and expires after
PREFERENCE_LINK_MAX_AGE.
"""

import uuid
from collections.abc import Callable

from django.conf import settings
from django.core import signing
from django.urls import reverse

from customers.models import Customer

PREFERENCE_SALT = "consents.preference-link"
EMAIL_CHANGE_SALT = "consents.email-change"


class BadToken(Exception):
    """Tampered, expired, or naming no customer. `expired` tells the page which to say."""

    def __init__(self, message: str, *, expired: bool = False):
        super().__init__(message)
        self.expired = expired


def make_preference_token(customer: Customer) -> str:
    return signing.dumps({"c": str(customer.public_id)}, salt=PREFERENCE_SALT, compress=True)


def preference_url(customer: Customer) -> str:
    return settings.SITE_URL + reverse("consents:preferences", args=[make_preference_token(customer)])


def _loads(token: str, *, salt: str, max_age) -> dict:
    try:
        data = signing.loads(token, salt=salt, max_age=max_age)
    except signing.SignatureExpired as error:
        raise BadToken("This link has expired.", expired=True) from error
    except signing.BadSignature as error:
        raise BadToken("This link is not valid.") from error
    if not isinstance(data, dict):
        raise BadToken("This link is not valid.")
    return data


# Reads a customer who is not erased by public ID, or None.
CustomerLookup = Callable[[uuid.UUID], "Customer | None"]


def customer_from_preference_token(token: str, *, lookup: CustomerLookup | None = None) -> Customer:
    """
    The customer a preference link names. `lookup` reads a customer who is not erased by
    public ID, or None (default: a plain query; a page may read more with the customer).
    """
    data = _loads(token, salt=PREFERENCE_SALT, max_age=settings.PREFERENCE_LINK_MAX_AGE)
    return _customer(data.get("c"), lookup)


def make_email_change_token(customer: Customer, new_email: str) -> str:
    return signing.dumps({"c": str(customer.public_id), "e": new_email}, salt=EMAIL_CHANGE_SALT, compress=True)


def read_email_change_token(token: str) -> tuple[Customer, str]:
    data = _loads(token, salt=EMAIL_CHANGE_SALT, max_age=settings.PREFERENCE_LINK_MAX_AGE)
    return _customer(data.get("c")), str(data.get("e") or "")


def _live_customer(public_id: uuid.UUID) -> Customer | None:
    return Customer.objects.filter(public_id=public_id, erased_at__isnull=True).first()


def _customer(public_id, lookup: CustomerLookup | None = None) -> Customer:
    try:
        key = uuid.UUID(str(public_id))
    except ValueError as error:
        raise BadToken("This link is not valid.") from error
    customer = (lookup or _live_customer)(key)
    if customer is None:
        raise BadToken("This link does not lead to a customer record.")
    return customer
