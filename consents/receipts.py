"""
A consent receipt: what a customer decided for each purpose, and the proof, as one JSON
document. Its fields follow the spirit of the Kantara Initiative Consent Receipt
Specification 1.1 and ISO/IEC TS 27560 (controller, subject, per-purpose decision with
time, collection method, policy and the notice shown); docs/consents-readme.md maps them.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.utils import timezone

from common.dates import iso
from customers.models import Customer

from .models import ConsentEvent, Disclosure, PolicyVersion
from .selectors import consent_states

RECEIPT_FORMAT = "consentdesk-consent-receipt/1"


def _event_proof(event: ConsentEvent) -> dict[str, Any]:
    policy = event.policy_version
    return {
        "event_id": event.pk,
        "decision": "granted" if event.granted else "withdrawn",
        "decided_at": iso(event.occurred_at),
        "recorded_at": iso(event.recorded_at),
        "source": event.source,
        "source_label": event.get_source_display(),
        "collection_method": event.method,
        "collection_method_label": event.get_method_display(),
        "policy_version": policy.version if policy else None,
        "policy_effective_at": iso(policy.effective_at) if policy else None,
        # The wording as shown when the customer decided: a copy kept with the event,
        # not the purpose's wording today.
        "wording_shown": event.wording,
        "wording_language": event.language,
        "recorded_by_staff": event.staff_user_id is not None,
        "note": event.note,
        "ip_address": event.ip_address,
        "user_agent": event.user_agent,
        "redacted_at": iso(event.redacted_at),
    }


def consent_receipt(*, customer: Customer) -> dict[str, Any]:
    """The receipt for one customer, ready for json.dumps."""
    current_policy = PolicyVersion.objects.current()
    history: dict[int, list[dict[str, Any]]] = {}
    for event in (
        ConsentEvent.objects.filter(customer_id=customer.pk)
        .select_related("policy_version")
        .order_by("occurred_at", "id")
    ):
        history.setdefault(event.purpose_id, []).append(_event_proof(event))
    purposes = []
    for state in consent_states(customer=customer, with_events=True):
        purpose = state.purpose
        purposes.append(
            {
                "purpose": purpose.code,
                "purpose_name": purpose.name,
                "marketing": purpose.is_marketing,
                "state": state.state,
                "current_decision": _event_proof(state.event) if state.event else None,
                "history": history.get(purpose.pk, []),
            }
        )
    disclosures = [
        {
            "third_party": disclosure.third_party.name,
            "third_party_country": str(disclosure.third_party.country or ""),
            "data_categories": disclosure.data_categories,
            "legal_basis": disclosure.legal_basis,
            "disclosure_purpose": disclosure.disclosure_purpose.code,
            "disclosure_purpose_name": disclosure.disclosure_purpose.name,
            "purpose": disclosure.purpose,
            "disclosed_at": iso(disclosure.disclosed_at),
            "consent_event_id": disclosure.consent_event_id,
        }
        for disclosure in Disclosure.objects.filter(customer_id=customer.pk).select_related(
            "third_party", "disclosure_purpose"
        )
    ]
    return {
        "receipt_format": RECEIPT_FORMAT,
        "receipt_id": str(uuid.uuid4()),
        "issued_at": iso(timezone.now()),
        "language": customer.language,
        "controller": {
            "name": settings.COMPANY_NAME,
            "postal_address": settings.COMPANY_POSTAL_ADDRESS,
            "contact_email": settings.DEFAULT_FROM_EMAIL,
        },
        "subject": {"public_id": str(customer.public_id), "email": customer.email},
        "privacy_policy": (
            {"version": current_policy.version, "effective_at": iso(current_policy.effective_at)}
            if current_policy
            else None
        ),
        "purposes": purposes,
        "third_party_disclosures": disclosures,
        "sale_of_data": False,
    }
