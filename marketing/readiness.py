"""
Sender readiness: what Gmail's and Yahoo's bulk-sender rules (2024) ask of the configured
sender, checked against this installation. `manage.py check_sender` prints the list; the admin
home page can show the same list (`sender_readiness()`).

Each check builds or reads the real thing: the one-click headers are read off a message built
by the send path itself, the DKIM signature is verified with the configured key's own DNS
record, the rates are counted from the last 30 days.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from email import message_from_bytes
from enum import StrEnum
from urllib.parse import urlparse

import dkim
import dkim.dnsplug
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.db.models import Count, Exists, OuterRef, Q
from django.urls import Resolver404, resolve
from django.utils import timezone

from common.dkim import configured_key, domain_of, is_aligned, sign_message
from consents.models import ConsentEvent, Purpose
from customers.models import Customer

from .emails import CampaignMessageBuilder
from .models import Campaign, Delivery, DeliveryEvent

WINDOW = timedelta(days=30)
# Gmail: "keep spam rates reported in Postmaster Tools below 0.10% and avoid ever reaching 0.30%".
COMPLAINT_RATE_LIMIT = 0.003
COMPLAINT_RATE_TARGET = 0.001
# No provider publishes a bounce limit; above 2% lists need cleaning, and the automatic pause
# stops a campaign at MARKETING_PAUSE_BOUNCE_RATE (5% by default).
BOUNCE_RATE_WARNING = 0.02


class Level(StrEnum):
    PASS = "pass"  # noqa: S105 (a level, not a password)
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True)
class ReadinessCheck:
    key: str
    title: str
    level: Level
    detail: str

    @property
    def passed(self) -> bool:
        return self.level != Level.FAIL


def sender_readiness(
    *, now: datetime | None = None, audit_withdrawals: bool = True, dns: bool = False
) -> list[ReadinessCheck]:
    """
    The checks in the order they are shown. A constant number of queries (about six); with
    `audit_withdrawals` one of them looks at every message of the last 30 days (an index look-up
    in the ledger each): fine for the command, heavy for a page shown on every visit. With `dns`,
    the DKIM record published in DNS is looked up and compared with the configured key.
    """
    now = now or timezone.now()
    checks = [dkim_check()]
    if dns:
        checks.append(published_record_check())
    checks += [*alignment_checks(), one_click_check()]
    checks += rate_checks(now=now)
    checks.append(withdrawal_check(now=now, audit=audit_withdrawals))
    return checks


def dkim_check() -> ReadinessCheck:
    title = "DKIM signing"
    backend = getattr(settings, "DKIM_SIGNED_EMAIL_BACKEND", settings.EMAIL_BACKEND)
    if backend.startswith("anymail."):
        return ReadinessCheck(
            "dkim",
            title,
            Level.WARN,
            f"Mail goes through a provider's API ({backend.split('.')[2]}): the provider signs it with the "
            "domain verified there, which this check cannot see. Check DKIM in the provider's settings.",
        )
    if not settings.DKIM_DOMAIN:
        return ReadinessCheck(
            "dkim",
            title,
            Level.FAIL,
            "DKIM_DOMAIN is not set: messages go out unsigned, and Gmail and Yahoo reject or junk bulk mail "
            "without DKIM. Run `manage.py dkim_keygen`, publish the record, set DKIM_DOMAIN, DKIM_SELECTOR "
            "and DKIM_PRIVATE_KEY.",
        )
    try:
        key = configured_key()
    except ImproperlyConfigured as error:
        return ReadinessCheck("dkim", title, Level.FAIL, str(error))
    assert key is not None
    return ReadinessCheck(
        "dkim",
        title,
        Level.PASS,
        f"{key.algorithm} with selector {key.selector!r} for {key.domain}; publish at {key.dns_name()}: "
        f"{key.dns_record()}",
    )


def _public_key(record: str) -> str:
    tags = {
        name.strip(): value.strip()
        for name, _, value in (tag.partition("=") for tag in record.split(";") if "=" in tag)
    }
    return re.sub(r"\s+", "", tags.get("p", ""))


def published_record_check(lookup=None) -> ReadinessCheck:
    """The TXT record at <selector>._domainkey.<domain> holds the configured key's public half."""
    title = "DKIM record in DNS"
    try:
        key = configured_key()
    except ImproperlyConfigured:
        key = None
    if key is None:
        return ReadinessCheck("dkim_dns", title, Level.FAIL, "DKIM is not configured: no record to look up.")
    lookup = lookup or dkim.dnsplug.get_txt
    try:
        found = lookup(f"{key.dns_name()}.".encode("ascii"), timeout=5)
    except dkim.DnsTimeoutError as error:
        return ReadinessCheck("dkim_dns", title, Level.WARN, f"The look-up of {key.dns_name()} failed: {error}.")
    if not found:
        return ReadinessCheck(
            "dkim_dns", title, Level.FAIL, f"No TXT record at {key.dns_name()}: publish {key.dns_record()}"
        )
    published = found.decode("ascii", "replace")
    if _public_key(published) != _public_key(key.dns_record()):
        return ReadinessCheck(
            "dkim_dns",
            title,
            Level.FAIL,
            f"The record at {key.dns_name()} holds another key than DKIM_PRIVATE_KEY's: receivers will reject "
            f"the signatures. Publish {key.dns_record()}",
        )
    return ReadinessCheck("dkim_dns", title, Level.PASS, f"{key.dns_name()} publishes the configured key.")


