import logging
import re

from django.utils.log import AdminEmailHandler

# An address as it turns up in text, mail servers' replies and reprs included: a local part of
# any letters (not only ASCII: "søren@…"), or a quoted one ("ada lovelace"@…); "@" or
# its URL encoding "%40" (ada%40example.com); a domain with or without dots (root@localhost), or
# an address literal. Matching starts only where a run of local-part characters starts, so a
# long run without an "@" costs linear time.
_LOCAL = r"[^\s\"'{}<>()\[\]\\,;:@]"
EMAIL = re.compile(
    rf"""(?:"(?:[^"\\\r\n]|\\.)+"|(?<!{_LOCAL}){_LOCAL}+)(?:@|%40)(?:[\w-]+(?:\.[\w-]+)*|\[[^\]\s]*\])""",
    re.IGNORECASE,
)

# A signed link token (django.core.signing: payload:timestamp:signature, the colons possibly
# percent-encoded), and any other long random-looking path segment (a link secret). Both start
# only where a run starts, so a long run of letters costs linear time.
SIGNED_TOKEN = re.compile(r"(?<![\w.-])\.?[\w-]{2,}(?::|%3A)[0-9A-Za-z]{4,}(?::|%3A)[\w-]{20,}", re.IGNORECASE)
SECRET_SEGMENT = re.compile(r"(?<=/)[A-Za-z0-9_-]{32,}(?=/|\?|#|\s|$|['\"])")
REDACTED = "[token]"


def mask_emails(text: str) -> str:
    """ada.lovelace@example.com -> a***@***"""
    return EMAIL.sub(lambda m: f"{m.group(0)[0]}***@***", text)


def redact_tokens(text: str) -> str:
    """/preferences/eyJjIjoi...:1tXyz:AbC.../ -> /preferences/[token]/"""
    return SECRET_SEGMENT.sub(REDACTED, SIGNED_TOKEN.sub(REDACTED, text))


def mask_personal_data(text: str) -> str:
    return mask_emails(redact_tokens(text))


class MaskingFormatter(logging.Formatter):
    """
    Masks the final text of every log line: the message, the traceback and the stack, so an
    address in an exception (SMTPRecipientsRefused({'ada@…': …})) or a token in a request path
    ("Not Found: /preferences/<token>/") never reaches a log, whoever wrote the record.
    """

    def format(self, record: logging.LogRecord) -> str:
        return mask_personal_data(super().format(record))


class MaskEmailFilter(logging.Filter):
    """
    Masks the message of a record before any handler sees it (for handlers that do not use
    MaskingFormatter, such as the admin error mail's subject).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string still gets logged, as Python would
            return True
        masked = mask_personal_data(message)
        if masked != message or record.args:
            record.msg, record.args = masked, None
        return True


class MaskingAdminEmailHandler(AdminEmailHandler):
    """
    Mails server errors to ADMINS as Django does, masked like every log line: the report names
    the request path and the frames' variables, where tokens and addresses would be. Text only
    (the HTML report is not masked, so it is never sent).
    """

    def send_mail(self, subject, message, *args, **kwargs):
        kwargs["html_message"] = None
        super().send_mail(mask_personal_data(subject), mask_personal_data(message), *args, **kwargs)
