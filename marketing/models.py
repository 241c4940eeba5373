import uuid

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django_countries.fields import CountryField

from consents.models import Purpose
from customers.models import Customer, Product
from privacy.models import AccessLog

from .rendering import TemplateRefused, check_template


def _default_from() -> str:
    return settings.DEFAULT_FROM_EMAIL


def _default_reply_to() -> str:
    return settings.MARKETING_REPLY_TO


class Campaign(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        SCHEDULED = "scheduled", "Scheduled"
        SENDING = "sending", "Sending"
        PAUSED = "paused", "Paused"
        SENT = "sent", "Sent"
        CANCELLED = "cancelled", "Cancelled"

    public_id = models.UUIDField("public ID", default=uuid.uuid4, unique=True, editable=False)
    name = models.CharField(max_length=200)
    purpose = models.ForeignKey(
        Purpose,
        on_delete=models.PROTECT,
        related_name="campaigns",
        limit_choices_to={"is_marketing": True},
        help_text="Only customers currently consenting to this purpose receive the campaign.",
    )
    subject = models.CharField(max_length=200, help_text="May use placeholders such as {{ first_name }}.")
    text_body = models.TextField(
        "text body", help_text="Plain text. Placeholders: {{ first_name }}, {{ last_name }}, {{ company }}…"
    )
    html_body = models.TextField(
        "HTML body", blank=True, help_text="Optional. Sent as an alternative to the text body."
    )
    from_email = models.CharField("from address", max_length=254, default=_default_from)
    reply_to = models.CharField("reply-to address", max_length=254, blank=True, default=_default_reply_to)
    filter_country = CountryField("only customers in country", blank=True)
    filter_language = models.CharField(
        "only customers with language", max_length=10, blank=True, choices=settings.LANGUAGES
    )
    filter_product = models.ForeignKey(
        Product,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name="only owners of product",
    )
    scheduled_at = models.DateTimeField("send at", null=True, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    scheduled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    dispatched_at = models.DateTimeField(null=True, blank=True, editable=False)
    finished_at = models.DateTimeField(null=True, blank=True, editable=False)
    # The last pause (by staff or automatic), and the last decision to go on after one.
    paused_at = models.DateTimeField(null=True, blank=True, editable=False)
    pause_reason = models.CharField(
        max_length=500,
        blank=True,
        editable=False,
        help_text="Why the campaign paused itself, with the figures; empty when staff paused it.",
    )
    resumed_at = models.DateTimeField(
        null=True,
        blank=True,
        editable=False,
        help_text="Bounce and complaint rates that pause a campaign count the messages sent since.",
    )
    resumed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", editable=False
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(status="draft") | Q(scheduled_at__isnull=False),
                name="campaign_scheduled_has_time",
            ),
        ]
        indexes = [
            # The dispatcher looks for due scheduled campaigns every minute.
            models.Index(fields=["scheduled_at"], name="campaign_due", condition=Q(status="scheduled")),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_editable(self) -> bool:
        return self.status == self.Status.DRAFT

    def clean(self) -> None:
        super().clean()
        errors = {}
        for field in ("subject", "text_body", "html_body"):
            try:
                check_template(getattr(self, field) or "")
            except TemplateRefused as error:
                errors[field] = str(error)
        if "\n" in (self.subject or "") or "\r" in (self.subject or ""):
            errors["subject"] = "The subject must be a single line."
        if self.purpose_id and not Purpose.objects.filter(pk=self.purpose_id, is_marketing=True).exists():
            errors["purpose"] = "Campaigns can only be sent for a marketing purpose."
        if errors:
            raise ValidationError(errors)


class CampaignAction(models.Model):
    """Who scheduled, unscheduled, paused, resumed, cancelled, copied or test-sent a campaign, and when."""

    class Action(models.TextChoices):
        SAVED = "saved", "Saved draft"
        SCHEDULED = "scheduled", "Scheduled"
        UNSCHEDULED = "unscheduled", "Unscheduled (back to draft)"
        DUPLICATED = "duplicated", "Created as a copy"
        PAUSED = "paused", "Paused"
        AUTO_PAUSED = "auto_paused", "Paused itself (bounce or complaint rate)"
        RESUMED = "resumed", "Resumed"
        CANCELLED = "cancelled", "Cancelled"
        TEST_SENT = "test_sent", "Test sent"

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="actions")
    action = models.CharField(max_length=20, choices=Action.choices)
    staff_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    at = models.DateTimeField(default=timezone.now)
    note = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.get_action_display()} by {self.staff_user or 'system'} at {self.at:%Y-%m-%d %H:%M}"


