"""
Outgoing webhooks: what the lower apps announce (consent changed, customer updated or erased,
address suppressed) becomes one message per subscribed endpoint, written in the announcing
transaction, signed per the Standard Webhooks specification and delivered by a Celery task
after the commit, with exponential backoff up to WEBHOOK_MAX_ATTEMPTS. An endpoint that fails
for WEBHOOK_DISABLE_AFTER_HOURS is disabled and the superusers and privacy officers are mailed.

The services here return what the workers must do; receivers, tasks and the admin enqueue it
(api.tasks), so no service imports a task.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import socket
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import F, Q
from django.urls import reverse
from django.utils import timezone
from standardwebhooks import Webhook

from common.logging import mask_personal_data
from customers.models import Customer

from .models import WebhookAttempt, WebhookEndpoint, WebhookEventType, WebhookMessage

logger = logging.getLogger(__name__)

# Keys of a payload's `data` that carry personal data: only an endpoint that may receive
# personal data gets them, and a customer's erasure removes them from every stored payload.
PERSONAL_KEYS = ("email", "values")

# Customer fields a customer.updated event never names: staff's internal notes are not data
# any receiver needs.
UNANNOUNCED_FIELDS = {"notes"}

EXCERPT_LENGTH = 200
# Messages one sweep enqueues; the next minute's sweep takes the rest.
SWEEP_BATCH_SIZE = 500
USER_AGENT = "ConsentDesk-Webhooks/1"


# ---------------------------------------------------------------------------------------
# Endpoint addresses


def _is_private(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast


def url_problem(url: str) -> str | None:
    """
    Why an endpoint URL is refused, or None. Only http(s); unless WEBHOOK_ALLOW_PRIVATE_URLS,
    a host that is (or resolves to) a loopback, private, link-local or reserved address is
    refused, so that nobody can make the site call into its own network.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "The URL must start with https:// (or http://) and name a host."
    if parts.username or parts.password:
        return "The URL must not carry a user name or password; the signature authenticates the sender."
    if settings.WEBHOOK_ALLOW_PRIVATE_URLS:
        return None
    host = parts.hostname
    try:
        addresses = {str(info[4][0]) for info in socket.getaddrinfo(host, parts.port or 443, proto=socket.IPPROTO_TCP)}
    except (socket.gaierror, UnicodeError, ValueError):
        return f"The host {host} could not be found."
    private = sorted(a for a in addresses if _is_private(a))
    if private:
        return (
            f"{host} is a loopback, private or reserved address ({', '.join(private)}): the site does not send "
            "webhooks into its own network unless WEBHOOK_ALLOW_PRIVATE_URLS is on."
        )
    return None


def validate_webhook_url(url: str) -> None:
    problem = url_problem(url)
    if problem:
        raise ValidationError(problem, code="webhook_url_refused")


def webhook_endpoint_save(*, endpoint: WebhookEndpoint, user: AbstractBaseUser | None = None) -> list[int]:
    """
    Create or change an endpoint after checking it. Re-activating an inactive or disabled
    endpoint clears its disabling and makes its waiting messages due now: returns their ids
    to enqueue.
    """
    if endpoint.events:
        unknown = set(endpoint.events) - set(WebhookEventType.values)
        if unknown:
            raise ValidationError({"events": f"Unknown event types: {', '.join(sorted(unknown))}."})
    endpoint.events = sorted(set(endpoint.events or []))
    validate_webhook_url(endpoint.url)
    due: list[int] = []
    with transaction.atomic():
        if endpoint.pk is None:
            endpoint.created_by = user if user is not None and user.pk else None
            reactivated = False
        else:
            was_active = WebhookEndpoint.objects.select_for_update().filter(pk=endpoint.pk, is_active=True).exists()
            reactivated = endpoint.is_active and not was_active
        if reactivated:
            endpoint.disabled_at, endpoint.disabled_reason, endpoint.failing_since = None, "", None
        endpoint.full_clean()
        endpoint.save()
        if reactivated:
            # Its waiting messages go now; an endpoint that stayed active keeps their backoff.
            waiting = WebhookMessage.objects.filter(endpoint=endpoint, status=WebhookMessage.Status.PENDING)
            due = list(waiting.values_list("pk", flat=True))
            waiting.update(next_attempt_at=timezone.now())
    return due


# ---------------------------------------------------------------------------------------
# Events into messages


def _payload(event_type: str, data: dict[str, Any], *, personal: dict[str, Any], endpoint: WebhookEndpoint) -> dict:
    body = {**data, **personal} if endpoint.may_receive_personal_data else dict(data)
    return {"type": event_type, "timestamp": timezone.now().isoformat(), "data": body}


