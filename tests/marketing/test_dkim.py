"""
DKIM: every message the site sends carries a signature that dkimpy verifies against the
published key, covering the one-click unsubscribe headers (RFC 8058); a changed header fails.
Campaigns and test sends go over a real SMTP server; Django-sent mail through the signing backend.
"""

from __future__ import annotations

import base64
import hashlib
import re

import dkim
import pytest
from django.core import mail
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command

from common import checks as common_checks
from common.dkim import generate_key, is_aligned, load_key, sign_message
from consents.preferences import preference_link_send
from marketing import campaigns, tasks

from .helpers import customer_who_consents

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("eager_celery")]

SELECTOR = "s2026"
DOMAIN = "example.com"


def dns_for(record: str):
    """A resolver that knows only our selector's TXT record (what we would publish)."""

    def dnsfunc(name, timeout=5):
        return record.encode("ascii") if name == f"{SELECTOR}._domainkey.{DOMAIN}.".encode() else None

    return dnsfunc


@pytest.fixture(params=["rsa-sha256", "ed25519-sha256"])
def dkim_key(request, settings):
    private_pem, record = generate_key(request.param)
    settings.DKIM_DOMAIN = DOMAIN
    settings.DKIM_SELECTOR = SELECTOR
    settings.DKIM_PRIVATE_KEY = private_pem
    settings.DKIM_ALGORITHM = request.param
    settings.DEFAULT_FROM_EMAIL = "Example Software <news@example.com>"
    return record


def signed_headers(data: bytes) -> list[str]:
    found = re.search(rb"DKIM-Signature:(.*?)\r\n(?=\S)", data, re.S)
    assert found is not None, "the message carries no DKIM-Signature header"
    signature = found.group(1)
    pairs = (tag.partition(b"=") for tag in re.sub(rb"\s+", b"", signature).split(b";"))
    tags = {name: value for name, _, value in pairs}
    return [name.decode().lower() for name in tags[b"h"].split(b":")]


def test_a_campaign_message_is_signed_over_its_unsubscribe_headers_and_verifies(
    smtp, make_campaign, staff_user, dkim_key, django_capture_on_commit_callbacks
):
    # given
    customer_who_consents(email="ada@example.com", first_name="Ada")
    campaign = make_campaign()

    # when
    with django_capture_on_commit_callbacks(execute=True):
        tasks.work_enqueue(campaigns.campaign_send_now(campaign=campaign, user=staff_user))

    # then
    [(_, _, data)] = smtp.handler.messages
    assert data.startswith(b"DKIM-Signature:")
    assert dkim.verify(data, dnsfunc=dns_for(dkim_key))
    covered = signed_headers(data)
    required = ("from", "to", "subject", "date", "message-id", "list-id", "list-unsubscribe", "list-unsubscribe-post")
    assert set(required) <= set(covered)
    # Oversigned: a second List-Unsubscribe added on the way would break the signature.
    assert covered.count("list-unsubscribe") == 2


@pytest.mark.parametrize(
    "header, changed",
    [
        (b"Subject", b"Subject: Win a prize"),
        (b"List-Unsubscribe", b"List-Unsubscribe: <https://evil.example.net/u/>"),
        (b"List-Unsubscribe-Post", b"List-Unsubscribe-Post: nothing"),
    ],
)
def test_a_changed_header_fails_verification(smtp, make_campaign, staff_user, dkim_key, header, changed):
    # given: a test send, signed like any campaign message
    message = campaigns.campaign_send_test(campaign=make_campaign(), user=staff_user)
    [(_, _, data)] = smtp.handler.messages
    assert message.data.startswith(b"DKIM-Signature:")
    assert dkim.verify(data, dnsfunc=dns_for(dkim_key))

    # when
    tampered = re.sub(rb"(?m)^" + header + rb":[^\r\n]*(\r\n[ \t][^\r\n]*)*", changed, data, count=1)

    # then
    assert tampered != data
    assert not dkim.verify(tampered, dnsfunc=dns_for(dkim_key))


def test_an_added_list_unsubscribe_header_fails_verification(dkim_key):
    data = (
        b"From: news@example.com\r\nTo: ada@example.org\r\nSubject: Hi\r\nDate: Wed, 02 Dec 2026 10:00:00 +0000\r\n"
        b"Message-ID: <1@example.com>\r\nList-Unsubscribe: <https://consent.example.com/unsubscribe/t/>\r\n"
        b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n\r\nHello\r\n"
    )
    signed = sign_message(data)
    assert dkim.verify(signed, dnsfunc=dns_for(dkim_key))
    header_end = signed.index(b"\r\n\r\n")
    added = signed[:header_end] + b"\r\nList-Unsubscribe: <https://evil.example.net/>" + signed[header_end:]
    assert not dkim.verify(added, dnsfunc=dns_for(dkim_key))


def test_a_changed_body_fails_verification(dkim_key):
    data = b"From: news@example.com\r\nTo: ada@example.org\r\nSubject: Hi\r\n\r\nYour link: https://a.example/1\r\n"
    signed = sign_message(data)
    assert dkim.verify(signed, dnsfunc=dns_for(dkim_key))
    assert not dkim.verify(signed.replace(b"a.example/1", b"b.example/1"), dnsfunc=dns_for(dkim_key))


