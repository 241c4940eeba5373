from django.db import models
from django.db.models import Q
from django.utils import timezone

from customers.models import Customer


class WebhookEvent(models.Model):
    """
    One verified notification from a reseller, stored as it came before anything is applied,
    so a failure while applying it loses nothing and it can be processed again.
    """

    class Status(models.TextChoices):
        RECEIVED = "received", "Received, not yet processed"
        PROCESSED = "processed", "Processed"
        OUTDATED = "outdated", "Older than data already applied (kept, changed nothing)"
        IGNORED = "ignored", "Not relevant (nothing to apply)"
        WAITING = "waiting", "Waiting for the customer to arrive"
        NEEDS_ATTENTION = "needs_attention", "Needs attention"

    provider = models.CharField(max_length=30)
    event_id = models.CharField("event ID", max_length=100)
    event_type = models.CharField(max_length=100)
    occurred_at = models.DateTimeField(help_text="When it happened at the reseller.")
    received_at = models.DateTimeField(default=timezone.now)
    # The reseller's id of the thing the event is about (customer, address, business,
    # transaction, adjustment): an older event about the same thing never overwrites a newer one.
    subject_id = models.CharField(max_length=100, blank=True)
    customer = models.ForeignKey(
        Customer, null=True, blank=True, on_delete=models.SET_NULL, related_name="reseller_notifications"
    )
    payload = models.JSONField(help_text="The notification's body as it came (personal data).")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.RECEIVED)
    attempts = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    redacted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        verbose_name = "reseller notification"
        verbose_name_plural = "reseller notifications"
        constraints = [
            # A reseller sends the same event more than once: it is stored (and applied) once.
            models.UniqueConstraint(fields=["provider", "event_id"], name="webhook_event_once_per_provider"),
        ]
        indexes = [
            # "Is there a newer event about this subject already applied?"
            models.Index(fields=["provider", "subject_id", "-occurred_at"], name="webhook_event_by_subject"),
            # The admin's "needs attention" count and the list filtered by status.
            models.Index(
                fields=["status"],
                name="webhook_event_unfinished",
                condition=Q(status__in=["received", "waiting", "needs_attention"]),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.provider} {self.event_type} {self.event_id}"
