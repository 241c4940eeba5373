"""
The marketing app's part of a customer's data (privacy.registry), registered from
MarketingConfig.ready(): the marketing emails sent to them, and the suppression of their addresses.
"""

from __future__ import annotations

from typing import Any

from common.dates import iso
from customers.models import Customer
from privacy.registry import PersonalDataPart

from .emails import placeholder_values
from .models import Delivery, Suppression
from .rendering import TemplateRefused, compile_template


class MarketingPart(PersonalDataPart):
    name = "marketing"
    personal_fields = {"marketing_emails": ("subject",)}

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
                for d in Delivery.objects.filter(customer=customer, status=Delivery.Status.SENT)
                .select_related("campaign")
                .order_by("sent_at", "id")
            ]
        }

    def erase(self, customer: Customer) -> dict[str, int]:
        """
        Keep only which campaign went to the customer and when; drop the Message-ID, subject and
        errors (they can name the address). The address's hash joins the suppression list, so
        an erased person is never mailed again even if re-imported.
        """
        from .services import suppression_add

        cleared = Delivery.objects.filter(customer=customer).update(message_id="", last_error="", subject="")
        if customer.email and "@" in customer.email:
            suppression_add(email=customer.email, reason=Suppression.Reason.ERASURE)
        return {"deliveries_cleared": cleared}
