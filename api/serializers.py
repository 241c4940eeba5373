from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework import serializers

from consents.models import ConsentEvent, Method, PolicyVersion, Purpose, Source
from customers.forms import DETAIL_FIELDS
from customers.models import Customer, Product, ProductRegistration, ThirdParty


class LookupSlugField(serializers.SlugRelatedField):
    """
    A related object named by a text field. A NUL character is refused as invalid (400) before
    the look-up: PostgreSQL cannot compare text holding one and would fail the query (500).
    """

    def to_internal_value(self, data):
        if isinstance(data, str) and "\x00" in data:
            self.fail("does_not_exist", slug_name=self.slug_field, value="(a value with a NUL character)")
        return super().to_internal_value(data)


# Sources a client of the API may name: not staff (that needs a person) and not erasure.
API_SOURCES = [choice for choice in Source.choices if choice[0] not in ("staff", "erasure")]


class CustomerSerializer(serializers.ModelSerializer):
    phone = serializers.CharField(read_only=True)
    country = serializers.CharField(read_only=True, help_text="ISO 3166-1 alpha-2, or empty.")
    currency = serializers.CharField(read_only=True, help_text="ISO 4217, or empty.")
    erased = serializers.SerializerMethodField()

    class Meta:
        model = Customer
        fields = ["public_id", "email", *DETAIL_FIELDS, "created_at", "updated_at", "erased"]
        read_only_fields = fields

    def get_erased(self, customer: Customer) -> bool:
        return customer.erased_at is not None


_TEXT: dict[str, Any] = {"allow_blank": True, "required": False}


class CustomerUpdateSerializer(serializers.Serializer):
    """The details a customer may correct: only the fields sent are changed."""

    first_name = serializers.CharField(max_length=150, **_TEXT)
    last_name = serializers.CharField(max_length=150, **_TEXT)
    job_title = serializers.CharField(max_length=150, **_TEXT)
    company = serializers.CharField(max_length=200, **_TEXT)
    phone = serializers.CharField(max_length=40, help_text="International format, e.g. +44 20 7946 0958.", **_TEXT)
    address_line1 = serializers.CharField(max_length=200, **_TEXT)
    address_line2 = serializers.CharField(max_length=200, **_TEXT)
    city = serializers.CharField(max_length=100, **_TEXT)
    region = serializers.CharField(max_length=100, **_TEXT)
    postal_code = serializers.CharField(max_length=20, **_TEXT)
    country = serializers.CharField(max_length=2, help_text="ISO 3166-1 alpha-2.", **_TEXT)
    language = serializers.ChoiceField(choices=settings.LANGUAGES, required=False)
    currency = serializers.CharField(max_length=3, help_text="ISO 4217.", **_TEXT)


class CustomerCreateSerializer(CustomerUpdateSerializer):
    email = serializers.EmailField(max_length=254)


class LookupSerializer(serializers.Serializer):
    email = serializers.EmailField(max_length=254)


class ConsentStateSerializer(serializers.Serializer):
    purpose = serializers.CharField(source="purpose.code")
    purpose_name = serializers.CharField(source="purpose.name")
    state = serializers.ChoiceField(choices=["granted", "withdrawn", "never_asked"])
    since = serializers.DateTimeField(allow_null=True)
    event_id = serializers.IntegerField(source="purpose.current_event_id", allow_null=True)


class ConsentEventSerializer(serializers.ModelSerializer):
    purpose: serializers.SlugRelatedField[Purpose] = serializers.SlugRelatedField(slug_field="code", read_only=True)
    policy_version: serializers.SlugRelatedField[PolicyVersion] = serializers.SlugRelatedField(
        slug_field="version", read_only=True
    )

    class Meta:
        model = ConsentEvent
        fields = [
            "id",
            "purpose",
            "granted",
            "occurred_at",
            "recorded_at",
            "source",
            "method",
            "policy_version",
            "wording",
            "language",
            "ip_address",
            "user_agent",
            "reference",
            "redacted_at",
        ]
        read_only_fields = fields


class ConsentDecisionSerializer(serializers.Serializer):
    purpose = LookupSlugField(slug_field="code", queryset=Purpose.objects.all())
    granted = serializers.BooleanField()
    occurred_at = serializers.DateTimeField(required=False, help_text="When the customer decided (default: now).")
    source = serializers.ChoiceField(choices=API_SOURCES)  # type: ignore[assignment]  # a field, not Field.source: DRF's metaclass takes it off the class
    method = serializers.ChoiceField(choices=Method.choices, required=False)
    wording = serializers.CharField(
        max_length=5000, help_text="The exact words the customer was shown (copied into the ledger)."
    )
    language = serializers.CharField(
        required=False,
        default=settings.LANGUAGE_CODE,
        max_length=10,
        help_text="The language of the wording shown: en, de or fr (default: en).",
    )

    def validate_language(self, value: str) -> str:
        if value not in settings.CUSTOMER_LANGUAGES:
            raise serializers.ValidationError(f"Use one of: {', '.join(settings.CUSTOMER_LANGUAGES)}.")
        return value

    policy_version = LookupSlugField(slug_field="version", queryset=PolicyVersion.objects.all(), required=False)
    ip_address = serializers.IPAddressField(required=False, allow_null=True)
    user_agent = serializers.CharField(max_length=500, required=False, allow_blank=True)
    reference = serializers.CharField(max_length=100, required=False, allow_blank=True)


class ConsentDecisionResultSerializer(serializers.Serializer):
    recorded = serializers.BooleanField(help_text="False when the decision equals the current state (nothing new).")
    event = ConsentEventSerializer(allow_null=True)


