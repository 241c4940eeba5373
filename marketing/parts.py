"""
The marketing app's part of a customer's data (privacy.registry), registered from
MarketingConfig.ready(): the marketing emails sent to them, and the suppression of their addresses.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Q

from common.dates import iso
from customers.models import Customer, email_hashes
from customers.selectors import customer_addresses_ever_held
from privacy.registry import PersonalDataPart

from .emails import placeholder_values
from .models import Delivery, DeliveryEvent, Suppression
from .rendering import TemplateRefused, compile_template


class MarketingPart(PersonalDataPart):
    name = "marketing"
    personal_fields = {"marketing_emails": ("subject",), "provider_reports": ("reason",)}

    def export(self, customer: Customer) -> dict[str, Any]:
        """Every marketing email sent to the customer: campaign, the subject as they received it, time."""
        values = placeholder_values(customer)

        def subject(delivery: Delivery) -> str:
            if delivery.subject or customer.is_erased:
                return delivery.subject  # recorded when it was sent
            try:  # sent before subjects were recorded: rebuilt from today's details
                return " ".join(compile_template(delivery.campaign.subject).render(values).split())
            except TemplateRefused:
                return delivery.campaign.subject

        return {
            "marketing_emails": [
                {"campaign": d.campaign.name, "subject": subject(d), "sent_at": iso(d.sent_at)}
                for d in Delivery.objects.filter(
                    customer=customer, status__in=[Delivery.Status.SENT, Delivery.Status.BOUNCED]
                )
                .select_related("campaign")
                .order_by("sent_at", "id")
            ],
            # What mail providers reported about those emails (bounces, complaints, unsubscribes).
            "provider_reports": [
                {
                    "campaign": event.campaign.name if event.campaign else "",
                    "provider": event.provider,
                    "report": event.get_kind_display(),
                    "reason": event.reason,
                    "at": iso(event.occurred_at),
                }
                for event in _provider_reports(customer).select_related("campaign").order_by("occurred_at", "id")
            ],
        }

    def erase(self, customer: Customer) -> dict[str, int]:
        """
        Keep only which campaign went to the customer and when; drop the Message-ID, subject and
        errors (an SMTP reply names the address). Every address the customer ever had (the
        current one and each in the correction history) joins the suppression list as a hash,
        and those entries lose their notes: an erased person is never mailed again, under any
        of their addresses, even if re-imported.
        """
        from .suppression import suppression_add

        reports = _provider_reports(customer).update(reason="", address_hash="")
        cleared = Delivery.objects.filter(customer=customer).update(message_id="", last_error="", subject="")
        addresses = customer_addresses_ever_held(customer)
        for address in addresses:
            suppression_add(email=address, reason=Suppression.Reason.ERASURE)
        hashes = [digest for address in addresses for digest in email_hashes(address)]
        notes = Suppression.objects.filter(address_hash__in=hashes).exclude(note="").update(note="")
        return {
            "deliveries_cleared": cleared,
            "addresses_suppressed": len(addresses),
            "suppression_notes_cleared": notes,
            "provider_reports_cleared": reports,
        }


def _provider_reports(customer: Customer):
    """Reports about the customer's deliveries, and those tied to their address only (kept for soft bounces)."""
    hashes = [digest for address in customer_addresses_ever_held(customer) for digest in email_hashes(address)]
    return DeliveryEvent.objects.filter(Q(delivery__customer=customer) | Q(address_hash__in=hashes))
