import hashlib
import hmac
import uuid
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q, Value
from django.db.models.functions import Concat, Lower, Upper
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

# A customer's personal details, declared once: the corrections, the import, the data export
# and the erasure all read these lists.
# Details the customer may correct themselves (and that a CSV import carries).
PERSONAL_DETAIL_FIELDS = [
    "first_name",
    "last_name",
    "job_title",
    "company",
    "phone",
    "address_line1",
    "address_line2",
    "city",
    "region",
    "postal_code",
    "country",
]
PREFERENCE_FIELDS = ["language", "currency"]


def normalise_email(value: str) -> str:
    """Addresses are stored trimmed and lower-cased, so one person is one row."""
    return (value or "").strip().lower()


def address_hash_key() -> bytes:
    """
    The key of the address hash (HMAC-SHA256): 32 bytes derived from ADDRESS_HASH_KEY, so
    that the database can compute the same hash in SQL (marketing.sql).
    """
    return hashlib.sha256(settings.ADDRESS_HASH_KEY.encode("utf-8")).digest()


def email_hash(email: str) -> str:
    """
    What is kept of an address that must be recognised without being stored (an erased
    customer's, a suppressed one): HMAC-SHA256 of the normalised address with a server secret,
    so a list of these hashes cannot be tested against guessed addresses.
    """
    return hmac.new(address_hash_key(), normalise_email(email).encode("utf-8"), hashlib.sha256).hexdigest()


def legacy_email_hash(email: str) -> str:
    """The plain SHA-256 that rows written before the keyed hash hold."""
    return hashlib.sha256(normalise_email(email).encode("utf-8")).hexdigest()


def email_hashes(email: str) -> list[str]:
    """Every hash an address may be stored under: look-ups match either."""
    return [email_hash(email), legacy_email_hash(email)]


class CustomerQuerySet(models.QuerySet["Customer"]):
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
    paddle_customer_id = models.CharField(
        "Paddle customer ID", max_length=50, null=True, blank=True, help_text="Set by Paddle's notifications (ctm_…)."
    )

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
            models.UniqueConstraint(fields=["paddle_customer_id"], name="customer_paddle_id_unique"),
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

    def save(self, *args: Any, **kwargs: Any) -> None:
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
        RESELLER = "reseller", "Reseller notification"
        API = "api", "API"

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
    paddle_product_id = models.CharField(
        "Paddle product ID",
        max_length=50,
        null=True,
        blank=True,
        help_text="Paddle's id of this product (pro_…): transactions from Paddle are matched by it.",
    )

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["code"], name="product_code_unique"),
            models.UniqueConstraint(fields=["paddle_product_id"], name="product_paddle_id_unique"),
        ]

    def __str__(self) -> str:
        return self.name


def money_back_period() -> timedelta:
    """How long after a purchase the customer may ask for their money back (MONEY_BACK_DAYS)."""
    return timedelta(days=settings.MONEY_BACK_DAYS)


class ProductRegistrationQuerySet(models.QuerySet["ProductRegistration"]):
    def within_money_back_window(self, now: datetime | None = None) -> "ProductRegistrationQuerySet":
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
    # A customer who registers a product themselves may not know where or when it was bought.
    reseller = models.ForeignKey(
        ThirdParty,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="registrations",
        limit_choices_to={"kind": ThirdParty.Kind.RESELLER},
    )
    order_reference = models.CharField("reseller's order reference", max_length=100, blank=True)
    purchased_at = models.DateTimeField(null=True, blank=True)
    # Database defaults too: rows written by raw SQL (the benchmarks' generator) get them.
    currency = models.CharField(
        max_length=3, blank=True, db_default="", choices=currency_choices(), validators=[validate_currency]
    )
    refunded_at = models.DateTimeField(null=True, blank=True)
    refunded_by_reseller = models.BooleanField(
        default=False,
        db_default=False,
        help_text="The reseller refunded it (recorded whatever the money-back deadline).",
    )
    refund_note = models.TextField(blank=True, db_default="", validators=[reject_card_numbers])
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
    def money_back_deadline(self) -> datetime | None:
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

    def within_money_back_window(self, at: datetime | None = None) -> bool:
        at = at or timezone.now()
        deadline = self.money_back_deadline  # None without a purchase time
        return deadline is not None and at <= deadline

    def clean(self) -> None:
        super().clean()
        # Whether a refund after the money-back deadline is allowed is registration_refund's rule.
        if self.refunded_at and self.purchased_at and self.refunded_at < self.purchased_at:
            raise ValidationError({"refunded_at": "A refund cannot come before the purchase."})
        if self.refund_override_by_id and not self.refund_override_reason.strip():
            raise ValidationError({"refund_override_reason": "Give the reason for the override."})
