import calendar
import hashlib
import uuid
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q, Value
from django.db.models.functions import Coalesce, Concat, Lower, Upper
from django.utils import timezone
from django_countries.fields import CountryField
from phonenumber_field.modelfields import PhoneNumberField

from .validators import currency_choices, reject_card_numbers, reject_line_breaks, validate_currency

ERASED_MARKER = "[erased]"

# Name and address fields hold one line: a line break would be lost by any one-line input.
SINGLE_LINE_TEXT = [reject_card_numbers, reject_line_breaks]


# "Fiona Naylor": what the admin's full-name search compares with (istartswith, so
# UPPER(...) LIKE 'FIONA NAY%'). The customer_full_name_prefix index (migration
# 0008_customer_name_search_indexes, PostgreSQL) is built on UPPER of this same expression:
# change one and the other, or the search reads every row.
FULL_NAME = Concat("first_name", Value(" "), "last_name")


def normalise_email(value: str) -> str:
    """Addresses are stored trimmed and lower-cased, so one person is one row."""
    return (value or "").strip().lower()


def email_hash(email: str) -> str:
    """
    SHA-256 of the normalised address: what is kept of an erased customer's address, so that
    an import of the same address can be recognised without storing it (the same digest as
    marketing's suppression list).
    """
    return hashlib.sha256(normalise_email(email).encode("utf-8")).hexdigest()


class CustomerQuerySet(models.QuerySet):
    def by_email(self, email: str) -> "CustomerQuerySet":
        # Served by the unique index on lower(email).
        return self.alias(email_lower=Lower("email")).filter(email_lower=normalise_email(email))

    def not_erased(self) -> "CustomerQuerySet":
        return self.filter(erased_at__isnull=True)

    def by_email_or_public_id(self, term: str) -> "CustomerQuerySet":
        """
        The customer staff have in hand: an exact address (any casing) or a public ID. Anything
        else matches nobody, never an error: the term is typed by a person.
        """
        term = (term or "").strip()
        if "@" in term:
            return self.by_email(term)
        try:
            return self.filter(public_id=uuid.UUID(term))
        except ValueError:
            return self.none()


class Customer(models.Model):
    public_id = models.UUIDField("public ID", default=uuid.uuid4, unique=True, editable=False)
    email = models.EmailField(max_length=254)
    first_name = models.CharField(max_length=150, blank=True, validators=SINGLE_LINE_TEXT)
    last_name = models.CharField(max_length=150, blank=True, validators=SINGLE_LINE_TEXT)
    job_title = models.CharField(max_length=150, blank=True, validators=SINGLE_LINE_TEXT)
    company = models.CharField("business name", max_length=200, blank=True, validators=SINGLE_LINE_TEXT)
    phone = PhoneNumberField(blank=True, help_text="International format, e.g. +44 20 7946 0958.")
    address_line1 = models.CharField("address line 1", max_length=200, blank=True, validators=SINGLE_LINE_TEXT)
    address_line2 = models.CharField("address line 2", max_length=200, blank=True, validators=SINGLE_LINE_TEXT)
    city = models.CharField(max_length=100, blank=True, validators=SINGLE_LINE_TEXT)
    region = models.CharField(max_length=100, blank=True, validators=SINGLE_LINE_TEXT)
    postal_code = models.CharField(max_length=20, blank=True, validators=SINGLE_LINE_TEXT)
    country = CountryField(blank=True)
    language = models.CharField(max_length=10, choices=settings.LANGUAGES, default="en")
    currency = models.CharField(max_length=3, blank=True, choices=currency_choices(), validators=[validate_currency])
    notes = models.TextField(blank=True, validators=[reject_card_numbers], help_text="Internal notes for staff.")
    signup_ip = models.GenericIPAddressField("signup IP address", null=True, blank=True)
    signup_user_agent = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=False)
    updated_at = models.DateTimeField(auto_now=True)
    erased_at = models.DateTimeField(null=True, blank=True, editable=False)
    # Signed into every preference link and checked on each use: raising it (a change of
    # address, or undoing one) makes every link sent before stop working.
    link_generation = models.PositiveIntegerField(default=0, db_default=0, editable=False)

    objects = CustomerQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        permissions = [
            ("export_customer", "Can download a customer's data export"),
            ("erase_customer", "Can erase a customer's personal data"),
        ]
        constraints = [
            models.UniqueConstraint(
                Lower("email"),
                name="customer_email_unique_ci",
                violation_error_message="A customer with this email address already exists.",
                violation_error_code="duplicate_email",
            ),
        ]
        indexes = [
            # The admin changelist orders by newest first.
            models.Index(fields=["-created_at", "-id"], name="customer_newest_first"),
            # Admin search by name or company (istartswith compares upper-cased values).
            models.Index(Upper("last_name"), name="customer_last_name_upper"),
            models.Index(Upper("company"), name="customer_company_upper"),
            # Admin filters.
            models.Index(fields=["country"], name="customer_country"),
            models.Index(fields=["language"], name="customer_language"),
        ]

    def __str__(self) -> str:
        if self.erased_at:
            return f"Erased customer {self.public_id}"
        return f"{self.full_name} <{self.email}>" if self.full_name else self.email

    def save(self, *args, **kwargs) -> None:
        self.email = normalise_email(self.email)
        super().save(*args, **kwargs)

    @property
    def full_name(self) -> str:
        return " ".join(part for part in (self.first_name, self.last_name) if part)

    @property
    def is_erased(self) -> bool:
        return self.erased_at is not None

    def clean(self) -> None:
        super().clean()
        self.email = normalise_email(self.email)


