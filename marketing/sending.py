"""
Sending a batch: claim a few queued rows at a time, re-check each customer's consent under a
lock, render, send on one SMTP connection, mark each row.

The guarantees (README, "How sending works": at most one message per customer and campaign,
consent at the moment of sending): a message goes out only for a row claimed
from "queued" by a conditional UPDATE that re-checks consent, erasure and suppression in
the same statement; a claimed row is never claimed again, so nothing is sent twice, and a
row whose worker died stays "sending" until the sweep marks it "unknown".
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, F, OuterRef
from django.utils import timezone

from common.logging import mask_emails

from . import sql
from .emails import CampaignMessageBuilder
from .models import Campaign, Delivery, Suppression
from .ratelimit import send_rate_limiter
from .smtp import PermanentSendError, Sender, TransientSendError
from .suppression import suppression_add

logger = logging.getLogger(__name__)


@dataclass
class BatchResult:
    sent: int = 0
    skipped: int = 0
    retrying: int = 0
    failed: int = 0
    released: int = 0
    retry_in: int | None = None
    outcomes: dict[int, str] = field(default_factory=dict)


def backoff_seconds(attempts: int) -> int:
    return int(min(settings.MARKETING_RETRY_BASE_SECONDS * 2 ** max(0, attempts - 1), 6 * 3600))


# What building and sending a message reads of a customer (emails.placeholder_values, the
# links, suppression on a hard bounce); loading whole rows was a tenth of a worker's time.
_CUSTOMER_FIELDS_FOR_SENDING = (
    "id",
    "public_id",
    "link_generation",  # signed into the preference link
    "email",
    "first_name",
    "last_name",
    "company",
    "job_title",
    "country",
    "language",  # which variant of the campaign
)


def deliveries_send_batch(*, campaign_id: int, first_id: int, last_id: int) -> BatchResult:
    """
    Send the queued rows of one campaign in [first_id, last_id]: claim a few at a time
    (each claim re-checks the campaign is sending and each customer still consents), send
    on one SMTP connection, mark each row as it goes.
    """
    result = BatchResult()
    campaign = Campaign.objects.select_related("purpose").filter(pk=campaign_id).first()
    if campaign is None or campaign.status != Campaign.Status.SENDING:
        return result
    builder = CampaignMessageBuilder(campaign)
    limiter = send_rate_limiter()
    sender = Sender()
    try:
        while True:
            # The send rate's allowance for the claim comes first, while this batch holds nothing:
            # waiting for the shared counter (its window used up, or Redis unreachable) claims
            # no row and locks no consent, so a withdrawal meanwhile neither waits for this
            # batch nor is missed by it (the claim below re-checks consent).
            allowance = limiter.acquire(claim_size())
            claimed = sql.claim(
                campaign=campaign,
                first_id=first_id,
                last_id=last_id,
                limit=allowance,
                now=timezone.now(),
            )
            ids = claimed.sending
            result.skipped += claimed.capped
            limiter.release(allowance - len(ids))
            if claimed.capped and not ids:
                continue  # the claim took only rows over the frequency cap: claim again
            if not ids:
                # Either nothing due is left, or every row at the head of the queue has become
                # ineligible since dispatch (withdrawn, erased, suppressed): skip those and
                # claim again; stop when there is nothing left to skip.
                skipped = sql.skip_ineligible(campaign=campaign, first_id=first_id, last_id=last_id)
                result.skipped += skipped
                if skipped:
                    continue
                break
            # One transaction per claim: it holds the consent rows (FOR SHARE) while their
            # messages go out, and marks them. If the worker dies inside it, the marks are lost
            # and the rows stay "sending" (later "unknown"): never sent twice.
            with transaction.atomic():
                capped = sql.skip_capped(ids=ids, now=timezone.now())
                if capped:
                    result.skipped += capped
                    ids = list(
                        Delivery.objects.filter(pk__in=ids, status=Delivery.Status.SENDING).values_list("pk", flat=True)
                    )
                allowed = sql.lock_consents(campaign=campaign, ids=ids)
                withdrawn = [pk for pk in ids if pk not in allowed]
                result.skipped += sql.skip_withdrawn(withdrawn)
                deliveries = list(
                    Delivery.objects.filter(pk__in=allowed)
                    .select_related("customer")
                    .only("id", "attempts", *(f"customer__{name}" for name in _CUSTOMER_FIELDS_FOR_SENDING))
                    .order_by("pk")
                )
                stop = _send_claimed(deliveries, builder, sender, result)
            if stop:
                break
    finally:
        sender.close()
    result.skipped += sql.skip_ineligible(campaign=campaign, first_id=first_id, last_id=last_id)
    # Rows still to send after this batch's range: the campaign is not finished, and the
    # whole-campaign check is skipped. That check's cost grows with the rows already sent (their
    # old "queued" and "sending" index entries stay until vacuum removes them), so run once per
    # batch it was most of what made a 600,000-recipient campaign slower than a 10,000 one.
    if not sql.pending_after(campaign=campaign, after_id=last_id):
        campaigns_finish(campaign_ids=[campaign.pk])
    return result


def claim_size() -> int:
    """
    Rows taken per claim. A claim's consent rows stay locked while its messages go out, so a
    withdrawal may wait for one claim's sending. Under a send-rate limit a claim asks for its
    allowance before it is taken: at most one window's worth (about one second's, at 1
    message/s one row), so the allowance can be had in one window and the claim's messages go
    out together, without waiting in between.
    """
    rate = settings.MARKETING_SEND_RATE
    size = int(settings.MARKETING_CLAIM_SIZE)
    if rate and rate > 0:
        return max(1, min(size, int(rate)))
    return size


def _send_claimed(
    deliveries: list[Delivery], builder: CampaignMessageBuilder, sender: Sender, result: BatchResult
) -> bool:
    """
    Send claimed rows (their send-rate allowance is already taken); returns True when the
    connection is gone and the batch should stop. The rows sent are marked together when the
    claim is done (or left early).
    """
    sent: list[tuple[int, str, datetime, str]] = []
    try:
        for index, delivery in enumerate(deliveries):
            try:
                message = builder.build(delivery.customer, delivery_id=delivery.pk)
            except (ValueError, UnicodeError) as error:
                # This one message cannot be built (an address no SMTP server takes): it fails
                # alone, and the claim's other messages keep their "sent" marks.
                _mark_failed(delivery, f"not sent: {error}", suppress=False)
                result.failed += 1
                result.outcomes[delivery.pk] = "failed"
                continue
            try:
                sender.send(message)
            except TransientSendError as error:
                _retry_later(delivery, str(error), result)
                if error.connection_lost:
                    _release(deliveries[index + 1 :], result)
                    return True
            except PermanentSendError as error:
                _mark_failed(delivery, str(error), suppress=error.mailbox_missing)
                result.failed += 1
                result.outcomes[delivery.pk] = "failed"
            else:
                sent.append((delivery.pk, message.message_id, timezone.now(), message.subject))
                result.sent += 1
                result.outcomes[delivery.pk] = "sent"
    finally:
        sql.mark_sent(sent)
    return False


def _retry_later(delivery: Delivery, error: str, result: BatchResult) -> None:
    if delivery.attempts >= settings.MARKETING_MAX_ATTEMPTS:
        _mark_failed(delivery, f"gave up after {delivery.attempts} attempts: {error}", suppress=False)
        result.failed += 1
        result.outcomes[delivery.pk] = "failed"
        return
    wait = backoff_seconds(delivery.attempts)
    Delivery.objects.filter(pk=delivery.pk, status=Delivery.Status.SENDING).update(
        status=Delivery.Status.QUEUED,
        next_attempt_at=timezone.now() + timedelta(seconds=wait),
        claimed_at=None,
        last_error=mask_emails(error)[:2000],
    )
    result.retrying += 1
    result.retry_in = wait if result.retry_in is None else min(result.retry_in, wait)
    result.outcomes[delivery.pk] = "retrying"


def _release(deliveries: list[Delivery], result: BatchResult) -> None:
    """Claimed rows never handed to the server go back to the queue, their attempt uncounted."""
    ids = [d.pk for d in deliveries]
    if not ids:
        return
    result.released += Delivery.objects.filter(pk__in=ids, status=Delivery.Status.SENDING).update(
        status=Delivery.Status.QUEUED, claimed_at=None, attempts=F("attempts") - 1
    )
    wait = backoff_seconds(1)
    result.retry_in = wait if result.retry_in is None else min(result.retry_in, wait)


def _mark_failed(delivery: Delivery, error: str, *, suppress: bool) -> None:
    # The error may quote the address ("the mailbox name of 'sam@…' is not ASCII", a server's
    # "<ada@…>: Recipient address rejected"): stored masked, as staff without customer access read it.
    error = mask_emails(error)
    Delivery.objects.filter(pk=delivery.pk, status=Delivery.Status.SENDING).update(
        status=Delivery.Status.FAILED, last_error=error[:2000]
    )
    if suppress:
        suppression_add(email=delivery.customer.email, reason=Suppression.Reason.HARD_BOUNCE, note=error[:500])


def deliveries_mark_unknown(*, now: datetime | None = None) -> int:
    """Rows still "sending" long after their claim: the worker died. Never re-sent; counted as unknown."""
    now = now or timezone.now()
    return Delivery.objects.filter(
        status=Delivery.Status.SENDING, claimed_at__lt=now - settings.MARKETING_SENDING_TIMEOUT
    ).update(
        status=Delivery.Status.UNKNOWN,
        last_error="The worker stopped while sending; the message may or may not have gone out. Not re-sent.",
    )


def campaigns_finish(*, campaign_ids: list[int] | None = None, now: datetime | None = None) -> int:
    """A sending campaign with nothing queued or sending is sent."""
    pending = Delivery.objects.filter(
        campaign=OuterRef("pk"), status__in=[Delivery.Status.QUEUED, Delivery.Status.SENDING]
    )
    campaigns = Campaign.objects.filter(status=Campaign.Status.SENDING).exclude(Exists(pending))
    if campaign_ids is not None:
        campaigns = campaigns.filter(pk__in=campaign_ids)
    return campaigns.update(status=Campaign.Status.SENT, finished_at=now or timezone.now())
