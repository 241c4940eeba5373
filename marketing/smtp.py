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

from django.core.mail import get_connection
from django.core.mail.backends.smtp import EmailBackend as SMTPBackend

from common.dkim import configured_key, sign_message
from common.logging import mask_emails
from common.mail import DkimSigningBackend

from .emails import OutgoingMessage, PrebuiltEmail

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


def classify_smtp_error(code: int, text: str) -> TransientSendError | PermanentSendError:
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
        backend = get_connection(fail_silently=False)
        if isinstance(backend, DkimSigningBackend):
            # Campaign messages are signed here, on the bytes built for them; the wrapper would
            # parse each one back into an object first.
            backend = backend.backend
        self.backend = backend
        self.is_smtp = isinstance(self.backend, SMTPBackend)
        self.dkim_key = configured_key()

    def send(self, message: OutgoingMessage) -> None:
        if self.dkim_key is not None:
            # message.data becomes the bytes that went out (signed), for the SMTP and other backends alike.
            message.data = sign_message(message.data, self.dkim_key)
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


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
