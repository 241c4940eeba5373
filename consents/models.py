from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone

from common.languages import customer_language
from customers.models import Customer, ThirdParty
from customers.validators import reject_card_numbers

from .triggers import LEDGER_APPEND_ONLY, LEDGER_NO_TRUNCATE

if TYPE_CHECKING:
    # django-modeltranslation (translation.py) swaps the managers of the models it translates
    # for its MultilingualManager at start-up; importing it here lets the Django mypy plugin
    # resolve that manager's type (django-stubs#1023).
    import modeltranslation.manager  # noqa: F401


class Purpose(models.Model):
    """What a customer may agree to. Changing the wording affects new events only: each event keeps its copy."""

    code = models.SlugField(max_length=50, help_text="Stable identifier used in links, imports and exports.")
    name = models.CharField(max_length=100)
    wording = models.TextField(help_text="Exactly what the customer is shown when asked; recorded with each decision.")
    is_marketing = models.BooleanField(
        "marketing purpose", default=True, help_text="Marketing email may be sent for this purpose."
    )
    display_order = models.PositiveSmallIntegerField(default=100)

    class Meta:
        ordering = ["display_order", "code"]
        constraints = [models.UniqueConstraint(fields=["code"], name="purpose_code_unique")]

    def __str__(self) -> str:
        return self.name

    def text_in(self, language: str | None) -> "PurposeText":
        """
        The name and wording a customer reading `language` is shown: that language's, or, when
        either is missing there, both in English (a name in one language over a wording in
        another would be shown, and recorded, as neither).
        """
        wanted = customer_language(language)
        name, wording = getattr(self, f"name_{wanted}", None), getattr(self, f"wording_{wanted}", None)
        if name and wording:
            return PurposeText(name=name, wording=wording, language=wanted, wanted=wanted)
        default = settings.LANGUAGE_CODE
        return PurposeText(
            name=getattr(self, f"name_{default}", None) or "",
            wording=getattr(self, f"wording_{default}", None) or "",
            language=default,
            wanted=wanted,
        )

    def missing_languages(self) -> list[str]:
        """The complete languages this purpose has no name or wording in yet."""
        return [
            code
            for code in settings.CUSTOMER_LANGUAGES
            if not (getattr(self, f"name_{code}", None) and getattr(self, f"wording_{code}", None))
        ]


@dataclass(frozen=True)
class PurposeText:
    """A purpose as shown in one language: `language` is the one its words are in."""

    name: str
    wording: str
    language: str
    wanted: str

    @property
    def fell_back(self) -> bool:
        """No text in the language asked for: the default language's is shown (and recorded)."""
        return self.language != self.wanted


class PolicyVersionQuerySet(models.QuerySet["PolicyVersion"]):
    def current(self, at: datetime | None = None) -> "PolicyVersion | None":
        """The latest version that has taken effect (exactly one at any moment once one exists)."""
        return self.in_force(at).first()

    def with_is_current(self, at: datetime | None = None) -> "PolicyVersionQuerySet":
        """Annotate `is_current` on each version, in the same query (a list would otherwise ask per row)."""
        current_pk = models.Subquery(PolicyVersion.objects.in_force(at).values("pk")[:1])
        return self.annotate(is_current=models.ExpressionWrapper(Q(pk=current_pk), output_field=models.BooleanField()))

    def in_force(self, at: datetime | None = None) -> "PolicyVersionQuerySet":
        """Versions that have taken effect, latest first."""
        return self.filter(effective_at__lte=at or timezone.now()).order_by("-effective_at", "-id")


# PolicyVersionQuerySet.as_manager(), named so that `objects` can be declared with its type: the
# Django mypy plugin cannot resolve the manager class django-modeltranslation builds at start-up
# from this one (django-stubs#1023), and a declared manager is taken as it is declared.
PolicyVersionManager = models.Manager.from_queryset(PolicyVersionQuerySet)


class PolicyVersion(models.Model):
    version = models.CharField(max_length=50)
    effective_at = models.DateTimeField("takes effect")
    text = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)

    objects: ClassVar["PolicyVersionManager[PolicyVersion]"] = PolicyVersionManager()

    class Meta:
        ordering = ["-effective_at"]
        get_latest_by = "effective_at"
        constraints = [
            models.UniqueConstraint(fields=["version"], name="policy_version_label_unique"),
            # "Exactly one is current": two versions taking effect at the same instant would tie.
            models.UniqueConstraint(fields=["effective_at"], name="policy_version_effective_unique"),
        ]

    def __str__(self) -> str:
        return f"Privacy policy {self.version}"

    def text_in(self, language: str | None) -> "PolicyText":
        """The policy text in `language`, or the English one when it has none there."""
        wanted = customer_language(language)
        text = getattr(self, f"text_{wanted}", None)
        if text:
            return PolicyText(text=text, language=wanted, wanted=wanted)
        default = settings.LANGUAGE_CODE
        return PolicyText(text=getattr(self, f"text_{default}", None) or "", language=default, wanted=wanted)

    def missing_languages(self) -> list[str]:
        return [code for code in settings.CUSTOMER_LANGUAGES if not getattr(self, f"text_{code}", None)]


