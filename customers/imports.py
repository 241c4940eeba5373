"""
The customer CSV import: read the file, check every row, then write them all or nothing.
`import_customers` (the management command) calls it; apps above add their own columns
through an ImportExtension (the consent app's consent_<purpose> columns).
"""

from __future__ import annotations

import codecs
import collections
import contextlib
import copy
import csv
import functools
import gc
import io
import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator, Sized
from dataclasses import dataclass, field
from multiprocessing.pool import AsyncResult
from pathlib import Path
from typing import Any, NamedTuple, cast

from auditlog.context import disable_auditlog
from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.core.exceptions import ValidationError
from django.db import DatabaseError, IntegrityError, connection, connections, models, transaction
from django.db.models import Field, Func, ProtectedError, Value
from django.db.models.functions import Lower
from django.utils import timezone
from phonenumber_field.phonenumber import PhoneNumber

from .forms import DETAIL_FIELDS, IMPORT_FIELDS, CustomerImportRowForm
from .import_check import FastRowCheck
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
# PostgreSQL: a file of at least this many rows is checked in one streaming pass and written
# in one transaction through COPY (_import_by_copy); a smaller one as on SQLite, in batches.
IMPORT_COPY_MIN_ROWS = 5000
# Rows checked per look-up of existing customers (and per COPY) in that pass: 5,000 rows and
# the customers they match are a few MB.
IMPORT_CHECK_CHUNK_SIZE = 5000

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
    # A list (read_csv) or a CsvFileRows that reads the file again each time it is iterated.
    rows: list[dict[str, str]] | CsvFileRows
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


def _header_errors(headers: list[str]) -> list[RowError]:
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
    return errors


def _row_length_error(line: int, cells: list[str], headers: list[str]) -> RowError:
    more_or_fewer = "more" if len(cells) > len(headers) else "fewer"
    hint = " (a delimiter inside an unquoted value?)" if more_or_fewer == "more" else ""
    return RowError(
        line,
        "row",
        f"{len(cells)} values for {len(headers)} columns: {more_or_fewer} values than the header{hint}",
    )


def _checked_rows(reader: Iterator[list[str]], headers: list[str], errors: list[RowError]) -> Iterator[dict[str, str]]:
    """The rows as dicts, skipping empty lines; notes in `errors` each row of the wrong length."""
    line = 1  # as customers_import counts: the header is line 1, then each non-empty row
    for cells in reader:
        if not cells:
            continue  # an empty line
        line += 1
        if len(cells) != len(headers):
            errors.append(_row_length_error(line, cells, headers))
        yield {name: cell.strip() for name, cell in zip(headers, cells, strict=False)}


def _count_rows(reader: Iterator[list[str]], headers: list[str], errors: list[RowError]) -> int:
    """How many rows _checked_rows gives, with the same errors, without making their dicts."""
    count, width = 0, len(headers)
    for cells in reader:
        if not cells:
            continue  # an empty line
        count += 1
        if len(cells) != width:
            errors.append(_row_length_error(count + 1, cells, headers))
    return count


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
    errors = _header_errors(headers)
    rows = list(_checked_rows(reader, headers, errors))
    if errors:
        raise ImportRefused(errors)
    return CsvFile(headers, rows, delimiter)


class NotUtf8(Exception):
    """The file is not UTF-8 text: `reason` at byte `position` (counted from the file's start)."""

    def __init__(self, reason: str, position: int):
        self.reason, self.position = reason, position
        super().__init__(f"{reason} at byte {position}")


class CsvFileRows:
    """
    A CSV file's rows, read from the file each time they are iterated (a million rows as
    dicts would take gigabytes): only its number of rows is kept.
    """

    def __init__(self, path: Path, *, delimiter: str, headers: list[str], count: int):
        self.path, self.delimiter, self.headers, self.count = path, delimiter, headers, count

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[dict[str, str]]:
        with self.path.open(encoding="utf-8-sig", newline="") as stream:
            reader = csv.reader(stream, delimiter=self.delimiter)
            next(reader, None)
            yield from _checked_rows(reader, self.headers, [])


