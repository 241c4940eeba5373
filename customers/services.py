"""State changes for customer records. Views, admin, tasks and commands call these."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.utils import timezone

from common.dates import format_moment

from .forms import DETAIL_FIELDS, STAFF_FIELDS
from .models import Customer, CustomerChange, ProductRegistration, normalise_email
from .signals import customer_corrected, customer_updated


def _display(value: Any) -> str:
    return "" if value is None else str(value)


@transaction.atomic
def customer_update(
    *,
    customer: Customer,
    data: dict[str, Any],
    changed_by: str,
    staff_user: User | None = None,
) -> list[CustomerChange]:
    """
    Apply corrected details and record each changed field with its old and new value. Staff
    may also correct the internal notes; the address moves only through customer_email_change.
    """
    allowed = STAFF_FIELDS if changed_by == CustomerChange.ChangedBy.STAFF else DETAIL_FIELDS
    changes = _apply_details(
        customer=customer, data=data, changed_by=changed_by, staff_user=staff_user, allowed=allowed
    )
    if changes:
        customer.full_clean()
        customer.save(update_fields=[c.field for c in changes] + ["updated_at"])
        CustomerChange.objects.bulk_create(changes)
        customer_updated.send(
            sender=Customer, customer=customer, fields=[c.field for c in changes], changed_by=changed_by
        )
        # Internal notes are not data any third party received.
        corrected = [c.field for c in changes if c.field != "notes"]
        if corrected and changed_by in (CustomerChange.ChangedBy.CUSTOMER, CustomerChange.ChangedBy.STAFF):
            customer_corrected.send(sender=Customer, customer=customer, fields=corrected)
    return changes


def _apply_details(
    *,
    customer: Customer,
    data: dict[str, Any],
    changed_by: str,
    staff_user: User | None = None,
    allowed: list[str] = DETAIL_FIELDS,
) -> list[CustomerChange]:
    """Set the fields that differ on `customer` (not saved) and return the unsaved corrections."""
    changes = []
    for name, new_value in data.items():
        if name not in allowed:
            raise ValueError(f"{name} cannot be corrected through customer_update")
        old_value = getattr(customer, name)
        if _display(old_value) == _display(new_value):
            continue
        setattr(customer, name, new_value)
        changes.append(
            CustomerChange(
                customer=customer,
                field=name,
                old_value=_display(old_value),
                new_value=_display(new_value),
                changed_by=changed_by,
                staff_user=staff_user,
            )
        )
    return changes


def registration_refund_check(
    *,
    registration: ProductRegistration,
    refunded_at: datetime,
    override_by: User | None = None,
    override_reason: str = "",
) -> bool:
    """
    The money-back rule, and the only place it is written: a refund up to the deadline
    (MONEY_BACK_DAYS after the purchase) is the customer's right; a later one needs a staff
    member who overrides it with a reason. Returns whether the refund is such an override;
    raises ValidationError, naming the deadline, when it needs one it lacks. Forms call this
    to say so before anything is saved; registration_refund calls it again.
    """
    deadline = registration.money_back_deadline
    if deadline is None or refunded_at <= deadline:
        return False
    if override_by is None or not override_reason.strip():
        raise ValidationError(
            {
                "refund_override_reason": (
                    f"The money-back deadline has passed (it was {format_moment(deadline)}): give the reason "
                    "for refunding anyway (the staff member's name is recorded with it)."
                )
            }
        )
    return True


@transaction.atomic
def registration_refund(
    *,
    registration: ProductRegistration,
    refunded_at: datetime,
    override_by: User | None = None,
    override_reason: str = "",
    by_reseller: bool = False,
    note: str = "",
) -> ProductRegistration:
    """
    Mark a registration refunded. After the money-back deadline only a staff override, with a
    reason, allows it; within the window no override is recorded, whoever records the refund.
    A refund the reseller itself made (`by_reseller`) is a fact, recorded whatever the date,
    with a note: the money-back rule is ours to keep, not the reseller's.
    """
    late = (
        False
        if by_reseller
        else registration_refund_check(
            registration=registration,
            refunded_at=refunded_at,
            override_by=override_by,
            override_reason=override_reason,
        )
    )
    registration.refunded_at = refunded_at
    registration.refund_override_by = override_by if late else None
    registration.refund_override_reason = override_reason.strip() if late else ""
    registration.refunded_by_reseller = by_reseller
    registration.refund_note = note.strip()
    registration.full_clean()
    registration.save(
        update_fields=[
            "refunded_at",
            "refund_override_by",
            "refund_override_reason",
            "refunded_by_reseller",
            "refund_note",
        ]
    )
    return registration


@transaction.atomic
def customer_create(
    *, data: dict[str, Any], paddle_customer_id: str | None = None, created_at: datetime | None = None
) -> Customer:
    """
    A new customer from a reseller's or a form's details (validated like any other).
    `created_at`: when the record came to exist at its source (a reseller's account, a form
    being confirmed), so the decisions made then are not dated before it.
    """
    customer = Customer(paddle_customer_id=paddle_customer_id, created_at=created_at or timezone.now())
    for name, value in data.items():
        if name != "email" and name not in DETAIL_FIELDS:
            raise ValueError(f"{name} cannot be set through customer_create")
        setattr(customer, name, value)
    customer.full_clean()
    customer.save()
    return customer


@transaction.atomic
def customer_email_set_by_reseller(*, customer: Customer, email: str) -> CustomerChange:
    """
    The reseller reports a new address for its customer (the customer changed it in the
    reseller's account, which confirmed it). Recorded as a correction, like any other; every
    preference link sent to the old address stops working.
    """
    old = customer.email
    customer.email = normalise_email(email)
    customer.link_generation += 1
    customer.full_clean()
    customer.save(update_fields=["email", "link_generation", "updated_at"])
    change = CustomerChange.objects.create(
        customer=customer,
        field="email",
        old_value=old,
        new_value=customer.email,
        changed_by=CustomerChange.ChangedBy.RESELLER,
    )
    customer_updated.send(sender=Customer, customer=customer, fields=["email"], changed_by=change.changed_by)
    return change


# ---------------------------------------------------------------------------------------
# Email address change


class EmailAddressTaken(ValidationError):
    """Another customer record already has the address."""


@transaction.atomic
def customer_email_change(
    *,
    customer: Customer,
    new_email: str,
    changed_by: str,
    staff_user: User | None = None,
) -> CustomerChange | None:
    """
    Move the customer to a new address (the caller has had it confirmed) and record the
    correction. Returns None when the address is already theirs. Refuses an address another
    customer record has: two records cannot share one address.
    """
    new_email = normalise_email(new_email)
    validate_email(new_email)
    locked = Customer.objects.select_for_update().get(pk=customer.pk)
    if locked.erased_at is not None:
        raise ValidationError("This customer's data was erased: the address cannot be changed.")
    if locked.email == new_email:
        return None
    if Customer.objects.by_email(new_email).exclude(pk=customer.pk).exists():
        raise EmailAddressTaken(
            f"{new_email} already belongs to another customer record, so it cannot be moved to this one. "
            "Use the preference link sent to that address, or contact us to merge the two records."
        )
    old_email = locked.email
    locked.email = new_email
    # Every preference link mailed to the old address stops working.
    locked.link_generation += 1
    try:
        with transaction.atomic():
            locked.save(update_fields=["email", "link_generation", "updated_at"])
    except IntegrityError as error:
        # Another request took the address between our check and our write.
        raise EmailAddressTaken(f"{new_email} already belongs to another customer record.") from error
    customer.email = new_email
    customer.link_generation = locked.link_generation
    change = CustomerChange.objects.create(
        customer=locked,
        field="email",
        old_value=old_email,
        new_value=new_email,
        changed_by=changed_by,
        staff_user=staff_user,
    )
    customer_updated.send(sender=Customer, customer=locked, fields=["email"], changed_by=changed_by)
    if changed_by in (CustomerChange.ChangedBy.CUSTOMER, CustomerChange.ChangedBy.STAFF):
        customer_corrected.send(sender=Customer, customer=locked, fields=["email"])
    return change
