import logging
from pathlib import Path

from django.conf import settings
from django.core.mail.backends.console import EmailBackend as ConsoleEmailBackend
from django.utils import timezone
from django.utils.crypto import get_random_string

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