def _first_undecodable_byte(path: Path) -> NotUtf8:
    decoder = codecs.getincrementaldecoder("utf-8")()
    position = 0
    with path.open("rb") as stream:
        while block := stream.read(1 << 20):
            pending = len(decoder.getstate()[0])
            try:
                decoder.decode(block)
            except UnicodeDecodeError as error:
                return NotUtf8(error.reason, position - pending + error.start)
            position += len(block)
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError as error:
        return NotUtf8(error.reason, position - len(decoder.getstate()[0]) + error.start)
    return NotUtf8("undecodable", position)


def read_csv_file(path: Path) -> CsvFile:
    """
    read_csv for a file on disk, in bounded memory: one pass checks the header and every row's
    length (the same refusals as read_csv) and counts the rows; the rows are read again, one at a
    time, when the import iterates them. Raises NotUtf8, OSError and csv.Error as reading does.
    """
    try:
        with path.open(encoding="utf-8-sig", newline="") as stream:
            delimiter = _sniff_delimiter(stream.readline().rstrip("\n"))
            stream.seek(0)
            reader = csv.reader(stream, delimiter=delimiter)
            headers = [h.strip() for h in next(reader, [])]
            errors = _header_errors(headers)
            count = _count_rows(reader, headers, errors)
    except UnicodeDecodeError:
        raise _first_undecodable_byte(path) from None
    if errors:
        raise ImportRefused(errors)
    return CsvFile(headers, CsvFileRows(path, delimiter=delimiter, headers=headers, count=count), delimiter)


# Checks the apps that keep records of addresses supply, run for every address a file
# would give a new customer record: check(addresses) -> {address: why it is refused}.
NewAddressCheck = Callable[[list[str]], dict[str, str]]
_new_address_checks: dict[str, NewAddressCheck] = {}


def register_new_address_check(name: str, check: NewAddressCheck) -> None:
    _new_address_checks[name] = check


