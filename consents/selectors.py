"""Read-only questions about consent (services change it; these only look)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

from django.db.models import Case, F, FilteredRelation, OuterRef, Q, QuerySet, Subquery, Value, When
from django.db.models.expressions import BaseExpression
from django.db.models.functions import Coalesce

from common.prepared import PreparedQuery
from customers.models import Customer

from .models import Consent, ConsentEvent, Purpose

# The current state of one purpose for one customer. "Never asked" (no decision on record)
# is kept apart from "withdrawn" (the customer said no, or changed their mind).
CONSENT_GRANTED = "granted"
CONSENT_WITHDRAWN = "withdrawn"
CONSENT_NEVER_ASKED = "never_asked"
CONSENT_STATES = (CONSENT_GRANTED, CONSENT_WITHDRAWN, CONSENT_NEVER_ASKED)

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


def _purposes_with_consent(customer_id: int) -> QuerySet[Purpose]:
    return Purpose.objects.annotate(
        current=FilteredRelation("consents", condition=Q(consents__customer_id=customer_id)),
        current_granted=F("current__granted"),
        current_since=F("current__since"),
        current_event_id=F("current__event_id"),
    )


# Compiled once: every preference page view asks this, and compiling it cost more CPU than
# running it (common/prepared.py).
_PURPOSES_WITH_CONSENT = PreparedQuery(
    _purposes_with_consent, field=Consent._meta.get_field("customer"), samples=(1, 2)
)


def consent_states(
    *, customer: Customer, with_events: bool = False, purposes: list[Purpose] | None = None
) -> list[PurposeState]:
    """
    Every purpose, in display order, with the customer's current state: one query whatever the
    number of purposes. with_events=True also loads each deciding event with its policy version
    and staff user (the proof staff and receipts show): one query more. `purposes`: the rows of
    _PURPOSES_WITH_CONSENT for this customer, when a caller read them already (the preference
    page reads them with the customer, in one statement).
    """
    if purposes is None:
        purposes = _PURPOSES_WITH_CONSENT.fetch(customer.pk)
    states = []
    current = [_current_consent(purpose) for purpose in purposes]
    for purpose, (granted, since, _) in zip(purposes, current, strict=True):
        if since is None:  # a current consent always has its date: none is held
            states.append(PurposeState(purpose, CONSENT_NEVER_ASKED))
        else:
            state = CONSENT_GRANTED if granted else CONSENT_WITHDRAWN
            states.append(PurposeState(purpose, state, since))
    if not with_events:
        return states
    event_ids = [event_id for _, _, event_id in current if event_id is not None]
    events = ConsentEvent.objects.select_related("policy_version", "staff_user").in_bulk(event_ids) if event_ids else {}
    return [
        PurposeState(s.purpose, s.state, s.since, events.get(event_id) if event_id is not None else None)
        for s, (_, _, event_id) in zip(states, current, strict=True)
    ]


def _current_consent(purpose: Purpose) -> tuple[bool | None, datetime | None, int | None]:
    """What _purposes_with_consent annotated on the row: granted, since, event id (None: never asked)."""
    # Read from the instance's attributes: the type checker knows the model's fields, not annotations.
    annotated = vars(purpose)
    return annotated["current_granted"], annotated["current_since"], annotated["current_event_id"]


# ---------------------------------------------------------------------------------------
# Customers by their current consent. Each takes the customers to narrow (all by default),
# so a caller can combine it with the customers app's own filters (`.not_erased()`).


def customers_consenting_to(purpose_code: str, *, customers: QuerySet[Customer] | None = None) -> QuerySet[Customer]:
    """
    Customers whose current decision for the purpose is "granted" (served by consent_granted_by_purpose).
    Erasure is a separate question: pass `customers=Customer.objects.not_erased()` where it matters.
    """
    customers = Customer.objects.all() if customers is None else customers
    return customers.filter(consents__purpose__code=purpose_code, consents__granted=True)


def customers_with_consent_state(
    purpose_code: str, state: str, *, customers: QuerySet[Customer] | None = None
) -> QuerySet[Customer]:
    """Customers whose current state of one purpose is CONSENT_GRANTED, CONSENT_WITHDRAWN or CONSENT_NEVER_ASKED."""
    customers = Customer.objects.all() if customers is None else customers
    if state == CONSENT_GRANTED:
        return customers_consenting_to(purpose_code, customers=customers)
    if state == CONSENT_WITHDRAWN:
        return customers.filter(consents__purpose__code=purpose_code, consents__granted=False)
    if state == CONSENT_NEVER_ASKED:
        return customers.exclude(consents__purpose__code=purpose_code)
    raise ValueError(f"unknown consent state {state!r}")


def customers_with_consent_states(
    purpose_codes: list[str], *, customers: QuerySet[Customer] | None = None
) -> QuerySet[Customer]:
    """
    Annotate each customer, for every purpose code given, with `consent_<code>`
    ("granted", "withdrawn" or "never_asked": a customer nobody asked has no row, which
    is not the same as a withdrawal), `consent_<code>_since` and `consent_<code>_source`
    (None when never asked). Hyphens in codes become underscores in the names.
    This adds three subqueries per purpose: fine for a page of customers, not for millions.
    """
    customers = Customer.objects.all() if customers is None else customers
    annotations: dict[str, BaseExpression] = {}
    for code in purpose_codes:
        name = "consent_" + code.replace("-", "_")
        current = Consent.objects.filter(customer=OuterRef("pk"), purpose__code=code)
        state = current.annotate(
            state=Case(When(granted=True, then=Value(CONSENT_GRANTED)), default=Value(CONSENT_WITHDRAWN))
        ).values("state")[:1]
        annotations[name] = Coalesce(Subquery(state), Value(CONSENT_NEVER_ASKED))
        annotations[f"{name}_since"] = Subquery(current.values("since")[:1])
        annotations[f"{name}_source"] = Subquery(current.values("event__source")[:1])
    return customers.annotate(**annotations)
