"""Read-only questions about consent (services change it; these only look)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from customers.models import CONSENT_GRANTED, CONSENT_NEVER_ASKED, CONSENT_WITHDRAWN, Customer

from .models import Consent, ConsentEvent, Purpose

STATE_LABELS = {
    CONSENT_GRANTED: "Granted",
    CONSENT_WITHDRAWN: "Withdrawn",
    CONSENT_NEVER_ASKED: "Never asked",
}


@dataclass(frozen=True)
class PurposeState:
    """One purpose as it stands for one customer, with the event that decided it (None: never asked)."""

    purpose: Purpose
    state: str
    event: ConsentEvent | None

    @property
    def label(self) -> str:
        return STATE_LABELS[self.state]

    @property
    def decided_at(self) -> datetime | None:
        return self.event.occurred_at if self.event else None


def consent_states(*, customer: Customer) -> list[PurposeState]:
    """Every purpose, in display order, with the customer's current state. Two queries."""
    current = {
        consent.purpose_id: consent
        for consent in Consent.objects.filter(customer_id=customer.pk).select_related(
            "event__policy_version", "event__staff_user"
        )
    }
    states = []
    for purpose in Purpose.objects.all():
        consent = current.get(purpose.pk)
        if consent is None:
            states.append(PurposeState(purpose, CONSENT_NEVER_ASKED, None))
        else:
            states.append(
                PurposeState(purpose, CONSENT_GRANTED if consent.granted else CONSENT_WITHDRAWN, consent.event)
            )
    return states
