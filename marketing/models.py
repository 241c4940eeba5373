import uuid
from collections.abc import Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone, translation
from django_countries.fields import CountryField

from common.languages import customer_language
from consents.models import Purpose
from customers.models import Customer, Product
from privacy.models import AccessLog

from .rendering import TemplateRefused, check_template

if TYPE_CHECKING:
    # django-modeltranslation (translation.py) swaps the managers of the models it translates
    # for its MultilingualManager at start-up; importing it here lets the Django mypy plugin
    # resolve that manager's type (django-stubs#1023).
    import modeltranslation.manager  # noqa: F401


def _default_from() -> str:
    return str(settings.DEFAULT_FROM_EMAIL)


def _default_reply_to() -> str:
    return str(settings.MARKETING_REPLY_TO)


class AudienceSegment(models.Model):
    """
    A saved audience for campaigns: customers in any of the countries, speaking any of the
    languages, owning any of the products, with a product registered within a period, and
    consenting to the campaign's purpose since a date. Empty criteria do not narrow. The
    purpose comes from the campaign, so one segment serves the newsletter and promotions alike.
    """

    name = models.CharField(max_length=200)
    countries = models.JSONField(default=list, blank=True, help_text="ISO country codes; empty: any country.")
    languages = models.JSONField(default=list, blank=True, help_text="Language codes; empty: any language.")
    products = models.ManyToManyField(
        Product, blank=True, related_name="+", help_text="Owners of any of these products; empty: any customer."
    )
    registered_from = models.DateField(
        "registered a product from",
        null=True,
        blank=True,
        help_text="A product (of those above, if any) registered on or after this day.",
    )
    registered_until = models.DateField(
        "registered a product until", null=True, blank=True, help_text="… and on or before this day."
    )
    consenting_since = models.DateField(
        "consenting since at least",
        null=True,
        blank=True,
        help_text="Only customers whose current consent to the campaign's purpose was given on or before this day.",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name", "id"]
        verbose_name = "audience segment"
        constraints = [
            models.UniqueConstraint(fields=["name"], name="audience_segment_name_unique"),
            models.CheckConstraint(
                condition=Q(registered_from__isnull=True)
                | Q(registered_until__isnull=True)
                | Q(registered_until__gte=models.F("registered_from")),
                name="audience_segment_period_in_order",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        super().clean()
        errors = {}
        codes = {code for code, _name in settings.LANGUAGES}
        unknown = [code for code in self.languages or [] if code not in codes]
        if unknown:
            errors["languages"] = "Unknown language code(s): " + ", ".join(unknown)
        if self.registered_from and self.registered_until and self.registered_until < self.registered_from:
            errors["registered_until"] = "The end of the period must not come before its start."
        if errors:
            raise ValidationError(errors)


@dataclass(frozen=True)
class CampaignContent:
    """One language's variant of a campaign."""

    language: str
    subject: str
    text_body: str
    html_body: str


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
    fallback_language = models.CharField(
        max_length=10,
        default="en",
        choices=[(code, name) for code, name in settings.LANGUAGES if code in settings.CUSTOMER_LANGUAGES],
        help_text="Customers whose language has no variant of this campaign receive this language's.",
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
    segment = models.ForeignKey(
        AudienceSegment,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="campaigns",
        verbose_name="audience segment",
        help_text="Only customers in this saved segment (as well as the filters above).",
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

    def save(self, *args: Any, **kwargs: Any) -> None:
        # The untranslated columns (subject, text_body, html_body) hold the fallback variant:
        # django-modeltranslation fills them with the active language's, which may have none.
        with translation.override(self.fallback_language or settings.LANGUAGE_CODE):
            super().save(*args, **kwargs)

    @property
    def is_editable(self) -> bool:
        return self.status == self.Status.DRAFT

    def clean_fields(self, exclude: Collection[str] | None = None) -> None:
        # The untranslated columns are the fallback variant's copy (save); each language's own
        # columns are the ones staff fill in, checked in clean().
        super().clean_fields(exclude={*(exclude or ()), "subject", "text_body", "html_body"})

    def has_variant(self, language: str) -> bool:
        """A variant needs a subject and a text body in its language (the HTML body is optional)."""
        return bool(getattr(self, f"subject_{language}", None) and getattr(self, f"text_body_{language}", None))

    def variant_languages(self) -> list[str]:
        return [code for code in settings.CUSTOMER_LANGUAGES if self.has_variant(code)]

    def language_for(self, language: str | None) -> str:
        """The language of the variant a customer preferring `language` receives: theirs, else the fallback."""
        wanted = customer_language(language)
        return wanted if self.has_variant(wanted) else self.fallback_language

    def content_in(self, language: str) -> "CampaignContent":
        """Subject, text and HTML body of the variant in `language` (its own columns, never another's)."""
        return CampaignContent(
            language=language,
            subject=getattr(self, f"subject_{language}", None) or "",
            text_body=getattr(self, f"text_body_{language}", None) or "",
            html_body=getattr(self, f"html_body_{language}", None) or "",
        )

    def clean(self) -> None:
        super().clean()
        errors = {}
        for code in settings.CUSTOMER_LANGUAGES:
            for name in ("subject", "text_body", "html_body"):
                field = f"{name}_{code}"
                try:
                    check_template(getattr(self, field, None) or "")
                except TemplateRefused as error:
                    errors[field] = str(error)
            subject = getattr(self, f"subject_{code}", None) or ""
            if "\n" in subject or "\r" in subject:
                errors[f"subject_{code}"] = "The subject must be a single line."
            elif bool(subject) != bool(getattr(self, f"text_body_{code}", None)):
                errors[f"subject_{code}" if not subject else f"text_body_{code}"] = (
                    "A language's variant needs both a subject and a text body (or neither)."
                )
        fallback = self.fallback_language
        if not errors and fallback and not self.has_variant(fallback):
            errors[f"subject_{fallback}"] = (
                f"The fallback language ({dict(settings.LANGUAGES).get(fallback, fallback)}) needs a subject "
                "and a text body: customers whose language has no variant receive it."
            )
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

    # No index of their own: delivery_by_campaign_status and delivery_by_customer lead with
    # them. A campaign-only index made the planner scan a whole new campaign for each batch
    # while the table's statistics did not know the campaign yet (docs/benchmarks.md), and
    # every claim and mark (status is indexed, so no update is HOT) wrote to it.
    campaign = models.ForeignKey(Campaign, on_delete=models.PROTECT, related_name="deliveries", db_index=False)
    customer = models.ForeignKey(
        Customer, on_delete=models.CASCADE, related_name="marketing_deliveries", db_index=False
    )
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


class ListExportManager(models.Manager["ExportLog"]):
    def get_queryset(self) -> models.QuerySet["ExportLog"]:
        return super().get_queryset().filter(action=AccessLog.Action.LIST_EXPORTED)


class ExportLog(AccessLog):
    """
    The list exports (call list, internal-analysis data) as the customers' access log records
    them: that log is the one record of who exported what, when and how many rows; this proxy
    gives the exports their own admin page and their permissions.
    """

    objects: ClassVar[ListExportManager] = ListExportManager()

    class Meta:
        proxy = True
        permissions = [
            ("export_call_list", "Can export the market-research call list"),
            ("export_internal_analysis", "Can export internal-analysis purchase data"),
        ]