@dataclass(frozen=True)
class PolicyText:
    text: str
    language: str
    wanted: str

    @property
    def fell_back(self) -> bool:
        return self.language != self.wanted


class Source(models.TextChoices):
    PREFERENCE_PAGE = "preference_page", "Preference page"
    UNSUBSCRIBE_LINK = "unsubscribe_link", "Unsubscribe link"
    ONE_CLICK = "one_click", "One-click unsubscribe"
    SIGNUP_FORM = "signup_form", "Signup or registration form"
    RESELLER_CHECKOUT = "reseller_checkout", "Reseller checkout"
    STAFF = "staff", "Staff on behalf of the customer"
    IMPORT = "import", "Import"
    PROVIDER_COMPLAINT = "provider_complaint", "Spam complaint reported by the mail provider"
    PROVIDER_UNSUBSCRIBE = "provider_unsubscribe", "Unsubscribe at the mail provider"


class Method(models.TextChoices):
    """How the customer expressed the decision."""

    WEB = "web", "Web form"
    EMAIL_LINK = "email_link", "Link in an email"
    PHONE = "phone", "Phone"
    LETTER = "letter", "Letter"
    EMAIL = "email", "Email"
    IN_PERSON = "in_person", "In person"
    IMPORT = "import", "Imported record"
    CHECKOUT = "checkout", "Reseller's checkout form"


class LedgerImmutable(Exception):
    """Consent events are never changed or deleted through the application."""


class ConsentEventQuerySet(models.QuerySet["ConsentEvent"]):
    def update(self, **kwargs: Any) -> int:
        raise LedgerImmutable("Consent events cannot be updated.")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise LedgerImmutable("Consent events cannot be deleted.")

    # The one sanctioned rewrite (erasure, retention) goes through this, and only from
    # consents.services, which also lifts the database trigger for its transaction.
    def _sanctioned_redact(self, **kwargs: Any) -> int:
        return super().update(**kwargs)


class ConsentEvent(models.Model):
    """The ledger: one row per decision, never edited."""

    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="consent_events")
    purpose = models.ForeignKey(Purpose, on_delete=models.PROTECT, related_name="events")
    granted = models.BooleanField(help_text="True: consent given. False: consent withdrawn.")
    occurred_at = models.DateTimeField("when", default=timezone.now, help_text="When the customer decided.")
    recorded_at = models.DateTimeField(default=timezone.now, help_text="When the system recorded it.")
    source = models.CharField(max_length=20, choices=Source.choices)
    method = models.CharField("collection method", max_length=20, choices=Method.choices, default=Method.WEB)
    policy_version = models.ForeignKey(PolicyVersion, null=True, blank=True, on_delete=models.PROTECT)
    wording = models.TextField("wording shown", blank=True)
    # Events from before translations existed were all shown in English, hence the default.
    language = models.CharField(
        "language shown",
        max_length=10,
        default="en",
        # Also in the database: bulk loaders that write the ledger in SQL (bench/generate.py) name no language.
        db_default="en",
        help_text="The language of the wording shown and recorded (English where a translation was missing).",
    )
    ip_address = models.GenericIPAddressField("IP address", null=True, blank=True)
    user_agent = models.CharField(max_length=500, blank=True)
    staff_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    note = models.TextField(blank=True, validators=[reject_card_numbers])
    reference = models.CharField(
        max_length=100, blank=True, help_text="What prompted it, e.g. the campaign of an unsubscribe link."
    )
    redacted_at = models.DateTimeField(null=True, blank=True)

    objects = ConsentEventQuerySet.as_manager()

    class Meta:
        # A customer's history reads in the order the decisions were made, not recorded.
        ordering = ["-occurred_at", "-recorded_at", "-id"]
        indexes = [
            # A customer's history (customer page, receipt, export), in the order decisions were made.
            models.Index(fields=["customer", "-occurred_at"], name="consent_event_history"),
            models.Index(fields=["-recorded_at"], name="consent_event_recent"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=~Q(source="staff") | Q(staff_user__isnull=False) | Q(redacted_at__isnull=False),
                name="consent_event_staff_names_user",
            ),
            # The target of Consent's composite foreign key (migration 0004): a current state
            # names an event of its own customer and purpose, with the decision it carries.
            models.UniqueConstraint(fields=["id", "customer", "purpose", "granted"], name="consent_event_decision_key"),
        ]
        # PostgreSQL refuses UPDATE, DELETE and TRUNCATE of the ledger (consents/triggers.py).
        triggers = [LEDGER_APPEND_ONLY, LEDGER_NO_TRUNCATE]

    def __str__(self) -> str:
        # No name or address: the label shows in logs and in lists that are not about this customer.
        when = _day_and_time(self.occurred_at)
        return f"{self.purpose.name} {self.decision_label} on {when}, customer {_short_id(self.customer)}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None:
            raise LedgerImmutable("Consent events cannot be changed once recorded.")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise LedgerImmutable("Consent events cannot be deleted.")

    @property
    def decision_label(self) -> str:
        return "granted" if self.granted else "withdrawn"