class CustomerChange(models.Model):
    """One corrected field of a customer's record: what changed, from what, to what, by whom."""

    class ChangedBy(models.TextChoices):
        CUSTOMER = "customer", "Customer"
        STAFF = "staff", "Staff"
        IMPORT = "import", "Import"

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="changes")
    field = models.CharField(max_length=50)
    old_value = models.TextField(blank=True)
    new_value = models.TextField(blank=True)
    changed_at = models.DateTimeField(default=timezone.now)
    changed_by = models.CharField(max_length=10, choices=ChangedBy.choices)
    staff_user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)

    class Meta:
        ordering = ["-changed_at", "-id"]
        indexes = [models.Index(fields=["customer", "-changed_at"], name="customer_change_by_customer")]

    def __str__(self) -> str:
        return f"{self.field} changed {self.changed_at:%Y-%m-%d %H:%M}"


class PendingEmailChange(models.Model):
    """
    A customer's request to move to a new address, from the request through its confirmation
    by the new address to its undoing by the old one. The links carry random tokens; only
    their SHA-256 is stored, and the addresses never travel in a URL.
    """

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="email_changes")
    old_email = models.EmailField(max_length=254)
    new_email = models.EmailField(max_length=254)
    # The customer's link generation when asked: a change of address or an undo in between
    # raises it, and the confirmation link stops working.
    generation = models.PositiveIntegerField()
    # The single-use link the customer asked with (its nonce): used once, never again.
    request_nonce = models.CharField(max_length=32)
    token_hash = models.CharField(max_length=64, blank=True, help_text="SHA-256 of the confirmation token.")
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField("confirmed at", null=True, blank=True)
    undo_token_hash = models.CharField(max_length=64, blank=True, help_text="SHA-256 of the undo token.")
    undo_expires_at = models.DateTimeField(null=True, blank=True)
    undone_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "pending email change"
        constraints = [
            models.UniqueConstraint(fields=["request_nonce"], name="email_change_one_per_link"),
            # The confirmation and undo links are looked up by their token's hash.
            models.UniqueConstraint(
                fields=["token_hash"], condition=~Q(token_hash=""), name="email_change_token_unique"
            ),
            models.UniqueConstraint(
                fields=["undo_token_hash"], condition=~Q(undo_token_hash=""), name="email_change_undo_token_unique"
            ),
        ]
        indexes = [
            # Undoing a change also undoes every later one of the same customer.
            models.Index(fields=["customer", "used_at"], name="email_change_by_customer"),
        ]

    def __str__(self) -> str:
        return f"Email change of customer {self.customer_id} asked {self.created_at:%Y-%m-%d %H:%M}"


