import uuid

from django.db import models
from django.db.models import Q
from django.utils import timezone

from consents.models import PolicyVersion
from customers.models import SINGLE_LINE_TEXT, Customer, Product


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


class SignupRequest(models.Model):
    """
    The first step of a double opt-in: what the visitor asked for on a sign-up or product
    registration form, and what they were shown. Nothing is granted until the address confirms
    it (the second step, recorded here too); an unconfirmed request expires and is deleted.
    """

    class Kind(models.TextChoices):
        SIGNUP = "signup", "Newsletter sign-up"
        REGISTRATION = "registration", "Product registration"

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting to be mailed"
        SENT = "sent", "Confirmation mailed"
        NOT_SENT = "not_sent", "Nothing sent (erased or suppressed address)"
        CONFIRMED = "confirmed", "Confirmed"

    public_id = models.UUIDField("public ID", default=uuid.uuid4, unique=True, editable=False)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    email = models.EmailField(max_length=254)
    first_name = models.CharField(max_length=150, blank=True, validators=SINGLE_LINE_TEXT)
    last_name = models.CharField(max_length=150, blank=True, validators=SINGLE_LINE_TEXT)
    language = models.CharField(max_length=10, default="en")
    # The purposes ticked, each with the name and exact wording the form showed: [{code, name, wording}].
    purposes = models.JSONField(default=list, blank=True)
    policy_version = models.ForeignKey(PolicyVersion, null=True, blank=True, on_delete=models.PROTECT)
    product = models.ForeignKey(Product, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    licence_key = models.CharField(max_length=100, blank=True, validators=SINGLE_LINE_TEXT)
    order_reference = models.CharField(max_length=100, blank=True, validators=SINGLE_LINE_TEXT)
    requested_at = models.DateTimeField(default=timezone.now)
    request_ip_address = models.GenericIPAddressField("request IP address", null=True, blank=True)
    request_user_agent = models.CharField(max_length=500, blank=True)
    expires_at = models.DateTimeField()
    confirmed_at = models.DateTimeField(null=True, blank=True)
    confirm_ip_address = models.GenericIPAddressField("confirmation IP address", null=True, blank=True)
    confirm_user_agent = models.CharField("confirmation user agent", max_length=500, blank=True)
    customer = models.ForeignKey(
        Customer, null=True, blank=True, on_delete=models.SET_NULL, related_name="signup_requests"
    )

    class Meta:
        ordering = ["-requested_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(status="confirmed", confirmed_at__isnull=False) | ~Q(status="confirmed"),
                name="signup_confirmed_has_time",
            ),
            models.CheckConstraint(
                condition=~Q(kind="registration") | Q(product__isnull=False),
                name="signup_registration_names_product",
            ),
        ]
        indexes = [
            # The retention job deletes expired, unconfirmed requests.
            models.Index(fields=["expires_at"], name="signup_unconfirmed_expiry", condition=~Q(status="confirmed")),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.public_id}"

    @property
    def purpose_codes(self) -> list[str]:
        return [entry["code"] for entry in self.purposes]