def webhook_messages_queue(
    *,
    event_type: str,
    data: dict[str, Any],
    personal: dict[str, Any] | None = None,
    customer: Customer | None = None,
) -> list[int]:
    """
    One message for each active endpoint subscribed to `event_type`, written in the current
    transaction (a rolled-back change sends nothing). `personal` (the address, changed details)
    goes only to endpoints that may receive personal data. Returns the new messages' ids, to be
    enqueued once the transaction commits.
    """
    endpoints = [e for e in WebhookEndpoint.objects.filter(is_active=True) if e.wants(event_type)]
    if not endpoints:
        return []
    now = timezone.now()
    messages = WebhookMessage.objects.bulk_create(
        WebhookMessage(
            endpoint=endpoint,
            event_type=event_type,
            customer=customer,
            payload=_payload(event_type, data, personal=personal or {}, endpoint=endpoint),
            next_attempt_at=now,
            created_at=now,
        )
        for endpoint in endpoints
    )
    if any(m.pk is None for m in messages):  # a backend that returns no ids from a bulk insert
        ids = [m.message_id for m in messages]
        return list(WebhookMessage.objects.filter(message_id__in=ids).values_list("pk", flat=True))
    return [m.pk for m in messages]


def _when(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def consent_changed_data(event) -> tuple[dict[str, Any], dict[str, Any]]:
    data = {
        "customer": str(event.customer.public_id),
        "purpose": event.purpose.code,
        "granted": event.granted,
        "occurred_at": _when(event.occurred_at),
        "source": event.source,
    }
    return data, {"email": event.customer.email}


def customer_updated_data(customer: Customer, fields: list[str], changed_by: str) -> tuple[dict, dict] | None:
    announced = sorted(set(fields) - UNANNOUNCED_FIELDS)
    if not announced:
        return None
    data = {
        "customer": str(customer.public_id),
        "fields": announced,
        "changed_by": changed_by,
        "updated_at": _when(customer.updated_at),
    }
    values = {name: _json_value(getattr(customer, name, None)) for name in announced}
    return data, {"email": customer.email, "values": values}


def _json_value(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def customer_erased_data(customer: Customer, erased_at: datetime | None) -> dict[str, Any]:
    return {"customer": str(customer.public_id), "erased_at": _when(erased_at)}


def suppression_added_data(suppression, email: str) -> tuple[dict, dict, Customer | None]:
    customer = Customer.objects.by_email(email).filter(erased_at__isnull=True).first() if email else None
    data = {
        "reason": suppression.reason,
        "created_at": _when(suppression.created_at),
        "customer": str(customer.public_id) if customer else None,
    }
    return data, {"email": email}, customer


# ---------------------------------------------------------------------------------------
# Signing and delivery


def body_of(message: WebhookMessage) -> str:
    return json.dumps(message.payload, separators=(",", ":"), ensure_ascii=False)


def signed_headers(*, secret: str, message_id: str, body: str, at: datetime) -> dict[str, str]:
    """The Standard Webhooks headers: `webhook-signature` is `v1,<base64 HMAC-SHA256 of id.timestamp.body>`."""
    timestamp = at.astimezone(UTC)
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": Webhook(secret).sign(message_id, timestamp, body),
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }


def backoff_seconds(attempts: int) -> int:
    """Wait after the `attempts`-th failed attempt: base, 2 x base, 4 x base … at most the cap."""
    return min(settings.WEBHOOK_RETRY_BASE_SECONDS * 2 ** max(attempts - 1, 0), settings.WEBHOOK_RETRY_MAX_SECONDS)


@dataclass(frozen=True)
class DeliveryResult:
    attempted: bool
    succeeded: bool = False
    retry_in: int | None = None
    endpoint_disabled: bool = False


NOT_ATTEMPTED = DeliveryResult(attempted=False)


@dataclass(frozen=True)
class _Reply:
    status: int | None
    error: str
    excerpt: str

    @property
    def succeeded(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def _post(url: str, body: str, headers: dict[str, str]) -> _Reply:
    problem = url_problem(url)  # again: what a host resolves to can change after it was saved
    if problem:
        return _Reply(status=None, error=f"Not sent: {problem}"[:300], excerpt="")
    try:
        response = requests.post(
            url,
            data=body.encode(),
            headers=headers,
            timeout=settings.WEBHOOK_TIMEOUT_SECONDS,
            allow_redirects=False,
            stream=True,
        )
    except requests.RequestException as error:
        return _Reply(status=None, error=mask_personal_data(_describe(error))[:300], excerpt="")
    try:
        # Only the start of the answer is read, and it is kept masked: receivers may echo the payload.
        start = next(response.iter_content(EXCERPT_LENGTH * 4), b"")
    except requests.RequestException:
        start = b""
    finally:
        response.close()
    excerpt = mask_personal_data(start.decode("utf-8", "replace")).strip()[:EXCERPT_LENGTH]
    failure = ""
    if 300 <= response.status_code < 400:
        failure = f"HTTP {response.status_code}: redirects are not followed; configure the final URL."
    elif not 200 <= response.status_code < 300:
        failure = f"HTTP {response.status_code}"
    return _Reply(status=response.status_code, error=failure, excerpt=excerpt)


def _describe(error: requests.RequestException) -> str:
    """A failed connection as staff read it: "Could not connect: [Errno 111] Connection refused"."""
    if isinstance(error, requests.Timeout):
        return f"No answer within {settings.WEBHOOK_TIMEOUT_SECONDS} s."
    cause = error.args[0] if error.args else error
    text = str(getattr(cause, "reason", None) or cause)
    # urllib3 names its connection first: "HTTPConnection(host='…', port=9): Failed to establish …"
    if "): " in text:
        text = text.split("): ", 1)[1]
    if isinstance(error, requests.ConnectionError):
        return f"Could not connect: {text}"
    return f"{type(error).__name__}: {text}"


def webhook_message_deliver(*, message_pk: int, now: datetime | None = None) -> DeliveryResult:
    """
    One attempt at a pending message whose attempt is due, if another worker has not claimed
    it: the claim moves its next attempt past the attempt's time limit, so a worker that dies
    mid-attempt leaves it to a later sweep, never to two workers at once. Every attempt is
    recorded; after a failure the next one waits backoff_seconds(), and after
    WEBHOOK_MAX_ATTEMPTS the message is given up.
    """
    now = now or timezone.now()
    lease = now + timedelta(seconds=2 * settings.WEBHOOK_TIMEOUT_SECONDS + 60)
    claimed = WebhookMessage.objects.filter(
        pk=message_pk,
        status=WebhookMessage.Status.PENDING,
        next_attempt_at__lte=now,
        endpoint__is_active=True,
    ).update(next_attempt_at=lease, attempts=F("attempts") + 1)
    if not claimed:
        return NOT_ATTEMPTED
    message = WebhookMessage.objects.select_related("endpoint").get(pk=message_pk)
    endpoint = message.endpoint
    body = body_of(message)
    started = time.monotonic()
    reply = _post(
        endpoint.url, body, signed_headers(secret=endpoint.secret, message_id=message.message_id, body=body, at=now)
    )
    duration_ms = int((time.monotonic() - started) * 1000)
    with transaction.atomic():
        WebhookAttempt.objects.create(
            message=message,
            attempted_at=now,
            outcome=WebhookAttempt.Outcome.SUCCEEDED if reply.succeeded else WebhookAttempt.Outcome.FAILED,
            response_status=reply.status,
            duration_ms=duration_ms,
            error=reply.error,
            response_excerpt=reply.excerpt,
        )
        if reply.succeeded:
            WebhookMessage.objects.filter(pk=message.pk).update(
                status=WebhookMessage.Status.DELIVERED, delivered_at=now, next_attempt_at=None
            )
            WebhookEndpoint.objects.filter(pk=endpoint.pk, failing_since__isnull=False).update(failing_since=None)
            return DeliveryResult(attempted=True, succeeded=True)
        retry_in: int | None = None
        if message.attempts >= settings.WEBHOOK_MAX_ATTEMPTS:
            WebhookMessage.objects.filter(pk=message.pk).update(
                status=WebhookMessage.Status.FAILED, next_attempt_at=None
            )
        else:
            retry_in = backoff_seconds(message.attempts)
            WebhookMessage.objects.filter(pk=message.pk).update(next_attempt_at=now + timedelta(seconds=retry_in))
        disabled = _note_endpoint_failure(endpoint_pk=endpoint.pk, at=now)
    return DeliveryResult(attempted=True, retry_in=None if disabled else retry_in, endpoint_disabled=disabled)


def _note_endpoint_failure(*, endpoint_pk: int, at: datetime) -> bool:
    """Note since when the endpoint fails; past WEBHOOK_DISABLE_AFTER_HOURS disable it (True if it was now)."""
    endpoint = WebhookEndpoint.objects.select_for_update().get(pk=endpoint_pk)
    if endpoint.failing_since is None or endpoint.failing_since > at:
        endpoint.failing_since = at
        endpoint.save(update_fields=["failing_since"])
    limit = timedelta(hours=settings.WEBHOOK_DISABLE_AFTER_HOURS)
    if not endpoint.is_active or at - endpoint.failing_since < limit:
        return False
    endpoint.is_active = False
    endpoint.disabled_at = at
    endpoint.disabled_reason = (
        f"Every attempt failed for {settings.WEBHOOK_DISABLE_AFTER_HOURS} hours "
        f"(since {timezone.localtime(endpoint.failing_since):%Y-%m-%d %H:%M}); disabled automatically."
    )
    endpoint.save(update_fields=["is_active", "disabled_at", "disabled_reason"])
    transaction.on_commit(lambda: _tell_staff_endpoint_disabled(endpoint))
    return True


def staff_to_tell() -> list[str]:
    """The addresses of active superusers and privacy officers."""
    users = (
        get_user_model().objects.filter(is_active=True).filter(Q(is_superuser=True) | Q(groups__name="Privacy officer"))
    )
    return sorted(set(users.exclude(email="").values_list("email", flat=True)))


def _tell_staff_endpoint_disabled(endpoint: WebhookEndpoint) -> None:
    recipients = staff_to_tell()
    if not recipients:
        logger.warning("Webhook endpoint %s was disabled and no staff address is on file to tell.", endpoint.pk)
        return
    link = settings.SITE_URL + reverse("admin:api_webhookendpoint_change", args=[endpoint.pk])
    send_mail(
        subject=f"Webhook endpoint “{endpoint.name}” was disabled",
        message=(
            f"The webhook endpoint “{endpoint.name}” ({endpoint.url}) was disabled at "
            f"{timezone.localtime(endpoint.disabled_at):%Y-%m-%d %H:%M %Z}.\n\n{endpoint.disabled_reason}\n\n"
            "Its undelivered messages wait. Once the receiver works again, tick “active” on the endpoint's page; "
            f"the waiting messages are then sent:\n{link}\n"
        ),
        from_email=None,
        recipient_list=recipients,
    )


def webhook_messages_due(*, now: datetime | None = None) -> list[int]:
    """Pending messages of active endpoints whose next attempt is due (at most SWEEP_BATCH_SIZE)."""
    now = now or timezone.now()
    return list(
        WebhookMessage.objects.filter(
            status=WebhookMessage.Status.PENDING, next_attempt_at__lte=now, endpoint__is_active=True
        )
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:SWEEP_BATCH_SIZE]
    )


class SendAgainRefused(ValidationError):
    pass


@transaction.atomic
def webhook_messages_send_again(*, messages, user: AbstractBaseUser | None = None) -> list[int]:
    """
    Queue messages again, delivered or given up, with the same webhook-id (a receiver that
    already has it can tell) and a fresh allowance of attempts. Messages of disabled endpoints
    are refused: enable the endpoint first. Returns the ids to enqueue.
    """
    pks = list(messages.values_list("pk", flat=True))
    locked = list(WebhookMessage.objects.select_for_update().select_related("endpoint").filter(pk__in=pks))
    inactive = sorted({m.endpoint.name for m in locked if not m.endpoint.is_active})
    if inactive:
        raise SendAgainRefused(
            f"Not sent again: {', '.join(inactive)} is not active. Tick “active” on the endpoint first."
        )
    WebhookMessage.objects.filter(pk__in=[m.pk for m in locked]).update(
        status=WebhookMessage.Status.PENDING, attempts=0, next_attempt_at=timezone.now(), delivered_at=None
    )
    return [m.pk for m in locked]


# ---------------------------------------------------------------------------------------
# A customer's personal data in messages (api.parts)


def messages_about(customer: Customer, addresses: list[str]):
    """A customer's messages: linked to them, or naming an address they had (a suppression)."""
    condition = Q(customer=customer)
    for address in filter(None, addresses):
        condition |= Q(payload__data__email__iexact=address)
    return WebhookMessage.objects.filter(condition)


def personal_part(payload: dict | None) -> dict[str, Any] | None:
    data = (payload or {}).get("data") or {}
    found = {key: data[key] for key in PERSONAL_KEYS if key in data}
    return found or None


def webhook_messages_redact(*, customer: Customer, addresses: list[str]) -> dict[str, int]:
    """
    Remove the customer's personal data from every stored payload (queued ones go out without
    it) and the receivers' reply excerpts; the messages, their public ids and times stay.
    """
    now = timezone.now()
    messages = list(messages_about(customer, addresses).only("pk", "payload"))
    changed = []
    for message in messages:
        if personal_part(message.payload) is None:
            continue
        data = {k: v for k, v in message.payload["data"].items() if k not in PERSONAL_KEYS}
        message.payload = {**message.payload, "data": data}
        message.redacted_at = now
        changed.append(message)
    WebhookMessage.objects.bulk_update(changed, ["payload", "redacted_at"], batch_size=500)
    excerpts = WebhookAttempt.objects.filter(message__in=[m.pk for m in messages]).exclude(response_excerpt="")
    cleared = excerpts.update(response_excerpt="")
    return {"webhook_payloads_redacted": len(changed), "webhook_replies_cleared": cleared}
