"""
The customer import as staff run it from the admin: upload, check the whole file (every bad
row listed, nothing written), confirm, then a Celery task writes it with customers.imports,
the same code and the same messages as `manage.py import_customers`, all or nothing.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from customers.imports import ImportIncomplete, ImportRefused, RowError, customers_import, read_csv

from .models import ImportJob

# How often a running import writes its progress (rows): about a hundred updates for a
# large file, each a one-row UPDATE outside the import's own transactions.
PROGRESS_EVERY = 500
STEPS = ["Checking every row", "Writing customers", "Recording consent"]


def _errors_json(errors: list[RowError]) -> list[dict[str, Any]]:
    return [{"line": e.line, "field": e.field, "message": e.message, "text": str(e)} for e in errors]


def _refused_message(count: int, file_name: str) -> str:
    # The command line's words, with the file's name for its path.
    return f"{count} problem(s) in {file_name}; nothing was imported."


def _decode(data: bytes, file_name: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ValidationError(
            f"{file_name}: not UTF-8 text ({error.reason} at byte {error.start}); nothing was imported"
        ) from None


@transaction.atomic
def import_check(
    *,
    data: bytes,
    file_name: str,
    staff_user: User,
    update: bool = False,
    clear_blank: bool = False,
    evidence: str = "",
) -> ImportJob:
    """
    Check the whole file and record the outcome as an ImportJob: "refused" with every bad row
    (the file itself is not kept), or "checked" with the counts it would create and update,
    waiting for confirmation. Raises ValidationError for a file that cannot be read at all.
    """
    if clear_blank and not update:
        raise ValidationError("“A blank cell clears the field” only applies to an update import; nothing was imported")
    text = _decode(data, file_name)
    job = ImportJob(
        file_name=file_name[:255],
        uploaded_by=staff_user,
        update=update,
        clear_blank=clear_blank,
        evidence=evidence.strip()[:500],
    )
    try:
        csv_file = read_csv(text)
        if not csv_file.rows:
            raise ValidationError(f"{file_name}: no rows below the header; nothing was imported")
        job.rows = len(csv_file.rows)
        report = customers_import(
            headers=csv_file.headers,
            rows=csv_file.rows,
            update=update,
            clear_blank=clear_blank,
            options={"evidence": job.evidence},
            check_only=True,
        )
    except csv.Error as error:
        raise ValidationError(f"{file_name}: not a readable CSV file ({error}); nothing was imported") from None
    except ImportRefused as refused:
        job.status = ImportJob.Status.REFUSED
        job.errors = _errors_json(refused.errors)
        job.message = _refused_message(len(refused.errors), file_name)
        job.finished_at = timezone.now()
        job.save()
        return job
    job.status = ImportJob.Status.CHECKED
    job.content = text
    job.created, job.updated = report.created, report.updated
    job.message = (
        f"{file_name}: {job.rows} rows checked, no problems. Importing would create {report.created} "
        f"and update {report.updated} customers."
    )
    if csv_file.delimiter != ",":
        job.message = f"{file_name}: read as {csv_file.delimiter_name}-separated values. " + job.message
    job.save()
    return job


def import_confirm(*, job: ImportJob, staff_user: User) -> ImportJob:
    """Confirm a checked import: it is queued, and a worker writes it (tasks.import_run) once this commits."""
    from . import tasks  # the entry point, enqueued after commit

    with transaction.atomic():
        locked = ImportJob.objects.select_for_update().get(pk=job.pk)
        if locked.status != ImportJob.Status.CHECKED:
            raise ValidationError(
                f"This import is {locked.get_status_display().lower()}: it cannot be confirmed again."
            )
        if locked.uploaded_by_id != staff_user.pk:
            raise ValidationError("Only the person who uploaded the file can confirm its import.")
        locked.status = ImportJob.Status.QUEUED
        locked.confirmed_at = timezone.now()
        locked.step = "Waiting for a worker"
        locked.save(update_fields=["status", "confirmed_at", "step"])
        transaction.on_commit(lambda: tasks.import_run.delay(locked.pk))
    return locked


class _Progress:
    """customers_import's progress callable: counts each pass over the rows into the job's row."""

    def __init__(self, job: ImportJob):
        self.job = job
        self.step = 0

    def __call__(self, iterable: Iterable) -> Iterator:
        items = list(iterable)
        step = STEPS[min(self.step, len(STEPS) - 1)]
        self.step += 1
        base = (self.step - 1) * self.job.rows
        self._save(step, base)
        for index, item in enumerate(items, start=1):
            yield item
            if index % PROGRESS_EVERY == 0:
                self._save(step, base + index)
        self._save(step, base + len(items))

    def _save(self, step: str, done: int) -> None:
        ImportJob.objects.filter(pk=self.job.pk).update(step=step, done=min(done, self.job.total))


def import_run(*, job: ImportJob) -> ImportJob:
    """
    Write a confirmed import (the worker's part). The file is checked again (the database may
    have changed since), then written all or nothing; the outcome, and the counts, are kept on
    the job, and the file's text is dropped.
    """
    claimed = ImportJob.objects.filter(pk=job.pk, status=ImportJob.Status.QUEUED).update(
        status=ImportJob.Status.RUNNING, total=job.rows * len(STEPS), done=0, step=STEPS[0]
    )
    if not claimed:
        return job  # another worker took it, or it is no longer waiting
    job.refresh_from_db()
    finish: dict[str, Any] = {"content": "", "finished_at": timezone.now()}
    try:
        csv_file = read_csv(job.content)
        report = customers_import(
            headers=csv_file.headers,
            rows=csv_file.rows,
            update=job.update,
            clear_blank=job.clear_blank,
            options={"evidence": job.evidence},
            progress=_Progress(job),
        )
    except ImportRefused as refused:
        finish |= {
            "status": ImportJob.Status.FAILED,
            "errors": _errors_json(refused.errors),
            "message": _refused_message(len(refused.errors), job.file_name),
        }
    except ImportIncomplete as incomplete:
        report = incomplete.report
        finish |= {
            "status": ImportJob.Status.INCOMPLETE,
            "created": report.created,
            "updated": report.updated,
            "unchanged": report.unchanged,
            "message": f"{job.file_name}: {incomplete}",
        }
    except Exception as error:
        ImportJob.objects.filter(pk=job.pk).update(
            status=ImportJob.Status.FAILED,
            message=f"{job.file_name}: the import failed ({type(error).__name__}); nothing was imported.",
            **finish,
        )
        raise
    else:
        summary = (
            f"Imported {job.file_name}: {report.created} created, {report.updated} updated, "
            f"{report.unchanged} unchanged."
        )
        if report.counters:
            summary += " " + ", ".join(f"{v} {k}" for k, v in sorted(report.counters.items())) + "."
        if report.notes:
            summary += " " + " ".join(report.notes)
        finish |= {
            "status": ImportJob.Status.DONE,
            "created": report.created,
            "updated": report.updated,
            "unchanged": report.unchanged,
            "message": summary,
            "step": "Done",
        }
    ImportJob.objects.filter(pk=job.pk).update(**finish)
    job.refresh_from_db()
    return job
