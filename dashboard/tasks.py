"""Celery entry points of the dashboard: they re-read what they need and call a service."""

from __future__ import annotations

import logging

from celery import shared_task
from celery.signals import before_task_publish

from . import imports, services
from .models import ImportJob

logger = logging.getLogger(__name__)

HEARTBEAT_TASK = "dashboard.tasks.heartbeat"


@shared_task(name="dashboard.tasks.figures_refresh")
def figures_refresh() -> None:
    services.figures_refresh()
    services.import_jobs_forget_abandoned()


@shared_task(name="dashboard.tasks.progress_refresh")
def progress_refresh() -> None:
    services.progress_refresh()


@shared_task(name=HEARTBEAT_TASK, bind=True)
def heartbeat(self) -> None:
    """Sent by beat every minute; the worker that runs it notes it is alive (beat noted the sending)."""
    services.heartbeat_record(name=f"worker:{self.request.hostname or 'unknown'}")


@before_task_publish.connect
def _beat_sends_heartbeat(sender=None, **kwargs) -> None:
    # Runs in the process that publishes the heartbeat, which is beat (nothing else sends it):
    # so beat is seen alive even while no worker takes the task.
    if sender == HEARTBEAT_TASK:
        try:
            services.heartbeat_record(name="beat")
        except Exception:  # a heartbeat must never stop beat from sending
            logger.exception("Could not record beat's heartbeat")


@shared_task(name="dashboard.tasks.import_run")
def import_run(job_id: int) -> None:
    job = ImportJob.objects.filter(pk=job_id).first()
    if job is None:
        return
    imports.import_run(job=job)
