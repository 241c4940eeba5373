"""
Posting mail providers' webhook payloads (tests/marketing/payloads/) the way each provider
does: its content type and headers, basic auth with the webhook secret, Mailgun's HMAC
signature, Postal's RSA signature, Amazon SNS's envelope.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from django.utils import timezone

PAYLOADS = Path(__file__).parent / "payloads"
WEBHOOK_SECRET = "mailhooks:Vq8-not-a-real-secret-3Lz"
MAILGUN_SIGNING_KEY = "key-mailgun-signing-for-tests"
PROVIDERS = ("amazon_ses", "postmark", "sendgrid", "mailgun", "brevo", "postal")


@cache
def postal_private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def postal_public_key_setting() -> str:
    """The key as Postal shows it (and POSTAL_WEBHOOK_KEY takes it): base64 DER, no PEM lines."""
    der = (
        postal_private_key()
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return base64.b64encode(der).decode("ascii")


def anymail_settings() -> dict[str, Any]:
    return {
        "WEBHOOK_SECRET": WEBHOOK_SECRET,
        "MAILGUN_WEBHOOK_SIGNING_KEY": MAILGUN_SIGNING_KEY,
        "POSTAL_WEBHOOK_KEY": postal_public_key_setting(),
        "AMAZON_SES_AUTO_CONFIRM_SNS_SUBSCRIPTIONS": False,
    }


def provider_of(payload_name: str) -> str:
    return next(p for p in PROVIDERS if payload_name.startswith(p + "_"))


def _fill(value: Any, values: dict[str, Any]) -> Any:
    if isinstance(value, dict):
        return {key: _fill(item, values) for key, item in value.items()}
    if isinstance(value, list):
        return [_fill(item, values) for item in value]
    if isinstance(value, str):
        if value in values:
            return values[value]
        for token, replacement in values.items():
            if token in value:
                value = value.replace(token, str(replacement))
        return value
    return value


def payload(
    name: str, *, message_id: str = "", recipient: str = "", at: datetime | None = None, event_id: Any = None
) -> Any:
    """A payload file filled in: the delivery's Message-ID, the address, the time, an event ID."""
    at = at or timezone.now()
    if event_id is None:
        event_id = uuid.uuid4().int % 10**9 if provider_of(name) == "postmark" else uuid.uuid4().hex
    values = {
        "__MESSAGE_ID_BARE__": message_id.strip("<>"),
        "__MESSAGE_ID__": message_id,
        "__RECIPIENT__": recipient,
        "__EVENT_ID__": event_id,
        "__EPOCH_FLOAT__": at.timestamp(),
        "__EPOCH_MS__": int(at.timestamp() * 1000),
        "__EPOCH__": int(at.timestamp()),
        "__ISO__": at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
    }
    return _fill(json.loads((PAYLOADS / f"{name}.json").read_text()), values)


def basic_auth(secret: str = WEBHOOK_SECRET) -> str:
    return "Basic " + base64.b64encode(secret.encode()).decode("ascii")


def post_payload(client, name: str, data: Any, *, auth: str | None = None, sign: bool = True, **headers):
    """POST a filled payload as the provider would, to /anymail/<esp>/tracking/."""
    esp = provider_of(name)
    content_type = "application/json"
    if esp == "mailgun" and sign:
        block = data["signature"]
        block["signature"] = hmac.new(
            MAILGUN_SIGNING_KEY.encode(), f"{block['timestamp']}{block['token']}".encode(), hashlib.sha256
        ).hexdigest()
    if esp == "amazon_ses":
        # SNS posts JSON as text/plain, the SES event as a JSON string inside it.
        data = {**data, "Message": json.dumps(data["Message"]) + "\n"}
        content_type = "text/plain; charset=UTF-8"
        headers.setdefault("HTTP_X_AMZ_SNS_MESSAGE_ID", data["MessageId"])
        headers.setdefault("HTTP_X_AMZ_SNS_MESSAGE_TYPE", data["Type"])
    body = json.dumps(data).encode()
    if esp == "postal" and sign:
        signature = postal_private_key().sign(body, padding.PKCS1v15(), hashes.SHA1())  # noqa: S303 (Postal signs with SHA-1)
        headers.setdefault("HTTP_X_POSTAL_SIGNATURE", base64.b64encode(signature).decode("ascii"))
    if auth is None:
        auth = basic_auth()
    if auth:
        headers["HTTP_AUTHORIZATION"] = auth
    return client.post(f"/anymail/{esp}/tracking/", data=body, content_type=content_type, **headers)


def post_event(client, name: str, *, message_id: str = "", recipient: str = "", at=None, event_id=None, **kwargs):
    data = payload(name, message_id=message_id, recipient=recipient, at=at, event_id=event_id)
    return post_payload(client, name, data, **kwargs)


def send_campaign(campaign, user) -> None:
    """The real send path: send now, dispatch, one batch over SMTP."""
    from marketing import campaigns, dispatch, sending

    campaigns.campaign_send_now(campaign=campaign, user=user)
    dispatch.campaigns_dispatch_due()
    sending.deliveries_send_batch(campaign_id=campaign.pk, first_id=0, last_id=dispatch.LAST_ID)


def granted(customer, code: str) -> bool:
    from consents.models import Consent

    return Consent.objects.get(customer=customer, purpose__code=code).granted
