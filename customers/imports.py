"""
The customer CSV import: read the file, check every row, then write them all or nothing.
`import_customers` (the management command) calls it; apps above add their own columns
through an ImportExtension (the consent app's consent_<purpose> columns).
"""

from __future__ import annotations

import copy
import csv
import io
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from auditlog.context import disable_auditlog
from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import ProtectedError
from django.db.models.functions import Lower
from django.utils import timezone

from .forms import DETAIL_FIELDS, IMPORT_FIELDS, CustomerImportRowForm
from .models import Customer, CustomerChange
from .services import _apply_details


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
# Rows per transaction while the extensions record consent: each decision is a few queries
# (about 5 ms here), so 100 rows hold SQLite's write lock for about half a second at a time.
IMPORT_CONSENT_BATCH_SIZE = 100

# A checked row: its line in the file, its cleaned values, the customer it updates (None for
# a new one) and each extension's cleaned values.
_ValidRow = tuple[int, dict[str, Any], Customer | None, dict[str, Any]]
# A written row: its line, the customer, and each extension's cleaned values.
_WrittenRow = tuple[int, Customer, dict[str, Any]]


# Delimiters a spreadsheet may save a "CSV" file with (semicolons where the decimal
# separator is a comma, tabs from "text (tab-delimited)").
DELIMITERS = ",;\t|"
DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "vertical bar"}


class CsvFile(NamedTuple):
    headers: list[str]
    rows: list[dict[str, str]]
    delimiter: str

    @property
    def delimiter_name(self) -> str:
        return DELIMITER_NAMES.get(self.delimiter, repr(self.delimiter))


def _sniff_delimiter(header_line: str) -> str:
    """The header's delimiter: column names never contain one, so the first line decides."""
    try:
        return csv.Sniffer().sniff(header_line, delimiters=DELIMITERS).delimiter
    except csv.Error:  # a single column: nothing to tell apart
        return ","


def read_csv(text: str) -> CsvFile:
    """
    Read the file's header and rows, comma-, semicolon-, tab- or bar-separated. Refuses
    (ImportRefused, naming each) a column named twice and every row whose number of values
    differs from the header's; empty lines are skipped. Raises csv.Error for what the csv
    module cannot read.
    """
    delimiter = _sniff_delimiter(text.split("\n", 1)[0])
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    headers = [h.strip() for h in next(reader, [])]
    errors: list[RowError] = []
    first_position: dict[str, int] = {}
    for position, name in enumerate(headers, start=1):
        if name in first_position:
            errors.append(
                RowError(
                    1,
                    "header",
                    f"the column {name!r} appears twice (columns {first_position[name]} and {position}): "
                    "keep one of them",
                )
            )
        else:
            first_position[name] = position
    rows: list[dict[str, str]] = []
    for cells in reader:
        if not cells:
            continue  # an empty line
        line = len(rows) + 2  # as customers_import counts: the header is line 1
        if len(cells) != len(headers):
            more_or_fewer = "more" if len(cells) > len(headers) else "fewer"
            hint = " (a delimiter inside an unquoted value?)" if more_or_fewer == "more" else ""
            errors.append(
                RowError(
                    line,
                    "row",
                    f"{len(cells)} values for {len(headers)} columns: {more_or_fewer} values than the header{hint}",
                )
            )
        rows.append({name: cell.strip() for name, cell in zip(headers, cells, strict=False)})
    if errors:
        raise ImportRefused(errors)
    return CsvFile(headers, rows, delimiter)


# Checks the apps that keep records of addresses supply, run for every address a file
# would give a new customer record: check(addresses) -> {address: why it is refused}.
NewAddressCheck = Callable[[list[str]], dict[str, str]]
_new_address_checks: dict[str, NewAddressCheck] = {}


def register_new_address_check(name: str, check: NewAddressCheck) -> None:
    _new_address_checks[name] = check


