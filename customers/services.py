"""State changes for customer records. Views, admin, tasks and commands call these."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from auditlog.context import disable_auditlog
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from common.dates import format_moment

from . import registry
from .forms import DETAIL_FIELDS, STAFF_FIELDS
from .models import (
    ERASED_MARKER,
    AccessLog,
    Customer,
    CustomerChange,
    CustomerErasure,
    PrivacyRequest,
    ProductRegistration,
    RecipientNotification,
    RetentionRun,
    add_months,
    email_hash,
    normalise_email,
)


def _display(value: Any) -> str:
    return "" if value is None else str(value)


@transaction.atomic
def customer_update(
    *,
    customer: Customer,
    data: dict[str, Any],
    changed_by: str,
    staff_user: AbstractBaseUser | None = None,
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
        # Internal notes are not data any third party received.
        corrected = [c.field for c in changes if c.field != "notes"]
        if corrected and changed_by in (CustomerChange.ChangedBy.CUSTOMER, CustomerChange.ChangedBy.STAFF):
            recipients_to_notify(customer=customer, reason=RecipientNotification.Reason.CORRECTION, fields=corrected)
    return changes


def _apply_details(
    *,
    customer: Customer,
    data: dict[str, Any],
    changed_by: str,
    staff_user: AbstractBaseUser | None = None,
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
    override_by: AbstractBaseUser | None = None,
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
    override_by: AbstractBaseUser | None = None,
    override_reason: str = "",
) -> ProductRegistration:
    """
    Mark a registration refunded. After the money-back deadline only a staff override, with a
    reason, allows it; within the window no override is recorded, whoever records the refund.
    """
    late = registration_refund_check(
        registration=registration, refunded_at=refunded_at, override_by=override_by, override_reason=override_reason
    )
    registration.refunded_at = refunded_at
    registration.refund_override_by = override_by if late else None
    registration.refund_override_reason = override_reason.strip() if late else ""
    registration.full_clean()
    registration.save(update_fields=["refunded_at", "refund_override_by", "refund_override_reason"])
    return registration


def customer_export(*, customer: Customer) -> dict[str, Any]:
    """Everything held about one customer, walked through the registry every app fills."""
    return {name: build(customer) for name, build in registry.export_sections().items()}


# ---------------------------------------------------------------------------------------
# Email address change and data-subject requests


class EmailAddressTaken(ValidationError):
    """Another customer record already has the address."""


@transaction.atomic
def customer_email_change(
    *,
    customer: Customer,
    new_email: str,
    changed_by: str,
    staff_user: AbstractBaseUser | None = None,
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
    if changed_by in (CustomerChange.ChangedBy.CUSTOMER, CustomerChange.ChangedBy.STAFF):
        recipients_to_notify(customer=locked, reason=RecipientNotification.Reason.CORRECTION, fields=["email"])
    return change


@transaction.atomic
def privacy_request_open(
    *,
    customer: Customer,
    kind: str,
    channel: str,
    details: str = "",
    received_at: datetime | None = None,
) -> PrivacyRequest:
    """
    Record a data-subject request, due one month after receipt. Asking again while a request
    of the same kind is open returns that request rather than starting the clock again.
    """
    Customer.objects.select_for_update().only("id").get(pk=customer.pk)
    existing = PrivacyRequest.objects.filter(customer=customer, kind=kind, status=PrivacyRequest.Status.OPEN).first()
    if existing is not None:
        return existing
    received_at = received_at or timezone.now()
    privacy_request = PrivacyRequest(
        customer=customer,
        kind=kind,
        channel=channel,
        details=details.strip(),
        received_at=received_at,
        due_at=add_months(received_at, PrivacyRequest.RESPONSE_MONTHS),
    )
    privacy_request.full_clean()
    privacy_request.save()
    return privacy_request


@transaction.atomic
def privacy_request_extend(
    *, privacy_request: PrivacyRequest, reason: str, staff_user: AbstractBaseUser
) -> PrivacyRequest:
    """Extend the deadline once, by two further months, giving the reason (GDPR Art. 12(3))."""
    locked = PrivacyRequest.objects.select_for_update().get(pk=privacy_request.pk)
    if locked.status != PrivacyRequest.Status.OPEN:
        raise ValidationError("Only an open request can be extended.")
    if locked.extended_due_at is not None:
        raise ValidationError("This request was already extended once; it cannot be extended again.")
    if not reason.strip():
        raise ValidationError({"extension_reason": "Say why the answer needs more time."})
    locked.extended_due_at = add_months(locked.due_at, PrivacyRequest.EXTENSION_MONTHS)
    locked.extension_reason = reason.strip()
    locked.handled_by = staff_user
    locked.full_clean()
    locked.save(update_fields=["extended_due_at", "extension_reason", "handled_by"])
    return locked


@transaction.atomic
def privacy_request_close(
    *, privacy_request: PrivacyRequest, staff_user: AbstractBaseUser, refused: bool = False, reason: str = ""
) -> PrivacyRequest:
    """
    Close a request as done, or as refused with the reason. An erasure request is done only
    once the customer has been erased (customer_erase closes it itself).
    """
    locked = PrivacyRequest.objects.select_for_update().select_related("customer").get(pk=privacy_request.pk)
    if locked.status != PrivacyRequest.Status.OPEN:
        raise ValidationError(f"This request is already closed ({locked.get_status_display().lower()}).")
    if refused and not reason.strip():
        raise ValidationError({"refusal_reason": "Say why the request is refused."})
    if not refused and locked.kind == PrivacyRequest.Kind.ERASURE and not locked.customer.is_erased:
        raise ValidationError("Erase the customer first (or refuse the request, giving the reason).")
    locked.status = PrivacyRequest.Status.REFUSED if refused else PrivacyRequest.Status.DONE
    locked.refusal_reason = reason.strip() if refused else ""
    locked.closed_at = timezone.now()
    locked.handled_by = staff_user
    locked.full_clean()
    locked.save(update_fields=["status", "refusal_reason", "closed_at", "handled_by"])
    return locked


# ---------------------------------------------------------------------------------------
# Audit: who looked at, exported or erased personal data


def access_log_record(
    *, staff_user: AbstractBaseUser, action: str, customer: Customer | None = None, detail: str = ""
) -> AccessLog:
    """Note a look at or an export of personal data. `detail` must not carry personal data itself."""
    return AccessLog.objects.create(staff_user=staff_user, customer=customer, action=action, detail=detail[:300])


# ---------------------------------------------------------------------------------------
# GDPR Art. 19: tell the recipients of a customer's data about corrections and erasure


def _recipient_ids(customer: Customer) -> set[int]:
    ids: set[int] = set()
    for recipients in registry.recipient_sources().values():
        ids.update(recipients(customer))
    return ids


@transaction.atomic
def recipients_to_notify(*, customer: Customer, reason: str, fields: Iterable[str] = ()) -> int:
    """
    Every third party that received the customer's data gets a "to notify" row for this
    reason; an open row for the same third party and reason gains the new field names
    instead of a second row. Returns how many third parties are to be notified.
    """
    third_party_ids = _recipient_ids(customer)
    fields = list(fields)
    for third_party_id in sorted(third_party_ids):
        open_row = (
            RecipientNotification.objects.select_for_update()
            .filter(customer=customer, third_party_id=third_party_id, reason=reason, notified_at__isnull=True)
            .first()
        )
        if open_row is None:
            RecipientNotification.objects.create(
                customer=customer, third_party_id=third_party_id, reason=reason, fields=sorted(set(fields))
            )
        elif not set(fields) <= set(open_row.fields):
            open_row.fields = sorted(set(open_row.fields) | set(fields))
            open_row.save(update_fields=["fields"])
    return len(third_party_ids)


@transaction.atomic
def recipient_notifications_mark_notified(*, notifications: Iterable[RecipientNotification], staff_user) -> int:
    """Staff told these third parties; returns how many were still open."""
    ids = [n.pk for n in notifications]
    return RecipientNotification.objects.filter(pk__in=ids, notified_at__isnull=True).update(
        notified_at=timezone.now(), notified_by=staff_user
    )


# ---------------------------------------------------------------------------------------
# Erasure (GDPR Art. 17)

# Fields blanked on erasure; the first name becomes the marker, so every screen says so.
ERASED_BLANK_FIELDS = [
    "last_name",
    "job_title",
    "company",
    "phone",
    "address_line1",
    "address_line2",
    "city",
    "region",
    "postal_code",
    "country",
    "notes",
    "signup_user_agent",
]


class AlreadyErased(ValidationError):
    pass


def customer_erase(
    *, customer: Customer, staff_user: AbstractBaseUser, request: PrivacyRequest | None = None
) -> CustomerErasure:
    """
    Erase a customer's personal data: every app's registered eraser runs first (the consent
    ledger loses IP, user agent and note but keeps each decision and its time; deliveries keep
    campaign and time; the address's hash joins the suppression list), then the customer's own
    fields are blanked, the address replaced by a unique non-address, registrations lose the
    licence key, corrections and audit entries lose their values. Third parties that received
    the data are listed to notify. Only a privacy officer (customers.erase_customer) may do it.
    """
    if not staff_user.has_perm("customers.erase_customer"):
        raise PermissionDenied("Only a privacy officer may erase a customer.")
    if request is not None and (request.customer_id != customer.pk or request.kind != PrivacyRequest.Kind.ERASURE):
        raise ValidationError("That request is not an erasure request of this customer.")
    with transaction.atomic(), disable_auditlog():
        locked = Customer.objects.select_for_update().get(pk=customer.pk)
        if locked.erased_at is not None:
            raise AlreadyErased(f"This customer was already erased on {locked.erased_at:%Y-%m-%d %H:%M}.")
        original_email = locked.email
        summary: dict[str, Any] = {}
        for name, erase in registry.erasers().items():
            result = erase(locked)
            if result is not None:
                summary[name] = result
        summary["customers"] = _erase_own_records(locked)
        summary["audit_entries_redacted"] = _redact_audit_trail(locked)
        erasure = CustomerErasure.objects.create(
            customer=locked,
            address_hash=email_hash(original_email),
            erased_at=locked.erased_at,
            erased_by=staff_user,
            privacy_request=request,
            summary=summary,
        )
        summary["third_parties_to_notify"] = recipients_to_notify(
            customer=locked, reason=RecipientNotification.Reason.ERASURE
        )
        erasure.summary = summary
        erasure.save(update_fields=["summary"])
        access_log_record(staff_user=staff_user, action=AccessLog.Action.ERASED, customer=locked)
        if request is not None and request.status == PrivacyRequest.Status.OPEN:
            privacy_request_close(privacy_request=request, staff_user=staff_user)
    customer.refresh_from_db()
    return erasure


def _erase_own_records(customer: Customer) -> dict[str, int]:
    now = timezone.now()
    customer.email = f"erased-{uuid.uuid4().hex}@erased.invalid"
    customer.first_name = ERASED_MARKER
    for name in ERASED_BLANK_FIELDS:
        setattr(customer, name, "")
    customer.signup_ip = None
    customer.erased_at = now
    customer.save(update_fields=["email", "first_name", *ERASED_BLANK_FIELDS, "signup_ip", "erased_at", "updated_at"])
    # Purchase records the law requires keep order reference, dates and product.
    registrations = ProductRegistration.objects.filter(customer=customer).exclude(licence_key="")
    corrections = CustomerChange.objects.filter(customer=customer).exclude(old_value="", new_value="")
    requests = PrivacyRequest.objects.filter(customer=customer).exclude(details="")
    return {
        "licence_keys_removed": registrations.update(licence_key=""),
        "corrections_blanked": corrections.update(old_value="", new_value=""),
        "request_details_blanked": requests.update(details=ERASED_MARKER),
    }


# Entries per UPDATE: PostgreSQL walks a CASE of this many branches per row, so the cost of one
# statement grows with its square. A customer's trail rarely holds more than a few dozen.
AUDIT_REDACTION_BATCH_SIZE = 500


def _redact_audit_trail(customer: Customer) -> int:
    """
    The audit log's old and new values of this customer's records are personal data too:
    keep who changed which field and when, drop the values and the object's old name.
    One query reads the entries, one UPDATE (per AUDIT_REDACTION_BATCH_SIZE) writes them.
    """
    from auditlog.models import LogEntry as AuditEntry
    from django.contrib.admin.models import LogEntry as AdminEntry
    from django.contrib.contenttypes.models import ContentType

    targets = {
        Customer: [customer.pk],
        ProductRegistration: list(customer.registrations.values_list("pk", flat=True)),
        PrivacyRequest: list(customer.privacy_requests.values_list("pk", flat=True)),
    }
    content_types = ContentType.objects.get_for_models(*targets)
    customer_type = content_types[Customer]
    belongs_to_customer = Q()
    for model, pks in targets.items():
        if pks:
            belongs_to_customer |= Q(content_type=content_types[model], object_pk__in=[str(pk) for pk in pks])
    # Each entry keeps its own field names, so the new changes are built here and written back
    # in one UPDATE (a CASE per column), instead of one save per entry.
    entries = list(
        AuditEntry.objects.filter(belongs_to_customer).only("pk", "content_type_id", "changes", "object_repr")
    )
    erased_repr = str(customer)
    for entry in entries:
        changes = entry.changes if isinstance(entry.changes, dict) else {}
        entry.changes = {name: [ERASED_MARKER, ERASED_MARKER] for name in changes}
        entry.changes_text = ""
        entry.serialized_data = None
        entry.additional_data = None
        if entry.content_type_id == customer_type.pk:
            entry.object_repr = erased_repr
    AuditEntry.objects.bulk_update(
        entries,
        ["changes", "changes_text", "serialized_data", "additional_data", "object_repr"],
        batch_size=AUDIT_REDACTION_BATCH_SIZE,
    )
    AdminEntry.objects.filter(content_type=customer_type, object_id=str(customer.pk)).update(
        object_repr=erased_repr[:200]
    )
    return len(entries)


def customer_address_was_erased(email: str, *, erased_hashes: set[str] | None = None) -> bool:
    """True when a customer with this address was erased (only the address's hash is kept)."""
    digest = email_hash(email)
    if erased_hashes is not None:
        return digest in erased_hashes
    return CustomerErasure.objects.filter(address_hash=digest).exists()


def erased_address_hashes() -> set[str]:
    """Every erased address's hash, for a file-sized check (erasures are few)."""
    return set(CustomerErasure.objects.values_list("address_hash", flat=True))


# ---------------------------------------------------------------------------------------
# Retention of log data

# Any constant unique to this job: two runs at once on PostgreSQL take turns on it.
RETENTION_LOCK_KEY = 0x436F6E7344_01


def retention_cutoff(now: datetime | None = None) -> datetime:
    return (now or timezone.now()) - timedelta(days=settings.RETENTION_IP_DAYS)


def retention_apply(*, now: datetime | None = None) -> RetentionRun | None:
    """
    Clear IP addresses and user agents recorded more than RETENTION_IP_DAYS ago, in every
    app's registered step, and record the counts. Running it again changes nothing more.
    On PostgreSQL a second run started while one is going returns None at once (advisory
    lock); SQLite's write lock makes the second wait and then find nothing to do.
    """
    cutoff = retention_cutoff(now)
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [RETENTION_LOCK_KEY])
                if not cursor.fetchone()[0]:
                    return None
        run = RetentionRun.objects.create(cutoff=cutoff)
        counts = {
            "customer_signups": _retention_clear_signups(cutoff),
            "staff_audit_addresses": _retention_clear_staff_addresses(cutoff),
        }
        for name, step in registry.retention_steps().items():
            counts[name] = step(cutoff)
        run.counts = counts
        run.finished_at = timezone.now()
        run.save(update_fields=["counts", "finished_at"])
    return run


def _retention_clear_staff_addresses(cutoff: datetime) -> int:
    """Staff sign-in and audit records keep who and when; their IP addresses go with the rest."""
    from auditlog.models import LogEntry
    from axes.models import AccessAttempt, AccessFailureLog, AccessLog

    cleared = LogEntry.objects.filter(timestamp__lt=cutoff, remote_addr__isnull=False).update(remote_addr=None)
    for model, when in (
        (AccessLog, "attempt_time"),
        (AccessFailureLog, "attempt_time"),
        (AccessAttempt, "attempt_time"),
    ):
        cleared += model.objects.filter(**{f"{when}__lt": cutoff}).delete()[0]
    return cleared


def _retention_clear_signups(cutoff: datetime) -> int:
    stale = Customer.objects.filter(created_at__lt=cutoff).filter(Q(signup_ip__isnull=False) | ~Q(signup_user_agent=""))
    return stale.update(signup_ip=None, signup_user_agent="")
