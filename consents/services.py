"""
Every change of consent goes through here: one transaction locks the customer, writes
the ledger event and updates the current state, so the two never disagree.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from common.client import client_ip
from customers.models import Customer, ThirdParty

from .models import (
    Consent,
    ConsentEvent,
    ConsentEventQuerySet,
    DataCategory,
    Disclosure,
    DisclosurePurpose,
    LegalBasis,
    Method,
    PolicyVersion,
    Purpose,
    Source,
)


@dataclass(frozen=True)
class RequestMeta:
    """What we note about the request a decision arrived with."""

    ip_address: str | None = None
    user_agent: str = ""

    @classmethod
    def from_request(cls, request) -> RequestMeta:
        return cls(
            ip_address=client_ip(request),
            user_agent=(request.META.get("HTTP_USER_AGENT") or "")[:500],
        )


NO_REQUEST = RequestMeta()


class CustomerErased(ValidationError):
    """The customer's data was erased: no decision can be recorded for them any more."""

    def __init__(self, erased_at: datetime):
        super().__init__(
            f"This customer's data was erased on {timezone.localtime(erased_at):%Y-%m-%d}: "
            "no consent can be recorded for them, and none is needed (an erased customer is never mailed).",
            code="customer_erased",
        )


# Where a decision comes from the customer themselves (an old link in an email): for an erased
# customer such a withdrawal is answered without a record. Anyone else is told of the erasure.
# A mail provider's report of a complaint or an unsubscribe is the customer's own "no" too.
_ANSWERED_WITHOUT_RECORD_WHEN_ERASED = {
    Source.ONE_CLICK,
    Source.UNSUBSCRIBE_LINK,
    Source.PREFERENCE_PAGE,
    Source.PROVIDER_COMPLAINT,
    Source.PROVIDER_UNSUBSCRIBE,
}


# Decisions arriving from browsers and other machines may carry a time a little ahead of ours.
DECISION_CLOCK_SKEW = timedelta(minutes=5)


@dataclass(frozen=True)
class ConsentOutcome:
    """
    What recording a decision did. `event` is None when nothing was recorded (the state already
    was the one asked for); `is_history` is True when the decision was made before the one in
    force, so it was kept in the ledger and changed nothing. `current` is the state after.
    """

    event: ConsentEvent | None
    current: Consent | None
    is_history: bool = False


def consent_record(
    *,
    customer: Customer,
    purpose: Purpose,
    granted: bool,
    source: Source | str,
    request_meta: RequestMeta = NO_REQUEST,
    staff_user: AbstractBaseUser | None = None,
    note: str = "",
    method: Method | str | None = None,
    occurred_at: datetime | None = None,
    reference: str = "",
    wording: str | None = None,
) -> ConsentOutcome:
    """
    Record a decision the customer made at `occurred_at` (now when not given).

    The current state is the latest decision by the time it was made, not by the time we
    heard of it: a decision made before the one in force is kept in the ledger as history and
    changes nothing (`is_history`). A decision made after the one in force, with the state it
    already has, records nothing. A decision dated in the future, before the customer's record
    existed, or before the first policy version took effect is refused (ValidationError keyed
    `occurred_at`). The event names the policy version in force when the decision was made.

    For an erased customer nothing is recorded: a withdrawal from one of their old links
    returns an empty outcome; anything else (a grant, staff, an import) raises CustomerErased.
    """
    if source == Source.STAFF:
        if staff_user is None:
            raise ValidationError("Consent recorded by staff must name the staff member.")
        if not note.strip():
            raise ValidationError({"note": "Say how and when the customer gave this decision (a note is required)."})
    with transaction.atomic():
        # Lock the customer row: it always exists, unlike the Consent row of a first decision,
        # so two concurrent changes for this customer take turns.
        locked = Customer.objects.select_for_update().only("id", "erased_at", "created_at").get(pk=customer.pk)
        if locked.erased_at is not None:
            if granted or staff_user is not None or source not in _ANSWERED_WITHOUT_RECORD_WHEN_ERASED:
                raise CustomerErased(locked.erased_at)
            # Nothing can be sent to an erased customer, and nothing new (IP address, browser)
            # is collected about them: an old unsubscribe link is answered without a record.
            return ConsentOutcome(event=None, current=None)
        now = timezone.now()
        decided_at = now
        if occurred_at is not None:
            # A decision made now is never refused (an unsubscribe must always work); a time
            # given with it is checked, and one a little ahead of our clock counts as now, so
            # that a decision made after it is not taken for an older one.
            _check_decision_time(decided_at=occurred_at, now=now, customer_created_at=locked.created_at)
            decided_at = min(occurred_at, now)
        current = Consent.objects.select_for_update().filter(customer_id=customer.pk, purpose=purpose).first()
        # Equal times: the decision we hear of last is taken as the later one.
        is_history = current is not None and decided_at < current.since
        if not is_history and current is not None and current.granted == granted:
            return ConsentOutcome(event=None, current=current)
        event = ConsentEvent(
            customer_id=customer.pk,
            purpose=purpose,
            granted=granted,
            occurred_at=decided_at,
            recorded_at=now,
            source=source,
            method=method or _default_method(source),
            policy_version=PolicyVersion.objects.current(at=decided_at),
            wording=purpose.wording if wording is None else wording,
            ip_address=request_meta.ip_address,
            user_agent=request_meta.user_agent,
            staff_user=staff_user,
            note=note.strip(),
            reference=reference,
        )
        event.full_clean(exclude=["customer", "purpose", "policy_version", "staff_user"])
        event.save()
        if is_history:
            return ConsentOutcome(event=event, current=current, is_history=True)
        if current is None:
            current = Consent.objects.create(
                customer_id=customer.pk, purpose=purpose, granted=granted, since=event.occurred_at, event=event
            )
        else:
            current.granted, current.since, current.event = granted, event.occurred_at, event
            current.save(update_fields=["granted", "since", "event"])
        return ConsentOutcome(event=event, current=current)