SHAPES = {
    "folded and tabbed headers": (
        b"From: News\r\n <news@example.com>\r\nTo: ada@example.org\r\nSubject: A  long\t subject\r\n\tfolded  twice\r\n"
        b"List-Unsubscribe:   <https://consent.example.com/u/t/>  \r\n\r\nHello\r\n"
    ),
    "a repeated header, the last instance first": (
        b"Received: from a\r\nFrom: news@example.com\r\nTo: ada@example.org\r\nTo: bob@example.org\r\n"
        b"Subject: Hi\r\n\r\nHello\r\n"
    ),
    "blank lines at the end of the body": b"From: news@example.com\r\nSubject: Hi\r\n\r\nHello\r\n\r\n\r\n",
    "an empty body": b"From: news@example.com\r\nSubject: Hi\r\n\r\n",
    "a body without a final line end": b"From: news@example.com\r\nSubject: Hi\r\n\r\nHello",
    "upper-case names and no space after the colon": b"FROM:news@example.com\r\nSUBJECT:Hi\r\n\r\nHello\r\n",
    "bare line feeds (signed by dkimpy)": b"From: news@example.com\nSubject: Hi\n\nHello\nthere\n",
}


@pytest.mark.parametrize("data", SHAPES.values(), ids=SHAPES.keys())
def test_every_message_shape_verifies_and_a_changed_header_does_not(dkim_key, data):
    # given: a message of an unusual shape; when: it is signed
    signed = sign_message(data)
    # then: dkimpy verifies it, and changing the signed sender breaks it
    assert dkim.verify(signed, dnsfunc=dns_for(dkim_key))
    tampered = signed.replace(b"news@example.com", b"news@evil.example")
    assert tampered != signed
    assert not dkim.verify(tampered, dnsfunc=dns_for(dkim_key))


@pytest.mark.parametrize("data", SHAPES.values(), ids=SHAPES.keys())
def test_the_body_hash_is_dkimpys(dkim_key, data):
    # given: a message of an unusual shape; when: it is signed
    signed = sign_message(data)
    # then: bh= is the hash of dkimpy's own simple canonicalisation of the body
    policy = dkim.CanonicalizationPolicy.from_c_value(b"relaxed/simple")
    body = re.split(rb"\r?\n\r?\n", data, maxsplit=1)[1]
    expected = base64.b64encode(
        hashlib.sha256(policy.canonicalize_body(body.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))).digest()
    )
    assert b"bh=" + expected + b";" in re.sub(rb"\s+", b"", signed)


def test_mail_django_sends_is_signed_by_the_signing_backend(settings, dkim_key):
    # given: the settings put the signing backend in front of the configured one
    settings.EMAIL_BACKEND = "common.mail.DkimSigningBackend"
    settings.DKIM_SIGNED_EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    ada = customer_who_consents(email="ada@example.com", first_name="Ada")

    # when: a customer asks for their preference link
    assert preference_link_send(email=ada.email)

    # then
    [message] = mail.outbox
    data = message.message().as_bytes(linesep="\r\n")
    assert data.startswith(b"DKIM-Signature:")
    assert dkim.verify(data, dnsfunc=dns_for(dkim_key))
    assert {"from", "to", "subject", "date", "message-id"} <= set(signed_headers(data))
    assert message.to == [ada.email]


def test_mail_sent_over_smtp_through_the_signing_backend_verifies(settings, smtp, dkim_key):
    settings.DKIM_SIGNED_EMAIL_BACKEND = settings.EMAIL_BACKEND
    settings.EMAIL_BACKEND = "common.mail.DkimSigningBackend"

    mail.EmailMessage(
        subject="Bitte bestätigen Sie Ihre Anmeldung",
        body="Grüße\n" * 30,
        to=["ada@example.org"],
        bcc=["audit@example.com"],
    ).send()

    [(_, recipients, data)] = smtp.handler.messages
    assert recipients == ["ada@example.org", "audit@example.com"]
    assert b"audit@example.com" not in data
    assert dkim.verify(data, dnsfunc=dns_for(dkim_key))


def test_without_dkim_settings_nothing_is_signed(smtp, make_campaign, staff_user, settings):
    settings.DKIM_DOMAIN = ""
    campaigns.campaign_send_test(campaign=make_campaign(), user=staff_user)
    [(_, _, data)] = smtp.handler.messages
    assert b"DKIM-Signature" not in data


def test_the_private_key_may_be_a_file_path(tmp_path, settings):
    private_pem, record = generate_key("rsa-sha256")
    path = tmp_path / "dkim.pem"
    path.write_text(private_pem)
    key = load_key(domain=DOMAIN, selector=SELECTOR, private_key=str(path), algorithm="rsa-sha256")
    assert key.dns_record() == record


