import base64
import secrets
import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from rest_framework_api_key.models import AbstractAPIKey


class Scope(models.TextChoices):
    CUSTOMERS_READ = "customers:read", "Read customers"
    CUSTOMERS_WRITE = "customers:write", "Create and correct customers"
    CONSENT_READ = "consent:read", "Read consent and the ledger"
    CONSENT_WRITE = "consent:write", "Record consent decisions"
    REGISTRATIONS_WRITE = "registrations:write", "Create and refund product registrations"
    SUPPRESSION_READ = "suppression:read", "Ask whether an address may be mailed"
    CAMPAIGNS_READ = "campaigns:read", "Read campaign reports"


class ApiKey(AbstractAPIKey):
    """
    A key for one client (the shop, the CRM). Shown once when created, stored hashed (SHA-512,
    by djangorestframework-api-key), identified by its prefix; revoked, never deleted, so the
    access log keeps naming it.
    """

    scopes = models.JSONField(default=list, help_text="What the key may do.")
    last_used_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta(AbstractAPIKey.Meta):
        verbose_name = "API key"
        verbose_name_plural = "API keys"

    @property
    def label(self) -> str:
        """How the access log names the key: its prefix and name (never the secret part)."""
        return f"API key {self.prefix} ({self.name})"

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes


class IdempotencyRecord(models.Model):
    """
    The first answer to a POST that carried an `Idempotency-Key`: a retry with the same key and
    the same body gets this answer again and changes nothing.
    """

    api_key = models.ForeignKey(ApiKey, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    method = models.CharField(max_length=10)
    path = models.CharField(max_length=500)
    fingerprint = models.CharField(max_length=64, help_text="SHA-256 of the request body.")
    status_code = models.PositiveSmallIntegerField(null=True)
    response = models.JSONField(null=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["api_key", "key"], name="idempotency_key_once_per_api_key"),
        ]
        indexes = [
            # Records are kept for API_IDEMPOTENCY_DAYS; the retention job deletes older ones.
            models.Index(fields=["created_at"], name="idempotency_record_age"),
        ]

    def __str__(self) -> str:
        return f"{self.method} {self.path} ({self.key})"


# ---------------------------------------------------------------------------------------
# Outgoing webhooks


class WebhookEventType(models.TextChoices):
    CONSENT_CHANGED = "consent.changed", "consent.changed"
    CUSTOMER_UPDATED = "customer.updated", "customer.updated"
    CUSTOMER_ERASED = "customer.erased", "customer.erased"
    SUPPRESSION_ADDED = "suppression.added", "suppression.added"


WEBHOOK_EVENT_DESCRIPTIONS = {
    WebhookEventType.CONSENT_CHANGED: "a customer's consent for a purpose changed",
    WebhookEventType.CUSTOMER_UPDATED: "a customer's details changed",
    WebhookEventType.CUSTOMER_ERASED: "a customer's personal data was erased",
    WebhookEventType.SUPPRESSION_ADDED: "an address joined the suppression list",
}


def webhook_secret_new() -> str:
    """A Standard Webhooks secret: `whsec_` and 32 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def webhook_message_id_new() -> str:
    return f"msg_{uuid.uuid4().hex}"


class WebhookEndpoint(models.Model):
    """
    A receiver (the CRM, the support desk) of the events it subscribed to, signed with its own
    secret. Disabled by itself after failing for WEBHOOK_DISABLE_AFTER_HOURS; staff are told.
    """

    name = models.CharField(max_length=100, help_text="Who receives these events, e.g. “CRM”.")
    url = models.URLField("URL", max_length=500)
    events = models.JSONField(default=list, help_text="The event types sent to this endpoint.")
    secret = models.CharField(max_length=100, default=webhook_secret_new, editable=False)
    is_active = models.BooleanField("active", default=True)
    may_receive_personal_data = models.BooleanField(
        default=False,
        help_text="Payloads carry public ids only; with this ticked they also carry the customer's address "
        "and changed details. Tick it only for a receiver named in the privacy policy.",
    )
    failing_since = models.DateTimeField(
        null=True, blank=True, help_text="The first failed attempt since the last delivered message."
    )
    disabled_at = models.DateTimeField(null=True, blank=True)
    disabled_reason = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        verbose_name = "webhook endpoint"
        ordering = ["name", "id"]
        permissions = [("view_webhook_secret", "Can see an endpoint's signing secret")]
        constraints = [
            # A disabled endpoint is never active: re-activating it clears the disabling.
            models.CheckConstraint(
                condition=Q(disabled_at__isnull=True) | Q(is_active=False), name="webhook_endpoint_disabled_inactive"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def wants(self, event_type: str) -> bool:
        return self.is_active and event_type in self.events


class WebhookMessage(models.Model):
    """
    One event for one endpoint: what is signed and sent (`payload`), with the same `message_id`
    (`webhook-id`) on every attempt so the receiver can tell a retry from a new event.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed (gave up)"

    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="messages")
    message_id = models.CharField("webhook-id", max_length=40, default=webhook_message_id_new, editable=False)
    event_type = models.CharField(max_length=40, choices=WebhookEventType.choices)
    customer = models.ForeignKey(
        "customers.Customer", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    payload = models.JSONField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(
        default=0, help_text="Attempts since the message was queued or last sent again."
    )
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    delivered_at = models.DateTimeField(null=True, blank=True)
    redacted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "webhook message"
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["message_id"], name="webhook_message_id_unique"),
        ]
        indexes = [
            # The sweeper takes pending messages whose next attempt is due.
            models.Index(fields=["next_attempt_at"], name="webhook_message_due", condition=Q(status="pending")),
        ]

    def __str__(self) -> str:
        # Short enough to wrap on a phone's admin page; the whole id is on the page itself.
        return f"{self.event_type} {self.message_id[:12]}…"


class WebhookAttempt(models.Model):
    """One try at delivering a message; the receiver's reply is kept only as a short masked excerpt."""

    class Outcome(models.TextChoices):
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    message = models.ForeignKey(WebhookMessage, on_delete=models.CASCADE, related_name="attempt_log")
    attempted_at = models.DateTimeField(default=timezone.now)
    outcome = models.CharField(max_length=10, choices=Outcome.choices)
    response_status = models.PositiveSmallIntegerField("response code", null=True, blank=True)
    duration_ms = models.PositiveIntegerField("duration (ms)", default=0)
    error = models.CharField(max_length=300, blank=True)
    response_excerpt = models.CharField(max_length=200, blank=True)

    class Meta:
        verbose_name = "webhook attempt"
        ordering = ["-attempted_at", "-id"]

    def __str__(self) -> str:
        return f"{self.get_outcome_display()} {self.attempted_at:%Y-%m-%d %H:%M:%S}"
