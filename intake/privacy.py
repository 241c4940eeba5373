"""
Intake's part of a customer's data (privacy.registry), registered from IntakeConfig.ready():
reseller notifications carry personal data in their payloads, and sign-up requests the first
step of a double opt-in; both are exported, erased and expire like the rest.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import Q, TextField
from django.db.models.functions import Cast
from django.utils import timezone

from customers.models import Customer
from privacy.registry import PersonalDataPart

from .models import SignupRequest, WebhookEvent


def _about(customer: Customer) -> Q:
    condition = Q(customer=customer)
    if customer.paddle_customer_id:
        condition |= Q(subject_id=customer.paddle_customer_id)
    return condition


def export_notifications(customer: Customer) -> list[dict[str, Any]]:
    return [
        {
            "provider": event.provider,
            "event_id": event.event_id,
            "event_type": event.event_type,
            "occurred_at": event.occurred_at.isoformat(),
            "received_at": event.received_at.isoformat(),
            "status": event.status,
            # Erasure and retention empty it; the export says so rather than show an empty object.
            "payload": event.payload or None,
        }
        for event in WebhookEvent.objects.filter(_about(customer)).order_by("occurred_at", "id")
    ]


def erase_customer(customer: Customer) -> dict[str, int]:
    """Empty every stored payload about the customer, also those not yet tied to them (by address)."""
    condition = _about(customer)
    addresses = {customer.email, *customer.changes.filter(field="email").values_list("old_value", flat=True)}
    matching = WebhookEvent.objects.annotate(payload_text=Cast("payload", TextField()))
    for address in filter(None, addresses):
        condition |= Q(payload_text__icontains=f'"{address}"')
    erased = matching.filter(condition).update(payload={}, error="", redacted_at=timezone.now())
    return {"reseller_notifications": erased}


def clear_old_payloads(cutoff: datetime) -> int:
    """Finished notifications keep their payload only as long as log data is kept."""
    return (
        WebhookEvent.objects.filter(received_at__lt=cutoff, redacted_at__isnull=True)
        .exclude(status__in=["received", "waiting", "needs_attention"])
        .update(payload={}, redacted_at=timezone.now())
    )


def export_signup_requests(customer: Customer) -> list[dict[str, Any]]:
    """Both steps of each double opt-in: what was asked and shown, and the confirmation."""
    return [
        {
            "kind": signup.kind,
            "status": signup.status,
            "purposes": signup.purposes,
            "policy_version": signup.policy_version.version if signup.policy_version else None,
            "product": signup.product.name if signup.product else None,
            "licence_key": signup.licence_key,
            "order_reference": signup.order_reference,
            "requested_at": signup.requested_at.isoformat(),
            "request_ip_address": signup.request_ip_address,
            "request_user_agent": signup.request_user_agent,
            "confirmed_at": signup.confirmed_at.isoformat() if signup.confirmed_at else None,
            "confirm_ip_address": signup.confirm_ip_address,
            "confirm_user_agent": signup.confirm_user_agent,
        }
        for signup in SignupRequest.objects.filter(_signups_of(customer))
        .select_related("policy_version", "product")
        .order_by("requested_at", "id")
    ]


def _signups_of(customer: Customer) -> Q:
    addresses = {customer.email, *customer.changes.filter(field="email").values_list("old_value", flat=True)}
    condition = Q(customer=customer)
    for address in filter(None, addresses):
        condition |= Q(email__iexact=address)
    return condition


def erase_signup_requests(customer: Customer) -> dict[str, int]:
    """The requests go (what each decision was is kept in the ledger, without personal data)."""
    deleted, _ = SignupRequest.objects.filter(_signups_of(customer)).delete()
    return {"signup_requests": deleted}


def clear_old_signup_details(cutoff: datetime) -> int:
    """Expired, unconfirmed requests are deleted; confirmed ones lose their IP addresses and user agents."""
    deleted, _ = (
        SignupRequest.objects.exclude(status=SignupRequest.Status.CONFIRMED)
        .filter(expires_at__lt=timezone.now())
        .delete()
    )
    cleared = (
        SignupRequest.objects.filter(requested_at__lt=cutoff)
        .exclude(request_ip_address__isnull=True, confirm_ip_address__isnull=True)
        .update(request_ip_address=None, request_user_agent="", confirm_ip_address=None, confirm_user_agent="")
    )
    return deleted + cleared


class IntakePart(PersonalDataPart):
    name = "intake"
    personal_fields = {
        "reseller_notifications": ("payload",),
        "signup_requests": (
            "licence_key",
            "order_reference",
            "request_ip_address",
            "request_user_agent",
            "confirm_ip_address",
            "confirm_user_agent",
        ),
    }

    def export(self, customer: Customer) -> dict[str, Any]:
        return {
            "reseller_notifications": export_notifications(customer),
            "signup_requests": export_signup_requests(customer),
        }

    def erase(self, customer: Customer) -> dict[str, int]:
        return {**erase_customer(customer), **erase_signup_requests(customer)}

    def retention(self, cutoff: datetime) -> int:
        return clear_old_payloads(cutoff) + clear_old_signup_details(cutoff)