def alignment_checks() -> list[ReadinessCheck]:
    """The default From and the From of every campaign that may still send, against the DKIM domain."""
    title = "From domain aligned with DKIM"
    addresses = {settings.DEFAULT_FROM_EMAIL}
    addresses |= set(
        Campaign.objects.exclude(status__in=[Campaign.Status.SENT, Campaign.Status.CANCELLED])
        .values_list("from_email", flat=True)
        .distinct()
    )
    domains = sorted({domain_of(address) for address in addresses if address})
    if not settings.DKIM_DOMAIN:
        return [ReadinessCheck("alignment", title, Level.FAIL, "No DKIM domain to align with: DKIM is not configured.")]
    dkim_domain = settings.DKIM_DOMAIN
    unaligned = [domain for domain in domains if not is_aligned(domain, dkim_domain)]
    if unaligned:
        return [
            ReadinessCheck(
                "alignment",
                title,
                Level.FAIL,
                f"From domain{'s' if len(unaligned) > 1 else ''} {', '.join(unaligned)} not aligned with "
                f"DKIM_DOMAIN {dkim_domain}: DMARC does not count the signature (DEFAULT_FROM_EMAIL and "
                "the From of campaigns not yet sent are checked).",
            )
        ]
    return [ReadinessCheck("alignment", title, Level.PASS, f"{', '.join(domains)} aligned with {dkim_domain}.")]


def one_click_check() -> ReadinessCheck:
    """Build a campaign message as the send path does and read its headers (RFC 8058)."""
    title = "One-click unsubscribe headers"
    purpose = Purpose.objects.filter(is_marketing=True).order_by("pk").first()
    if purpose is None:
        return ReadinessCheck("one_click", title, Level.FAIL, "There is no marketing purpose to build a message for.")
    campaign = Campaign(
        name="Readiness check",
        purpose=purpose,
        subject="Readiness check",
        text_body="Hello {{ first_name }}",
        from_email=settings.DEFAULT_FROM_EMAIL,
    )
    recipient = Customer(first_name="Ada", last_name="Lovelace", email="readiness-check@example.com")
    try:
        built = CampaignMessageBuilder(campaign).build(recipient)
    except (ValueError, ValidationError) as error:
        return ReadinessCheck("one_click", title, Level.FAIL, f"A message could not be built: {error}")
    problems = []
    message = message_from_bytes(built.data)
    unsubscribe = (message.get("List-Unsubscribe") or "").strip()
    url = unsubscribe[1:-1] if unsubscribe.startswith("<") and unsubscribe.endswith(">") else ""
    if not url:
        problems.append("no List-Unsubscribe header with a URL")
    elif urlparse(url).scheme != "https":
        problems.append(f"List-Unsubscribe is not an https URL (SITE_URL is {settings.SITE_URL}); RFC 8058 needs https")
    else:
        try:
            match = resolve(urlparse(url).path)
        except Resolver404:
            match = None
        if match is None or match.url_name != "unsubscribe":
            problems.append("the List-Unsubscribe URL does not reach the unsubscribe view")
    if (message.get("List-Unsubscribe-Post") or "").strip() != "List-Unsubscribe=One-Click":
        problems.append("no List-Unsubscribe-Post: List-Unsubscribe=One-Click header")
    signed_note = ""
    try:
        key = configured_key()
    except ImproperlyConfigured:
        key = None
    if key is not None:
        signed = sign_message(built.data, key)
        signature = message_from_bytes(signed).get("DKIM-Signature", "")
        h_tag = re.search(r"\bh=([^;]*)", re.sub(r"\s+", "", signature))
        covered = {name.lower() for name in (h_tag.group(1).split(":") if h_tag else [])}
        if not {"list-unsubscribe", "list-unsubscribe-post"} <= covered:
            problems.append("the DKIM signature does not cover List-Unsubscribe and List-Unsubscribe-Post")
        record = key.dns_record().encode("ascii")
        if not dkim.verify(signed, dnsfunc=lambda name, timeout=5: record):
            problems.append("the DKIM signature does not verify against the configured key")
        signed_note = "; both covered by the DKIM signature, which verifies"
    if problems:
        return ReadinessCheck("one_click", title, Level.FAIL, "; ".join(problems) + ".")
    return ReadinessCheck(
        "one_click",
        title,
        Level.PASS,
        f"List-Unsubscribe <{urlparse(url).scheme}://{urlparse(url).netloc}/unsubscribe/…/> and "
        f"List-Unsubscribe-Post: List-Unsubscribe=One-Click{signed_note}.",
    )


@dataclass(frozen=True)
class SenderRates:
    sent: int
    complaints: int
    bounces: int

    @property
    def complaint_rate(self) -> float:
        return self.complaints / self.sent if self.sent else 0.0

    @property
    def bounce_rate(self) -> float:
        return self.bounces / self.sent if self.sent else 0.0


