"""
Privacy operations on customer records: data-subject requests, erasures, Art. 19
notifications, the access log and the retention job's runs. Their tables kept the names they
had in the customers app (db_table), so existing databases moved without copying rows.
"""

import calendar
from datetime import datetime

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from customers.models import Customer, ThirdParty
from customers.validators import reject_card_numbers


def add_months(moment: datetime, months: int) -> datetime:
    """The same day `months` later, or the month's last day when it is shorter (31 Jan + 1 month = 28/29 Feb)."""
    month_index = moment.month - 1 + months
    year, month = moment.year + month_index // 12, month_index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


class PrivacyRequestQuerySet(models.QuerySet["PrivacyRequest"]):
    def with_answer_by(self) -> "PrivacyRequestQuerySet":
        """Annotate `deadline`: the extended due date if staff extended it, else the due date."""
        return self.annotate(deadline=Coalesce("extended_due_at", "due_at"))

    def open(self) -> "PrivacyRequestQuerySet":
        return self.filter(status=PrivacyRequest.Status.OPEN)

    def overdue(self, now: datetime | None = None) -> "PrivacyRequestQuerySet":
        """Open requests whose deadline in force has passed."""
        # A Q, not a keyword: the type checker knows the model's fields, not this annotation.
        return self.open().with_answer_by().filter(Q(deadline__lt=now or timezone.now()))


class PrivacyRequest(models.Model):
    """
    A data-subject request (GDPR Art. 15-17): the customer asked to see, correct or erase their
    data. It must be answered within one month of receipt; staff may extend that once, by two
    further months, giving the reason.
    """

    RESPONSE_MONTHS = 1
    EXTENSION_MONTHS = 2

    class Kind(models.TextChoices):
        ACCESS = "access", "Access (a copy of the data)"
        CORRECTION = "correction", "Correction"
        ERASURE = "erasure", "Erasure"

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        DONE = "done", "Done"
        REFUSED = "refused", "Refused"

    class Channel(models.TextChoices):
        PREFERENCE_PAGE = "preference_page", "Preference page"
        LETTER = "letter", "Letter"
        EMAIL = "email", "Email"
        PHONE = "phone", "Phone"

    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="privacy_requests")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    channel = models.CharField("received through", max_length=20, choices=Channel.choices)
    details = models.TextField(blank=True, validators=[reject_card_numbers], help_text="What the customer asked for.")
    received_at = models.DateTimeField(default=timezone.now)
    due_at = models.DateTimeField("answer due", help_text="One month after receipt.")
    extended_due_at = models.DateTimeField(
        "extended due date", null=True, blank=True, help_text="At most two further months, once, with a reason."
    )
    extension_reason = models.TextField(blank=True, validators=[reject_card_numbers])
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    refusal_reason = models.TextField(blank=True, validators=[reject_card_numbers])
    handled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    closed_at = models.DateTimeField(null=True, blank=True)

    objects = PrivacyRequestQuerySet.as_manager()

    class Meta:
        db_table = "customers_privacyrequest"
        ordering = ["-received_at", "-id"]
        verbose_name = "privacy request"
        constraints = [
            # Asking twice while the first request is open is the same request.
            models.UniqueConstraint(
                fields=["customer", "kind"],
                condition=Q(status="open"),
                name="privacy_request_one_open_per_kind",
            ),
            models.CheckConstraint(
                condition=Q(kind__in=["access", "correction", "erasure"]), name="privacy_request_known_kind"
            ),
            models.CheckConstraint(
                condition=Q(status__in=["open", "done", "refused"]), name="privacy_request_known_status"
            ),
            models.CheckConstraint(
                condition=Q(channel__in=["preference_page", "letter", "email", "phone"]),
                name="privacy_request_known_channel",
            ),
            models.CheckConstraint(
                condition=Q(due_at__gt=models.F("received_at")), name="privacy_request_due_after_receipt"
            ),
            models.CheckConstraint(
                condition=Q(extended_due_at__isnull=True)
                | (Q(extended_due_at__gt=models.F("due_at")) & ~Q(extension_reason="")),
                name="privacy_request_extension_later_with_reason",
            ),
            models.CheckConstraint(
                condition=~Q(status="refused") | ~Q(refusal_reason=""), name="privacy_request_refusal_has_reason"
            ),
            models.CheckConstraint(
                condition=Q(status="open", closed_at__isnull=True) | (~Q(status="open") & Q(closed_at__isnull=False)),
                name="privacy_request_closed_when_not_open",
            ),
        ]
        indexes = [
            # Staff work through the open requests, the most urgent first.
            models.Index(fields=["due_at"], name="privacy_request_open_by_due", condition=Q(status="open")),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} request of {self.received_at:%Y-%m-%d} ({self.get_status_display()})"

    @property
    def answer_by(self) -> datetime:
        """The deadline in force: the extended one if staff extended it."""
        return self.extended_due_at or self.due_at

    def clean(self) -> None:
        super().clean()
        if self.extended_due_at:
            if not self.extension_reason.strip():
                raise ValidationError({"extension_reason": "Say why the answer needs more time."})
            if self.due_at and self.extended_due_at > add_months(self.due_at, self.EXTENSION_MONTHS):
                raise ValidationError(
                    {"extended_due_at": "The deadline can be extended by at most two further months."}
                )
        if self.status == self.Status.REFUSED and not self.refusal_reason.strip():
            raise ValidationError({"refusal_reason": "Say why the request is refused."})

    def can_still_be_extended(self, now: datetime | None = None) -> bool:
        """Only within the first month (GDPR Art. 12(3)): an overdue request must be answered, not extended."""
        still_first_month = (now or timezone.now()) <= self.due_at
        return self.status == self.Status.OPEN and self.extended_due_at is None and still_first_month

    def is_overdue(self, now: datetime | None = None) -> bool:
        return self.status == self.Status.OPEN and self.answer_by < (now or timezone.now())


