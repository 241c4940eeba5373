"""Paddle Billing notifications as Paddle sends them (shapes from Paddle's webhook reference)."""

from __future__ import annotations

import hmac
import json
import time
from hashlib import sha256
from typing import Any

SECRET = "pdl_ntfset_01hs0t3tw21j988db1pam5xg8m_GrOWLNef+vmtjJYq4mSnHNzvc8uWoJ1I"
ROTATED_SECRET = "pdl_ntfset_01hs0t3tw21j988db1pam5xg8m_NewSecretAfterRotationAbCdEf12"
WORDING = "Yes, send me product news and offers by email. I can unsubscribe at any time."
URL = "/webhooks/paddle/"


def sign(body: bytes, *, secret: str = SECRET, ts: int | None = None) -> str:
    ts = int(time.time()) if ts is None else ts
    digest = hmac.new(secret.encode(), f"{ts}:".encode() + body, sha256).hexdigest()
    return f"ts={ts};h1={digest}"


def post(client, document: dict[str, Any] | bytes, *, secret: str = SECRET, ts: int | None = None, signature=None):
    body = document if isinstance(document, bytes) else json.dumps(document).encode()
    headers = {} if signature is False else {"Paddle-Signature": signature or sign(body, secret=secret, ts=ts)}
    return client.post(URL, body, content_type="application/json", headers=headers)


def event(event_type: str, data: dict[str, Any], *, event_id: str, occurred_at: str) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "event_type": event_type,
        "occurred_at": occurred_at,
        "notification_id": "ntf_" + event_id[4:],
        "data": data,
    }


def customer(
    *, id="ctm_01hv6y1jedq4p1n0yqn5ba3ky4", email="fiona.naylor@example.com", name="Fiona Naylor", consent=False
):
    return {
        "id": id,
        "name": name,
        "email": email,
        "status": "active",
        "locale": "de",
        "custom_data": None,
        "marketing_consent": consent,
        "import_meta": None,
        "created_at": "2026-11-20T10:00:00.000Z",
        "updated_at": "2026-11-20T10:00:00.000Z",
    }


def address(*, customer_id="ctm_01hv6y1jedq4p1n0yqn5ba3ky4", city="Leeds"):
    return {
        "id": "add_01hv8gq3318ktkfengj2r75gfx",
        "customer_id": customer_id,
        "description": "Head office",
        "first_line": "4050 Jefferson Plaza",
        "second_line": "41st Floor",
        "city": city,
        "postal_code": "LS1 4AP",
        "region": "West Yorkshire",
        "country_code": "GB",
        "custom_data": None,
        "status": "active",
        "created_at": "2026-11-20T10:00:01.000Z",
        "updated_at": "2026-11-20T10:00:01.000Z",
    }


def business(*, customer_id="ctm_01hv6y1jedq4p1n0yqn5ba3ky4"):
    return {
        "id": "biz_01hv8j0z17hv4ew9hf1cwf8gdv",
        "customer_id": customer_id,
        "name": "Naylor Photography Ltd",
        "company_number": "123456789",
        "tax_identifier": "AB0123456789",
        "status": "active",
        "contacts": [],
        "created_at": "2026-11-20T10:00:02.000Z",
        "updated_at": "2026-11-20T10:00:02.000Z",
    }


def transaction(
    *,
    id="txn_01hv8m0mnx3sj85e7gxc6kga03",
    customer_id="ctm_01hv6y1jedq4p1n0yqn5ba3ky4",
    product_id="pro_01htz88xpr0mm7b3ta2pjkr7w2",
):
    return {
        "id": id,
        "status": "completed",
        "customer_id": customer_id,
        "address_id": "add_01hv8gq3318ktkfengj2r75gfx",
        "business_id": None,
        "currency_code": "EUR",
        "origin": "web",
        "collection_mode": "automatic",
        "items": [
            {
                "price": {"id": "pri_01htz8ak4cn1a3bbbqx5tprz34", "product_id": product_id, "name": "Licence"},
                "quantity": 1,
            }
        ],
        "billed_at": "2026-11-20T10:01:00.000Z",
        "created_at": "2026-11-20T10:00:30.000Z",
        "updated_at": "2026-11-20T10:01:05.000Z",
    }


def refund(*, transaction_id="txn_01hv8m0mnx3sj85e7gxc6kga03", status="approved"):
    return {
        "id": "adj_01hvgf2s84dr6reszzg29zbvcm",
        "action": "refund",
        "transaction_id": transaction_id,
        "customer_id": "ctm_01hv6y1jedq4p1n0yqn5ba3ky4",
        "reason": "Bought the wrong edition",
        "currency_code": "EUR",
        "status": status,
        "items": [{"item_id": "txnitm_01hv8m0mp2h3pvx4b7t7c0m3dw", "type": "full", "amount": "4900"}],
        "created_at": "2026-11-25T09:00:00.000Z",
        "updated_at": "2026-11-25T09:30:00.000Z",
    }
