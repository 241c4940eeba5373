"""
Campaign state changes and sending. Admin actions, tasks and commands call these.

The guarantees (DESIGN.md invariants 1 and 4): a message goes out only for a row claimed
from "queued" by a conditional UPDATE that re-checks consent, erasure and suppression in
the same statement; a claimed row is never claimed again, so nothing is sent twice, and a
row whose worker died stays "sending" until the sweep marks it "unknown".
"""

from __future__ import annotations

import logging
import re
import smtplib
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.core.mail import get_connection
from django.core.mail.backends.smtp import EmailBackend as SMTPBackend
from django.db import connection, transaction
from django.db.models import Count, Exists, OuterRef
from django.utils import timezone

from customers.models import Customer, email_hash, email_hashes

from . import sql
from .emails import CampaignMessageBuilder, OutgoingMessage, PrebuiltEmail
from .models import Campaign, CampaignAction, Delivery, Suppression
from .ratelimit import send_rate_limiter

logger = logging.getLogger(__name__)

# The end of the last batch's id range: it takes every queued row after its start.
LAST_ID = 2**62


class CampaignActionRefused(ValidationError):
    pass


def _log(campaign: Campaign, action: str, user: AbstractBaseUser | None, note: str = "") -> None:
    CampaignAction.objects.create(campaign=campaign, action=action, staff_user=user, note=note[:500])


def _locked(campaign: Campaign) -> Campaign:
    return Campaign.objects.select_for_update().get(pk=campaign.pk)


# ---------------------------------------------------------------------------------------
# Staff actions


def campaign_lock_draft(*, campaign: Campaign) -> Campaign:
    """
    Lock the campaign's row until the caller's transaction ends, and refuse unless it is still
    a draft. A form that calls this in its validation, inside the transaction that then saves,
    turns "scheduled by someone else meanwhile" into a form error: nobody can schedule the
    campaign between the check and the save.
    """
    current = _locked(campaign)
    if current.status != Campaign.Status.DRAFT:
        raise CampaignActionRefused(f"Only drafts can be edited; this campaign is {current.get_status_display()}.")
    return current


@transaction.atomic
def campaign_save_draft(*, campaign: Campaign, user: AbstractBaseUser | None) -> Campaign:
    """Create or edit a draft. Templates are checked here: a broken one is refused with the error."""
    if campaign.pk is not None:
        campaign_lock_draft(campaign=campaign)
    elif user is not None and campaign.created_by_id is None:
        campaign.created_by = user
    campaign.status = Campaign.Status.DRAFT
    campaign.full_clean()
    campaign.save()
    _log(campaign, CampaignAction.Action.SAVED, user)
    return campaign


@transaction.atomic
def campaign_schedule(*, campaign: Campaign, user: AbstractBaseUser | None, at: datetime | None = None) -> Campaign:
    """Schedule a draft. If it is due, it is dispatched at once (after commit), not at the next tick."""
    current = _locked(campaign)
    if current.status != Campaign.Status.DRAFT:
        raise CampaignActionRefused(f"Only a draft can be scheduled; this campaign is {current.get_status_display()}.")
    current.full_clean()
    current.status = Campaign.Status.SCHEDULED
    current.scheduled_at = at or current.scheduled_at or timezone.now()
    current.scheduled_by = user
    current.save(update_fields=["status", "scheduled_at", "scheduled_by"])
    _log(current, CampaignAction.Action.SCHEDULED, user, note=f"send at {current.scheduled_at:%Y-%m-%d %H:%M %Z}")
    if current.scheduled_at <= timezone.now():
        from .tasks import dispatch_due_campaigns

        transaction.on_commit(dispatch_due_campaigns.delay)
    _refresh(campaign, current)
    return campaign


