import logging
import re

# An address as it turns up in text, mail servers' replies included: a local part of any
# letters (not only ASCII: "søren@…"), or a quoted one ("ada lovelace"@…); "@" or its URL
# encoding "%40"; a domain with or without dots (user@localhost), or an address literal.
EMAIL = re.compile(
    r"""(?:"(?:[^"\\\r\n]|\\.)+"|[^\s"<>()\[\]\\,;:@]+)(?:@|%40)(?:[\w-]+(?:\.[\w-]+)*|\[[^\]\s]*\])""",
    re.IGNORECASE,
)


def mask_emails(text: str) -> str:
    """ada.lovelace@example.com -> a***@***"""
    return EMAIL.sub(lambda m: f"{m.group(0)[0]}***@***", text)


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
