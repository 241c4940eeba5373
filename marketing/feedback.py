"""
What mail providers report after a message left, through django-anymail's tracking webhooks
(marketing.webhooks): hard bounces and rejections of a mailbox that does not exist suppress
the address and mark the delivery bounced; soft bounces are counted, and enough of them within
a window suppress; a spam complaint suppresses and withdraws every marketing purpose (a
complaint is the customer saying no); an unsubscribe at the provider withdraws the campaign's
purpose. Each bounce and complaint then checks the campaign's rates (automatic pause).

An event is tied to its delivery by the Message-ID the project sets on every message (echoed
as anymail metadata too, for providers that report their own message ID), else to the
customer by address. Every event is recorded once (DeliveryEvent): a repeated one does
nothing, and one arriving out of order changes nothing it should not (a delivery report
after a bounce leaves the delivery bounced; a withdrawal dated before a later grant is kept
as history by the consent ledger).
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from common.logging import mask_emails
from consents.models import Method, Purpose, Source
from consents.services import consent_withdraw, consent_withdraw_all_marketing
from customers.models import Customer, email_hash, email_hashes

from .campaigns import campaign_check_rates
from .emails import FEEDBACK_METADATA_KEY
from .models import Delivery, DeliveryEvent, Suppression
from .smtp import mailbox_missing
from .suppression import suppression_add

logger = logging.getLogger(__name__)

Kind = DeliveryEvent.Kind
Effect = DeliveryEvent.Effect

# <campaign.delivery.random@domain>, as emails.CampaignMessageBuilder.new_message_id makes it.
_MESSAGE_ID = re.compile(r"^<?([0-9a-f]{12})\.(\d{1,18})\.([0-9a-f]{24})@([^<>\s]+?)>?$")

# A report without a Message-ID of ours is tied to the customer's latest message sent before it.
ADDRESS_MATCH_WINDOW = timedelta(days=30)

_HARD_KINDS = (Kind.BOUNCED,)
_SOFT_KINDS = (Kind.SOFT_BOUNCED, Kind.DEFERRED)


@dataclass
class ProviderEvent:
    """One provider report, normalised (from an anymail tracking event by `from_anymail`)."""

    provider: str
    kind: str | None  # None: not a kind we record (opens, clicks, queued…)
    recipient: str = ""
    occurred_at: datetime | None = None
    event_id: str = ""
    message_ids: list[str] = field(default_factory=list)
    reason: str = ""
    # For "rejected" and "failed": the provider says the mailbox does not exist.
    mailbox_missing: bool = False


def _provider_name(esp_name: str) -> str:
    return esp_name.lower().replace(" ", "_")


def _headers(pairs: Any) -> dict[str, str]:
    """[{"name": ..., "value": ...}] (Amazon SES) as a dict with lower-case names."""
    result = {}
    for pair in pairs if isinstance(pairs, list) else []:
        if isinstance(pair, dict) and isinstance(pair.get("name"), str):
            result[pair["name"].lower()] = str(pair.get("value", ""))
    return result


def _esp_message_ids(provider: str, esp_event: Any) -> list[str]:
    """Where each provider's own payload carries the Message-ID header we set (anymail reports its own ID)."""
    if not isinstance(esp_event, dict):
        return []
    found: list[Any] = []
    if provider == "amazon_ses":
        mail = esp_event.get("mail") or {}
        found.append(_headers(mail.get("headers")).get("message-id"))
        found.append((mail.get("commonHeaders") or {}).get("messageId"))
    elif provider == "postal":
        payload = esp_event.get("payload") or {}
        message = payload.get("message") or payload.get("original_message") or {}
        found.append(message.get("message_id"))
    elif provider == "sendgrid":
        found.append(esp_event.get("smtp-id"))
    elif provider == "brevo":
        found.append(esp_event.get("message-id"))
    return [value for value in found if isinstance(value, str) and value]


def _kind(provider: str, event: Any) -> str | None:
    """anymail's normalised type, with the soft bounces it reports as "bounced" told apart."""
    esp_event = event.esp_event if isinstance(event.esp_event, dict) else {}
    event_type = event.event_type
    if event_type == "bounced":
        soft = (
            (provider == "postmark" and esp_event.get("Type") in ("SoftBounce", "Transient", "DnsError"))
            or (provider == "brevo" and esp_event.get("event") == "soft_bounce")
            or (
                provider == "amazon_ses"
                and (esp_event.get("bounce") or {}).get("bounceType") in ("Transient", "Undetermined")
            )
            or (provider == "sendgrid" and str(esp_event.get("type", "")).lower() == "blocked")
        )
        return Kind.SOFT_BOUNCED if soft else Kind.BOUNCED
    if provider == "amazon_ses" and event_type == "unknown" and esp_event.get("eventType") == "Subscription":
        # SES list management (anymail does not normalise it): the recipient used the
        # List-Unsubscribe of a contact list, for all topics or some.
        preferences = (esp_event.get("subscription") or {}).get("newTopicPreferences") or {}
        topics = preferences.get("topicSubscriptionStatus") or []
        opted_out = any(isinstance(t, dict) and t.get("subscriptionStatus") == "OptOut" for t in topics)
        return Kind.UNSUBSCRIBED if preferences.get("unsubscribeAll") or opted_out else None
    return {
        "deferred": Kind.DEFERRED,
        "delivered": Kind.DELIVERED,
        "rejected": Kind.REJECTED,
        "failed": Kind.FAILED,
        "complained": Kind.COMPLAINED,
        "unsubscribed": Kind.UNSUBSCRIBED,
    }.get(event_type)