@transaction.atomic
def campaign_pause(*, campaign: Campaign, user: AbstractBaseUser | None) -> Campaign:
    """Stop new claims. Rows already claimed finish; nothing is re-sent on resume."""
    current = _locked(campaign)
    if current.status not in (Campaign.Status.SCHEDULED, Campaign.Status.SENDING):
        raise CampaignActionRefused(
            f"Only a scheduled or sending campaign can be paused; this one is {current.get_status_display()}."
        )
    current.status = Campaign.Status.PAUSED
    current.save(update_fields=["status"])
    _log(current, CampaignAction.Action.PAUSED, user)
    _refresh(campaign, current)
    return campaign


@transaction.atomic
def campaign_resume(*, campaign: Campaign, user: AbstractBaseUser | None) -> Campaign:
    """Continue with the rows still queued (never those sent, sending or unknown)."""
    current = _locked(campaign)
    if current.status != Campaign.Status.PAUSED:
        raise CampaignActionRefused(
            f"Only a paused campaign can be resumed; this one is {current.get_status_display()}."
        )
    if current.dispatched_at is None:
        current.status = Campaign.Status.SCHEDULED
        current.save(update_fields=["status"])
        if current.scheduled_at <= timezone.now():
            from .tasks import dispatch_due_campaigns

            transaction.on_commit(dispatch_due_campaigns.delay)
    else:
        current.status = Campaign.Status.SENDING
        current.save(update_fields=["status"])
        _enqueue_batches(current.pk)
    _log(current, CampaignAction.Action.RESUMED, user)
    _refresh(campaign, current)
    return campaign


@transaction.atomic
def campaign_cancel(*, campaign: Campaign, user: AbstractBaseUser | None) -> Campaign:
    """Queued rows become skipped; a row already claimed may still finish. Nothing is re-sent."""
    current = _locked(campaign)
    if current.status in (Campaign.Status.SENT, Campaign.Status.CANCELLED):
        raise CampaignActionRefused(f"This campaign is already {current.get_status_display().lower()}.")
    if current.status == Campaign.Status.DRAFT and current.scheduled_at is None:
        current.scheduled_at = timezone.now()  # a cancelled campaign names when it stopped
    current.status = Campaign.Status.CANCELLED
    current.finished_at = timezone.now()
    current.save(update_fields=["status", "finished_at", "scheduled_at"])
    skipped = Delivery.objects.filter(campaign=current, status=Delivery.Status.QUEUED).update(
        status=Delivery.Status.SKIPPED, skip_reason=Delivery.SkipReason.CANCELLED
    )
    _log(current, CampaignAction.Action.CANCELLED, user, note=f"{skipped} queued message(s) skipped")
    _refresh(campaign, current)
    return campaign


def _refresh(target: Campaign, source: Campaign) -> None:
    for name in ("status", "scheduled_at", "scheduled_by_id", "dispatched_at", "finished_at"):
        setattr(target, name, getattr(source, name))


# ---------------------------------------------------------------------------------------
# Dispatch


def campaigns_dispatch_due(*, now: datetime | None = None) -> list[int]:
    """
    Take each due campaign under a row lock (SKIP LOCKED on PostgreSQL: two schedulers never
    both take one), create its deliveries in one INSERT … SELECT, and enqueue its batches
    after commit. No Python loop over recipients.
    """
    now = now or timezone.now()
    dispatched: list[int] = []
    while True:
        with transaction.atomic():
            due = (
                Campaign.objects.filter(status=Campaign.Status.SCHEDULED, scheduled_at__lte=now)
                .exclude(pk__in=dispatched)
                .order_by("scheduled_at", "id")
            )
            if connection.features.has_select_for_update_skip_locked:
                due = due.select_for_update(skip_locked=True)
            campaign = due.first()
            if campaign is None:
                return dispatched
            created = sql.insert_deliveries(campaign, now)
            campaign.status = Campaign.Status.SENDING
            campaign.dispatched_at = now
            campaign.save(update_fields=["status", "dispatched_at"])
            _enqueue_batches(campaign.pk)
            logger.info("Campaign %s dispatched: %s deliveries queued", campaign.pk, created)
        dispatched.append(campaign.pk)


