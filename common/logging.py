import logging
import re

EMAIL = re.compile(r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9-]+\.)+[A-Za-z]{2,}")


def mask_emails(text: str) -> str:
    """ada.lovelace@example.com -> a***@***"""
    return EMAIL.sub(lambda m: f"{m.group(1)}***@***", text)


class MaskEmailFilter(logging.Filter):
    """Email addresses never reach a log line: the formatted message is masked in place."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string still gets logged, as Python would
            return True
        masked = mask_emails(message)
        if masked != message or record.args:
            record.msg, record.args = masked, None
        return True