class Delivery(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        SKIPPED = "skipped", "Skipped"
        FAILED = "failed", "Failed"
        UNKNOWN = "unknown", "Unknown (worker stopped mid-send; never re-sent)"
        BOUNCED = "bounced", "Bounced (the provider reported the mailbox does not exist)"

    class SkipReason(models.TextChoices):
        NONE = "", "–"
        CONSENT_WITHDRAWN = "consent_withdrawn", "Consent withdrawn"
        SUPPRESSED = "suppressed", "Address suppressed"
        ERASED = "erased", "Customer erased"
        CANCELLED = "cancelled", "Campaign cancelled"
        FREQUENCY_CAP = "frequency_cap", "Frequency cap"

    campaign = models.ForeignKey(Campaign, on_delete=models.PROTECT, related_name="deliveries")
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="marketing_deliveries")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    skip_reason = models.CharField("why skipped", max_length=20, choices=SkipReason.choices, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    claimed_at = models.DateTimeField(null=True, blank=True)
    message_id = models.CharField("Message-ID", max_length=255, blank=True)
    subject = models.CharField(
        max_length=998, blank=True, help_text="The subject as this customer received it (their data export shows it)."
    )
    sent_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name_plural = "deliveries"
        ordering = ["campaign", "id"]
        constraints = [
            models.UniqueConstraint(fields=["campaign", "customer"], name="delivery_once_per_customer"),
            models.CheckConstraint(
                condition=Q(status="skipped") | Q(skip_reason=""), name="delivery_reason_only_when_skipped"
            ),
        ]
        indexes = [
            # Batches claim queued rows of one campaign by id range; progress counts per status.
            models.Index(fields=["campaign", "status", "id"], name="delivery_by_campaign_status"),
            # The sweep finds rows left "sending" by a worker that died.
            models.Index(fields=["claimed_at"], name="delivery_stuck_sending", condition=Q(status="sending")),
            # The data export lists the messages sent to one customer.
            models.Index(fields=["customer", "sent_at"], name="delivery_by_customer"),
        ]

    def __str__(self) -> str:
        return f"{self.campaign} → customer {self.customer_id}: {self.status}"


class DeliveryEvent(models.Model):
    """
    What a mail provider reported about a message after it left (django-anymail's tracking
    webhooks): bounces, complaints, its own unsubscribes, deliveries. No address is stored:
    the reason has its addresses masked, and the address itself is kept only as the keyed hash
    the suppression list uses (to count soft bounces of an address over days).
    """

    class Kind(models.TextChoices):
        DELIVERED = "delivered", "Delivered"
        BOUNCED = "bounced", "Hard bounce"
        SOFT_BOUNCED = "soft_bounced", "Soft bounce"
        DEFERRED = "deferred", "Deferred (the provider will try again)"
        REJECTED = "rejected", "Rejected by the provider"
        FAILED = "failed", "Failed at the provider"
        COMPLAINED = "complained", "Spam complaint"
        UNSUBSCRIBED = "unsubscribed", "Unsubscribed at the provider"

    class Effect(models.TextChoices):
        NONE = "", "–"
        SUPPRESSED = "suppressed", "Address suppressed"
        COUNTED = "counted", "Soft bounce counted"
        WITHDRAWN = "withdrawn", "Consent withdrawn"
        SUPPRESSED_AND_WITHDRAWN = "suppressed_withdrawn", "Address suppressed and consent withdrawn"
        NOT_FOUND = "not_found", "No delivery or customer found for it"
        ERASED = "erased", "Customer erased: nothing personal recorded"

    provider = models.CharField(max_length=30, help_text="anymail's name for the provider, e.g. postmark.")
    provider_event_id = models.CharField(
        "provider's event ID",
        max_length=255,
        help_text="The provider's own event ID, or (for providers without one) a digest of the event: "
        "a repeated event is recorded once.",
    )
    kind = models.CharField(max_length=20, choices=Kind.choices)
    occurred_at = models.DateTimeField("when", help_text="When the provider says it happened.")
    received_at = models.DateTimeField(default=timezone.now)
    delivery = models.ForeignKey(Delivery, null=True, blank=True, on_delete=models.SET_NULL, related_name="events")
    # Served by delivery_event_by_campaign (campaign, kind): no index of its own.
    campaign = models.ForeignKey(
        Campaign, null=True, blank=True, on_delete=models.SET_NULL, related_name="events", db_index=False
    )
    address_hash = models.CharField(
        max_length=64, blank=True, help_text="Keyed hash (HMAC-SHA256) of the recipient's normalised address."
    )
    reason = models.TextField(blank=True, help_text="The provider's reason, its addresses masked.")
    effect = models.CharField(max_length=20, choices=Effect.choices, blank=True)

    class Meta:
        ordering = ["-occurred_at", "-id"]
        constraints = [
            # Providers send an event more than once: the second is recognised and ignored.
            models.UniqueConstraint(fields=["provider", "provider_event_id"], name="delivery_event_once_per_provider"),
        ]
        indexes = [
            # A campaign's bounce and complaint rates (automatic pause, report) count its events by kind.
            models.Index(fields=["campaign", "kind"], name="delivery_event_by_campaign"),
            # Soft bounces of one address within the window.
            models.Index(
                fields=["address_hash", "occurred_at"],
                name="delivery_event_soft_bounces",
                condition=Q(kind__in=["soft_bounced", "deferred"]),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} ({self.provider}) {self.occurred_at:%Y-%m-%d %H:%M}"


class Suppression(models.Model):
    """An address that must never receive marketing mail, whatever its consent."""

    class Reason(models.TextChoices):
        HARD_BOUNCE = "hard_bounce", "Hard bounce (mailbox does not exist)"
        COMPLAINT = "complaint", "Spam complaint"
        ERASURE = "erasure", "Customer erased"
        STAFF = "staff", "Added by staff"

    address_hash = models.CharField(max_length=64, help_text="Keyed hash (HMAC-SHA256) of the normalised address.")
    reason = models.CharField(max_length=20, choices=Reason.choices)
    created_at = models.DateTimeField(default=timezone.now)
    note = models.CharField(max_length=500, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["address_hash"], name="suppression_address_unique")]

    def __str__(self) -> str:
        return f"{self.get_reason_display()} {self.created_at:%Y-%m-%d}"


class ListExportManager(models.Manager):
    def get_queryset(self):
        return super().get_queryset().filter(action=AccessLog.Action.LIST_EXPORTED)


class ExportLog(AccessLog):
    """
    The list exports (call list, internal-analysis data) as the customers' access log records
    them: that log is the one record of who exported what, when and how many rows; this proxy
    gives the exports their own admin page and their permissions.
    """

    objects = ListExportManager()

    class Meta:
        proxy = True
        permissions = [
            ("export_call_list", "Can export the market-research call list"),
            ("export_internal_analysis", "Can export internal-analysis purchase data"),
        ]
