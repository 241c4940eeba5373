"""The two staff exports: the market-research call list and internal-analysis purchase data."""

from __future__ import annotations

import csv
import io
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone
from django.utils.crypto import salted_hmac

from common.dates import iso
from consents.selectors import customers_consenting_to
from customers.models import PERSONAL_DETAIL_FIELDS, Customer, ProductRegistration

from .access import AccessLog, access_log_record

PSEUDONYM_SALT = "marketing.internal-analysis.pseudonym"


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


# What research by phone or post needs: the customer's details without the job title.
CALL_LIST_COLUMNS = [*(name for name in PERSONAL_DETAIL_FIELDS if name != "job_title"), "language"]


@transaction.atomic
def call_list_export(*, user: User) -> tuple[str, str]:
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
def internal_analysis_export(*, user: User) -> tuple[str, str]:
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
                _cell(registration.reseller.name if registration.reseller else ""),
                iso(registration.purchased_at),
                iso(registration.refunded_at) or "",
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