def from_anymail(event: Any, esp_name: str) -> ProviderEvent:
    """An anymail AnymailTrackingEvent as a ProviderEvent."""
    provider = _provider_name(esp_name)
    kind = _kind(provider, event)
    metadata = event.metadata if isinstance(event.metadata, dict) else {}
    message_ids = [metadata.get(FEEDBACK_METADATA_KEY), event.message_id, *_esp_message_ids(provider, event.esp_event)]
    reason = " — ".join(str(part) for part in (event.description, event.mta_response) if part)
    return ProviderEvent(
        provider=provider,
        kind=kind,
        recipient=str(event.recipient or ""),
        occurred_at=event.timestamp,
        event_id=str(event.event_id or ""),
        message_ids=[value for value in message_ids if isinstance(value, str) and value],
        reason=reason,
        mailbox_missing=event.reject_reason in ("invalid", "bounced") or mailbox_missing(reason),
    )


def tracking_received(sender, event, esp_name, **kwargs) -> None:
    """Receiver of anymail's `tracking` signal (connected in MarketingConfig.ready)."""
    delivery_event_record(event=from_anymail(event, esp_name))


# ---------------------------------------------------------------------------------------
# Tying a report to its delivery


def delivery_for_message_id(message_id: str) -> Delivery | None:
    """The delivery a Message-ID of ours names (its number is inside; the stored value must match)."""
    match = _MESSAGE_ID.match(message_id.strip())
    if match is None:
        return None
    delivery = (
        Delivery.objects.select_related("campaign", "campaign__purpose", "customer")
        .filter(pk=int(match.group(2)))
        .first()
    )
    if delivery is None or not delivery.message_id:
        return None
    if delivery.message_id.strip("<>") != message_id.strip().strip("<>"):
        return None
    return delivery


def _delivery_for_address(customer: Customer, before: datetime) -> Delivery | None:
    return (
        Delivery.objects.select_related("campaign", "campaign__purpose", "customer")
        .filter(
            customer=customer,
            status__in=[Delivery.Status.SENT, Delivery.Status.BOUNCED, Delivery.Status.UNKNOWN],
            sent_at__lte=before + timedelta(minutes=5),
            sent_at__gte=before - ADDRESS_MATCH_WINDOW,
        )
        .order_by("-sent_at", "-id")
        .first()
    )


def _event_key(event: ProviderEvent, recipient_hash: str, occurred_at: datetime) -> str:
    """The provider's event ID, or for providers without one (Brevo, some Postmark events) a digest of the event."""
    if event.event_id:
        return event.event_id[:255]
    parts = [event.kind or "", ",".join(sorted(event.message_ids)), recipient_hash, occurred_at.isoformat()]
    return "digest:" + hashlib.sha256("|".join(parts).encode("utf-8")).hexdigest()


# ---------------------------------------------------------------------------------------
# Recording and acting


def delivery_event_record(*, event: ProviderEvent, now: datetime | None = None) -> DeliveryEvent | None:
    """
    Record one provider report and apply it; returns the recorded event, or None when it is not
    a kind we record, or was recorded before (nothing is applied twice).
    """
    if event.kind is None:
        return None
    now = now or timezone.now()
    occurred_at = min(event.occurred_at or now, now)
    recipient_hash = email_hash(event.recipient) if event.recipient else ""
    with transaction.atomic():
        delivery = next(filter(None, (delivery_for_message_id(mid) for mid in event.message_ids)), None)
        customer = delivery.customer if delivery is not None else None
        if customer is None and event.recipient:
            customer = Customer.objects.by_email(event.recipient).first()
            if customer is not None:
                delivery = _delivery_for_address(customer, occurred_at)
        erased = (customer is not None and customer.is_erased) or (
            customer is None
            and bool(event.recipient)
            and Suppression.objects.filter(
                address_hash__in=email_hashes(event.recipient), reason=Suppression.Reason.ERASURE
            ).exists()
        )
        # The address is kept (as its keyed hash) only to count soft bounces; an erased
        # customer's report keeps nothing that was theirs: no hash, no reason text.
        recorded = DeliveryEvent(
            provider=event.provider[:30],
            provider_event_id=_event_key(event, recipient_hash, occurred_at),
            kind=event.kind,
            occurred_at=occurred_at,
            received_at=now,
            delivery=delivery,
            campaign=delivery.campaign if delivery is not None else None,
            address_hash="" if erased or event.kind not in _SOFT_KINDS else recipient_hash,
            reason="" if erased else mask_emails(event.reason)[:2000],
        )
        try:
            with transaction.atomic():
                recorded.save()
        except IntegrityError:
            logger.info("Repeated %s event %s ignored", event.provider, recorded.provider_event_id)
            return None
        if erased:
            recorded.effect = Effect.ERASED
        else:
            recorded.effect = _apply(recorded, event, delivery=delivery, customer=customer)
        recorded.save(update_fields=["effect"])
        if recorded.campaign_id is not None and recorded.effect in (
            Effect.SUPPRESSED,
            Effect.SUPPRESSED_AND_WITHDRAWN,
        ):
            campaign_check_rates(campaign_id=recorded.campaign_id)
    return recorded