class ThirdParty(models.Model):
    class Kind(models.TextChoices):
        RESELLER = "reseller", "Reseller"
        PAYMENT_PROCESSOR = "payment_processor", "Payment processor"
        DISTRIBUTOR = "distributor", "Distributor"
        ANALYTICS = "analytics", "Analytics provider"
        EMAIL = "email", "Email delivery provider"
        PARTNER = "partner", "Partner"
        AUTHORITY = "authority", "Public authority"

    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    country = CountryField(blank=True)
    website = models.URLField(blank=True)
    dpa_reference = models.CharField(
        "data-processing agreement reference", max_length=200, blank=True, validators=[reject_card_numbers]
    )
    notes = models.TextField(blank=True, validators=[reject_card_numbers])

    class Meta:
        ordering = ["name"]
        verbose_name = "third party"
        verbose_name_plural = "third parties"
        constraints = [models.UniqueConstraint(fields=["name"], name="third_party_name_unique")]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_kind_display()})"


class Product(models.Model):
    name = models.CharField(max_length=200)
    code = models.SlugField(max_length=50)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["code"], name="product_code_unique")]

    def __str__(self) -> str:
        return self.name


def money_back_period() -> timedelta:
    """How long after a purchase the customer may ask for their money back (MONEY_BACK_DAYS)."""
    return timedelta(days=settings.MONEY_BACK_DAYS)


class ProductRegistrationQuerySet(models.QuerySet):
    def within_money_back_window(self, now=None) -> "ProductRegistrationQuerySet":
        now = now or timezone.now()
        return self.filter(
            purchased_at__gt=now - money_back_period(),
            purchased_at__lte=now,
            refunded_at__isnull=True,
        )


class ProductRegistration(models.Model):
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="registrations")
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="registrations")
    licence_key = models.CharField(max_length=100, blank=True)
    edition = models.CharField(max_length=50, blank=True)
    version = models.CharField(max_length=30, blank=True)
    reseller = models.ForeignKey(
        ThirdParty,
        on_delete=models.PROTECT,
        related_name="registrations",
        limit_choices_to={"kind": ThirdParty.Kind.RESELLER},
    )
    order_reference = models.CharField("reseller's order reference", max_length=100)
    purchased_at = models.DateTimeField()
    refunded_at = models.DateTimeField(null=True, blank=True)
    refund_override_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="Staff member who allowed a refund after the money-back deadline.",
    )
    refund_override_reason = models.TextField(blank=True, validators=[reject_card_numbers])
    created_at = models.DateTimeField(default=timezone.now)

    objects = ProductRegistrationQuerySet.as_manager()

    class Meta:
        ordering = ["-purchased_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["reseller", "order_reference", "product"], name="registration_order_product_unique"
            ),
            models.CheckConstraint(
                condition=Q(refunded_at__isnull=True) | Q(refunded_at__gte=models.F("purchased_at")),
                name="registration_refund_after_purchase",
            ),
            models.CheckConstraint(
                condition=Q(refund_override_by__isnull=True) | ~Q(refund_override_reason=""),
                name="registration_override_has_reason",
            ),
        ]
        indexes = [
            # "Within the money-back window" filters on recent purchases.
            models.Index(fields=["-purchased_at"], name="registration_purchased"),
        ]

    def __str__(self) -> str:
        return f"{self.product} – {self.order_reference}"

    @property
    def money_back_deadline(self):
        """Derived from the purchase time, never stored."""
        if self.purchased_at is None:
            return None
        return self.purchased_at + money_back_period()

    @property
    def masked_licence_key(self) -> str:
        key = self.licence_key or ""
        if len(key) <= 4:
            return "•" * len(key)
        return "•" * (len(key) - 4) + key[-4:]

    def within_money_back_window(self, at=None) -> bool:
        at = at or timezone.now()
        return self.purchased_at is not None and at <= self.money_back_deadline

    def clean(self) -> None:
        super().clean()
        # Whether a refund after the money-back deadline is allowed is registration_refund's rule.
        if self.refunded_at and self.purchased_at and self.refunded_at < self.purchased_at:
            raise ValidationError({"refunded_at": "A refund cannot come before the purchase."})
        if self.refund_override_by_id and not self.refund_override_reason.strip():
            raise ValidationError({"refund_override_reason": "Give the reason for the override."})