def _enqueue_batches(campaign_id: int) -> None:
    """Enqueue one task per id range of queued rows, once the transaction has committed."""
    from .tasks import send_batch

    starts = sql.batch_starts(campaign_id, settings.MARKETING_BATCH_SIZE)
    ranges = list(zip(starts, [start - 1 for start in starts[1:]] + [LAST_ID], strict=True))

    def enqueue() -> None:
        for first_id, last_id in ranges:
            send_batch.delay(campaign_id, first_id, last_id)

    transaction.on_commit(enqueue)


# ---------------------------------------------------------------------------------------
# Sending


class TransientSendError(Exception):
    def __init__(self, message: str, *, connection_lost: bool = False):
        super().__init__(message)
        self.connection_lost = connection_lost


class PermanentSendError(Exception):
    def __init__(self, message: str, *, mailbox_missing: bool = False):
        super().__init__(message)
        self.mailbox_missing = mailbox_missing


# Transparency (RFC 5321 4.5.2): a line starting with "." gets another, as smtplib.data() does.
_DOT_AT_LINE_START = re.compile(rb"(?m)^\.")

_MAILBOX_MISSING_PHRASES = ("5.1.1", "5.1.10", "no such user", "user unknown", "does not exist", "mailbox unavailable")


def classify_smtp_error(code: int, text: str) -> Exception:
    text = (text or "").strip()
    message = f"{code} {text}"
    if 400 <= code < 500:
        return TransientSendError(message, connection_lost=code == 421)
    lowered = text.lower()
    missing = code in (550, 551, 553) and any(phrase in lowered for phrase in _MAILBOX_MISSING_PHRASES)
    return PermanentSendError(message, mailbox_missing=missing)


class Sender:
    """One connection for a batch. SMTP backends get the raw bytes; others (console, tests) a wrapper."""

    def __init__(self) -> None:
        self.backend = get_connection(fail_silently=False)
        self.is_smtp = isinstance(self.backend, SMTPBackend)

    def send(self, message: OutgoingMessage) -> None:
        if not self.is_smtp:
            self.backend.send_messages([PrebuiltEmail(message)])
            return
        try:
            if self.backend.connection is None:
                self.backend.open()
            connection = self.backend.connection
            connection.ehlo_or_helo_if_needed()
            if connection.has_extn("pipelining") and (message.envelope_from + message.recipient).isascii():
                self._send_pipelined(connection, message)
            else:
                connection.sendmail(message.envelope_from, [message.recipient], message.data)
        except smtplib.SMTPRecipientsRefused as error:
            code, text = next(iter(error.recipients.values()))
            raise classify_smtp_error(code, _text(text)) from error
        except smtplib.SMTPResponseException as error:
            raise classify_smtp_error(error.smtp_code, _text(error.smtp_error)) from error
        except (smtplib.SMTPException, OSError) as error:
            self.reset()
            raise TransientSendError(f"connection: {error}", connection_lost=True) from error

    def _send_pipelined(self, connection: smtplib.SMTP, message: OutgoingMessage) -> None:
        """
        MAIL, RCPT and DATA in one write (RFC 2920 PIPELINING, which Postfix and most relays
        offer): two round trips per message instead of smtplib's four. The replies are read
        in order and mean what they mean in sendmail().
        """
        connection.send(f"MAIL FROM:<{message.envelope_from}>\r\nRCPT TO:<{message.recipient}>\r\nDATA\r\n")
        replies = [connection.getreply() for _ in range(3)]
        (mail_code, _), (rcpt_code, _), (data_code, _) = replies
        if mail_code != 250:
            failed = replies[0]
        elif rcpt_code not in (250, 251):
            failed = replies[1]
        elif data_code != 354:
            failed = replies[2]
        else:
            failed = None
        if failed is not None:
            if data_code == 354:
                # The server took DATA although a command before it failed: never finish that
                # message; drop the connection (the next message opens a new one).
                self.reset()
            else:
                connection.rset()
            raise classify_smtp_error(failed[0], _text(failed[1]))
        data = _DOT_AT_LINE_START.sub(b"..", message.data)
        if not data.endswith(b"\r\n"):
            data += b"\r\n"
        connection.send(data + b".\r\n")
        code, text = connection.getreply()
        if code != 250:
            connection.rset()
            raise classify_smtp_error(code, _text(text))

    def reset(self) -> None:
        try:
            self.backend.close()
        except Exception:  # closing a broken connection may fail in any way
            logger.debug("closing a broken SMTP connection failed", exc_info=True)
        if self.is_smtp:
            self.backend.connection = None

    def close(self) -> None:
        self.reset()


