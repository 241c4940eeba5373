"""Read-only questions about consent (services change it; these only look)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

from django.db.models import F, FilteredRelation, Q, QuerySet

from common.prepared import PreparedQuery
from customers.models import CONSENT_GRANTED, CONSENT_NEVER_ASKED, CONSENT_WITHDRAWN, Customer

from .models import Consent, ConsentEvent, Purpose

STATE_LABELS = {
    CONSENT_GRANTED: "Granted",
    CONSENT_WITHDRAWN: "Withdrawn",
    CONSENT_NEVER_ASKED: "Never asked",
}


@dataclass(frozen=True)
class PurposeState:
    """
    One purpose as it stands for one customer: granted, withdrawn or never asked, since when,
    and (when asked for) the event that decided it.
    """

    GRANTED: ClassVar[str] = CONSENT_GRANTED
    WITHDRAWN: ClassVar[str] = CONSENT_WITHDRAWN
    NEVER_ASKED: ClassVar[str] = CONSENT_NEVER_ASKED
    # Templates compare with {{ states.GRANTED }}: the class is passed as it is, not called.
    do_not_call_in_templates: ClassVar[bool] = True

    purpose: Purpose
    state: str
    since: datetime | None = None  # the time of the decision in force; None: never asked
    event: ConsentEvent | None = None  # only with consent_states(with_events=True)

    @property
    def granted(self) -> bool:
        return self.state == CONSENT_GRANTED

    @property
    def label(self) -> str:
        return STATE_LABELS[self.state]


def _purposes_with_consent(customer_id) -> QuerySet[Purpose]:
    return Purpose.objects.annotate(
        current=FilteredRelation("consents", condition=Q(consents__customer_id=customer_id)),
        current_granted=F("current__granted"),
        current_since=F("current__since"),
        current_event_id=F("current__event_id"),
    )


# Compiled once: every preference page view asks this, and compiling it cost more CPU than
# running it (config/prepared.py).
_PURPOSES_WITH_CONSENT = PreparedQuery(
    _purposes_with_consent, field=Consent._meta.get_field("customer"), samples=(1, 2)
)


def consent_states(*, customer: Customer, with_events: bool = False) -> list[PurposeState]:
    """
    Every purpose, in display order, with the customer's current state: one query whatever the
    number of purposes. with_events=True also loads each deciding event with its policy version
    and staff user (the proof staff and receipts show): one query more.
    """
    purposes = _PURPOSES_WITH_CONSENT.fetch(customer.pk)
    states = []
    for purpose in purposes:
        if purpose.current_since is None:  # a current consent always has its date: none is held
            states.append(PurposeState(purpose, CONSENT_NEVER_ASKED))
        else:
            state = CONSENT_GRANTED if purpose.current_granted else CONSENT_WITHDRAWN
            states.append(PurposeState(purpose, state, purpose.current_since))
    if not with_events:
        return states
    event_ids = [s.purpose.current_event_id for s in states if s.since is not None]
    events = ConsentEvent.objects.select_related("policy_version", "staff_user").in_bulk(event_ids) if event_ids else {}
    return [PurposeState(s.purpose, s.state, s.since, events.get(s.purpose.current_event_id)) for s in states]
