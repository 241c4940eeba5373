import logging
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import cast

from django.conf import settings
from django.core.mail import EmailMessage as DjangoEmailMessage
from django.core.mail import get_connection
from django.core.mail.backends.base import BaseEmailBackend
from django.core.mail.backends.console import EmailBackend as ConsoleEmailBackend
from django.core.mail.message import MIMEMixin
from django.utils import timezone
from django.utils.crypto import get_random_string

from .dkim import configured_key, sign_message
from .logging import mask_emails

logger = logging.getLogger(__name__)


class MaskedConsoleBackend(ConsoleEmailBackend):
    """
    The development mail backend: each message is logged at INFO (in a worker too, where
    printing would come out as a WARNING from celery.redirected), with addresses masked like
    every log line, and so with its links' tokens replaced. So that a developer can still follow
    a link (a preference link, a sign-up confirmation), the message is also kept, addresses
    masked and links whole, as a file in DEV_MAIL_DIR (var/mail/), which the log line names.
    Given a stream, it prints there instead.
    """

    def __init__(self, *args, stream=None, **kwargs):
        if stream is not None:
            kwargs["stream"] = stream
        super().__init__(*args, **kwargs)
        self.log_messages = stream is None

    def write_message(self, message) -> None:
        msg_data = message.message().as_bytes().decode(message.encoding or "utf-8", errors="replace")
        if self.log_messages:
            kept = self._keep(mask_emails(msg_data))
            logger.info("Email (development backend, not sent; with its links in %s):\n%s", kept, mask_emails(msg_data))
            return
        self.stream.write(f"{mask_emails(msg_data)}\n")
        self.stream.write("-" * 79)
        self.stream.write("\n")

    @staticmethod
    def _keep(text: str) -> Path:
        folder = Path(getattr(settings, "DEV_MAIL_DIR", settings.BASE_DIR / "var" / "mail"))
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{timezone.now():%Y%m%d-%H%M%S}-{get_random_string(6)}.eml"
        path.write_text(text, encoding="utf-8")
        return path


class SignedEmail(DjangoEmailMessage):
    """
    A message as bytes already made (and signed): each backend gets exactly these bytes, parsed
    back into a message object as backends expect, with the original's envelope (Bcc stays
    out of the headers and in the recipients).
    """

    def __init__(self, original: DjangoEmailMessage, data: bytes):
        super().__init__(
            subject=original.subject,
            body=original.body,
            from_email=original.from_email,
            to=original.to,
            cc=original.cc,
            bcc=original.bcc,
            reply_to=original.reply_to,
        )
        self.encoding = original.encoding
        self.data = data

    def message(self, *args, **kwargs):
        parsed = message_from_bytes(self.data, _class=ExactBytesMessage)
        parsed.exact_bytes = self.data
        return parsed


class ExactBytesMessage(Message):
    """
    A parsed message that serialises to the very bytes it was parsed from (a signature covers
    them), with Django's `as_bytes(linesep=...)` that the SMTP backend calls.
    """

    exact_bytes: bytes | None = None

    def as_bytes(self, unixfrom=False, policy=None, linesep="\n"):
        if self.exact_bytes is None:
            return super().as_bytes(unixfrom=unixfrom, policy=policy)
        return self.exact_bytes if linesep == "\r\n" else self.exact_bytes.replace(b"\r\n", linesep.encode())

    def as_string(self, unixfrom=False, maxheaderlen=0, policy=None):
        if self.exact_bytes is None:
            return super().as_string(unixfrom=unixfrom, maxheaderlen=maxheaderlen, policy=policy)
        return self.exact_bytes.decode("utf-8", "replace").replace("\r\n", "\n")


def sign_email(email_message: DjangoEmailMessage) -> DjangoEmailMessage:
    """The message with a DKIM signature (unchanged when DKIM is not configured or it is already signed)."""
    if isinstance(email_message, SignedEmail) or configured_key() is None:
        return email_message
    # Django 5.2's message() is one of its SafeMIME classes, whose as_bytes takes linesep (the stubs
    # describe the stdlib EmailMessage that Django 6 returns).
    data = cast(MIMEMixin, email_message.message()).as_bytes(linesep="\r\n")
    return SignedEmail(email_message, sign_message(data))


class DkimSigningBackend(BaseEmailBackend):
    """
    Signs every message Django sends (preference and confirmation links, error mail) with the
    DKIM key, then hands it to the backend EMAIL_URL names (DKIM_SIGNED_EMAIL_BACKEND). The
    settings put it in front whenever DKIM_DOMAIN is set. Campaigns do not come through here:
    marketing/smtp.py signs their bytes itself and talks to the wrapped backend.
    """

    def __init__(self, fail_silently: bool = False, **kwargs):
        super().__init__(fail_silently=fail_silently)
        self.backend = get_connection(settings.DKIM_SIGNED_EMAIL_BACKEND, fail_silently=fail_silently, **kwargs)

    def open(self):
        return self.backend.open()

    def close(self):
        return self.backend.close()

    def send_messages(self, email_messages):
        if getattr(self.backend, "esp_name", None):
            # A provider's API (anymail) reads the message's fields, not its bytes, and signs itself.
            return self.backend.send_messages(email_messages)
        return self.backend.send_messages([sign_email(message) for message in email_messages])