class Consent(models.Model):
    """The current state per customer and purpose, written in the same transaction as its event."""

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="consents")
    purpose = models.ForeignKey(Purpose, on_delete=models.PROTECT, related_name="consents")
    granted = models.BooleanField()
    since = models.DateTimeField()
    # On PostgreSQL a composite foreign key (consent_names_its_decision, migration 0004) also makes
    # customer, purpose and granted those of the event: the state cannot change without its event.
    event = models.ForeignKey(ConsentEvent, on_delete=models.PROTECT, related_name="+")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["customer", "purpose"], name="consent_one_per_customer_purpose"),
        ]
        indexes = [
            # Every send selects the customers currently consenting to one purpose.
            models.Index(fields=["purpose", "customer"], name="consent_granted_by_purpose", condition=Q(granted=True)),
        ]

    def __str__(self) -> str:
        decision = "granted" if self.granted else "withdrawn"
        return f"{self.purpose.name} {decision} since {_day(self.since)}, customer {_short_id(self.customer)}"


def _day(moment: datetime) -> str:
    local = timezone.localtime(moment)
    return f"{local.day} {local:%b %Y}"


def _day_and_time(moment: datetime) -> str:
    return f"{_day(moment)} {timezone.localtime(moment):%H:%M}"


def _short_id(customer: Customer) -> str:
    """The start of the public ID: enough to tell customers apart on a page, and no personal data."""
    return str(customer.public_id)[:8]


class DataCategory(models.TextChoices):
    IDENTITY = "identity", "Identity (name, job title, business name)"
    CONTACT = "contact", "Contact (email, phone)"
    ADDRESS = "address", "Postal address"
    PURCHASE = "purchase", "Purchase and licence"
    USAGE = "usage", "Usage"


class LegalBasis(models.TextChoices):
    # There is deliberately no basis for selling data: the product promises never to sell it.
    CONTRACT = "contract", "Contract (to complete the purchase)"
    CONSENT = "consent", "Consent"
    LEGAL_OBLIGATION = "legal_obligation", "Legal obligation"
    LEGITIMATE_INTERESTS = "legitimate_interests", "Legitimate interests"


class DisclosurePurpose(models.Model):
    """
    What a disclosure to a third party is for, and which consent allows it when the basis is
    consent: a market-research panel needs consent to market research, not to the newsletter.
    Staff add one here when they add a purpose of disclosure, and name the consent it needs.
    """

    code = models.SlugField(max_length=50, help_text="Stable identifier used in exports.")
    name = models.CharField(max_length=100)
    consent_purpose = models.ForeignKey(
        Purpose,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="disclosure_purposes",
        verbose_name="consent that allows it",
        help_text="On the basis of consent, only the customer's consent to this purpose allows the disclosure. "
        "Empty: no consent does (the basis must be the contract, the law or legitimate interests).",
    )

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["code"], name="disclosure_purpose_code_unique")]

    def __str__(self) -> str:
        return self.name


class Disclosure(models.Model):
    """A record that a customer's data went to a third party, what and why."""

    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="disclosures")
    third_party = models.ForeignKey(ThirdParty, on_delete=models.PROTECT, related_name="disclosures")
    data_categories = models.JSONField(default=list, help_text="Which categories of data were disclosed.")
    legal_basis = models.CharField(max_length=30, choices=LegalBasis.choices)
    disclosure_purpose = models.ForeignKey(
        DisclosurePurpose, on_delete=models.PROTECT, related_name="disclosures", verbose_name="purpose"
    )
    purpose = models.CharField(
        "details of the purpose",
        max_length=300,
        validators=[reject_card_numbers],
        help_text="What exactly, e.g. “Invitation to the 2026 customer satisfaction survey”.",
    )
    consent_event = models.ForeignKey(
        ConsentEvent,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="disclosures",
        help_text="Required when the basis is consent: the customer's decision that allows it.",
    )
    disclosed_at = models.DateTimeField(default=timezone.now)
    reference = models.CharField(max_length=200, blank=True, validators=[reject_card_numbers])
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    recorded_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-disclosed_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=~Q(legal_basis="consent") | Q(consent_event__isnull=False),
                name="disclosure_consent_basis_names_event",
            ),
            models.CheckConstraint(
                condition=Q(legal_basis__in=[choice.value for choice in LegalBasis]),
                name="disclosure_known_legal_basis",
            ),
        ]
        indexes = [models.Index(fields=["customer", "-disclosed_at"], name="disclosure_by_customer")]

    def __str__(self) -> str:
        return f"{self.third_party.name} ({self.get_legal_basis_display()}) {self.disclosed_at:%Y-%m-%d}"

    def clean(self) -> None:
        super().clean()
        unknown = [c for c in self.data_categories or [] if c not in DataCategory.values]
        if unknown or not self.data_categories:
            raise ValidationError({"data_categories": "Choose one or more of: " + ", ".join(DataCategory.values)})