class CustomerErasure(models.Model):
    """
    The record that a customer's personal data was erased: who, when, on which request, and
    what each part of the system redacted. Keeps only a keyed hash of the address, so an import of
    the same address can be refused consent without the address being kept.
    """

    customer = models.OneToOneField(Customer, on_delete=models.PROTECT, related_name="erasure")
    address_hash = models.CharField(
        max_length=64, help_text="Keyed hash (HMAC-SHA256) of the erased, normalised address."
    )
    erased_at = models.DateTimeField(default=timezone.now)
    erased_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    privacy_request = models.ForeignKey(
        PrivacyRequest, null=True, blank=True, on_delete=models.PROTECT, related_name="erasures"
    )
    summary = models.JSONField(default=dict, help_text="What each part of the system redacted (counts).")

    class Meta:
        db_table = "customers_customererasure"
        ordering = ["-erased_at", "-id"]
        verbose_name = "erasure"
        indexes = [
            # The import asks whether an address was erased.
            models.Index(fields=["address_hash"], name="erasure_by_address_hash"),
        ]

    def __str__(self) -> str:
        return f"Erasure of customer {self.customer_id} on {self.erased_at:%Y-%m-%d}"


class ErasedAddress(models.Model):
    """
    Every address an erased customer ever had (the correction history knows the earlier ones),
    as a keyed hash: an import of any of them is recognised without the address being kept.
    """

    erasure = models.ForeignKey(CustomerErasure, on_delete=models.PROTECT, related_name="addresses")
    address_hash = models.CharField(max_length=64, help_text="Keyed hash (HMAC-SHA256) of the normalised address.")

    class Meta:
        verbose_name = "erased address"
        constraints = [
            models.UniqueConstraint(fields=["erasure", "address_hash"], name="erased_address_once_per_erasure"),
        ]
        indexes = [
            # The import asks whether an address was erased.
            models.Index(fields=["address_hash"], name="erased_address_by_hash"),
        ]

    def __str__(self) -> str:
        return f"Address of erasure {self.erasure_id}"