def customers_import(
    *,
    headers: list[str],
    rows: list[dict[str, str]],
    update: bool = False,
    clear_blank: bool = False,
    options: dict[str, Any] | None = None,
    progress: Callable[[Iterable], Iterator] = iter,
    check_only: bool = False,
) -> ImportReport:
    """
    Validate every row, then write them all, or nothing. Raises ImportRefused naming each bad
    row (its line in the file), field and reason. With `check_only`, stop after the checks
    and write nothing: the report counts the customers the file would create and update (the
    admin's import shows it before staff confirm).

    With `update`, a blank cell leaves the customer's field as it is, unless `clear_blank`.

    The rows are written in short transactions, so that on SQLite a customer's unsubscribe
    or the beat tick never waits for the whole file: first every customer, IMPORT_BATCH_SIZE
    at a time (new ones have no consent yet, so no campaign can reach them), then the
    extensions' columns (consent), IMPORT_CONSENT_BATCH_SIZE at a time. A failure while
    customers are written undoes what the import wrote: new customers are deleted, updated
    ones get their values back. A database failure while consent is recorded raises
    ImportIncomplete (the ledger is never rewritten: the same file again finishes it).
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
        instance = existing.get(row.get("email", "").lower()) if update else None
        data = {name: row.get(name, "") for name in IMPORT_FIELDS if name in headers}
        if instance is not None:
            # Columns absent from the file keep their current values.
            for name in IMPORT_FIELDS:
                if name not in headers or (data[name] == "" and not clear_blank):
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
            valid.append((line, form.cleaned_data, existing.get(email) if update and email else None, extension_values))
    new_lines = {cleaned["email"]: line for line, cleaned, instance, _values in valid if instance is None}
    for check in _new_address_checks.values():
        for address, reason in check(list(new_lines)).items():
            errors.append(RowError(new_lines[address], "email", reason))
    if errors:
        raise ImportRefused(sorted(errors, key=lambda error: error.line))
    if check_only:
        new = sum(1 for _line, _cleaned, instance, _values in valid if instance is None)
        return ImportReport(created=new, updated=len(valid) - new)

    report = ImportReport()
    journal = _ImportJournal()
    written: list[_WrittenRow] = []
    # An import is recorded by its corrections (CustomerChange, "import"), not one audit-log
    # entry per row: a large file would double its writes.
    try:
        batch: list[_ValidRow] = []
        for valid_row in progress(valid):
            batch.append(valid_row)
            if len(batch) >= IMPORT_BATCH_SIZE:
                written.extend(_import_batch_write(batch, headers=headers, report=report, journal=journal))
                batch = []
        if batch:
            written.extend(_import_batch_write(batch, headers=headers, report=report, journal=journal))
    except IntegrityError:
        # The file was checked against the customers that existed then; someone added one of
        # its addresses since (a signup, staff, another import).
        _import_undo(journal)
        raise ImportRefused(_addresses_taken_meanwhile(valid)) from None
    except BaseException:
        _import_undo(journal)
        raise
    # Consent only once every customer is written: a campaign dispatched meanwhile never
    # reaches a customer whose row the import might still take back. The ledger is never
    # rewritten, so what is recorded here stays; everything it needs was checked above.
    if _import_extensions:
        written_batch: list[_WrittenRow] = []
        for written_row in progress(written):
            written_batch.append(written_row)
            if len(written_batch) >= IMPORT_CONSENT_BATCH_SIZE:
                _import_extensions_apply(written_batch, options=options, report=report)
                written_batch = []
        if written_batch:
            _import_extensions_apply(written_batch, options=options, report=report)
    return report


def _import_extensions_apply(chunk: list[_WrittenRow], *, options: dict[str, Any], report: ImportReport) -> None:
    try:
        with transaction.atomic(), disable_auditlog():
            for _line, customer, extension_values in chunk:
                for extension in _import_extensions:
                    extension.apply(customer, extension_values[extension.name], options, report)
    except DatabaseError as error:
        raise ImportIncomplete(report=report, first_line_missing=chunk[0][0], error=error) from error


class ImportIncomplete(Exception):
    """
    The database failed while the extensions' columns (consent) were recorded: every customer
    is written, and what was recorded before the failing batch stays (the ledger is never
    rewritten). Importing the same file again with --update records the rest and nothing twice.
    """

    def __init__(self, *, report: ImportReport, first_line_missing: int, error: Exception):
        self.report = report
        self.first_line_missing = first_line_missing
        super().__init__(
            f"the database failed while consent was recorded ({error}): every customer is imported, and "
            f"consent is recorded for the rows before row {first_line_missing}; import the same file again "
            "with --update to record the rest (nothing is recorded twice)"
        )


@dataclass
class _ImportJournal:
    """What the import wrote, committed batch by batch, so that a failure can take it back."""

    created: list[int] = field(default_factory=list)
    corrections: list[int] = field(default_factory=list)
    # customer id -> (the values before the import, the values it wrote), per changed field
    updated: dict[int, tuple[dict[str, Any], dict[str, Any]]] = field(default_factory=dict)


def _import_undo(journal: _ImportJournal) -> None:
    """
    Take back what the committed batches wrote, in short transactions too. A field someone
    else changed since the import wrote it keeps their value.
    """
    with disable_auditlog():
        for start in range(0, len(journal.corrections), IMPORT_BATCH_SIZE):
            with transaction.atomic():
                CustomerChange.objects.filter(pk__in=journal.corrections[start : start + IMPORT_BATCH_SIZE]).delete()
        ids = list(journal.updated)
        for start in range(0, len(ids), IMPORT_BATCH_SIZE):
            with transaction.atomic():
                chunk = ids[start : start + IMPORT_BATCH_SIZE]
                for customer in Customer.objects.select_for_update().filter(pk__in=chunk):
                    before, imported = journal.updated[customer.pk]
                    restored = [name for name in before if getattr(customer, name) == imported[name]]
                    for name in restored:
                        setattr(customer, name, before[name])
                    if restored:
                        customer.save(update_fields=[*restored, "updated_at"])
        for start in range(0, len(journal.created), IMPORT_BATCH_SIZE):
            chunk = journal.created[start : start + IMPORT_BATCH_SIZE]
            try:
                with transaction.atomic():
                    Customer.objects.filter(pk__in=chunk).delete()
            except ProtectedError:
                # Something was recorded for one of them meanwhile (a consent, a purchase):
                # keep those, delete the others.
                for pk in chunk:
                    try:
                        with transaction.atomic():
                            Customer.objects.filter(pk=pk).delete()
                    except ProtectedError:
                        continue


def _import_batch_write(
    batch: list[_ValidRow], *, headers: list[str], report: ImportReport, journal: _ImportJournal
) -> list[_WrittenRow]:
    """
    Write one batch of checked rows in one transaction: new customers in one INSERT, updated
    ones in one UPDATE per set of changed columns (only the columns that differ are written,
    as customer_update does), their corrections in one INSERT. Notes in `journal` what was
    written once it is committed; returns each customer with its extensions' values.
    """
    created: list[Customer] = []
    updated: dict[tuple[str, ...], list[Customer]] = {}
    corrections: list[CustomerChange] = []
    written: list[_WrittenRow] = []
    undo: dict[int, tuple[dict[str, Any], dict[str, Any]]] = {}
    now = timezone.now()
    with transaction.atomic(), disable_auditlog():
        _import_lock_existing(batch)
        for line, cleaned, instance, extension_values in batch:
            if instance is None:
                # The form has cleaned and normalised every value (what save() would do).
                customer = Customer(**{name: cleaned[name] for name in IMPORT_FIELDS if name in cleaned})
                created.append(customer)
            else:
                customer = instance
                before = {name: getattr(customer, name) for name in DETAIL_FIELDS}
                changes = _apply_details(
                    customer=customer,
                    data={name: cleaned[name] for name in DETAIL_FIELDS if name in headers},
                    changed_by=CustomerChange.ChangedBy.IMPORT,
                )
                if changes:
                    customer.updated_at = now  # bulk_update does not touch auto_now fields
                    updated.setdefault(tuple(c.field for c in changes), []).append(customer)
                    corrections.extend(changes)
                    changed = [c.field for c in changes]
                    undo[customer.pk] = (
                        {name: before[name] for name in changed},
                        {name: getattr(customer, name) for name in changed},
                    )
                    report.updated += 1
                else:
                    report.unchanged += 1
            written.append((line, customer, extension_values))
        # PostgreSQL and SQLite return the new ids, which the extensions and corrections need.
        Customer.objects.bulk_create(created)
        for fields, customers in updated.items():
            Customer.objects.bulk_update(customers, [*fields, "updated_at"])
        CustomerChange.objects.bulk_create(corrections)
    report.created += len(created)
    journal.created.extend(customer.pk for customer in created)
    journal.corrections.extend(change.pk for change in corrections)
    journal.updated.update(undo)
    return written


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
    taken: set[str] = set()
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
