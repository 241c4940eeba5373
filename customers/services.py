"""State changes for customer records. Views, admin, tasks and commands call these."""

from __future__ import annotations

import copy
import csv
import io
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from auditlog.context import disable_auditlog
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.db.models.functions import Lower
from django.utils import timezone

from .forms import DETAIL_FIELDS, IMPORT_FIELDS, CustomerImportRowForm
from .models import Customer, CustomerChange, ProductRegistration, normalise_email
from .signals import customer_corrected


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
    """Apply corrected details and record each changed field with its old and new value."""
    changes = _apply_details(customer=customer, data=data, changed_by=changed_by, staff_user=staff_user)
    if changes:
        customer.full_clean()
        customer.save(update_fields=[c.field for c in changes] + ["updated_at"])
        CustomerChange.objects.bulk_create(changes)
        if changed_by in (CustomerChange.ChangedBy.CUSTOMER, CustomerChange.ChangedBy.STAFF):
            customer_corrected.send(sender=Customer, customer=customer, fields=[c.field for c in changes])
    return changes


def _apply_details(
    *, customer: Customer, data: dict[str, Any], changed_by: str, staff_user: AbstractBaseUser | None = None
) -> list[CustomerChange]:
    """Set the fields that differ on `customer` (not saved) and return the unsaved corrections."""
    changes = []
    for name, new_value in data.items():
        if name not in DETAIL_FIELDS:
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


@transaction.atomic
def record_staff_changes(*, customer: Customer, old_values: dict[str, Any], staff_user: AbstractBaseUser) -> None:
    """Record the fields staff changed in admin (the form has already saved them)."""
    changes = CustomerChange.objects.bulk_create(
        CustomerChange(
            customer=customer,
            field=name,
            old_value=_display(old),
            new_value=_display(getattr(customer, name)),
            changed_by=CustomerChange.ChangedBy.STAFF,
            staff_user=staff_user,
        )
        for name, old in old_values.items()
        if _display(old) != _display(getattr(customer, name))
    )
    # Internal notes are not data any third party received.
    corrected = [c.field for c in changes if c.field != "notes"]
    if corrected:
        customer_corrected.send(sender=Customer, customer=customer, fields=corrected)


class RefundNotAllowed(ValidationError):
    pass


@transaction.atomic
def registration_refund(
    *,
    registration: ProductRegistration,
    refunded_at: datetime,
    override_by: AbstractBaseUser | None = None,
    override_reason: str = "",
) -> ProductRegistration:
    """Mark a registration refunded. After the money-back deadline only a staff override, with a reason, allows it."""
    registration.refunded_at = refunded_at
    registration.refund_override_by = override_by
    registration.refund_override_reason = override_reason.strip()
    registration.full_clean()
    registration.save(update_fields=["refunded_at", "refund_override_by", "refund_override_reason"])
    return registration


# ---------------------------------------------------------------------------------------
# CSV import


@dataclass(frozen=True)
class RowError:
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"row {self.line}, {self.field}: {self.message}"


class ImportRefused(Exception):
    """The file has bad rows: nothing was imported."""

    def __init__(self, errors: list[RowError]):
        self.errors = errors
        super().__init__(f"{len(errors)} problem(s) found; nothing was imported")


@dataclass
class ImportExtension:
    """Extra columns another app understands (the consent app's consent_<purpose> columns)."""

    name: str
    columns: Callable[[], list[str]]
    # check(headers, options) -> list of file-level error messages
    check_file: Callable[[list[str], dict[str, Any]], list[str]]
    # clean(row) -> (cleaned values, {column: message})
    clean_row: Callable[[dict[str, str]], tuple[Any, dict[str, str]]]
    # apply(customer, cleaned, options, report) after the customer row is written
    apply: Callable[[Customer, Any, dict[str, Any], ImportReport], None]


_import_extensions: list[ImportExtension] = []


def register_import_extension(extension: ImportExtension) -> None:
    _import_extensions[:] = [e for e in _import_extensions if e.name != extension.name]
    _import_extensions.append(extension)


@dataclass
class ImportReport:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    notes: list[str] = field(default_factory=list)
    counters: dict[str, int] = field(default_factory=dict)

    def count(self, key: str, n: int = 1) -> None:
        self.counters[key] = self.counters.get(key, 0) + n


# Rows per INSERT or UPDATE statement and per pass of the extensions: 1,000 customers with
# their corrections are a few MB in memory, and a statement well within any driver's limits.
IMPORT_BATCH_SIZE = 1000

