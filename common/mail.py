from django.core.mail.backends.console import EmailBackend as ConsoleEmailBackend

from .logging import mask_emails


class MaskedConsoleBackend(ConsoleEmailBackend):
    """The development mail backend: messages are printed, with addresses masked like every log line."""

    def write_message(self, message) -> None:
        msg_data = message.message().as_bytes().decode(message.encoding or "utf-8", errors="replace")
        self.stream.write(f"{mask_emails(msg_data)}\n")
        self.stream.write("-" * 79)
        self.stream.write("\n")