@pytest.mark.parametrize(
    "private_key, algorithm, message",
    [
        ("/nowhere/dkim.pem", "rsa-sha256", "neither a PEM key nor a readable file"),
        ("-----BEGIN PRIVATE KEY-----\\nnot a key\\n-----END PRIVATE KEY-----", "rsa-sha256", "could not be read"),
        ("ed25519", "ed25519-sha256", "not an Ed25519 key"),
    ],
)
def test_a_bad_key_is_refused_with_a_clear_reason(private_key, algorithm, message):
    if private_key == "ed25519":
        private_key = generate_key("rsa-sha256")[0]
    with pytest.raises(ImproperlyConfigured, match=message):
        load_key(domain=DOMAIN, selector=SELECTOR, private_key=private_key, algorithm=algorithm)


def test_pem_with_escaped_newlines_from_an_env_file_is_read():
    private_pem, record = generate_key("ed25519-sha256")
    key = load_key(
        domain=DOMAIN, selector=SELECTOR, private_key=private_pem.replace("\n", "\\n"), algorithm="ed25519-sha256"
    )
    assert key.dns_record() == record


@pytest.mark.parametrize("algorithm, k", [("rsa", "rsa"), ("ed25519", "ed25519")])
def test_dkim_keygen_prints_a_key_and_the_record_that_verifies_its_signatures(capsys, algorithm, k):
    call_command("dkim_keygen", algorithm=algorithm, selector=SELECTOR, domain=DOMAIN)
    out = capsys.readouterr().out
    pem = re.search(r"-----BEGIN [A-Z ]+-----.*?-----END [A-Z ]+-----\n", out, re.S).group(0)
    line = next(line for line in out.splitlines() if line.startswith(f"{SELECTOR}._domainkey.{DOMAIN}. IN TXT"))
    record = "".join(re.findall(r'"([^"]*)"', line))
    assert f"k={k};" in record
    key = load_key(domain=DOMAIN, selector=SELECTOR, private_key=pem, algorithm=f"{algorithm}-sha256")
    signed = sign_message(b"From: news@example.com\r\nSubject: x\r\n\r\nbody\r\n", key)
    assert dkim.verify(signed, dnsfunc=dns_for(record))


def test_the_system_check_warns_when_the_from_domain_does_not_align(settings, dkim_key):
    assert common_checks.dkim_alignment() == []
    settings.DEFAULT_FROM_EMAIL = "Example Software <news@mail.example.com>"
    assert common_checks.dkim_alignment() == []  # a subdomain of the signing domain aligns
    settings.DEFAULT_FROM_EMAIL = "Example Software <news@example.net>"
    [warning] = common_checks.dkim_alignment()
    assert warning.id == "common.W001"
    assert "example.net" in warning.msg


def test_alignment_is_by_domain_not_by_suffix():
    assert is_aligned("example.com", "example.com")
    assert is_aligned("news.example.com", "example.com")
    assert not is_aligned("badexample.com", "example.com")
    assert not is_aligned("", "example.com")


def test_the_settings_put_the_signing_backend_in_front_and_refuse_half_a_configuration(tmp_path):
    from tests.test_settings import run_manage

    key_file = tmp_path / "dkim.pem"
    key_file.write_text(generate_key("ed25519-sha256")[0])
    probe = "from django.conf import settings; print(settings.EMAIL_BACKEND, settings.DKIM_SIGNED_EMAIL_BACKEND)"
    configured = run_manage(
        "shell",
        "-c",
        probe,
        env_overrides={
            "DKIM_DOMAIN": "Example.com",
            "DKIM_SELECTOR": "s1",
            "DKIM_PRIVATE_KEY": str(key_file),
            "DKIM_ALGORITHM": "ed25519-sha256",
            "EMAIL_URL": "smtp://relay.example.com:25",
        },
    )
    assert configured.stdout.split()[-2:] == [
        "common.mail.DkimSigningBackend",
        "django.core.mail.backends.smtp.EmailBackend",
    ], configured.stderr
    half = run_manage("check", env_overrides={"DKIM_DOMAIN": "example.com"})
    assert half.returncode != 0
    assert "DKIM_SELECTOR and DKIM_PRIVATE_KEY are required" in half.stderr
    unreadable = run_manage(
        "check", env_overrides={"DKIM_DOMAIN": "example.com", "DKIM_SELECTOR": "s1", "DKIM_PRIVATE_KEY": "/nowhere.pem"}
    )
    assert unreadable.returncode != 0
    assert "common.E001" in unreadable.stderr


def test_mail_for_a_providers_api_goes_through_whole_and_unsigned(settings, dkim_key):
    # A provider's API reads the message's fields (HTML, headers), not its bytes, and signs it itself.
    settings.EMAIL_BACKEND = "common.mail.DkimSigningBackend"
    settings.DKIM_SIGNED_EMAIL_BACKEND = "anymail.backends.test.EmailBackend"
    message = mail.EmailMultiAlternatives(subject="Confirm", body="Text", to=["ada@example.org"])
    message.attach_alternative("<p>Confirm</p>", "text/html")

    message.send()

    [sent] = mail.outbox
    assert sent is message
    assert sent.alternatives[0][0] == "<p>Confirm</p>"
    assert b"DKIM-Signature" not in sent.message().as_bytes()