def customers_import(
    *,
    headers: list[str],
    rows: list[dict[str, str]] | CsvFileRows,
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
    if connection.vendor == "postgresql" and len(rows) >= IMPORT_COPY_MIN_ROWS and _may_create_temporary_tables():
        return _import_by_copy(
            headers=headers, rows=rows, update=update, clear_blank=clear_blank, options=options, progress=progress
        )

    # Existing customers matched by address, fetched in chunks rather than a query per row.
    emails = [r.get("email", "").strip().lower() for r in rows]
    existing: dict[str, Customer] = {}
    for start in range(0, len(emails), 5000):
        # An address with a NUL character is refused by the row check; PostgreSQL cannot
        # even compare one.
        chunk = [e for e in emails[start : start + 5000] if e and "\x00" not in e]
        for customer in Customer.objects.alias(email_lower=Lower("email")).filter(email_lower__in=chunk):
            existing[customer.email.lower()] = customer

    checker = _RowChecker(headers=headers, update=update, clear_blank=clear_blank)
    valid: list[_ValidRow] = []
    with _remembered_choice_checks():
        for index, row in enumerate(progress(rows)):
            checked = checker.check(index + 2, row, existing)  # line 1 is the header
            if checked is not None:
                valid.append(checked)
    errors.extend(checker.errors)
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


class _RowChecker:
    """
    Checks each row as CustomerImportRowForm does, with the same messages, and the file's
    addresses against each other and the existing customers; collects the errors.

    Fast enough for a million rows: one form is bound to each row in turn instead of one
    form built per row (building one deep-copies its 14 fields), and the country, language
    and currency checks (the form's and the model's each scan hundreds of options per value)
    are remembered per value for the import's duration (_remembered_choice_checks). The
    uniqueness checks keep one entry per address: the line it was first seen on.
    """

    def __init__(self, *, headers: list[str], update: bool, clear_blank: bool):
        self.headers, self.update, self.clear_blank = headers, update, clear_blank
        self.columns = [name for name in IMPORT_FIELDS if name in headers]
        self.absent = [name for name in IMPORT_FIELDS if name not in headers]
        self.seen: dict[str, int] = {}
        self.errors: list[RowError] = []
        self.form = CustomerImportRowForm(data={})
        for form_field in self.form.fields.values():
            if hasattr(form_field, "valid_value"):  # choice fields: valid_value(value) scans the choices
                form_field.valid_value = functools.cache(form_field.valid_value)
        self.fast = FastRowCheck(self.form)

    def _bound_form(self, data: dict[str, Any], instance: Customer | None) -> CustomerImportRowForm:
        form = self.form
        form.data = data
        form.instance = copy.copy(instance) if instance is not None else Customer()
        form._errors = None  # type: ignore[attr-defined]  # Django's private cache: full_clean() runs again
        return form

    def check(self, line: int, row: dict[str, str], existing: dict[str, Customer]) -> _ValidRow | None:
        """The checked row, or None when it has errors (noted in self.errors)."""
        instance = existing.get(row.get("email", "").lower()) if self.update else None
        return self.finish(line, self.clean(line, row, instance), existing)

    def clean(self, line: int, row: dict[str, str], instance: Customer | None) -> _CleanRow:
        """The row's own checks (the form's, each extension's): what needs no other row."""
        row_errors: list[RowError] = []
        # A new customer's row the fast check vouches for has the form's cleaned values (it
        # reads the row's imported columns as the form reads `data`, an absent one as blank);
        # any other row is bound to the form, for its messages.
        if instance is not None:
            cleaned = None
        elif any(name in row for name in self.absent):  # a value the header does not name: not read
            cleaned = self.fast.clean({name: row.get(name, "") for name in self.columns})
        else:
            cleaned = self.fast.clean(row)
        if cleaned is None:
            data = {name: row.get(name, "") for name in self.columns}
            if instance is not None:
                # Columns absent from the file keep their current values.
                for name in IMPORT_FIELDS:
                    if name not in data or (data[name] == "" and not self.clear_blank):
                        data[name] = getattr(instance, name)
            form = self._bound_form(data, instance)
            if not form.is_valid():
                for field_name, field_errors in form.errors.as_data().items():
                    for error in field_errors:
                        if error.code == "duplicate_email":
                            continue  # reported by finish(), with the hint about --update
                        for message in error.messages:
                            row_errors.append(RowError(line, field_name if field_name != "__all__" else "row", message))
            cleaned = form.cleaned_data
        extension_values = {}
        extension_errors: list[RowError] = []
        for extension in _import_extensions:
            extension_cleaned, ext_errors = extension.clean_row(row)
            extension_values[extension.name] = extension_cleaned
            for column, message in ext_errors.items():
                extension_errors.append(RowError(line, column, message))
        return _CleanRow(cleaned, row_errors, extension_values, extension_errors)

    def finish(self, line: int, clean: _CleanRow, existing: dict[str, Customer]) -> _ValidRow | None:
        """
        The row checked against the rest of the file and the existing customers: the checked
        row, or None when it has errors (noted in self.errors with its own, in that order).
        """
        update = self.update
        row_errors = list(clean.errors)
        email = clean.cleaned.get("email")
        if email:
            seen = self.seen
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
        row_errors.extend(clean.extension_errors)
        if row_errors:
            self.errors.extend(row_errors)
            return None
        return (line, clean.cleaned, existing.get(email) if update and email else None, clean.extension_values)


class _CleanRow(NamedTuple):
    """A row's own checks: the cleaned values (what the form cleaned of them), the form's
    errors, and each extension's cleaned values and errors."""

    cleaned: dict[str, Any]
    errors: list[RowError]
    extension_values: dict[str, Any]
    extension_errors: list[RowError]


@contextlib.contextmanager
def _frozen_heap() -> Iterator[None]:
    """
    While it lasts, the objects that exist when it starts (Django's own, several hundred
    thousand) are left out of garbage collection: a large file makes millions of short-lived
    dicts, and each full collection walked them all; forked workers also keep those pages
    shared. They are collected as before afterwards.
    """
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


# The model fields whose check depends on the value alone and scans a list of choices.
_REMEMBERED_MODEL_FIELDS = ("country", "language", "currency")


@contextlib.contextmanager
def _remembered_choice_checks() -> Iterator[None]:
    """
    While it lasts, the model's country, language and currency fields remember the outcome of
    clean(value) per value (a result or the ValidationError). The outcome is the same for every
    call: clean() of these fields reads only the value and the fixed choices.
    """
    # Concrete fields (country, language, currency), not relations: get_field's hint says either.
    fields = [cast(Field, Customer._meta.get_field(name)) for name in _REMEMBERED_MODEL_FIELDS]
    if "clean" in vars(fields[0]):  # already in place (nested)
        yield
        return
    for model_field in fields:
        model_field.clean = _remembering(model_field.clean)  # type: ignore[method-assign,assignment]  # undone below
    try:
        yield
    finally:
        for model_field in fields:
            del model_field.clean


def _remembering(clean: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    outcomes: dict[Any, tuple[bool, Any]] = {}

    def remembered(value: Any, model_instance: Any) -> Any:
        key = (type(value), str(value))  # a str, or a django_countries Country (its code)
        known = outcomes.get(key)
        if known is None:
            try:
                known = (True, clean(value, model_instance))
            except ValidationError as error:
                known = (False, error)
            outcomes[key] = known
        ok, outcome = known
        if ok:
            return outcome
        raise ValidationError(list(outcome.error_list))

    return remembered


# The customer columns an import writes besides IMPORT_FIELDS, for a new customer: what
# Customer() and bulk_create would give it. %(now)s is the import's timestamp.
_NEW_CUSTOMER_COLUMNS = {
    "public_id": "gen_random_uuid()",
    "notes": "''",
    "signup_user_agent": "''",
    "created_at": "%(now)s",
    "updated_at": "%(now)s",
    "link_generation": "0",
}


def _import_by_copy(
    *,
    headers: list[str],
    rows: Iterable[dict[str, str]],
    update: bool,
    clear_blank: bool,
    options: dict[str, Any],
    progress: Callable[[Iterable], Iterator],
) -> ImportReport:
    """
    customers_import on PostgreSQL for a large file, in one transaction: one streaming pass
    checks the rows IMPORT_CHECK_CHUNK_SIZE at a time (one look-up of existing customers per
    chunk) and COPYs the new customers' checked values into a temporary table; updated
    customers are written per chunk as in the batch path; then one INSERT … SELECT moves the
    new ones into the customer table. Any bad row, or an address someone added meanwhile,
    rolls everything back. Memory holds one chunk, the addresses seen (for duplicates within
    the file) and the rows that carry consent, not the file.
    """
    report = ImportReport()
    checker = _RowChecker(headers=headers, update=update, clear_blank=clear_blank)
    staged = ["line", *IMPORT_FIELDS]
    copy_row = _copy_row_maker(checker)
    workers = _check_workers(len(rows) if isinstance(rows, Sized) else 0, update=update)
    # (line, email, extension values) of the rows an extension has something to record for.
    pending: list[tuple[int, str, dict[str, Any]]] = []
    new_rows = 0
    now = timezone.now()
    with transaction.atomic(), disable_auditlog(), connection.cursor() as cursor:
        # Dropped at commit, or below when this runs inside a caller's transaction.
        cursor.execute(
            "CREATE TEMPORARY TABLE customer_import_staging (line integer PRIMARY KEY, "
            + ", ".join(f"{connection.ops.quote_name(name)} text NOT NULL" for name in IMPORT_FIELDS)
            + ") ON COMMIT DROP"
        )
        quote = connection.ops.quote_name
        copy_sql = f"COPY customer_import_staging ({', '.join(quote(n) for n in staged)}) FROM STDIN"
        chunk: list[tuple[int, dict[str, str]]] = []

        def check_chunk(chunk: list[tuple[int, dict[str, str]]], cleaned: _WorkerChunk | None = None) -> None:
            """Check a chunk's rows; `cleaned`: their own checks, done by a worker process."""
            nonlocal new_rows
            existing = _existing_customers([row.get("email", "").strip().lower() for _line, row in chunk])
            if cleaned is None:
                valid = [checked for line, row in chunk if (checked := checker.check(line, row, existing)) is not None]
            else:
                answers, block = cleaned
                valid = [
                    checked
                    for line, clean in answers
                    if (checked := checker.finish(line, _answered(clean), existing)) is not None
                ]
            new = [checked for checked in valid if checked[2] is None]
            new_lines = {cleaned["email"]: line for line, cleaned, _instance, _values in new}
            for check in _new_address_checks.values():
                for address, reason in check(list(new_lines)).items():
                    checker.errors.append(RowError(new_lines[address], "email", reason))
            pending.extend(
                (line, cleaned["email"], values) for line, cleaned, _instance, values in valid if any(values.values())
            )
            if checker.errors:
                return  # nothing more is written: the import is refused at the end
            if new:
                with cursor.cursor.copy(copy_sql) as copy_in:
                    if cleaned is not None:
                        # Without an error anywhere, every row of the chunk is a new customer,
                        # and the worker wrote them: its block as it is.
                        copy_in.write(block)
                    else:
                        for line, values, _instance, _values in new:
                            copy_in.write_row(copy_row(line, values))
                new_rows += len(new)
            updated = [checked for checked in valid if checked[2] is not None]
            if updated:
                _import_batch_write(updated, headers=headers, report=report, journal=_ImportJournal())

        with _remembered_choice_checks(), _frozen_heap():
            if workers:
                _check_in_workers(progress(rows), headers=headers, workers=workers, check_chunk=check_chunk)
            else:
                for index, row in enumerate(progress(rows)):
                    chunk.append((index + 2, row))  # line 1 is the header
                    if len(chunk) >= IMPORT_CHECK_CHUNK_SIZE:
                        check_chunk(chunk)
                        chunk = []
                if chunk:
                    check_chunk(chunk)
        if checker.errors:
            raise ImportRefused(sorted(checker.errors, key=lambda error: error.line))
        if new_rows:
            columns = [*IMPORT_FIELDS, *_NEW_CUSTOMER_COLUMNS]
            insert = (
                f"INSERT INTO {quote(Customer._meta.db_table)} ({', '.join(quote(c) for c in columns)}) "
                f"SELECT {', '.join([*(quote(n) for n in IMPORT_FIELDS), *_NEW_CUSTOMER_COLUMNS.values()])} "
                "FROM customer_import_staging ORDER BY line"
            )
            try:
                with transaction.atomic():
                    cursor.execute(insert, {"now": now})
            except IntegrityError:
                # The file was checked against the customers that existed then; someone added
                # one of its addresses since (a signup, staff, another import).
                cursor.execute(
                    f"SELECT s.line FROM customer_import_staging s JOIN {quote(Customer._meta.db_table)} c "
                    "ON lower(c.email) = s.email ORDER BY s.line"
                )
                taken = [line for (line,) in cursor.fetchall()]
                raise ImportRefused(
                    [RowError(line, "email", _ADDED_MEANWHILE) for line in taken]
                    or [RowError(1, "file", "the database refused the import; nothing was imported: try again")]
                ) from None
            report.created += new_rows
        cursor.execute("DROP TABLE customer_import_staging")
    # Consent only once every customer is committed, as in the batch path.
    if pending:
        batch: list[tuple[int, str, dict[str, Any]]] = []
        for item in progress(pending):
            batch.append(item)
            if len(batch) >= IMPORT_CONSENT_BATCH_SIZE:
                _import_extensions_apply(_written_rows(batch), options=options, report=report)
                batch = []
        if batch:
            _import_extensions_apply(_written_rows(batch), options=options, report=report)
    return report


# A file of at least this many new customers has its rows' own checks (the form's, the
# extensions') done by settings.IMPORT_CHECK_WORKERS processes, a chunk each at a time, on a machine with
# that many cores; the parent keeps the checks against the rest of the file and the database.
IMPORT_PARALLEL_MIN_ROWS = 50_000
# Chunks handed to the workers and not yet taken back, at most: memory holds these.
_CHUNKS_IN_FLIGHT_PER_WORKER = 2

# A chunk as a worker gives it back: each row's line and own checks (of the cleaned values
# only the address; for a row without an error or extension values only its address), and
# what COPY reads for the rows without an error of their own (text format, in file order).
_WorkerChunk = tuple[list[tuple[int, _CleanRow | str | None]], bytes]
# COPY's text format: a backslash, tab or line break in a value is escaped with a backslash.
_COPY_TEXT_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _answered(clean: _CleanRow | str | None) -> _CleanRow:
    """A worker's answer for a row as finish() takes it."""
    if isinstance(clean, _CleanRow):
        return clean
    return _CleanRow({"email": clean} if clean else {}, [], {}, [])


def _copy_text(values: list[Any]) -> str:
    """One row in COPY's text format."""
    return (
        "\t".join(
            "\\N" if value is None else (value if value.__class__ is str else str(value)).translate(_COPY_TEXT_ESCAPES)
            for value in values
        )
        + "\n"
    )


def _check_workers(rows: int, *, update: bool) -> int:
    """How many worker processes check the rows: none for an update (a row's check reads its
    customer), a small file, or a machine with one core."""
    workers = settings.IMPORT_CHECK_WORKERS
    if update or rows < IMPORT_PARALLEL_MIN_ROWS or workers < 2:
        return 0
    return workers if len(os.sched_getaffinity(0)) >= workers else 0


def _check_in_workers(
    rows: Iterable[dict[str, str]],
    *,
    headers: list[str],
    workers: int,
    check_chunk: Callable[[list[tuple[int, dict[str, str]]], _WorkerChunk], None],
) -> None:
    """
    Hand the rows to `workers` forked processes IMPORT_CHECK_CHUNK_SIZE at a time and give each
    chunk, in file order, with the workers' answers to check_chunk. A few chunks are in flight
    at a time, so memory stays bounded whatever the file's size; a worker's exception is raised
    here.
    """
    in_flight: collections.deque[tuple[list[tuple[int, dict[str, str]]], AsyncResult]] = collections.deque()
    # Forked: the workers start at once with Django set up; they never use the database (see
    # _check_worker_start).
    with multiprocessing.get_context("fork").Pool(
        workers, initializer=_check_worker_start, initargs=(headers,)
    ) as pool:
        chunk: list[tuple[int, dict[str, str]]] = []
        for index, row in enumerate(rows):
            chunk.append((index + 2, row))  # line 1 is the header
            if len(chunk) >= IMPORT_CHECK_CHUNK_SIZE:
                in_flight.append((chunk, pool.apply_async(_check_rows_in_worker, (chunk,))))
                chunk = []
                if len(in_flight) >= workers * _CHUNKS_IN_FLIGHT_PER_WORKER:
                    done, answer = in_flight.popleft()
                    check_chunk(done, answer.get())
        if chunk:
            in_flight.append((chunk, pool.apply_async(_check_rows_in_worker, (chunk,))))
        while in_flight:
            done, answer = in_flight.popleft()
            check_chunk(done, answer.get())


# In a worker process: its row checker, and the database connections it inherited.
_worker_checker: _RowChecker | None = None
_worker_inherited: list[Any] = []


def _check_worker_start(headers: list[str]) -> None:
    global _worker_checker
    # The parent's connection is the parent's (its transaction, its socket): keep the object
    # alive, so that nothing here closes it, and have any use here open one of its own.
    for conn in connections.all(initialized_only=True):
        _worker_inherited.append(conn.connection)
        conn.connection = None
    _worker_checker = _RowChecker(headers=headers, update=False, clear_blank=False)


def _check_rows_in_worker(chunk: list[tuple[int, dict[str, str]]]) -> _WorkerChunk:
    """Each row's own checks, and what COPY reads for the rows without an error of their own."""
    checker = _worker_checker
    assert checker is not None  # set by _check_worker_start
    copy_row = _copy_row_maker(checker)
    answers: list[tuple[int, _CleanRow | str | None]] = []
    block: list[str] = []
    for line, row in chunk:
        clean = checker.clean(line, row, None)
        email = clean.cleaned.get("email")
        if clean.errors or clean.extension_errors or any(clean.extension_values.values()):
            answers.append(
                (line, clean._replace(cleaned={"email": email} if email else {}))  # the address is all finish() reads
            )
        else:
            answers.append((line, email))
        if not clean.errors and not clean.extension_errors:
            block.append(_copy_text(copy_row(line, clean.cleaned)))
    return answers, "".join(block).encode()


def _copy_row_maker(checker: _RowChecker) -> Callable[[int, dict[str, Any]], list[Any]]:
    """What COPY writes for a checked new customer: its line and each field's stored value."""
    # The imported columns are fields, not relations: get_field's hint says either.
    prepare = [_copy_preparer(cast(Field, Customer._meta.get_field(name))) for name in IMPORT_FIELDS]
    # A phone number the fast check gave comes with what the model stores for it.
    prepare_phone = prepare[IMPORT_FIELDS.index("phone")]
    stored_phone = checker.fast.stored_phone
    prepare[IMPORT_FIELDS.index("phone")] = lambda value: (
        value if value == "" else stored if (stored := stored_phone(value)) is not None else prepare_phone(value)
    )
    pairs = list(zip(prepare, IMPORT_FIELDS, strict=True))
    return lambda line, cleaned: [line, *[prep(cleaned[name]) for prep, name in pairs]]


# Values remembered per field by _copy_preparer (choices, phone numbers), at most.
_COPY_PREPARED_KEPT = 4096


def _copy_preparer(model_field: Field) -> Callable[[Any], Any]:
    """
    What COPY writes for a field's cleaned value: its get_prep_value. A plain CharField gives
    a string back as it is, so it is not asked for one; another field's answer is remembered per
    value (a country, or a phone number by its text as typed: it is parsed the same way each
    time, so formatting it once is enough).
    """
    prep = model_field.get_prep_value
    if type(model_field).get_prep_value is models.CharField.get_prep_value:
        return lambda value: value if value.__class__ is str else prep(value)
    remembered: dict[tuple[type, Any], Any] = {}

    def prepared(value: Any) -> Any:
        if isinstance(value, PhoneNumber):
            if value.raw_input is None:
                return prep(value)
            key: tuple[type, Any] = (PhoneNumber, value.raw_input)
        elif value.__class__ is str:
            key = (str, value)
        else:
            return prep(value)
        if key not in remembered:
            if len(remembered) >= _COPY_PREPARED_KEPT:
                remembered.clear()
            remembered[key] = prep(value)
        return remembered[key]

    return prepared


def _may_create_temporary_tables() -> bool:
    """
    Whether this role may create the staging table (TEMPORARY on the database: migrate grants
    it; a database whose PUBLIC rights were revoked may lack it). Without it, batches.
    """
    with connection.cursor() as cursor:
        cursor.execute("SELECT has_database_privilege(current_database(), 'TEMPORARY')")
        return cursor.fetchone()[0]


class _AnyOf(Func):
    """PostgreSQL's `expression = ANY(array)`: one parameter, however long the list."""

    arg_joiner = " = ANY("
    template = "%(expressions)s)"
    output_field = models.BooleanField()


def _existing_customers(emails: list[str]) -> dict[str, Customer]:
    """The customers these addresses name, by address, one query per 5,000 addresses."""
    existing: dict[str, Customer] = {}
    for start in range(0, len(emails), 5000):
        # An address with a NUL character is refused by the row check; PostgreSQL cannot
        # even compare one.
        chunk = [e for e in emails[start : start + 5000] if e and "\x00" not in e]
        if connection.vendor == "postgresql":
            # One array rather than 5,000 parameters: building and parsing those cost more
            # than the query (the unique index on lower(email) serves either).
            found = Customer.objects.filter(
                _AnyOf(Lower("email"), Value(chunk, output_field=ArrayField(models.TextField())))
            )
        else:
            found = Customer.objects.alias(email_lower=Lower("email")).filter(email_lower__in=chunk)
        for customer in found:
            existing[customer.email.lower()] = customer
    return existing


def _written_rows(batch: list[tuple[int, str, dict[str, Any]]]) -> list[_WrittenRow]:
    by_email = _existing_customers([email for _line, email, _values in batch])
    return [(line, by_email[email], values) for line, email, values in batch if email in by_email]


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


_ADDED_MEANWHILE = "a customer with this address was added while the file was being imported"


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
    errors = [RowError(new_rows[email], "email", _ADDED_MEANWHILE) for email in sorted(taken, key=new_rows.__getitem__)]
    return errors or [RowError(1, "file", "the database refused the import; nothing was imported: try again")]