def _text(value) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


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
    return min(settings.MARKETING_RETRY_BASE_SECONDS * 2 ** max(0, attempts - 1), 6 * 3600)


# What building and sending a message reads of a customer (emails.placeholder_values, the
# links, suppression on a hard bounce); loading whole rows was a tenth of a worker's time.
_CUSTOMER_FIELDS_FOR_SENDING = (
    "id",
    "public_id",
    "email",
    "first_name",
    "last_name",
    "company",
    "job_title",
    "country",
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
            ids = sql.claim(
                campaign=campaign,
                first_id=first_id,
                last_id=last_id,
                limit=allowance,
                now=timezone.now(),
            )
            limiter.release(allowance - len(ids))
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
    if rate and rate > 0:
        return max(1, min(settings.MARKETING_CLAIM_SIZE, int(rate)))
    return settings.MARKETING_CLAIM_SIZE


def _send_claimed(deliveries, builder, sender, result: BatchResult) -> bool:
    """
    Send claimed rows (their send-rate allowance is already taken); returns True when the
    connection is gone and the batch should stop. The rows sent are marked together when the
    claim is done (or left early).
    """
    sent: list[tuple[int, str, datetime, str]] = []
    try:
        for index, delivery in enumerate(deliveries):
            try:
                message = builder.build(delivery.customer)
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
        last_error=error[:2000],
    )
    result.retrying += 1
    result.retry_in = wait if result.retry_in is None else min(result.retry_in, wait)
    result.outcomes[delivery.pk] = "retrying"


def _release(deliveries: list[Delivery], result: BatchResult) -> None:
    """Claimed rows never handed to the server go back to the queue, their attempt uncounted."""
    from django.db.models import F

    ids = [d.pk for d in deliveries]
    if not ids:
        return
    result.released += Delivery.objects.filter(pk__in=ids, status=Delivery.Status.SENDING).update(
        status=Delivery.Status.QUEUED, claimed_at=None, attempts=F("attempts") - 1
    )
    wait = backoff_seconds(1)
    result.retry_in = wait if result.retry_in is None else min(result.retry_in, wait)


def _mark_failed(delivery: Delivery, error: str, *, suppress: bool) -> None:
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


def campaigns_requeue_stalled(*, now: datetime | None = None) -> list[int]:
    """
    Enqueue the batches again for sending campaigns whose queued rows nobody works on: the
    broker lost their tasks (a Redis restarted without persistence), or a worker died with
    tasks it had reserved. Only when no worker has a row in flight anywhere and the campaign
    sent nothing for MARKETING_STALL_TIMEOUT, so busy workers are never given duplicates; and
    a duplicate would be harmless anyway (claims are conditional).
    """
    now = now or timezone.now()
    recent = now - settings.MARKETING_STALL_TIMEOUT
    if Delivery.objects.filter(status=Delivery.Status.SENDING, claimed_at__gt=recent).exists():
        return []
    requeued = []
    # A campaign dispatched a moment ago has had no time to start.
    stalled = Campaign.objects.filter(status=Campaign.Status.SENDING, dispatched_at__lt=recent)
    for campaign_id in stalled.values_list("pk", flat=True):
        rows = Delivery.objects.filter(campaign_id=campaign_id)
        if not rows.filter(status=Delivery.Status.QUEUED, next_attempt_at__lte=now).exists():
            continue
        if rows.filter(status=Delivery.Status.SENT, sent_at__gt=recent).exists():
            continue
        with transaction.atomic():
            campaign = Campaign.objects.select_for_update().filter(pk=campaign_id).first()
            if campaign is None or campaign.status != Campaign.Status.SENDING:
                continue
            _enqueue_batches(campaign_id)
        logger.warning("Campaign %s had queued rows nobody worked on: its batches are enqueued again", campaign_id)
        requeued.append(campaign_id)
    return requeued


