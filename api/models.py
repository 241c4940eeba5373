from django.conf import settings
from django.db import models
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
