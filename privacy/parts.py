"""
The personal-data parts of the customers app (which cannot import the registry, being below
it) and of this app. Registered from PrivacyConfig.ready(), before the apps above register theirs.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from django.db.models import Q
from django.utils import timezone

from common.dates import iso
from customers.email_changes import email_changes_erase, email_changes_export
from customers.models import (
    ERASED_MARKER,
    PERSONAL_DETAIL_FIELDS,
    PREFERENCE_FIELDS,
    Customer,
    CustomerChange,
    ProductRegistration,
)

from .models import PrivacyRequest
from .registry import PersonalDataPart


def _text(value: Any) -> Any:
    # Phone numbers and countries are objects; the export carries their text.
    return value if value is None or isinstance(value, str) else str(value)


class CustomerRecordPart(PersonalDataPart):
    """The customer's record, product registrations and correction history."""

    name = "customers"
    personal_fields = {
        "customer": ("email", *PERSONAL_DETAIL_FIELDS, "signup_ip", "signup_user_agent"),
        "registrations": ("licence_key",),
        "corrections": ("old_value", "new_value"),
        "email_changes": ("old_email", "new_email"),
    }

    def export(self, customer: Customer) -> dict[str, Any]:
        details: dict[str, Any] = {"id": str(customer.public_id)}
        for name in ["email", *PERSONAL_DETAIL_FIELDS, *PREFERENCE_FIELDS, "signup_ip", "signup_user_agent"]:
            details[name] = _text(getattr(customer, name)) if name != "signup_ip" else customer.signup_ip
        details["created_at"] = iso(customer.created_at)
        details["updated_at"] = iso(customer.updated_at)
        return {
            "customer": details,
            "registrations": [
                {
                    "product": r.product.name,
                    "product_code": r.product.code,
                    "edition": r.edition,
                    "version": r.version,
                    "licence_key": r.licence_key,
                    "reseller": r.reseller.name if r.reseller else None,
                    "order_reference": r.order_reference,
                    "purchased_at": iso(r.purchased_at),
                    "money_back_deadline": iso(r.money_back_deadline),
                    "refunded_at": iso(r.refunded_at),
                }
                for r in customer.registrations.select_related("product", "reseller").order_by("purchased_at", "id")
            ],
            "corrections": [
                {
                    "field": c.field,
                    "old_value": c.old_value,
                    "new_value": c.new_value,
                    "changed_at": iso(c.changed_at),
                    "changed_by": c.changed_by,
                }
                for c in customer.changes.order_by("changed_at", "id")
            ],
            "email_changes": email_changes_export(customer),
        }

    def erase(self, customer: Customer) -> dict[str, int]:
        # The first name becomes the marker, so every screen says the record was erased.
        blanked = [name for name in PERSONAL_DETAIL_FIELDS if name != "first_name"]
        customer.email = f"erased-{uuid.uuid4().hex}@erased.invalid"
        customer.first_name = ERASED_MARKER
        for name in blanked:
            setattr(customer, name, "")
        customer.notes = ""
        customer.signup_user_agent = ""
        customer.signup_ip = None
        customer.erased_at = timezone.now()
        own_fields = ["email", "first_name", *blanked, "notes", "signup_user_agent", "signup_ip", "erased_at"]
        customer.save(update_fields=[*own_fields, "updated_at"])
        # Purchase records the law requires keep order reference, dates and product.
        registrations = ProductRegistration.objects.filter(customer=customer)
        corrections = CustomerChange.objects.filter(customer=customer).exclude(old_value="", new_value="")
        return {
            "licence_keys_removed": registrations.exclude(licence_key="").update(licence_key=""),
            "refund_reasons_removed": registrations.exclude(refund_override_reason="").update(
                refund_override_reason=ERASED_MARKER
            ),
            "corrections_blanked": corrections.update(old_value="", new_value=""),
            "email_changes_deleted": email_changes_erase(customer),
        }

    def retention(self, cutoff: datetime) -> int:
        stale = Customer.objects.filter(created_at__lt=cutoff).filter(
            Q(signup_ip__isnull=False) | ~Q(signup_user_agent="")
        )
        return stale.update(signup_ip=None, signup_user_agent="")


class PrivacyRequestPart(PersonalDataPart):
    """The customer's data-subject requests: kind, dates and outcome stay, what they wrote goes."""

    name = "privacy"
    personal_fields = {"privacy_requests": ("details",)}

    def export(self, customer: Customer) -> dict[str, Any]:
        return {
            "privacy_requests": [
                {
                    "kind": r.kind,
                    "channel": r.channel,
                    "details": r.details,
                    "received_at": iso(r.received_at),
                    "answer_by": iso(r.answer_by),
                    "status": r.status,
                    "closed_at": iso(r.closed_at),
                }
                for r in customer.privacy_requests.order_by("received_at", "id")
            ]
        }

    def erase(self, customer: Customer) -> dict[str, int]:
        requests = PrivacyRequest.objects.filter(customer=customer)
        return {
            "request_details_blanked": requests.exclude(details="").update(details=ERASED_MARKER),
            # Staff's reasons may quote the customer.
            "extension_reasons_blanked": requests.exclude(extension_reason="").update(extension_reason=ERASED_MARKER),
            "refusal_reasons_blanked": requests.exclude(refusal_reason="").update(refusal_reason=ERASED_MARKER),
        }
