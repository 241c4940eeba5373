"""
The connection a batch sends on, and what an SMTP server's reply means: transient (try again
later), permanent (never), and whether the mailbox is gone (suppress the address).

Servers quote the recipient back in their replies (`550 5.1.1 <ada@example.com>: Recipient
address rejected`): every error text made here has its addresses masked, so what a delivery
or a suppression stores, and what staff read on those pages, names nobody.
"""

from __future__ import annotations

import logging
import re
import smtplib

from anymail.backends.base import AnymailBaseBackend
from anymail.exceptions import AnymailAPIError, AnymailError, AnymailRecipientsRefused
from django.core.mail import EmailMultiAlternatives, get_connection
from django.core.mail.backends.smtp import EmailBackend as SMTPBackend

from common.dkim import configured_key, sign_message
from common.logging import mask_emails
from common.mail import DkimSigningBackend

from .emails import FEEDBACK_METADATA_KEY, OutgoingMessage, PrebuiltEmail

logger = logging.getLogger(__name__)


class TransientSendError(Exception):
    def __init__(self, message: str, *, connection_lost: bool = False):
        super().__init__(mask_emails(message))
        self.connection_lost = connection_lost


class PermanentSendError(Exception):
    def __init__(self, message: str, *, mailbox_missing: bool = False):
        super().__init__(mask_emails(message))
        self.mailbox_missing = mailbox_missing


# Transparency (RFC 5321 4.5.2): a line starting with "." gets another, as smtplib.data() does.
_DOT_AT_LINE_START = re.compile(rb"(?m)^\.")

_MAILBOX_MISSING_PHRASES = ("5.1.1", "5.1.10", "no such user", "user unknown", "does not exist", "mailbox unavailable")


def mailbox_missing(text: str) -> bool:
    """Whether a server's reply (or a provider's report quoting it) says the mailbox does not exist."""
    lowered = (text or "").lower()
    return any(phrase in lowered for phrase in _MAILBOX_MISSING_PHRASES)


def classify_smtp_error(code: int, text: str) -> TransientSendError | PermanentSendError:
    text = (text or "").strip()
    message = f"{code} {text}"
    if 400 <= code < 500:
        return TransientSendError(message, connection_lost=code == 421)
    missing = code in (550, 551, 553) and mailbox_missing(text)
    return PermanentSendError(message, mailbox_missing=missing)


# What a provider's API sets itself, or takes as a field of its own rather than as a header.
_HEADERS_THE_PROVIDER_SETS = {"from", "to", "subject", "date", "mime-version", "reply-to"}


def provider_email(message: OutgoingMessage) -> EmailMultiAlternatives:
    """
    The message for a provider's API (an anymail backend): the same text, HTML and headers
    (Message-ID, List-Unsubscribe, List-Unsubscribe-Post, List-Id…), and the Message-ID again
    as anymail metadata, which every provider echoes in its webhooks even where it reports its
    own message ID instead of ours (Postmark, SendGrid, Amazon SES).
    """
    headers = {name: value for name, value in message.headers.items() if name.lower() not in _HEADERS_THE_PROVIDER_SETS}
    email = EmailMultiAlternatives(
        subject=message.subject,
        body=message.text,
        from_email=message.headers.get("From"),
        to=[message.headers.get("To") or message.recipient],
        reply_to=[message.headers["Reply-To"]] if message.headers.get("Reply-To") else None,
        headers=headers,
    )
    if message.html:
        email.attach_alternative(message.html, "text/html")
    email.metadata = {FEEDBACK_METADATA_KEY: message.message_id}  # type: ignore[attr-defined]  # anymail reads it
    return email


class Sender:
    """
    One connection for a batch. SMTP backends get the raw bytes; a provider's API (anymail) the
    message with its metadata; others (console, tests) a wrapper of the raw bytes.
    """

    def __init__(self) -> None:
        backend = get_connection(fail_silently=False)
        if isinstance(backend, DkimSigningBackend):
            # Campaign messages are signed here, on the bytes built for them; the wrapper would
            # parse each one back into an object first.
            backend = backend.backend
        self.backend = backend
        self.is_smtp = isinstance(self.backend, SMTPBackend)
        self.is_provider_api = isinstance(self.backend, AnymailBaseBackend)
        # A provider's API builds and signs the message itself (with the domain verified there).
        self.dkim_key = None if self.is_provider_api else configured_key()

    @property
    def _smtp(self) -> SMTPBackend:
        assert isinstance(self.backend, SMTPBackend)  # used only where is_smtp
        return self.backend

    def send(self, message: OutgoingMessage) -> None:
        if self.is_provider_api:
            self._send_to_provider(message)
            return
        if self.dkim_key is not None:
            # message.data becomes the bytes that went out (signed), for the SMTP and other backends alike.
            message.data = sign_message(message.data, self.dkim_key)
        if not self.is_smtp:
            self.backend.send_messages([PrebuiltEmail(message)])
            return
        try:
            if self._smtp.connection is None:
                self.backend.open()
            connection = self._smtp.connection
            assert connection is not None  # open() connected, or raised
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

    def _send_to_provider(self, message: OutgoingMessage) -> None:
        """A provider's refusal means what an SMTP server's does: 429 and 5xx later, other 4xx never."""
        try:
            self.backend.send_messages([provider_email(message)])
        except AnymailRecipientsRefused as error:
            raise PermanentSendError(f"the provider refused the recipient: {error}") from error
        except AnymailAPIError as error:
            status = getattr(error, "status_code", None)
            if status is not None and 400 <= status < 500 and status != 429:
                raise PermanentSendError(f"the provider refused the message ({status}): {error}") from error
            raise TransientSendError(f"the provider's API: {error}") from error
        except AnymailError as error:
            # The message itself cannot go through this provider (an unsupported feature).
            raise PermanentSendError(f"not sent through the provider: {error}") from error

    def reset(self) -> None:
        try:
            self.backend.close()
        except Exception:  # closing a broken connection may fail in any way
            logger.debug("closing a broken SMTP connection failed", exc_info=True)
        if self.is_smtp:
            self._smtp.connection = None

    def close(self) -> None:
        self.reset()


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
