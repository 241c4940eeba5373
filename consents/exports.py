"""
The consent app's part of a customer's data export (GDPR Art. 15 and 20), registered from
ConsentsConfig.ready(), and the JSON file the customer and staff download. The format is
documented in docs/prefs-readme.md.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.http import HttpResponse
from django.utils import timezone

from customers.models import Customer
from customers.services import customer_export

EXPORT_FORMAT = "consentdesk.customer-export/1"


def _iso(value) -> str | None:
    return value.isoformat() if value else None


def current_consents(customer: Customer) -> list[dict[str, Any]]:
    return [
        {
            "purpose": c.purpose.code,
            "purpose_name": c.purpose.name,
            "granted": c.granted,
            "since": _iso(c.since),
        }
        for c in customer.consents.select_related("purpose").order_by("purpose__display_order", "purpose__code")
    ]


def consent_history(customer: Customer) -> list[dict[str, Any]]:
    """Every decision, oldest first, with the proof the ledger keeps."""
    return [
        {
            "purpose": e.purpose.code,
            "decision": "granted" if e.granted else "withdrawn",
            "occurred_at": _iso(e.occurred_at),
            "recorded_at": _iso(e.recorded_at),
            "source": e.source,
            "method": e.method,
            "policy_version": e.policy_version.version if e.policy_version else None,
            "wording": e.wording,
            "ip_address": e.ip_address,
            "user_agent": e.user_agent,
            "recorded_by_staff": e.staff_user_id is not None,
            "note": e.note,
            "reference": e.reference,
            "redacted_at": _iso(e.redacted_at),
        }
        for e in customer.consent_events.select_related("purpose", "policy_version").order_by("occurred_at", "id")
    ]


def disclosures(customer: Customer) -> list[dict[str, Any]]:
    return [
        {
            "third_party": d.third_party.name,
            "third_party_kind": d.third_party.kind,
            "third_party_country": str(d.third_party.country or ""),
            "data_categories": list(d.data_categories or []),
            "legal_basis": d.legal_basis,
            "purpose": d.purpose,
            "disclosed_at": _iso(d.disclosed_at),
            "reference": d.reference,
        }
        for d in customer.disclosures.select_related("third_party").order_by("disclosed_at", "id")
    ]


def export_document(customer: Customer) -> dict[str, Any]:
    return {
        "format": EXPORT_FORMAT,
        "generated_at": timezone.now().isoformat(),
        **customer_export(customer=customer),
    }


def export_response(customer: Customer, *, filename: str = "") -> HttpResponse:
    """The same file for the customer and for staff."""
    body = json.dumps(export_document(customer), cls=DjangoJSONEncoder, indent=2, ensure_ascii=False)
    response = HttpResponse(body, content_type="application/json; charset=utf-8")
    filename = filename or f"my-data-{timezone.localdate():%Y-%m-%d}.json"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