# A checked row: its line in the file, its cleaned values, the customer it updates (None for
# a new one) and each extension's cleaned values.
_ValidRow = tuple[int, dict[str, Any], Customer | None, dict[str, Any]]


def read_csv(text: str) -> tuple[list[str], list[dict[str, str]]]:
    reader = csv.DictReader(io.StringIO(text))
    headers = [h.strip() for h in (reader.fieldnames or [])]
    reader.fieldnames = headers
    rows = []
    for raw in reader:
        extra = raw.pop(None, None)
        row = {k: (v or "").strip() for k, v in raw.items()}
        if extra:
            row["__extra__"] = ",".join(extra)
        rows.append(row)
    return headers, rows


def customers_import(
    *,
    headers: list[str],
    rows: list[dict[str, str]],
    update: bool = False,
    options: dict[str, Any] | None = None,
    progress: Callable[[Iterable], Iterator] = iter,
) -> ImportReport:
    """
    Validate every row, then write them all in one transaction, or nothing.
    Raises ImportRefused naming each bad row (its line in the file), field and reason.
    """
    options = options or {}
    errors: list[RowError] = []
    known = set(IMPORT_FIELDS)
    for extension in _import_extensions:
        known.update(extension.columns())
    if "email" not in headers:
        raise ImportRefused([RowError(1, "header", "the file has no email column")])
    unknown = [h for h in headers if h not in known]
    if unknown:
        raise ImportRefused([RowError(1, "header", f"unknown column(s): {', '.join(unknown)}")])
    for extension in _import_extensions:
        for message in extension.check_file(headers, options):
            errors.append(RowError(1, "header", message))
    if errors:
        raise ImportRefused(errors)

    # Existing customers matched by address, fetched in chunks rather than a query per row.
    emails = [r.get("email", "").strip().lower() for r in rows]
    existing: dict[str, Customer] = {}
    for start in range(0, len(emails), 5000):
        chunk = [e for e in emails[start : start + 5000] if e]
        for customer in Customer.objects.alias(email_lower=Lower("email")).filter(email_lower__in=chunk):
            existing[customer.email.lower()] = customer

    seen: dict[str, int] = {}
    valid: list[_ValidRow] = []
    for index, row in enumerate(progress(rows)):
        line = index + 2  # line 1 is the header
        row_errors: list[RowError] = []
        if "__extra__" in row:
            row_errors.append(RowError(line, "row", "more values than columns (a comma inside an unquoted value?)"))
        instance = existing.get(row.get("email", "").lower()) if update else None
        data = {name: row.get(name, "") for name in IMPORT_FIELDS if name in headers}
        if instance is not None:
            # Columns absent from the file keep their current values.
            for name in IMPORT_FIELDS:
                if name not in headers:
                    data[name] = getattr(instance, name)
            form = CustomerImportRowForm(data=data, instance=copy.copy(instance))
        else:
            form = CustomerImportRowForm(data=data)
        if not form.is_valid():
            for field_name, field_errors in form.errors.as_data().items():
                for error in field_errors:
                    if error.code == "duplicate_email":
                        continue  # reported below, with the hint about --update
                    for message in error.messages:
                        row_errors.append(RowError(line, field_name if field_name != "__all__" else "row", message))
        email = form.cleaned_data.get("email") if hasattr(form, "cleaned_data") else None
        if email:
            if email in seen:
                row_errors.append(RowError(line, "email", f"the same address is already on row {seen[email]}"))
            else:
                seen[email] = line
            if email in existing and existing[email].erased_at is not None:
                # Its address is a placeholder: a row naming it comes from an old export of ours.
                row_errors.append(
                    RowError(
                        line,
                        "email",
                        "this record's data was erased: it is not updated, and no consent is recorded for it",
                    )
                )
            elif email in existing and not update:
                row_errors.append(
                    RowError(line, "email", "a customer with this address already exists (use --update to update it)")
                )
        extension_values = {}
        for extension in _import_extensions:
            cleaned, ext_errors = extension.clean_row(row)
            extension_values[extension.name] = cleaned
            for column, message in ext_errors.items():
                row_errors.append(RowError(line, column, message))
        if row_errors:
            errors.extend(row_errors)
        else:
            valid.append((line, form.cleaned_data, existing.get(email) if update else None, extension_values))
    if errors:
        raise ImportRefused(errors)

    report = ImportReport()
    # An import is recorded by its corrections (CustomerChange, "import"), not one audit-log
    # entry per row: a large file would double its writes.
    try:
        with transaction.atomic(), disable_auditlog():
            batch: list[_ValidRow] = []
            for valid_row in progress(valid):
                batch.append(valid_row)
                if len(batch) >= IMPORT_BATCH_SIZE:
                    _import_batch_write(batch, headers=headers, options=options, report=report)
                    batch = []
            if batch:
                _import_batch_write(batch, headers=headers, options=options, report=report)
    except IntegrityError:
        # The file was checked against the customers that existed then; someone added one of
        # its addresses since (a signup, staff, another import). Nothing was written.
        raise ImportRefused(_addresses_taken_meanwhile(valid)) from None
    return report