def _check_decision_time(*, decided_at: datetime, now: datetime, customer_created_at: datetime) -> None:
    if decided_at > now + DECISION_CLOCK_SKEW:
        _refuse_time(f"The decision is dated {_local(decided_at)}, in the future", code="decided_in_future")
    if decided_at < customer_created_at:
        _refuse_time(
            f"The decision is dated {_local(decided_at)}, before this customer's record was created "
            f"({_local(customer_created_at)})",
            code="decided_before_customer",
        )
    first_policy = PolicyVersion.objects.order_by("effective_at").only("version", "effective_at").first()
    if first_policy is not None and decided_at < first_policy.effective_at:
        _refuse_time(
            f"The decision is dated {_local(decided_at)}, before our first privacy policy "
            f"({first_policy.version}) took effect on {_local(first_policy.effective_at)}",
            code="decided_before_first_policy",
        )


def _refuse_time(reason: str, *, code: str) -> None:
    raise ValidationError({"occurred_at": ValidationError(f"{reason}: nothing was recorded.", code=code)})


def _local(moment: datetime) -> str:
    local = timezone.localtime(moment)
    return f"{local.day} {local:%B %Y %H:%M}"


def consent_set(
    *,
    customer: Customer,
    purpose: Purpose,
    granted: bool,
    source: Source | str,
    **kwargs: Any,
) -> ConsentEvent | None:
    """
    Record a decision (see consent_record). Returns the new event, or None when nothing was
    recorded: the current state already is `granted`, or the customer's data was erased.
    """
    return consent_record(customer=customer, purpose=purpose, granted=granted, source=source, **kwargs).event


def consent_grant(*, customer: Customer, purpose: Purpose, source: Source | str, **kwargs) -> ConsentEvent | None:
    return consent_set(customer=customer, purpose=purpose, granted=True, source=source, **kwargs)


def consent_withdraw(*, customer: Customer, purpose: Purpose, source: Source | str, **kwargs) -> ConsentEvent | None:
    return consent_set(customer=customer, purpose=purpose, granted=False, source=source, **kwargs)


def consent_withdraw_all_marketing(*, customer: Customer, source: Source | str, **kwargs) -> list[ConsentEvent]:
    """
    "No to all marketing": record a withdrawal for every marketing purpose not already
    withdrawn, including purposes the customer was never asked about (their explicit
    refusal is worth keeping, and it stops a later import from implying consent).
    """
    events = []
    with transaction.atomic():
        for purpose in Purpose.objects.filter(is_marketing=True):
            event = consent_withdraw(customer=customer, purpose=purpose, source=source, **kwargs)
            if event is not None:
                events.append(event)
    return events


