"""Celery entry points of the privacy app: they call a service."""

from celery import shared_task

from . import services


@shared_task(ignore_result=True)
def retention_apply() -> dict[str, int] | None:
    """Beat, daily: clear IP addresses and user agents past RETENTION_IP_DAYS."""
    run = services.retention_apply()
    return None if run is None else run.counts
