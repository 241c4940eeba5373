"""Shared pieces for the marketing tests: a real SMTP server in-process, consenting customers."""

from __future__ import annotations

import importlib
import socket
import threading
from email import message_from_bytes, policy
from email.message import EmailMessage

from aiosmtpd.controller import Controller
from django.apps import apps

from consents.models import Purpose, Source
from consents.services import consent_grant, consent_withdraw
from tests.factories import CustomerFactory


class RecordingHandler:
    """Accepts mail like a relay would; chosen recipients get a chosen reply instead."""

    def __init__(self):
        self.messages: list[tuple[str, list[str], bytes]] = []
        self.replies: dict[str, str] = {}
        self.lock = threading.Lock()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        reply = self.replies.get(address.lower())
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 Message accepted for delivery"

    def received(self) -> list[EmailMessage]:
        with self.lock:
            return [message_from_bytes(content, policy=policy.default) for _, _, content in self.messages]

    def recipients(self) -> list[str]:
        with self.lock:
            return sorted(rcpt for _, rcpts, _ in self.messages for rcpt in rcpts)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PipeliningHandler(RecordingHandler):
    """Offers RFC 2920 PIPELINING, as Postfix and most relays do."""

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        return [*responses[:-1], "250-PIPELINING", responses[-1]]


class SMTPServer:
    def __init__(self, handler: RecordingHandler | None = None):
        self.handler = handler or RecordingHandler()
        self.port = free_port()
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)

    def start(self):
        self.controller.start()

    def stop(self):
        self.controller.stop()


def ensure_purposes() -> None:
    """Transactional tests flush the tables; put back what the data migration created."""
    migration = importlib.import_module("consents.migrations.0002_purposes_and_first_policy")
    migration.create(apps, None)


def purpose(code: str) -> Purpose:
    return Purpose.objects.get(code=code)


def customer_who_consents(code: str = "newsletter", **fields):
    customer = CustomerFactory.create(**fields)
    consent_grant(customer=customer, purpose=purpose(code), source=Source.SIGNUP_FORM)
    return customer


def customer_who_withdrew(code: str = "newsletter", **fields):
    customer = customer_who_consents(code, **fields)
    consent_withdraw(customer=customer, purpose=purpose(code), source=Source.PREFERENCE_PAGE)
    return customer


def unsubscribe_link(customer, code: str = "newsletter") -> str:
    """The unsubscribe link a campaign message for the purpose carries (List-Unsubscribe), as built for sending."""
    from marketing.emails import CampaignMessageBuilder
    from marketing.models import Campaign

    campaign = Campaign(name="Links", purpose=purpose(code), subject="News", text_body="Hello")
    return CampaignMessageBuilder(campaign).build(customer).headers["List-Unsubscribe"].strip("<>")
