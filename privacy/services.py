"""
Privacy operations: data-subject requests, the access log, GDPR Art. 19 notifications,
erasure and the retention of log data. Views, admin, tasks and commands call these.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from auditlog.context import disable_auditlog
from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from customers.models import ERASED_MARKER, Customer, ProductRegistration, email_hash
from customers.selectors import customer_addresses_ever_held

from . import registry
from .models import (
    AccessLog,
    CustomerErasure,
    ErasedAddress,
    PrivacyRequest,
    RecipientNotification,
    RetentionRun,
    add_months,
)
from .selectors import customer_recipient_ids
from .signals import customer_erased


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
def privacy_request_extend(*, privacy_request: PrivacyRequest, reason: str, staff_user: User) -> PrivacyRequest:
    """
    Extend the deadline once, by two further months, giving the reason (GDPR Art. 12(3)); only
    within the first month, so an overdue request cannot be made timely again.
    """
    locked = PrivacyRequest.objects.select_for_update().get(pk=privacy_request.pk)
    if locked.status != PrivacyRequest.Status.OPEN:
        raise ValidationError("Only an open request can be extended.")
    if locked.extended_due_at is not None:
        raise ValidationError("This request was already extended once; it cannot be extended again.")
    if timezone.now() > locked.due_at:
        raise ValidationError(
            f"The first month ended on {timezone.localtime(locked.due_at):%Y-%m-%d}: a deadline can only be "
            "extended within it, and the customer told so then. This request is overdue: answer it now."
        )
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
    *, privacy_request: PrivacyRequest, staff_user: User, refused: bool = False, reason: str = ""
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
    *,
    staff_user: User | None,
    action: str,
    customer: Customer | None = None,
    detail: str = "",
    api_key_label: str = "",
) -> AccessLog:
    """
    Note a look at or an export of personal data, by a staff member or an API key.
    `detail` must not carry personal data itself.
    """
    return AccessLog.objects.create(
        staff_user=staff_user, api_key_label=api_key_label, customer=customer, action=action, detail=detail[:300]
    )


# ---------------------------------------------------------------------------------------
# GDPR Art. 19: tell the recipients of a customer's data about corrections and erasure


@transaction.atomic
def recipients_to_notify(*, customer: Customer, reason: str, fields: Iterable[str] = ()) -> int:
    """
    Every third party that received the customer's data gets a "to notify" row for this
    reason; an open row for the same third party and reason gains the new field names
    instead of a second row. Returns how many third parties are to be notified.
    """
    third_party_ids = customer_recipient_ids(customer)
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
def recipient_notifications_mark_notified(
    *, notifications: Iterable[RecipientNotification], staff_user: User | None
) -> int:
    """Staff told these third parties; returns how many were still open."""
    ids = [n.pk for n in notifications]
    return RecipientNotification.objects.filter(pk__in=ids, notified_at__isnull=True).update(
        notified_at=timezone.now(), notified_by=staff_user
    )


# ---------------------------------------------------------------------------------------
# Erasure (GDPR Art. 17)


class AlreadyErased(ValidationError):
    pass


def customer_erase(*, customer: Customer, staff_user: User, request: PrivacyRequest | None = None) -> CustomerErasure:
    """
    Erase a customer's personal data: every app's registered part erases its own (the consent
    ledger loses IP, user agent and note but keeps each decision and its time; deliveries keep
    campaign and time; every address the customer had joins the suppression list as a hash;
    the customer's own fields are blanked, the address replaced by a unique non-address,
    registrations lose the licence key, corrections lose their values), then the audit entries
    lose their values. Third parties that received the data are listed to notify. Only a
    privacy officer (customers.erase_customer) may do it.
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
        addresses = customer_addresses_ever_held(locked)  # before the corrections lose their values
        summary: dict[str, Any] = {}
        # The parts of the apps higher up erase first (they were registered last): they may
        # still read what the lower parts hold, the customer's address and corrections above all.
        for part in reversed(registry.parts()):
            result = part.erase(locked)
            if result is not None:
                summary[part.name] = result
        summary["audit_entries_redacted"] = _redact_audit_trail(locked)
        assert locked.erased_at is not None  # the customers part marked the record erased
        erasure = CustomerErasure.objects.create(
            customer=locked,
            address_hash=email_hash(original_email),
            erased_at=locked.erased_at,
            erased_by=staff_user,
            privacy_request=request,
            summary=summary,
        )
        ErasedAddress.objects.bulk_create(
            ErasedAddress(erasure=erasure, address_hash=digest) for digest in sorted({email_hash(a) for a in addresses})
        )
        summary["third_parties_to_notify"] = recipients_to_notify(
            customer=locked, reason=RecipientNotification.Reason.ERASURE
        )
        erasure.summary = summary
        erasure.save(update_fields=["summary"])
        access_log_record(staff_user=staff_user, action=AccessLog.Action.ERASED, customer=locked)
        if request is not None and request.status == PrivacyRequest.Status.OPEN:
            privacy_request_close(privacy_request=request, staff_user=staff_user)
        customer_erased.send(sender=Customer, customer=locked, erasure=erasure)
    customer.refresh_from_db()
    return erasure


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
        counts = {"staff_audit_addresses": _retention_clear_staff_addresses(cutoff)}
        for part in registry.parts():
            cleared = part.retention(cutoff)
            if cleared is not None:
                counts[part.name] = cleared
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
    return int(cleared)
