"""
The dashboard's part of a customer's data (privacy.registry): a customer import waiting to be
confirmed or run keeps its file's text, so it holds the customer's row until then. The export
names those files; the erasure takes the customer's rows out of them (the import then runs
without them) and masks any address of theirs in what the import reported.
"""

from __future__ import annotations

import csv
import io
import re
from typing import Any

from django.db import transaction

from common.dates import iso
from customers.imports import read_csv
from customers.models import Customer, normalise_email
from customers.selectors import customer_addresses_ever_held
from privacy.registry import PersonalDataPart

from .models import ImportJob

PENDING = (ImportJob.Status.CHECKED, ImportJob.Status.QUEUED)
ERASED_ADDRESS = "[erased address]"


def _rows_of(job: ImportJob, addresses: set[str]) -> list[dict[str, str]]:
    try:
        rows = read_csv(job.content).rows
    except Exception:  # a file that no longer reads (it was checked when uploaded): nothing matches
        return []
    return [row for row in rows if normalise_email(row.get("email", "")) in addresses]


def _jobs_holding(addresses: set[str]):
    """Pending imports whose file text names one of the addresses (read as CSV to be sure)."""
    pattern = "|".join(re.escape(address) for address in sorted(addresses))
    candidates = ImportJob.objects.filter(status__in=PENDING, content__iregex=pattern) if pattern else []
    return [(job, rows) for job in candidates if (rows := _rows_of(job, addresses))]


class DashboardPart(PersonalDataPart):
    name = "dashboard"
    personal_fields = {"customer_imports": ("email",)}

    def export(self, customer: Customer) -> dict[str, Any]:
        """The customer imports waiting to run whose file holds a row of the customer's."""
        addresses = set(customer_addresses_ever_held(customer))
        return {
            "customer_imports": [
                {"file": job.file_name, "uploaded_at": iso(job.uploaded_at), "email": row["email"].strip()}
                for job, rows in _jobs_holding(addresses)
                for row in rows
            ]
        }

    def erase(self, customer: Customer) -> dict[str, int]:
        addresses = set(customer_addresses_ever_held(customer))
        rows_removed = 0
        with transaction.atomic():
            for job, _rows in _jobs_holding(addresses):
                job = ImportJob.objects.select_for_update().get(pk=job.pk)
                if job.status not in PENDING:
                    continue  # a worker took it meanwhile: it reads the erased-address list
                removed, job.content = _without_rows(job.content, addresses)
                rows_removed += removed
                job.rows = max(job.rows - removed, 0)
                job.message = (
                    f"{job.message} {removed} row(s) were taken out of this file when a customer's data was erased."
                ).strip()
                job.save(update_fields=["content", "rows", "message"])
        masked = 0
        pattern = "|".join(re.escape(address) for address in sorted(addresses))
        for job in ImportJob.objects.filter(message__iregex=pattern) if pattern else []:
            job.message = _masked(job.message, addresses)
            job.save(update_fields=["message"])
            masked += 1
        return {"import_rows_removed": rows_removed, "import_messages_masked": masked}


def _masked(text: str, addresses: set[str]) -> str:
    for address in addresses:
        text = re.sub(re.escape(address), ERASED_ADDRESS, text, flags=re.IGNORECASE)
    return text


def _without_rows(text: str, addresses: set[str]) -> tuple[int, str]:
    """The file's text without the rows whose email is one of the addresses, in its own delimiter."""
    csv_file = read_csv(text)
    out = io.StringIO()
    writer = csv.writer(out, delimiter=csv_file.delimiter, lineterminator="\n")
    writer.writerow(csv_file.headers)
    kept = [row for row in csv_file.rows if normalise_email(row.get("email", "")) not in addresses]
    for row in kept:
        writer.writerow([row.get(header, "") for header in csv_file.headers])
    return len(csv_file.rows) - len(kept), out.getvalue()
