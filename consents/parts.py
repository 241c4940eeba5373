"""
The consent app's part of a customer's data (privacy.registry), registered from
ConsentsConfig.ready(): the current consents, the ledger with its proof, and the disclosures.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from common.dates import iso
from customers.models import Customer
from privacy.registry import PersonalDataPart

from .models import ConsentEvent, Disclosure
from .services import consent_events_redact


def redact_ledger_ip_addresses(cutoff: datetime) -> int:
    """Retention: IP addresses and user agents of decisions recorded before the cut-off (notes are evidence: kept)."""
    return consent_events_redact(
        queryset=ConsentEvent.objects.filter(recorded_at__lt=cutoff), fields=("ip_address", "user_agent")
    )


class ConsentPart(PersonalDataPart):
    name = "consents"
    personal_fields = {"consent_history": ("ip_address", "user_agent", "note")}

    def export(self, customer: Customer) -> dict[str, Any]:
        return {
            "consents": [
                {
                    "purpose": c.purpose.code,
                    "purpose_name": c.purpose.name,
                    "granted": c.granted,
                    "since": iso(c.since),
                }
                for c in customer.consents.select_related("purpose").order_by("purpose__display_order", "purpose__code")
            ],
            # Every decision, oldest first, with the proof the ledger keeps.
            "consent_history": [
                {
                    "purpose": e.purpose.code,
                    "decision": "granted" if e.granted else "withdrawn",
                    "occurred_at": iso(e.occurred_at),
                    "recorded_at": iso(e.recorded_at),
                    "source": e.source,
                    "method": e.method,
                    "policy_version": e.policy_version.version if e.policy_version else None,
                    "wording": e.wording,
                    "language": e.language,
                    "ip_address": e.ip_address,
                    "user_agent": e.user_agent,
                    "recorded_by_staff": e.staff_user_id is not None,
                    "note": e.note,
                    "reference": e.reference,
                    "redacted_at": iso(e.redacted_at),
                }
                # In the order the decisions were made (a back-dated one among them where it belongs).
                for e in customer.consent_events.select_related("purpose", "policy_version").order_by(
                    "occurred_at", "id"
                )
            ],
            "disclosures": [
                {
                    "third_party": d.third_party.name,
                    "third_party_kind": d.third_party.kind,
                    "third_party_country": str(d.third_party.country or ""),
                    "data_categories": list(d.data_categories or []),
                    "legal_basis": d.legal_basis,
                    "purpose": d.purpose,
                    "disclosed_at": iso(d.disclosed_at),
                    "reference": d.reference,
                }
                for d in customer.disclosures.select_related("third_party").order_by("disclosed_at", "id")
            ],
        }

    def erase(self, customer: Customer) -> dict[str, int]:
        """
        The ledger keeps every decision (purpose, granted or withdrawn, source, policy, wording,
        time) and loses the IP address, user agent and note. Nothing is withdrawn or deleted:
        an erased customer is never mailed because they are erased, and the ledger still shows
        what they decided and when.
        """
        return {"consent_events_redacted": consent_events_redact(customer=customer)}

    def recipients(self, customer: Customer) -> list[int]:
        """Third parties that received the customer's data, from the disclosures."""
        return list(
            Disclosure.objects.filter(customer_id=customer.pk).values_list("third_party_id", flat=True).distinct()
        )

    def retention(self, cutoff: datetime) -> int:
        return redact_ledger_ip_addresses(cutoff)
