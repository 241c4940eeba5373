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


def test_a_name_typed_as_an_encoded_word_reaches_the_to_header_as_the_literal_text(purposes):
    # given a customer whose first name is typed as a raw RFC 2047 encoded word
    from marketing.emails import CampaignMessageBuilder
    from marketing.models import Campaign
    from tests.factories import CustomerFactory

    from .helpers import purpose

    customer = CustomerFactory(first_name="=?utf-8?q?inj?=", last_name="", email="mallory@example.com")
    campaign = Campaign(name="News", purpose=purpose("newsletter"), subject="Hi {{ first_name }}", text_body="Hello")

    # when a message is built for them
    message = message_from_bytes(CampaignMessageBuilder(campaign).build(customer).data, policy=policy.default)

    # then a mail client shows the name exactly as typed, not what the encoded word decodes to
    assert message["To"].addresses[0].display_name == "=?utf-8?q?inj?="
    assert message["To"].addresses[0].addr_spec == "mallory@example.com"
    assert message["Subject"] == "Hi =?utf-8?q?inj?="


def test_an_encoded_word_inside_a_quoted_name_is_encoded_as_text_too():
    name = 'Eve "=?utf-8?b?QWRh?=", Lovelace'
    message = parse([("To", format_recipient(name, "eve@example.com"))])
    assert message["To"].addresses[0].display_name == name
