"""
The marketing app's part of a customer's data export and erasure (through customers.registry),
and the two staff exports: the market-research call list and internal-analysis purchase data.
"""

from __future__ import annotations

import csv
import io
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone
from django.utils.crypto import salted_hmac

from consents.selectors import customers_consenting_to
from customers.models import Customer, ProductRegistration

from .access import AccessLog, access_log_record
from .emails import placeholder_values
from .models import Delivery, Suppression
from .rendering import TemplateRefused, compile_template
from .suppression import suppression_add

PSEUDONYM_SALT = "marketing.internal-analysis.pseudonym"


def _iso(value) -> str | None:
    return value.isoformat() if value else None


# ---------------------------------------------------------------------------------------
# Registry: data export and erasure


def emails_sent(customer: Customer) -> list[dict[str, Any]]:
    """Every marketing email sent to the customer: campaign, the subject as they received it, time."""
    values = placeholder_values(customer)

    def subject(delivery: Delivery) -> str:
        if delivery.subject:
            return delivery.subject  # recorded when it was sent
        try:  # sent before subjects were recorded: rebuilt from today's details
            return " ".join(compile_template(delivery.campaign.subject).render(values).split())
        except TemplateRefused:
            return delivery.campaign.subject

    return [
        {"campaign": d.campaign.name, "subject": subject(d), "sent_at": _iso(d.sent_at)}
        for d in Delivery.objects.filter(customer=customer, status=Delivery.Status.SENT)
        .select_related("campaign")
        .order_by("sent_at", "id")
    ]


def erase_customer(customer: Customer) -> None:
    """
    Keep only which campaign went to the customer and when; drop the Message-ID and errors
    (they can name the address). The address's hash joins the suppression list, so an erased
    person is never mailed again even if re-imported.
    """
    Delivery.objects.filter(customer=customer).update(message_id="", last_error="", subject="")
    if customer.email and "@" in customer.email:
        suppression_add(email=customer.email, reason=Suppression.Reason.ERASURE)


# ---------------------------------------------------------------------------------------
# Staff exports

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any, *, allow_plus: bool = False) -> str:
    """Neutralise spreadsheet formulas (CSV injection); a phone number may start with +."""
    text = "" if value is None else str(value)
    if text.startswith(_FORMULA_START) and not (
        allow_plus and text.startswith("+") and text[1:].replace(" ", "").isdigit()
    ):
        return "'" + text
    return text


CALL_LIST_COLUMNS = [
    "first_name",
    "last_name",
    "company",
    "phone",
    "address_line1",
    "address_line2",
    "city",
    "region",
    "postal_code",
    "country",
    "language",
]


@transaction.atomic
def call_list_export(*, user: AbstractBaseUser) -> tuple[str, str]:
    """
    CSV of customers currently consenting to market research, for research by phone or post.
    Logged in the access log (the Export logs page lists those entries).
    """
    customers = (
        customers_consenting_to("market_research", customers=Customer.objects.not_erased())
        .order_by("last_name", "first_name", "id")
        .only(*CALL_LIST_COLUMNS)
    )
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CALL_LIST_COLUMNS)
    count = 0
    for customer in customers.iterator(chunk_size=2000):
        writer.writerow([_cell(getattr(customer, c), allow_plus=c == "phone") for c in CALL_LIST_COLUMNS])
        count += 1
    access_log_record(
        staff_user=user, action=AccessLog.Action.LIST_EXPORTED, detail=f"Market-research call list: {count} customers"
    )
    return f"market-research-call-list-{timezone.now():%Y%m%d-%H%M}.csv", out.getvalue()


def pseudonym(customer_public_id) -> str:
    """Stable across exports, not reversible without the server's SECRET_KEY."""
    return salted_hmac(PSEUDONYM_SALT, str(customer_public_id), algorithm="sha256").hexdigest()[:32]


ANALYSIS_COLUMNS = [
    "customer",
    "product",
    "product_code",
    "edition",
    "reseller",
    "purchased_at",
    "refunded_at",
    "country",
    "currency",
]


@transaction.atomic
def internal_analysis_export(*, user: AbstractBaseUser) -> tuple[str, str]:
    """
    Registrations of customers currently consenting to internal analysis, the customer
    pseudonymised. Logged in the access log (the Export logs page lists those entries).
    """
    registrations = (
        ProductRegistration.objects.filter(
            customer__in=customers_consenting_to("internal_analysis", customers=Customer.objects.not_erased()).values(
                "pk"
            )
        )
        .select_related("product", "reseller", "customer")
        .order_by("purchased_at", "id")
    )
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(ANALYSIS_COLUMNS)
    count = 0
    for registration in registrations.iterator(chunk_size=2000):
        customer = registration.customer
        writer.writerow(
            [
                pseudonym(customer.public_id),
                _cell(registration.product.name),
                registration.product.code,
                _cell(registration.edition),
                _cell(registration.reseller.name),
                _iso(registration.purchased_at),
                _iso(registration.refunded_at) or "",
                str(customer.country or ""),
                customer.currency,
            ]
        )
        count += 1
    access_log_record(
        staff_user=user,
        action=AccessLog.Action.LIST_EXPORTED,
        detail=f"Internal-analysis purchase data (pseudonymised): {count} registrations",
    )
    return f"internal-analysis-{timezone.now():%Y%m%d-%H%M}.csv", out.getvalue()