def _default_method(source: str) -> str:
    return {
        Source.PREFERENCE_PAGE: Method.WEB,
        Source.SIGNUP_FORM: Method.WEB,
        Source.UNSUBSCRIBE_LINK: Method.EMAIL_LINK,
        Source.ONE_CLICK: Method.EMAIL_LINK,
        Source.PROVIDER_UNSUBSCRIBE: Method.EMAIL_LINK,
        Source.PROVIDER_COMPLAINT: Method.EMAIL,
        Source.IMPORT: Method.IMPORT,
    }.get(source, Method.WEB)


# ---------------------------------------------------------------------------------------
# The one sanctioned rewrite of the ledger

REDACTABLE_FIELDS = ("ip_address", "user_agent", "note")
_REDACTED_VALUES = {"ip_address": None, "user_agent": "", "note": ""}
_HAS_VALUE = {
    "ip_address": Q(ip_address__isnull=False),
    "user_agent": ~Q(user_agent=""),
    "note": ~Q(note=""),
}


def consent_events_redact(
    *,
    customer: Customer | None = None,
    queryset: ConsentEventQuerySet | None = None,
    fields: Iterable[str] = REDACTABLE_FIELDS,
) -> int:
    """
    Clear personal details from ledger events (erasure, log retention) while keeping the
    fact of each decision: purpose, granted or withdrawn, source, policy version, wording
    and time stay. Give either `customer` (all their events) or a `queryset` of events.
    Returns how many events were redacted (events with nothing left to clear are skipped).

    On PostgreSQL the ledger trigger refuses every UPDATE unless this transaction turns
    on `consentdesk.ledger_redaction`; it is turned off again before returning.
    """
    if (customer is None) == (queryset is None):
        raise ValueError("Give either a customer or a queryset of consent events.")
    fields = tuple(fields)
    unknown = [name for name in fields if name not in REDACTABLE_FIELDS]
    if unknown or not fields:
        raise ValueError(f"Only {', '.join(REDACTABLE_FIELDS)} can be redacted (got {', '.join(fields) or 'none'}).")
    events = ConsentEvent.objects.filter(customer_id=customer.pk) if customer is not None else queryset
    has_something = Q()
    for name in fields:
        has_something |= _HAS_VALUE[name]
    values = {name: _REDACTED_VALUES[name] for name in fields}
    # A savepoint of its own: should the UPDATE fail, rolling it back also undoes the setting
    # (PostgreSQL reverts settings made in an aborted subtransaction), and the real error shows.
    with transaction.atomic():
        _ledger_redaction(enabled=True)
        redacted = events.filter(has_something)._sanctioned_redact(**values, redacted_at=timezone.now())
        _ledger_redaction(enabled=False)
    return redacted


def _ledger_redaction(*, enabled: bool) -> None:
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        # is_local=true: the setting ends with the transaction, whatever happens.
        cursor.execute(
            "SELECT set_config('consentdesk.ledger_redaction', %s, true)",
            ["on" if enabled else "off"],
        )


# ---------------------------------------------------------------------------------------
# Disclosures to third parties


# The purpose a disclosure on another basis is filed under when the caller names none.
_DEFAULT_DISCLOSURE_PURPOSE = {
    LegalBasis.CONTRACT: "purchase",
    LegalBasis.LEGAL_OBLIGATION: "legal_obligation",
    LegalBasis.LEGITIMATE_INTERESTS: "other",
}