def campaigns_tick(*, now: datetime | None = None) -> dict[str, int]:
    """What beat runs every minute."""
    unknown = deliveries_mark_unknown(now=now)
    dispatched = campaigns_dispatch_due(now=now)
    requeued = campaigns_requeue_stalled(now=now)
    finished = campaigns_finish(now=now)
    return {"unknown": unknown, "dispatched": len(dispatched), "requeued": len(requeued), "finished": finished}


def campaign_status_counts(campaign: Campaign) -> dict[str, int]:
    return campaigns_status_counts(campaign_ids=[campaign.pk])[campaign.pk]


def campaigns_status_counts(*, campaign_ids: list[int]) -> dict[int, dict[str, int]]:
    """Deliveries per status for each campaign, in one query (the index on campaign and status)."""
    counts = {pk: dict.fromkeys(Delivery.Status.values, 0) for pk in campaign_ids}
    if not campaign_ids:
        return counts
    rows = (
        Delivery.objects.filter(campaign_id__in=campaign_ids)
        .values("campaign_id", "status")
        .annotate(n=Count("id"))
        .order_by()
    )
    for row in rows:
        counts[row["campaign_id"]][row["status"]] = row["n"]
    return counts


def audience_size(campaign: Campaign) -> int:
    """Customers who would receive the campaign if it were dispatched now (one COUNT query)."""
    return sql.audience_count(campaign)


# ---------------------------------------------------------------------------------------
# Preview and test


def campaign_preview(*, campaign: Campaign, customer: Customer) -> OutgoingMessage:
    return CampaignMessageBuilder(campaign).build(customer)


def _stand_in(user: AbstractBaseUser, customer: Customer | None) -> Customer:
    """A customer-shaped recipient for a test: its links lead nowhere, so a test click withdraws nothing."""
    source = customer or Customer(
        first_name=getattr(user, "first_name", "") or "Test",
        last_name=getattr(user, "last_name", ""),
        company=settings.COMPANY_NAME,
    )
    return Customer(
        public_id=uuid.uuid4(),
        email=user.email,
        first_name=source.first_name,
        last_name=source.last_name,
        company=source.company,
        job_title=source.job_title,
        country=source.country,
    )


def campaign_send_test(
    *, campaign: Campaign, user: AbstractBaseUser, customer: Customer | None = None
) -> OutgoingMessage:
    """Send the campaign, marked as a test, to the staff user's own address. Creates no delivery."""
    if not getattr(user, "email", ""):
        raise CampaignActionRefused("Your staff account has no email address to send the test to.")
    campaign.full_clean()
    message = CampaignMessageBuilder(campaign).build(_stand_in(user, customer), test=True)
    sender = Sender()
    try:
        sender.send(message)
    except (TransientSendError, PermanentSendError) as error:
        raise CampaignActionRefused(f"The test could not be sent: {error}") from error
    finally:
        sender.close()
    _log(campaign, CampaignAction.Action.TEST_SENT, user, note=f"to {user.email}")
    return message


# ---------------------------------------------------------------------------------------
# Suppression


def suppression_add(*, email: str, reason: str, user: AbstractBaseUser | None = None, note: str = "") -> Suppression:
    """Never send marketing to this address again. Only its keyed hash is kept, so it outlives erasure."""
    existing = Suppression.objects.filter(address_hash__in=email_hashes(email)).first()  # or its older SHA-256
    if existing is not None:
        return existing
    suppression, _created = Suppression.objects.get_or_create(
        address_hash=email_hash(email), defaults={"reason": reason, "created_by": user, "note": note[:500]}
    )
    return suppression