def _apply(recorded: DeliveryEvent, event: ProviderEvent, *, delivery: Delivery | None, customer) -> str:
    kind = recorded.kind
    hard = kind in _HARD_KINDS or (kind in (Kind.REJECTED, Kind.FAILED) and event.mailbox_missing)
    if hard:
        if event.recipient:
            suppression_add(email=event.recipient, reason=Suppression.Reason.HARD_BOUNCE, note=recorded.reason)
        if delivery is not None:
            # A late "delivered" never undoes this; an SMTP failure already recorded stays failed.
            Delivery.objects.filter(pk=delivery.pk, status__in=[Delivery.Status.SENT, Delivery.Status.UNKNOWN]).update(
                status=Delivery.Status.BOUNCED, last_error=recorded.reason[:2000]
            )
        return Effect.SUPPRESSED if event.recipient or delivery is not None else Effect.NOT_FOUND
    if kind in _SOFT_KINDS:
        if recorded.address_hash and _soft_bounces(recorded) >= settings.MARKETING_SOFT_BOUNCE_LIMIT:
            note = (
                f"{settings.MARKETING_SOFT_BOUNCE_LIMIT} soft bounces within "
                f"{settings.MARKETING_SOFT_BOUNCE_WINDOW_DAYS} days; last: {recorded.reason}"
            )
            suppression_add(email=event.recipient, reason=Suppression.Reason.HARD_BOUNCE, note=note)
            return Effect.SUPPRESSED
        return Effect.COUNTED
    if kind == Kind.COMPLAINED:
        if event.recipient:
            suppression_add(email=event.recipient, reason=Suppression.Reason.COMPLAINT, note=recorded.reason)
        if customer is not None:
            _record_decision(
                consent_withdraw_all_marketing,
                customer=customer,
                source=Source.PROVIDER_COMPLAINT,
                method=Method.EMAIL,
                occurred_at=_decision_time(recorded, customer),
                reference=_reference(recorded),
                note=f"Reported by {event.provider}",
            )
            return Effect.SUPPRESSED_AND_WITHDRAWN
        return Effect.SUPPRESSED if event.recipient else Effect.NOT_FOUND
    if kind == Kind.UNSUBSCRIBED:
        if customer is None:
            return Effect.NOT_FOUND
        if delivery is None:
            # Without the message we cannot tell which list it was: no guess, only the record.
            return Effect.NOT_FOUND
        _record_decision(
            consent_withdraw,
            customer=customer,
            purpose=Purpose.objects.get(pk=delivery.campaign.purpose_id),
            source=Source.PROVIDER_UNSUBSCRIBE,
            method=Method.EMAIL_LINK,
            occurred_at=_decision_time(recorded, customer),
            reference=_reference(recorded),
            note=f"Reported by {event.provider}",
        )
        return Effect.WITHDRAWN
    return Effect.NONE


def _record_decision(record, *, occurred_at: datetime | None, **kwargs) -> None:
    """
    The customer's "no" as of when the provider says they said it; a time the ledger refuses
    (before our first privacy policy, a clock far ahead) is replaced by now rather than losing
    the decision, or answering the provider with an error it would retry for ever.
    """
    try:
        with transaction.atomic():
            record(occurred_at=occurred_at, **kwargs)
    except ValidationError as refused:
        if occurred_at is None or "occurred_at" not in getattr(refused, "error_dict", {}):
            raise
        record(occurred_at=None, **kwargs)


def _soft_bounces(recorded: DeliveryEvent) -> int:
    """Messages (not reports: a provider reports each retry) that soft-bounced for the address within the window."""
    since = recorded.occurred_at - timedelta(days=settings.MARKETING_SOFT_BOUNCE_WINDOW_DAYS)
    events = DeliveryEvent.objects.filter(
        address_hash=recorded.address_hash, kind__in=_SOFT_KINDS, occurred_at__gte=since
    )
    with_delivery = events.filter(delivery__isnull=False).values("delivery").distinct().count()
    return with_delivery + events.filter(delivery__isnull=True).count()


def _decision_time(recorded: DeliveryEvent, customer: Customer) -> datetime | None:
    """When the customer decided, if the ledger can take that time (not before their record existed)."""
    if recorded.occurred_at < customer.created_at:
        return None
    return recorded.occurred_at


def _reference(recorded: DeliveryEvent) -> str:
    if recorded.campaign is None:
        return ""
    return f"campaign:{recorded.campaign.public_id}"
