"""
The consent part of `import_customers`: optional `consent_<purpose>` columns with yes, no
or empty. `yes` grants, `no` records a withdrawal, empty means "never asked" (nothing is
recorded). Any consent column requires `--evidence "…"`, stored as every event's note.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError

from customers.imports import ImportExtension, ImportReport
from customers.models import Customer
from customers.validators import reject_card_numbers
from privacy.selectors import customer_address_was_erased, erased_address_hashes

from .models import Method, PolicyVersion, Purpose, Source
from .services import CustomerErased, consent_set

PREFIX = "consent_"
VALUES = {"yes": True, "no": False, "": None}
# check_file() fills this in the import's options, so apply() looks purposes up once per file.
_PURPOSES_KEY = "_consent_purposes"
_ERASED_KEY = "_erased_address_hashes"


def columns() -> list[str]:
    return [PREFIX + code for code in Purpose.objects.values_list("code", flat=True)]


def check_file(headers: list[str], options: dict[str, Any]) -> list[str]:
    consent_columns = [h for h in headers if h.startswith(PREFIX)]
    options[_PURPOSES_KEY] = {p.code: p for p in Purpose.objects.all()}
    if not consent_columns:
        return []
    options[_ERASED_KEY] = erased_address_hashes()
    errors = []
    if not (options.get("evidence") or "").strip():
        errors.append(
            f"the file has consent columns ({', '.join(consent_columns)}): say how that consent was obtained with "
            '--evidence "…" (it is stored with every consent event)'
        )
    else:
        try:
            reject_card_numbers(options["evidence"])
        except ValidationError as error:
            errors.append(f"--evidence: {' '.join(error.messages)}")
    if PolicyVersion.objects.current() is None:
        errors.append("no privacy policy version is in force yet: add one in admin before importing consent")
    return errors


def clean_row(row: dict[str, str]) -> tuple[dict[str, bool], dict[str, str]]:
    decisions: dict[str, bool] = {}
    errors: dict[str, str] = {}
    for column, raw in row.items():
        if not column.startswith(PREFIX):
            continue
        value = (raw or "").strip().lower()
        if value not in VALUES:
            errors[column] = f"{raw!r} is not a consent answer: use yes, no, or leave it empty (never asked)"
        elif (decision := VALUES[value]) is not None:
            decisions[column.removeprefix(PREFIX)] = decision
    return decisions, errors


def apply(customer: Customer, decisions: dict[str, bool], options: dict[str, Any], report: ImportReport) -> None:
    purposes = options.get(_PURPOSES_KEY) or {p.code: p for p in Purpose.objects.all()}
    if decisions and customer_address_was_erased(customer.email, erased_hashes=options.get(_ERASED_KEY)):
        # An erased person's address never comes back into consent through a list.
        report.count("rows with consent not recorded (address erased)")
        report.notes.append(
            f"{customer.email}: this address belongs to a customer whose data was erased; "
            "no consent was recorded for it."
        )
        return
    for code, granted in decisions.items():
        try:
            event = consent_set(
                customer=customer,
                purpose=purposes[code],
                granted=granted,
                source=Source.IMPORT,
                method=Method.IMPORT,
                note=options["evidence"],
            )
        except CustomerErased:
            # Erased after the customers were written and before consent was: erasure wins.
            report.count("rows with consent not recorded (customer erased meanwhile)")
            report.notes.append(f"customer {customer.public_id}: erased during the import; no consent was recorded.")
            return
        if event is not None:
            report.count("consents granted" if granted else "consents withdrawn")


EXTENSION = ImportExtension(name="consents", columns=columns, check_file=check_file, clean_row=clean_row, apply=apply)