def add_months(moment, months: int):
    """The same day `months` later, or the month's last day when it is shorter (31 Jan + 1 month = 28/29 Feb)."""
    month_index = moment.month - 1 + months
    year, month = moment.year + month_index // 12, month_index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


class PrivacyRequestQuerySet(models.QuerySet):
    def with_answer_by(self) -> "PrivacyRequestQuerySet":
        """Annotate `deadline`: the extended due date if staff extended it, else the due date."""
        return self.annotate(deadline=Coalesce("extended_due_at", "due_at"))

    def open(self) -> "PrivacyRequestQuerySet":
        return self.filter(status=PrivacyRequest.Status.OPEN)

    def overdue(self, now=None) -> "PrivacyRequestQuerySet":
        """Open requests whose deadline in force has passed."""
        return self.open().with_answer_by().filter(deadline__lt=now or timezone.now())


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
    def answer_by(self):
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

    def is_overdue(self, now=None) -> bool:
        return self.status == self.Status.OPEN and self.answer_by < (now or timezone.now())


class CustomerErasure(models.Model):
    """
    The record that a customer's personal data was erased: who, when, on which request, and
    what each part of the system redacted. Keeps only a hash of the address, so an import of
    the same address can be refused consent without the address being kept.
    """

    customer = models.OneToOneField(Customer, on_delete=models.PROTECT, related_name="erasure")
    address_hash = models.CharField(max_length=64, help_text="SHA-256 of the erased, normalised address.")
    erased_at = models.DateTimeField(default=timezone.now)
    erased_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    privacy_request = models.ForeignKey(
        PrivacyRequest, null=True, blank=True, on_delete=models.PROTECT, related_name="erasures"
    )
    summary = models.JSONField(default=dict, help_text="What each part of the system redacted (counts).")

    class Meta:
        ordering = ["-erased_at", "-id"]
        verbose_name = "erasure"
        indexes = [
            # The import asks whether an address was erased.
            models.Index(fields=["address_hash"], name="erasure_by_address_hash"),
        ]

    def __str__(self) -> str:
        return f"Erasure of customer {self.customer_id} on {self.erased_at:%Y-%m-%d}"


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

    staff_user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    customer = models.ForeignKey(Customer, null=True, blank=True, on_delete=models.PROTECT, related_name="access_logs")
    action = models.CharField(max_length=20, choices=Action.choices)
    detail = models.CharField(max_length=300, blank=True)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name = "access log entry"
        verbose_name_plural = "access log"
        constraints = [
            models.CheckConstraint(
                condition=Q(action="list_exported") | Q(customer__isnull=False), name="access_log_names_customer"
            ),
        ]
        indexes = [
            # The admin filters by customer or by staff user, newest first.
            models.Index(fields=["customer", "-at"], name="access_log_by_customer"),
            models.Index(fields=["staff_user", "-at"], name="access_log_by_staff_user"),
        ]

    def __str__(self) -> str:
        return f"{self.get_action_display()} by {self.staff_user} at {self.at:%Y-%m-%d %H:%M}"


class RetentionRun(models.Model):
    """One run of the retention job: the cut-off it used and how many rows each step cleared."""

    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    cutoff = models.DateTimeField(help_text="Data recorded before this moment was cleared.")
    counts = models.JSONField(default=dict, help_text="Rows cleared per step.")

    class Meta:
        ordering = ["-started_at", "-id"]
        verbose_name = "retention run"

    def __str__(self) -> str:
        return f"Retention run {self.started_at:%Y-%m-%d %H:%M}"
