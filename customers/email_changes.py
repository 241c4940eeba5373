"""
Services of a customer's change of address, kept apart from customers/services.py because
they form one life cycle of their own:

1. the customer asks (through a single-use link mailed to the address on file):
   `email_change_request` keeps the new address server-side, in a PendingEmailChange;
2. the new address gets a link with a random token (`email_change_confirmation_issue`) and
   confirms it (`email_change_confirm`): the address changes and every earlier link dies;
3. the old address is told, with a link (`email_change_undo_issue`) that for
   EMAIL_CHANGE_UNDO_PERIOD puts it back (`email_change_undo`) and again kills every link
   sent in between, including those to the address that took over.

Only the SHA-256 of each token is stored: a copy of the database opens no link.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from django.conf import settings
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from common.tokens import TokenExpired, TokenInvalid, TokenSuperseded, TokenUnknown, TokenUsed

from .models import Customer, PendingEmailChange, normalise_email
from .services import customer_email_change


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _new_token() -> str:
    # 256 random bits: nothing to guess, so a plain SHA-256 of it is enough to store.
    return secrets.token_urlsafe(32)


@transaction.atomic
def email_change_request(*, customer: Customer, new_email: str, link_nonce: str) -> PendingEmailChange:
    """
    Keep the customer's wish to move to `new_email` until that address confirms it. The link
    the customer asked with (`link_nonce`) is used up: a second request through it raises
    TokenUsed. The address is checked for form here and for being free at confirmation.
    """
    new_email = normalise_email(new_email)
    validate_email(new_email)
    now = timezone.now()
    try:
        with transaction.atomic():
            return PendingEmailChange.objects.create(
                customer=customer,
                old_email=customer.email,
                new_email=new_email,
                generation=customer.link_generation,
                request_nonce=link_nonce,
                created_at=now,
                expires_at=now + settings.SENSITIVE_LINK_MAX_AGE,
            )
    except IntegrityError as error:
        raise TokenUsed() from error


def email_change_confirmation_issue(*, change: PendingEmailChange) -> str:
    """
    A fresh confirmation token for the new address; only its hash is stored. Issued when the
    message is sent, so the token never waits in the task queue; a retried send replaces the
    token of the attempt that failed.
    """
    token = _new_token()
    PendingEmailChange.objects.filter(pk=change.pk).update(token_hash=token_digest(token))
    return token


def email_change_undo_issue(*, change: PendingEmailChange) -> str:
    """A fresh undo token for the old address, as email_change_confirmation_issue."""
    token = _new_token()
    PendingEmailChange.objects.filter(pk=change.pk).update(undo_token_hash=token_digest(token))
    return token


def email_change_by_token(token: str) -> PendingEmailChange:
    """The change a confirmation link names, still confirmable; raises a typed BadToken otherwise."""
    change = _change_named_by(token, "token_hash")
    _check_confirmable(change)
    return change


def _change_named_by(token: str, hash_field: str) -> PendingEmailChange:
    """The change whose `hash_field` holds the token's digest, with its customer; TokenInvalid if none."""
    found = PendingEmailChange.objects.select_related("customer").filter(**{hash_field: token_digest(token)}).first()
    if not token or found is None:
        raise TokenInvalid()
    return found


def _check_confirmable(change: PendingEmailChange) -> None:
    if change.customer.erased_at is not None:
        raise TokenUnknown()
    if change.used_at is not None:
        raise TokenUsed()
    if change.expires_at <= timezone.now():
        raise TokenExpired()
    if change.generation != change.customer.link_generation:
        raise TokenSuperseded()


def _locked_change(**token_hash: str) -> PendingEmailChange | None:
    """
    The change a token names, with its customer, both locked: the customer first, as every
    change of address locks it, then the change, so that a confirmation and an undo of the
    same customer queue behind each other instead of deadlocking.
    """
    found = PendingEmailChange.objects.filter(**token_hash).values_list("customer_id", flat=True).first()
    if found is None:
        return None
    customer = Customer.objects.select_for_update().get(pk=found)
    change = PendingEmailChange.objects.select_for_update().filter(customer=customer, **token_hash).first()
    if change is not None:
        change.customer = customer
    return change


@transaction.atomic
def email_change_confirm(*, token: str) -> PendingEmailChange:
    """
    The new address confirms: the customer moves to it (customer_email_change records the
    correction and raises the link generation) and the change can be undone from the old
    address until `undo_expires_at`. Raises EmailAddressTaken when another record has the
    address, a typed BadToken when the link no longer works.
    """
    change = _locked_change(token_hash=token_digest(token)) if token else None
    if change is None:
        raise TokenInvalid()
    _check_confirmable(change)
    customer_email_change(customer=change.customer, new_email=change.new_email, changed_by="customer")
    now = timezone.now()
    change.used_at = now
    change.undo_expires_at = now + settings.EMAIL_CHANGE_UNDO_PERIOD
    change.save(update_fields=["used_at", "undo_expires_at"])
    return change


def email_change_by_undo_token(token: str) -> PendingEmailChange:
    """The change an undo link names, still undoable; raises a typed BadToken otherwise."""
    change = _change_named_by(token, "undo_token_hash")
    _check_undoable(change)
    return change


def _check_undoable(change: PendingEmailChange) -> None:
    if change.customer.erased_at is not None:
        raise TokenUnknown()
    if change.used_at is None or change.undo_expires_at is None:
        raise TokenInvalid()
    if change.undone_at is not None:
        raise TokenUsed()
    if change.undo_expires_at <= timezone.now():
        raise TokenExpired()


@transaction.atomic
def email_change_undo(*, token: str) -> PendingEmailChange:
    """
    The old address takes the change back: the customer returns to `old_email`, this change
    and every later one are marked undone (their undo links stop working, so whoever took the
    address cannot take it again), and the link generation rises, so every link sent since
    (preference pages, confirmations, sensitive links) stops working.
    """
    change = _locked_change(undo_token_hash=token_digest(token)) if token else None
    if change is None:
        raise TokenInvalid()
    customer = change.customer
    _check_undoable(change)
    restored = customer_email_change(customer=customer, new_email=change.old_email, changed_by="customer")
    if restored is None:
        # Already back at the old address (a later change was undone first): the links sent
        # in between must stop working all the same.
        Customer.objects.filter(pk=customer.pk).update(link_generation=F("link_generation") + 1)
        customer.refresh_from_db(fields=["link_generation"])
    now = timezone.now()
    PendingEmailChange.objects.filter(customer=customer, used_at__gte=change.used_at, undone_at__isnull=True).update(
        undone_at=now
    )
    change.undone_at = now
    return change


# ---------------------------------------------------------------------------------------
# Personal data: the addresses asked for are the customer's data, exported and erased with it.


def email_changes_export(customer: Customer) -> list[dict[str, Any]]:
    return [
        {
            "old_email": change.old_email,
            "new_email": change.new_email,
            "asked_at": change.created_at.isoformat(),
            "confirmed_at": change.used_at.isoformat() if change.used_at else None,
            "undone_at": change.undone_at.isoformat() if change.undone_at else None,
        }
        for change in PendingEmailChange.objects.filter(customer=customer).order_by("created_at", "id")
    ]


def email_changes_erase(customer: Customer) -> int:
    """Erasure deletes the requests outright: the corrections (CustomerChange) keep the fact and time."""
    deleted, _ = PendingEmailChange.objects.filter(customer=customer).delete()
    return deleted
