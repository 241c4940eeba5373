from email import message_from_bytes, policy
from email.header import decode_header, make_header
from email.utils import parseaddr

from marketing.emails import _compose, _header_value, format_recipient


def parse(headers):
    return message_from_bytes(_compose(headers, "Hello", ""), policy=policy.default)


def test_a_long_non_ascii_name_with_a_comma_and_quotes_survives_the_to_header():
    name = 'Łukasz "Łuki" Żółkiewski-Brzęczyszczykiewicz, Ærøskøbing Ünïversität'
    raw = message_from_bytes(_compose([("To", format_recipient(name, "lukasz@example.com"))], "Hi", ""))["To"]
    # Folded into several encoded-words; RFC 2047 decoders join them without the folding space.
    # (Python's policy.default address parser keeps a space between words, a known quirk.)
    display, address = parseaddr(" ".join(raw.split()))
    assert (str(make_header(decode_header(display))), address) == (name, "lukasz@example.com")


def test_header_values_cannot_inject_headers():
    message = parse([("Subject", _header_value("Hello\r\nBcc: victim@example.com"))])
    assert message["Bcc"] is None
    assert message["Subject"] == "Hello Bcc: victim@example.com"