def disclosure_record(
    *,
    customer: Customer,
    third_party: ThirdParty,
    data_categories: Iterable[DataCategory | str],
    legal_basis: LegalBasis | str,
    purpose: str,
    disclosure_purpose: DisclosurePurpose | None = None,
    disclosed_at: datetime | None = None,
    reference: str = "",
    consent_event: ConsentEvent | None = None,
    recorded_by: AbstractBaseUser | None = None,
) -> Disclosure:
    """
    Record that some of a customer's data went to a third party, for `disclosure_purpose`
    (`purpose` says what exactly). A disclosure on the basis of consent must name the
    customer's consent event that allows it: a grant of the consent purpose that the
    disclosure purpose names, in force (the customer's current decision for its purpose,
    granted, and given no later than the disclosure). On another basis the disclosure
    purpose may be left out: it is then the usual one for that basis. There is no basis for
    selling data.
    """
    if disclosure_purpose is None and legal_basis in _DEFAULT_DISCLOSURE_PURPOSE:
        disclosure_purpose = DisclosurePurpose.objects.filter(code=_DEFAULT_DISCLOSURE_PURPOSE[legal_basis]).first()
    if disclosure_purpose is None and legal_basis in LegalBasis.values:
        raise ValidationError(
            {"disclosure_purpose": "Say what the disclosure is for: that decides which consent can allow it."}
        )
    with transaction.atomic():
        disclosure = Disclosure(
            customer_id=customer.pk,
            third_party=third_party,
            data_categories=sorted({str(category) for category in data_categories}),
            legal_basis=legal_basis,
            disclosure_purpose=disclosure_purpose,
            purpose=purpose.strip(),
            disclosed_at=disclosed_at or timezone.now(),
            reference=reference.strip(),
            consent_event=consent_event,
            recorded_by=recorded_by,
        )
        disclosure.full_clean(exclude=["customer", "third_party", "disclosure_purpose", "consent_event", "recorded_by"])
        disclosure_check_consent(
            customer=customer,
            legal_basis=legal_basis,
            disclosure_purpose=disclosure_purpose,
            consent_event=consent_event,
            disclosed_at=disclosure.disclosed_at,
            lock=True,
        )
        disclosure.save()
        return disclosure


def disclosure_check_consent(
    *,
    customer: Customer,
    legal_basis: LegalBasis | str,
    consent_event: ConsentEvent | None,
    disclosure_purpose: DisclosurePurpose | None = None,
    disclosed_at: datetime | None = None,
    lock: bool = False,
) -> None:
    """
    Raise ValidationError unless the consent event (if the basis needs one) is this customer's
    consent in force, to the consent purpose that `disclosure_purpose` needs.
    """
    if legal_basis != LegalBasis.CONSENT:
        if consent_event is not None:
            raise ValidationError({"consent_event": "Only a disclosure on the basis of consent names a consent event."})
        return
    if disclosure_purpose is None:
        raise ValidationError(
            {"disclosure_purpose": "Say what the disclosure is for: that decides which consent can allow it."}
        )
    needed = disclosure_purpose.consent_purpose
    if needed is None:
        raise ValidationError(
            {
                "disclosure_purpose": f"No consent allows a disclosure for {disclosure_purpose.name}: choose the "
                "basis it rests on (contract, legal obligation or legitimate interests), or name the consent it "
                "needs under Disclosure purposes first."
            }
        )
    if consent_event is None:
        raise ValidationError(
            {
                "consent_event": "A disclosure on the basis of consent must name the customer's consent that allows "
                f"it (for {disclosure_purpose.name}: consent to {needed.name})."
            }
        )
    if consent_event.customer_id != customer.pk:
        raise ValidationError({"consent_event": "That consent event belongs to another customer."})
    if consent_event.purpose_id != needed.pk:
        raise ValidationError(
            {
                "consent_event": f"Consent to {consent_event.purpose.name} does not allow a disclosure for "
                f"{disclosure_purpose.name}: only the customer's consent to {needed.name} does. Nothing was recorded."
            }
        )
    current = Consent.objects.filter(customer_id=customer.pk, purpose_id=consent_event.purpose_id)
    if lock:
        # A withdrawal committed between this check and the insert would otherwise slip through.
        current = current.select_for_update()
    state = current.first()
    if not consent_event.granted or state is None or state.event_id != consent_event.pk or not state.granted:
        raise ValidationError(
            {
                "consent_event": "That consent is not in force: the customer has not granted it, "
                "or has withdrawn it since. Nothing was recorded."
            }
        )
    # Staff type times to the minute: a disclosure in the same minute as the consent is not "before" it.
    if disclosed_at is not None and disclosed_at < consent_event.occurred_at.replace(second=0, microsecond=0):
        raise ValidationError({"disclosed_at": "The disclosure cannot come before the consent that allows it."})
