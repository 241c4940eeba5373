"""
Signed links of the preference centre, built on common.tokens. Two kinds:

- the preference link (in every marketing email and sent on request): it opens the page to
  see and change consent and to correct ordinary details, for PREFERENCE_LINK_MAX_AGE;
- the sensitive link, mailed to the address on file when the customer asks for it on the
  page: it allows one named action (download the data, change the address, ask for erasure)
  for SENSITIVE_LINK_MAX_AGE, and carries a nonce so that an action that changes something
  can use it once.

Both carry the customer's link generation: a change of address makes every earlier one stop
working. A tampered, expired, superseded or wrong-kind token raises a typed BadToken.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from common.tokens import BadToken, SignedLink, TokenInvalid, TokenUnknown, sign, unsign
from customers.models import Customer

__all__ = ["BadToken", "SensitiveAction", "SensitiveLink"]

PREFERENCE_SALT = "consents.preference-link"
SENSITIVE_SALT = "consents.sensitive-link"


class SensitiveAction(models.TextChoices):
    # The label completes "We sent you a link to ...".
    EXPORT = "export", _("download your data")
    EMAIL = "email", _("change your email address")
    ERASE = "erase", _("delete your data")


@dataclass(frozen=True)
class SensitiveLink:
    customer: Customer
    action: SensitiveAction
    nonce: str


def make_preference_token(customer: Customer) -> str:
    return sign(salt=PREFERENCE_SALT, public_id=customer.public_id, generation=customer.link_generation)


def preference_url(customer: Customer) -> str:
    return settings.SITE_URL + reverse("consents:preferences", args=[make_preference_token(customer)])


# Reads a customer who is not erased by public ID, or None.
CustomerLookup = Callable[[uuid.UUID], "Customer | None"]


def customer_from_preference_token(token: str, *, lookup: CustomerLookup | None = None) -> Customer:
    """
    The customer a preference link names. `lookup` reads a customer who is not erased by
    public ID, or None (default: a plain query; a page may read more with the customer).
    """
    link = unsign(token, salt=PREFERENCE_SALT, max_age=settings.PREFERENCE_LINK_MAX_AGE)
    return _customer(link, lookup)


def make_sensitive_token(customer: Customer, action: SensitiveAction) -> str:
    return sign(
        salt=SENSITIVE_SALT,
        public_id=customer.public_id,
        generation=customer.link_generation,
        a=str(action),
        n=secrets.token_hex(8),
    )


def sensitive_url(customer: Customer, action: SensitiveAction) -> str:
    return settings.SITE_URL + reverse("consents:sensitive", args=[make_sensitive_token(customer, action)])


def read_sensitive_token(token: str) -> SensitiveLink:
    link = unsign(token, salt=SENSITIVE_SALT, max_age=settings.SENSITIVE_LINK_MAX_AGE)
    action, nonce = link.fields.get("a"), link.fields.get("n")
    if action not in SensitiveAction.values or not isinstance(nonce, str) or not nonce:
        raise TokenInvalid()
    return SensitiveLink(customer=_customer(link), action=SensitiveAction(action), nonce=nonce)


def _live_customer(public_id: uuid.UUID) -> Customer | None:
    return Customer.objects.filter(public_id=public_id, erased_at__isnull=True).first()


def _customer(link: SignedLink, lookup: CustomerLookup | None = None) -> Customer:
    customer = (lookup or _live_customer)(link.public_id)
    if customer is None:
        raise TokenUnknown()
    link.check_generation(customer.link_generation)
    return customer