class RegistrationSerializer(serializers.ModelSerializer):
    customer = serializers.UUIDField(source="customer.public_id", read_only=True)
    product: serializers.SlugRelatedField[Product] = serializers.SlugRelatedField(slug_field="code", read_only=True)
    reseller: serializers.SlugRelatedField[ThirdParty] = serializers.SlugRelatedField(slug_field="name", read_only=True)

    class Meta:
        model = ProductRegistration
        fields = [
            "id",
            "customer",
            "product",
            "reseller",
            "order_reference",
            "purchased_at",
            "currency",
            "edition",
            "version",
            "refunded_at",
            "refunded_by_reseller",
            "refund_note",
        ]
        read_only_fields = fields


class RegistrationCreateSerializer(serializers.Serializer):
    customer = serializers.UUIDField(help_text="The customer's public id.")
    product = LookupSlugField(slug_field="code", queryset=Product.objects.all())
    reseller = LookupSlugField(
        slug_field="name", queryset=ThirdParty.objects.filter(kind=ThirdParty.Kind.RESELLER), required=False
    )
    order_reference = serializers.CharField(max_length=100, required=False, allow_blank=True)
    purchased_at = serializers.DateTimeField(required=False)
    licence_key = serializers.CharField(max_length=100, required=False, allow_blank=True)
    edition = serializers.CharField(max_length=50, required=False, allow_blank=True)
    version = serializers.CharField(max_length=30, required=False, allow_blank=True)
    currency = serializers.CharField(max_length=3, required=False, allow_blank=True)


class RefundSerializer(serializers.Serializer):
    refunded_at = serializers.DateTimeField(required=False, help_text="Default: now.")
    late_refund_reason = serializers.CharField(
        max_length=500,
        required=False,
        allow_blank=True,
        help_text="Required after the money-back deadline: why the refund was given anyway.",
    )


class MailabilitySerializer(serializers.Serializer):
    email = serializers.EmailField(max_length=254)
    purpose = LookupSlugField(slug_field="code", queryset=Purpose.objects.filter(is_marketing=True))


class MailabilityResultSerializer(serializers.Serializer):
    may_send = serializers.BooleanField()
    reason = serializers.ChoiceField(
        choices=["unknown_customer", "erased", "suppressed", "no_consent"],
        required=False,
        help_text="Only for keys that also have customers:read.",
    )


class SignedReceiptSerializer(serializers.Serializer):
    format = serializers.ChoiceField(choices=["kantara", "iso27560"])
    receipt = serializers.DictField(help_text="The receipt as it was signed (Kantara v1.1 or DPV JSON-LD).")
    jws = serializers.CharField(help_text="Compact JWS (RFC 7515) whose payload is the receipt; key id in its header.")


class ReportQuerySerializer(serializers.Serializer):
    interval = serializers.ChoiceField(
        choices=["hour", "day"],
        required=False,
        help_text="Buckets of the series; default: per hour for a campaign dispatched in the last 72 hours, "
        "else per day.",
    )


class SkippedSerializer(serializers.Serializer):
    consent_withdrawn = serializers.IntegerField()
    suppressed = serializers.IntegerField()
    erased = serializers.IntegerField()
    cancelled = serializers.IntegerField()
    frequency_cap = serializers.IntegerField()


class UnsubscribedSerializer(serializers.Serializer):
    one_click = serializers.IntegerField(help_text="RFC 8058 one-click from the mail client (List-Unsubscribe-Post).")
    link = serializers.IntegerField(help_text="The unsubscribe link in the message.")
    provider = serializers.IntegerField(help_text="The mail provider's own unsubscribe, reported by webhook.")


class RatesSerializer(serializers.Serializer):
    sent = serializers.FloatField(help_text="Of deliveries.")
    skipped = serializers.FloatField(help_text="Of deliveries.")
    failed = serializers.FloatField(help_text="Of deliveries.")
    unknown = serializers.FloatField(help_text="Of deliveries.")
    bounced = serializers.FloatField(help_text="Of messages sent.")
    complained = serializers.FloatField(help_text="Of messages sent.")
    unsubscribed = serializers.FloatField(help_text="Of messages sent.")


class ReportBucketSerializer(serializers.Serializer):
    start = serializers.DateTimeField(help_text="Start of the hour or day (UTC).")
    sent = serializers.IntegerField()
    unsubscribed = serializers.IntegerField()
    bounced = serializers.IntegerField()
    complained = serializers.IntegerField()


class CampaignReportSerializer(serializers.Serializer):
    campaign = serializers.UUIDField(help_text="The campaign's public ID.")
    name = serializers.CharField()
    status = serializers.CharField()
    purpose = serializers.CharField(help_text="The purpose's code.")
    dispatched_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    deliveries = serializers.IntegerField(help_text="Deliveries created for the campaign (its audience at dispatch).")
    queued = serializers.IntegerField()
    sending = serializers.IntegerField()
    sent = serializers.IntegerField(help_text="Messages that left (a message that bounced later left too).")
    skipped = SkippedSerializer(help_text="Deliveries skipped, by reason.")
    failed = serializers.IntegerField()
    unknown = serializers.IntegerField(
        help_text="A worker stopped mid-send: may or may not have gone out; never re-sent."
    )
    bounced = serializers.IntegerField(help_text="Hard bounces reported by the mail provider.")
    complained = serializers.IntegerField(help_text="Messages reported as spam.")
    unsubscribed = UnsubscribedSerializer(help_text="Withdrawals in the ledger prompted by this campaign.")
    rates = RatesSerializer()
    interval = serializers.ChoiceField(choices=["hour", "day"])
    series = ReportBucketSerializer(many=True)
