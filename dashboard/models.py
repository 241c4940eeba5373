import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class Figures(models.Model):
    """
    The dashboard's aggregates, one row per panel, recomputed by a beat task
    (dashboard.tasks.figures_refresh, every DASHBOARD_REFRESH_SECONDS).

    Refreshed by beat rather than updated by the ledger and send path: counting there would put
    a hot counter row inside every consent decision and every batch claim (the busiest rows of
    the system, and a lock every unsubscribe and every worker would queue on), and a counter
    kept by hand drifts the day one code path forgets it. A full recount every few minutes is a
    few seconds of one worker at a million customers, cannot drift, and the page reads one row
    per panel whatever the size of the tables.
    """

    name = models.CharField(max_length=50)
    data = models.JSONField(default=dict)
    computed_at = models.DateTimeField(default=timezone.now)
    took_ms = models.PositiveIntegerField("took (ms)", default=0)

    class Meta:
        verbose_name = "dashboard figures"
        verbose_name_plural = "dashboard figures"
        constraints = [models.UniqueConstraint(fields=["name"], name="dashboard_figures_one_per_name")]

    def __str__(self) -> str:
        return f"{self.name} at {self.computed_at:%Y-%m-%d %H:%M}"


class Heartbeat(models.Model):
    """When a process last showed it was alive: "beat" when it sent the heartbeat, "worker:<host>" when one ran it."""

    name = models.CharField(max_length=200)
    last_seen = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["name"], name="heartbeat_one_per_process")]

    def __str__(self) -> str:
        return f"{self.name} seen {self.last_seen:%Y-%m-%d %H:%M:%S}"


class ImportJob(models.Model):
    """
    A customer import started from the admin: the uploaded file, its validation report, and
    once confirmed the Celery task's progress and outcome. The file's text is kept only until
    the import has run (or was refused): it holds personal data.
    """

    class Status(models.TextChoices):
        REFUSED = "refused", "Refused (bad rows; nothing imported)"
        CHECKED = "checked", "Checked, waiting for confirmation"
        QUEUED = "queued", "Confirmed, waiting for a worker"
        RUNNING = "running", "Importing"
        DONE = "done", "Imported"
        FAILED = "failed", "Failed (nothing imported)"
        INCOMPLETE = "incomplete", "Customers imported, consent partly recorded"

    public_id = models.UUIDField("public ID", default=uuid.uuid4, unique=True, editable=False)
    file_name = models.CharField(max_length=255)
    uploaded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    uploaded_at = models.DateTimeField(default=timezone.now)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices)
    update = models.BooleanField("update existing customers", default=False)
    clear_blank = models.BooleanField("a blank cell clears the field", default=False)
    evidence = models.CharField(max_length=500, blank=True)
    content = models.TextField(blank=True, help_text="The file's text, until it has been imported.")
    rows = models.PositiveIntegerField(default=0)
    # Progress while a worker writes it: the step and how far it got.
    step = models.CharField(max_length=100, blank=True)
    done = models.PositiveIntegerField(default=0)
    total = models.PositiveIntegerField(default=0)
    created = models.PositiveIntegerField(default=0)
    updated = models.PositiveIntegerField(default=0)
    unchanged = models.PositiveIntegerField(default=0)
    errors = models.JSONField(default=list, blank=True, help_text="The bad rows: line, field and message.")
    message = models.TextField(blank=True)

    class Meta:
        ordering = ["-uploaded_at", "-id"]
        verbose_name = "customer import"
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=["refused", "checked", "queued", "running", "done", "failed", "incomplete"]),
                name="import_job_known_status",
            ),
            models.CheckConstraint(
                condition=Q(status__in=["checked", "queued", "running"]) | Q(content=""),
                name="import_job_file_kept_only_until_run",
            ),
        ]
        permissions = [("import_customers", "Can import customers from a CSV file")]

    def __str__(self) -> str:
        return f"Import of {self.file_name} ({self.get_status_display()})"

    @property
    def percent(self) -> int:
        if self.status == self.Status.DONE:
            return 100
        return int(100 * self.done / self.total) if self.total else 0

    @property
    def is_finished(self) -> bool:
        return self.status in (self.Status.DONE, self.Status.FAILED, self.Status.INCOMPLETE, self.Status.REFUSED)
