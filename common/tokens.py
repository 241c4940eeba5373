"""
Signed tokens for the links we mail to customers (preference pages, sensitive actions,
unsubscribing). One place decides how a token is signed and read, so every kind of link
fails the same way: a tampered, expired, wrong-kind or superseded token raises one of the
typed exceptions below, and the page that catches it picks its answer by type, never by
the wording of a message.

A token names the customer by public UUID (never a row id), is signed with a salt of its
own kind (a token of one kind never opens a page of another) and may carry the customer's
link generation: a counter on the customer that, when raised, makes every earlier token of
a kind that checks it stop working.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.core import signing
from django.utils.translation import gettext_lazy as _


class BadToken(Exception):
    """Any token that does not open what it was presented for. The message is safe to show."""

    message = _("This link is not valid.")

    def __init__(self, message: str | None = None):
        super().__init__(message or self.message)


class TokenInvalid(BadToken):
    """Tampered, cut short, signed for another kind of link, or not naming a UUID."""


class TokenExpired(BadToken):
    message = _("This link has expired.")


class TokenUnknown(BadToken):
    """Signed by us, but the customer it names is not (or no longer) on file."""

    message = _("This link does not lead to a customer record.")


class TokenSuperseded(BadToken):
    """Signed for an earlier link generation: the customer's address changed since it was sent."""

    message = _("This link was replaced by a newer one.")


class TokenUsed(BadToken):
    """A single-use link that has already been used."""

    message = _("This link has already been used.")


@dataclass(frozen=True)
class SignedLink:
    """What a valid token says: whose it is, its generation (None if it carries none), the rest."""

    public_id: uuid.UUID
    generation: int | None
    fields: dict[str, Any] = field(default_factory=dict)

    def check_generation(self, current: int) -> None:
        """Raise TokenSuperseded unless the token was signed for the customer's current generation."""
        # Tokens signed before generations existed carry none: they belong to generation 0.
        if (self.generation or 0) != current:
            raise TokenSuperseded()


_CUSTOMER = "c"
_GENERATION = "g"


def sign(*, salt: str, public_id: uuid.UUID | str, generation: int | None = None, **fields: Any) -> str:
    """A compact signed token naming `public_id`, with `generation` and any short `fields`."""
    payload: dict[str, Any] = {_CUSTOMER: str(public_id), **fields}
    if generation is not None:
        payload[_GENERATION] = int(generation)
    return signing.dumps(payload, salt=salt, compress=True)


def unsign(token: str, *, salt: str, max_age: timedelta | None) -> SignedLink:
    """
    Read a token signed with `salt`. `max_age` None means it never expires. Raises
    TokenExpired or TokenInvalid; the caller checks the customer and the generation.
    """
    try:
        data = signing.loads(token, salt=salt, max_age=max_age)
    except signing.SignatureExpired as error:
        raise TokenExpired() from error
    except signing.BadSignature as error:
        raise TokenInvalid() from error
    if not isinstance(data, dict):
        raise TokenInvalid()
    try:
        public_id = uuid.UUID(str(data.pop(_CUSTOMER, "")))
    except ValueError as error:
        raise TokenInvalid() from error
    generation = data.pop(_GENERATION, None)
    if generation is not None and not isinstance(generation, int):
        raise TokenInvalid()
    return SignedLink(public_id=public_id, generation=generation, fields=data)
