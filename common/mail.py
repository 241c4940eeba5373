import logging

from django.core.mail.backends.console import EmailBackend as ConsoleEmailBackend

from .logging import mask_emails

logger = logging.getLogger(__name__)


class MaskedConsoleBackend(ConsoleEmailBackend):
    """
    The development mail backend: each message is logged at INFO (in a worker too, where
    printing would come out as a WARNING from celery.redirected), with addresses masked like
    every log line. Given a stream, it prints there instead.
    """

    def __init__(self, *args, stream=None, **kwargs):
        if stream is not None:
            kwargs["stream"] = stream
        super().__init__(*args, **kwargs)
        self.log_messages = stream is None

    def write_message(self, message) -> None:
        msg_data = message.message().as_bytes().decode(message.encoding or "utf-8", errors="replace")
        if self.log_messages:
            logger.info("Email (development backend, not sent):\n%s", mask_emails(msg_data))
            return
        self.stream.write(f"{mask_emails(msg_data)}\n")
        self.stream.write("-" * 79)
        self.stream.write("\n")
