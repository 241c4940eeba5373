"""The customers app's part of a customer's data export (GDPR Art. 15 and 20)."""

from typing import Any

from .models import Customer


def _iso(value) -> str | None:
    return value.isoformat() if value else None


def customer_details(customer: Customer) -> dict[str, Any]:
    return {
        "id": str(customer.public_id),
        "email": customer.email,
        "first_name": customer.first_name,
        "last_name": customer.last_name,
        "job_title": customer.job_title,
        "company": customer.company,
        "phone": str(customer.phone or ""),
        "address_line1": customer.address_line1,
        "address_line2": customer.address_line2,
        "city": customer.city,
        "region": customer.region,
        "postal_code": customer.postal_code,
        "country": str(customer.country or ""),
        "language": customer.language,
        "currency": customer.currency,
        "signup_ip": customer.signup_ip,
        "created_at": _iso(customer.created_at),
        "updated_at": _iso(customer.updated_at),
    }


def registrations(customer: Customer) -> list[dict[str, Any]]:
    return [
        {
            "product": r.product.name,
            "product_code": r.product.code,
            "edition": r.edition,
            "version": r.version,
            "licence_key": r.licence_key,
            "reseller": r.reseller.name,
            "order_reference": r.order_reference,
            "purchased_at": _iso(r.purchased_at),
            "money_back_deadline": _iso(r.money_back_deadline),
            "refunded_at": _iso(r.refunded_at),
        }
        for r in customer.registrations.select_related("product", "reseller").order_by("purchased_at", "id")
    ]


def corrections(customer: Customer) -> list[dict[str, Any]]:
    return [
        {
            "field": c.field,
            "old_value": c.old_value,
            "new_value": c.new_value,
            "changed_at": _iso(c.changed_at),
            "changed_by": c.changed_by,
        }
        for c in customer.changes.order_by("changed_at", "id")
    ]