def _import_batch_write(
    batch: list[_ValidRow], *, headers: list[str], options: dict[str, Any], report: ImportReport
) -> None:
    """
    Write one batch of checked rows: new customers in one INSERT, updated ones in one UPDATE
    per set of changed columns (only the columns that differ are written, as customer_update
    does), their corrections in one INSERT; then each extension (consent columns) row by row.
    """
    _import_lock_existing(batch)
    created: list[Customer] = []
    updated: dict[tuple[str, ...], list[Customer]] = {}
    corrections: list[CustomerChange] = []
    written: list[tuple[Customer, dict[str, Any]]] = []
    now = timezone.now()
    for _line, cleaned, instance, extension_values in batch:
        if instance is None:
            # The form has cleaned and normalised every value (what save() would do).
            customer = Customer(**{name: cleaned[name] for name in IMPORT_FIELDS if name in cleaned})
            created.append(customer)
        else:
            customer = instance
            changes = _apply_details(
                customer=customer,
                data={name: cleaned[name] for name in DETAIL_FIELDS if name in headers},
                changed_by=CustomerChange.ChangedBy.IMPORT,
            )
            if changes:
                customer.updated_at = now  # bulk_update does not touch auto_now fields
                updated.setdefault(tuple(c.field for c in changes), []).append(customer)
                corrections.extend(changes)
                report.updated += 1
            else:
                report.unchanged += 1
        written.append((customer, extension_values))
    # PostgreSQL and SQLite return the new ids, which the extensions and corrections need.
    Customer.objects.bulk_create(created)
    report.created += len(created)
    for fields, customers in updated.items():
        Customer.objects.bulk_update(customers, [*fields, "updated_at"])
    CustomerChange.objects.bulk_create(corrections)
    for customer, extension_values in written:
        for extension in _import_extensions:
            extension.apply(customer, extension_values[extension.name], options, report)


def _import_lock_existing(batch: list[_ValidRow]) -> None:
    """
    Lock the customers this batch updates until the import commits, so that an erasure waits
    for it; one erased since the file was checked refuses the import (nothing is written),
    rather than have the file's details written back onto the erased record.
    """
    lines = {instance.pk: line for line, _cleaned, instance, _values in batch if instance is not None}
    if not lines:
        return
    erased = [
        pk
        for pk, erased_at in Customer.objects.select_for_update().filter(pk__in=lines).values_list("pk", "erased_at")
        if erased_at is not None
    ]
    if erased:
        raise ImportRefused(
            [
                RowError(
                    lines[pk], "email", "this record was erased while the file was being imported: nothing was imported"
                )
                for pk in sorted(erased, key=lines.__getitem__)
            ]
        )


def _addresses_taken_meanwhile(valid: list[_ValidRow]) -> list[RowError]:
    new_rows = {cleaned["email"]: line for line, cleaned, instance, _values in valid if instance is None}
    taken = set()
    emails = list(new_rows)
    for start in range(0, len(emails), 5000):
        chunk = emails[start : start + 5000]
        taken.update(
            Customer.objects.alias(email_lower=Lower("email"))
            .filter(email_lower__in=chunk)
            .values_list("email", flat=True)
        )
    errors = [
        RowError(new_rows[email], "email", "a customer with this address was added while the file was being imported")
        for email in sorted(taken, key=new_rows.__getitem__)
    ]
    return errors or [RowError(1, "file", "the database refused the import; nothing was imported: try again")]


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
    try:
        with transaction.atomic():
            locked.save(update_fields=["email", "updated_at"])
    except IntegrityError as error:
        # Another request took the address between our check and our write.
        raise EmailAddressTaken(f"{new_email} already belongs to another customer record.") from error
    customer.email = new_email
    change = CustomerChange.objects.create(
        customer=locked,
        field="email",
        old_value=old_email,
        new_value=new_email,
        changed_by=changed_by,
        staff_user=staff_user,
    )
    if changed_by in (CustomerChange.ChangedBy.CUSTOMER, CustomerChange.ChangedBy.STAFF):
        customer_corrected.send(sender=Customer, customer=locked, fields=["email"])
    return change
