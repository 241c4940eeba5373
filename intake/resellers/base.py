"""
The interface every reseller adapter implements. A reseller's notification goes through three
steps, each the adapter's own: verify (is it really from the reseller?), parse (to the common
shape below), apply (change customers, registrations and consent through the services).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from customers.models import Customer

    from ..models import WebhookEvent


class SignatureRefused(Exception):
    """The request is not a verified notification: nothing is stored. `status` is the HTTP answer."""

    def __init__(self, message: str, *, status: int = 401):
        super().__init__(message)
        self.status = status


class NotificationRefused(Exception):
    """Verified, but not a notification we can read (HTTP 400): nothing is stored."""


class WaitForData(Exception):
    """What the event is about has not arrived yet (a transaction before its customer): retried later."""


class NeedsAttention(Exception):
    """The event cannot be applied without a person (an unknown product, a conflicting address)."""


@dataclass(frozen=True)
class Notification:
    event_id: str
    event_type: str
    occurred_at: datetime
    subject_id: str
    payload: dict[str, Any]


@dataclass(frozen=True)
class Outcome:
    applied: bool
    customer: Customer | None = None
    message: str = ""


class ResellerAdapter(Protocol):
    name: str

    def is_configured(self) -> bool: ...

    def verify(self, *, headers: Mapping[str, str], body: bytes, now: float) -> None:
        """Raise SignatureRefused unless the body was signed by the reseller just now."""

    def parse(self, body: bytes) -> Notification:
        """The common shape of a verified body; NotificationRefused if it is not one."""

    def apply(self, event: WebhookEvent) -> Outcome:
        """Apply a stored event (inside a transaction). Raise WaitForData or NeedsAttention."""