def sender_rates(*, now: datetime) -> SenderRates:
    """
    The last 30 days, as the campaign report and the automatic pause count them (two queries):
    messages sent (a bounced one was sent), hard bounces (deliveries the provider reported
    bounced), and spam complaints (the provider's reports, each once).
    """
    since = now - WINDOW
    counts = Delivery.objects.filter(
        status__in=[Delivery.Status.SENT, Delivery.Status.BOUNCED], sent_at__gte=since
    ).aggregate(sent=Count("id"), bounced=Count("id", filter=Q(status=Delivery.Status.BOUNCED)))
    complaints = DeliveryEvent.objects.filter(kind=DeliveryEvent.Kind.COMPLAINED, occurred_at__gte=since).count()
    return SenderRates(sent=counts["sent"], complaints=complaints, bounces=counts["bounced"])


def _percent(rate: float) -> str:
    return f"{rate * 100:.2f}%"


def rate_checks(*, now: datetime) -> list[ReadinessCheck]:
    rates = sender_rates(now=now)
    base = f"of {rates.sent} message{'s' if rates.sent != 1 else ''} sent in the last 30 days"
    complaint = rates.complaint_rate
    if complaint >= COMPLAINT_RATE_LIMIT:
        complaint_level = Level.FAIL
    elif complaint >= COMPLAINT_RATE_TARGET:
        complaint_level = Level.WARN
    else:
        complaint_level = Level.PASS
    bounce = rates.bounce_rate
    bounce_limit = settings.MARKETING_PAUSE_BOUNCE_RATE
    if bounce >= bounce_limit:
        bounce_level = Level.FAIL
    elif bounce >= BOUNCE_RATE_WARNING:
        bounce_level = Level.WARN
    else:
        bounce_level = Level.PASS
    return [
        ReadinessCheck(
            "complaint_rate",
            "Complaint rate (30 days)",
            complaint_level,
            f"{_percent(complaint)}: {rates.complaints} complaint{'s' if rates.complaints != 1 else ''} {base}; "
            f"Gmail asks for under {_percent(COMPLAINT_RATE_TARGET)} and never {_percent(COMPLAINT_RATE_LIMIT)}.",
        ),
        ReadinessCheck(
            "bounce_rate",
            "Hard-bounce rate (30 days)",
            bounce_level,
            f"{_percent(bounce)}: {rates.bounces} hard bounce{'s' if rates.bounces != 1 else ''} {base}; "
            f"warning from {_percent(BOUNCE_RATE_WARNING)}, failing from {_percent(bounce_limit)}.",
        ),
    ]


# A withdrawal made while a claim is sending waits for that claim's messages (the claim holds
# the consent row), so a message may leave a little after the withdrawal's recorded time and
# still have been sent before it took effect. Only messages sent later than this count as late.
WITHDRAWAL_GRACE = timedelta(minutes=5)


def messages_sent_after_withdrawal(*, now: datetime) -> int:
    """
    Messages of the window that went out when the ledger already held a withdrawal of their
    purpose by their recipient (WITHDRAWAL_GRACE before), with no new consent between: one query.
    """
    regranted = ConsentEvent.objects.filter(
        customer_id=OuterRef("customer_id"),
        purpose_id=OuterRef("purpose_id"),
        granted=True,
        recorded_at__gt=OuterRef("recorded_at"),
        recorded_at__lt=OuterRef(OuterRef("sent_at")),
    )
    withdrawn_before = ConsentEvent.objects.filter(
        ~Exists(regranted),
        customer_id=OuterRef("customer_id"),
        purpose_id=OuterRef("campaign__purpose_id"),
        granted=False,
        recorded_at__lt=OuterRef("sent_at") - WITHDRAWAL_GRACE,
    )
    return (
        Delivery.objects.filter(status=Delivery.Status.SENT, sent_at__gte=now - WINDOW)
        .filter(Exists(withdrawn_before))
        .count()
    )


def withdrawal_check(*, now: datetime, audit: bool = True) -> ReadinessCheck:
    title = "Withdrawals take effect"
    how = (
        "Immediately: an unsubscribe (one-click, link, preference page, provider) is written to the ledger "
        "at once, and every claim re-checks consent in the statement that takes the row; a claim already "
        f"sending holds the consent rows, so a withdrawal waits at most for one claim "
        f"({settings.MARKETING_CLAIM_SIZE} messages). Gmail and Yahoo allow 48 hours."
    )
    if not audit:
        return ReadinessCheck("withdrawals", title, Level.PASS, how)
    late = messages_sent_after_withdrawal(now=now)
    if late:
        return ReadinessCheck(
            "withdrawals",
            title,
            Level.FAIL,
            f"{late} message{'s' if late != 1 else ''} of the last 30 days went out after the recipient's "
            "withdrawal was recorded. " + how,
        )
    return ReadinessCheck(
        "withdrawals", title, Level.PASS, how + " No message of the last 30 days went out after a withdrawal."
    )
