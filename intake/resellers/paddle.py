"""
Paddle Billing notifications (https://developer.paddle.com/webhooks/overview).

Verification uses Paddle's own SDK (`paddle-python-sdk`): its `PaddleSignature` parses the
`Paddle-Signature: ts=…;h1=…` header and compares the HMAC-SHA256 of `"{ts}:{raw body}"` with
each configured secret (several at once while a secret is rotated). The time check is ours, with
the SDK's default tolerance of 5 seconds, because the SDK's `Verifier` reads the clock itself and
turns the check off when a `TEST_MODE` environment variable is set.

Paddle sends an event more than once and out of order, and signs each attempt afresh: the
event id makes a repeat harmless, and the time the event occurred orders what is applied.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils.dateparse import parse_datetime
from paddle_billing.Notifications import PaddleSignature, Secret

from consents.models import Consent, Method, Purpose, Source
from consents.services import consent_grant, consent_withdraw
from customers.models import Customer, CustomerChange, Product, ProductRegistration, ThirdParty
from customers.services import (
    customer_create,
    customer_email_set_by_reseller,
    customer_update,
    registration_refund,
)
from privacy.selectors import customer_address_was_erased

from .base import NeedsAttention, Notification, NotificationRefused, Outcome, SignatureRefused, WaitForData

if TYPE_CHECKING:
    from ..models import WebhookEvent

SIGNATURE_HEADER = "Paddle-Signature"


def _secrets() -> list[Secret]:
    return [Secret(secret) for secret in settings.PADDLE_WEBHOOK_SECRETS]


class PaddleAdapter:
    name = "paddle"
    display_name = "Paddle"

    def is_configured(self) -> bool:
        return bool(settings.PADDLE_WEBHOOK_SECRETS)

    # --- verify -------------------------------------------------------------------------

    def verify(self, *, headers: Mapping[str, str], body: bytes, now: float) -> None:
        header = headers.get(SIGNATURE_HEADER, "")
        if not header:
            raise SignatureRefused("The Paddle-Signature header is missing.")
        try:
            timestamp, hashes = PaddleSignature.parse(header)
        except ValueError:
            raise SignatureRefused("The Paddle-Signature header is malformed.", status=400) from None
        if not hashes.get("h1"):
            raise SignatureRefused("The Paddle-Signature header carries no h1 signature.")
        tolerance = settings.PADDLE_WEBHOOK_TOLERANCE_SECONDS
        if abs(now - timestamp) > tolerance:
            raise SignatureRefused(
                f"The signature's timestamp is more than {tolerance} seconds from now: a replay, or a clock to fix.",
                status=400,
            )
        try:
            raw = body.decode("utf-8")
        except UnicodeDecodeError:
            raise SignatureRefused("The body is not UTF-8.", status=400) from None
        try:
            valid = PaddleSignature().verify(header, raw, _secrets())
        except ConnectionRefusedError:  # how the SDK says no secret matched
            valid = False
        if not valid:
            raise SignatureRefused("The signature does not match any configured secret.")

    # --- parse --------------------------------------------------------------------------

    def parse(self, body: bytes) -> Notification:
        try:
            document = json.loads(body)
        except ValueError:
            raise NotificationRefused("The body is not JSON.") from None
        if not isinstance(document, dict):
            raise NotificationRefused("The body is not a JSON object.")
        event_id, event_type = document.get("event_id"), document.get("event_type")
        data = document.get("data")
        if not isinstance(event_id, str) or not event_id or len(event_id) > 100:
            raise NotificationRefused("event_id is missing or not a string of at most 100 characters.")
        if not isinstance(event_type, str) or not event_type or len(event_type) > 100:
            raise NotificationRefused("event_type is missing or not a string of at most 100 characters.")
        occurred_at = _datetime(document.get("occurred_at"))
        if occurred_at is None:
            raise NotificationRefused("occurred_at is missing or not an ISO 8601 time with a time zone.")
        if not isinstance(data, dict):
            raise NotificationRefused("data is missing or not an object.")
        subject = data.get("id")
        return Notification(
            event_id=event_id,
            event_type=event_type,
            occurred_at=occurred_at,
            subject_id=subject[:100] if isinstance(subject, str) else "",
            payload=document,
        )

    # --- apply --------------------------------------------------------------------------

    def apply(self, event: WebhookEvent) -> Outcome:
        data = event.payload.get("data") or {}
        kind = event.event_type.split(".", 1)[0]
        handler = {
            "customer": self._customer,
            "address": self._address,
            "business": self._business,
            "transaction": self._transaction,
            "adjustment": self._adjustment,
        }.get(kind)
        if handler is None or event.event_type.endswith(".imported"):
            return Outcome(applied=False, message=f"{event.event_type} is not used here.")
        return handler(event, data)

    def _customer(self, event: WebhookEvent, data: dict[str, Any]) -> Outcome:
        paddle_id = _text(data, "id")
        email = _text(data, "email").strip().lower()
        if not paddle_id or not email:
            raise NeedsAttention("The customer has no id or no email address.")
        customer = Customer.objects.filter(paddle_customer_id=paddle_id).first()
        if customer is None:
            customer = Customer.objects.by_email(email).first()
            if customer is not None and customer.paddle_customer_id not in (None, paddle_id):
                raise NeedsAttention(
                    "The address belongs to a customer already linked to another Paddle customer; "
                    "link them by hand if they are the same person."
                )
        if customer is not None and customer.is_erased:
            return Outcome(applied=False, message="The customer was erased: nothing is applied.")
        first_name, last_name = _split_name(_text(data, "name"))
        language = _language(_text(data, "locale"))
        if customer is None:
            if customer_address_was_erased(email):
                return Outcome(applied=False, message="A customer with this address was erased: nothing is applied.")
            # The customer existed at Paddle from its created_at: their checkout decision is not
            # "before the record existed" because we heard of it later.
            since = min(filter(None, [_datetime(data.get("created_at")), event.occurred_at]))
            customer = customer_create(
                data={"email": email, "first_name": first_name, "last_name": last_name, "language": language},
                paddle_customer_id=paddle_id,
                created_at=since,
            )
        else:
            if customer.paddle_customer_id is None:
                customer.paddle_customer_id = paddle_id
                customer.save(update_fields=["paddle_customer_id", "updated_at"])
            details = {"first_name": first_name, "last_name": last_name}
            if language:
                details["language"] = language
            _update(customer, details)
            if email != customer.email:
                if Customer.objects.by_email(email).exclude(pk=customer.pk).exists():
                    raise NeedsAttention("The new address belongs to another customer.")
                customer_email_set_by_reseller(customer=customer, email=email)
        self._marketing_consent(event, customer, data.get("marketing_consent"))
        return Outcome(applied=True, customer=customer)

    def _marketing_consent(self, event: WebhookEvent, customer: Customer, consent: object) -> None:
        if not isinstance(consent, bool):
            return
        proof = {
            "source": Source.RESELLER_CHECKOUT,
            "method": Method.CHECKOUT,
            "occurred_at": event.occurred_at,
            "wording": settings.PADDLE_MARKETING_CONSENT_WORDING,
            "reference": f"paddle:{event.event_id}",
        }
        for purpose in Purpose.objects.filter(code__in=settings.PADDLE_MARKETING_PURPOSES):
            if consent:
                consent_grant(customer=customer, purpose=purpose, **proof)
            elif Consent.objects.filter(customer=customer, purpose=purpose, granted=True).exists():
                # Paddle reports `false` for everyone who did not tick the box; only a change
                # from yes to no is the customer withdrawing.
                consent_withdraw(customer=customer, purpose=purpose, **proof)

    def _customer_for(self, data: dict[str, Any]) -> Customer:
        paddle_id = _text(data, "customer_id")
        if not paddle_id:
            raise NeedsAttention("The event names no customer.")
        customer = Customer.objects.filter(paddle_customer_id=paddle_id).first()
        if customer is None:
            raise WaitForData(f"Customer {paddle_id} has not arrived yet.")
        return customer

    def _address(self, event: WebhookEvent, data: dict[str, Any]) -> Outcome:
        customer = self._customer_for(data)
        if customer.is_erased:
            return Outcome(applied=False, customer=customer, message="The customer was erased: nothing is applied.")
        _update(
            customer,
            {
                "address_line1": _text(data, "first_line"),
                "address_line2": _text(data, "second_line"),
                "city": _text(data, "city"),
                "region": _text(data, "region"),
                "postal_code": _text(data, "postal_code"),
                "country": _text(data, "country_code").upper(),
            },
        )
        return Outcome(applied=True, customer=customer)

    def _business(self, event: WebhookEvent, data: dict[str, Any]) -> Outcome:
        customer = self._customer_for(data)
        if customer.is_erased:
            return Outcome(applied=False, customer=customer, message="The customer was erased: nothing is applied.")
        _update(customer, {"company": _text(data, "name")})
        return Outcome(applied=True, customer=customer)

    def _transaction(self, event: WebhookEvent, data: dict[str, Any]) -> Outcome:
        if event.event_type != "transaction.completed":
            return Outcome(applied=False, message=f"{event.event_type} is not used here (only completed ones).")
        customer = self._customer_for(data)
        if customer.is_erased:
            return Outcome(applied=False, customer=customer, message="The customer was erased: nothing is applied.")
        transaction_id = _text(data, "id")
        purchased_at = _datetime(data.get("billed_at")) or _datetime(data.get("updated_at")) or event.occurred_at
        product_ids = []
        for item in data.get("items") or []:
            price = item.get("price") if isinstance(item, dict) else None
            product_id = price.get("product_id") if isinstance(price, dict) else None
            if not isinstance(product_id, str) or not product_id:
                raise NeedsAttention("An item of the transaction names no product.")
            product_ids.append(product_id)
        if not transaction_id or not product_ids:
            raise NeedsAttention("The transaction has no id or no items.")
        products = {p.paddle_product_id: p for p in Product.objects.filter(paddle_product_id__in=product_ids)}
        unknown = sorted(set(product_ids) - set(products))
        if unknown:
            raise NeedsAttention(
                f"Unknown Paddle product {', '.join(unknown)}: set it as the Paddle product ID of a product, "
                "then process the notification again."
            )
        reseller = paddle_reseller()
        for product_id in dict.fromkeys(product_ids):
            registration, created = ProductRegistration.objects.get_or_create(
                reseller=reseller,
                order_reference=transaction_id,
                product=products[product_id],
                defaults={
                    "customer": customer,
                    "purchased_at": purchased_at,
                    "currency": _text(data, "currency_code").upper()[:3],
                },
            )
            if not created and registration.customer_id != customer.pk:
                raise NeedsAttention("The transaction is already registered to another customer.")
        return Outcome(applied=True, customer=customer)

    def _adjustment(self, event: WebhookEvent, data: dict[str, Any]) -> Outcome:
        if _text(data, "action") != "refund":
            return Outcome(applied=False, message="Only refunds are recorded.")
        if _text(data, "status") != "approved":
            return Outcome(applied=False, message=f"The refund is {_text(data, 'status') or 'not approved'}.")
        transaction_id = _text(data, "transaction_id")
        registrations = list(
            ProductRegistration.objects.filter(reseller=paddle_reseller(), order_reference=transaction_id)
        )
        if not registrations:
            raise WaitForData(f"Transaction {transaction_id or '(none)'} has not arrived yet.")
        refunded_at = _datetime(data.get("updated_at")) or event.occurred_at
        for registration in registrations:
            if registration.refunded_at is None:
                registration_refund(
                    registration=registration,
                    refunded_at=max(refunded_at, registration.purchased_at or refunded_at),
                    by_reseller=True,
                    note=f"Refunded by Paddle (adjustment {_text(data, 'id')}).",
                )
        return Outcome(applied=True, customer=registrations[0].customer)


def paddle_reseller() -> ThirdParty:
    reseller, _ = ThirdParty.objects.get_or_create(
        name="Paddle", defaults={"kind": ThirdParty.Kind.RESELLER, "website": "https://www.paddle.com"}
    )
    return reseller


def _update(customer: Customer, details: dict[str, str]) -> None:
    try:
        customer_update(customer=customer, data=details, changed_by=CustomerChange.ChangedBy.RESELLER)
    except ValidationError as error:
        raise NeedsAttention(f"Paddle's details do not pass validation: {'; '.join(error.messages)}") from None


def _text(data: dict[str, Any], key: str) -> str:
    value = data.get(key)
    return value if isinstance(value, str) else ""


def _datetime(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = parse_datetime(value)
    except ValueError:
        return None
    if parsed is None or parsed.tzinfo is None:
        return None
    return parsed


def _split_name(name: str) -> tuple[str, str]:
    """Paddle keeps one name; the last word is taken as the last name."""
    parts = name.strip().rsplit(" ", 1)
    if len(parts) == 1:
        return parts[0][:150], ""
    return parts[0][:150], parts[1][:150]


def _language(locale: str) -> str:
    code = locale.replace("_", "-").split("-", 1)[0].lower()
    return code if code in dict(settings.LANGUAGES) else ""