class RecipientNotification(models.Model):
    """
    GDPR Art. 19: a third party that received a customer's data must be told of a correction
    or an erasure. One row per third party and reason, open until staff mark it notified;
    further corrections while it is open add their field names to it.
    """

    class Reason(models.TextChoices):
        CORRECTION = "correction", "Correction"
        ERASURE = "erasure", "Erasure"

    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="recipient_notifications")
    third_party = models.ForeignKey(ThirdParty, on_delete=models.PROTECT, related_name="notifications")
    reason = models.CharField(max_length=20, choices=Reason.choices)
    fields = models.JSONField("corrected fields", default=list, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    notified_at = models.DateTimeField(null=True, blank=True)
    notified_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        db_table = "customers_recipientnotification"
        ordering = ["-created_at", "-id"]
        verbose_name = "third party to notify"
        verbose_name_plural = "third parties to notify (Art. 19)"
        constraints = [
            models.UniqueConstraint(
                fields=["customer", "third_party", "reason"],
                condition=Q(notified_at__isnull=True),
                name="recipient_notification_one_open",
            ),
            models.CheckConstraint(
                condition=Q(reason__in=["correction", "erasure"]), name="recipient_notification_known_reason"
            ),
            models.CheckConstraint(
                condition=Q(notified_at__isnull=True, notified_by__isnull=True)
                | Q(notified_at__isnull=False, notified_by__isnull=False),
                name="recipient_notification_notified_names_who",
            ),
        ]
        indexes = [
            # The admin lists what is still to notify, oldest first.
            models.Index(fields=["created_at"], name="recipient_notification_open", condition=Q(notified_at=None)),
        ]

    def __str__(self) -> str:
        return f"Notify {self.third_party.name} of {self.get_reason_display().lower()}"


class AccessLog(models.Model):
    """Who looked at, exported or erased a customer's personal data (field changes are in the audit log)."""

    class Action(models.TextChoices):
        VIEWED = "viewed", "Viewed the customer's page"
        EXPORTED = "exported", "Downloaded the customer's data export"
        ERASED = "erased", "Erased the customer"
        LIST_EXPORTED = "list_exported", "Exported a list of customers"
        API_READ = "api_read", "Read through the API"
        API_CHANGED = "api_changed", "Changed through the API"
        RECEIPT_DOWNLOADED = "receipt_downloaded", "Downloaded the customer's consent receipt"
        LOOKED_UP = "looked_up", "Saw the customer in a look-up (autocomplete)"

    # Who: a staff member, or an API key (named by its prefix and name, never its secret).
    staff_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    api_key_label = models.CharField("API key", max_length=80, blank=True, help_text="The key's prefix and name.")
    customer = models.ForeignKey(Customer, null=True, blank=True, on_delete=models.PROTECT, related_name="access_logs")
    action = models.CharField(max_length=20, choices=Action.choices)
    detail = models.CharField(max_length=300, blank=True)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "customers_accesslog"
        ordering = ["-at", "-id"]
        verbose_name = "access log entry"
        verbose_name_plural = "access log"
        constraints = [
            models.CheckConstraint(
                condition=Q(action="list_exported") | Q(customer__isnull=False), name="access_log_names_customer"
            ),
            models.CheckConstraint(
                condition=Q(staff_user__isnull=False) | ~Q(api_key_label=""), name="access_log_names_who"
            ),
        ]
        indexes = [
            # The admin filters by customer or by staff user, newest first.
            models.Index(fields=["customer", "-at"], name="access_log_by_customer"),
            models.Index(fields=["staff_user", "-at"], name="access_log_by_staff_user"),
        ]

    def __str__(self) -> str:
        return f"{self.get_action_display()} by {self.staff_user or self.api_key_label} at {self.at:%Y-%m-%d %H:%M}"


class RetentionRun(models.Model):
    """One run of the retention job: the cut-off it used and how many rows each step cleared."""

    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    cutoff = models.DateTimeField(help_text="Data recorded before this moment was cleared.")
    counts = models.JSONField(default=dict, help_text="Rows cleared per step.")

    class Meta:
        db_table = "customers_retentionrun"
        ordering = ["-started_at", "-id"]
        verbose_name = "retention run"

    def __str__(self) -> str:
        return f"Retention run {self.started_at:%Y-%m-%d %H:%M}"
