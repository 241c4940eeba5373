"""
What reaches the log, read from the handlers the settings configure (their formatter and
filters), not from pytest's capture: no address and no link token, tracebacks included.
"""

import logging
import secrets
import smtplib

import pytest
from django.core import signing

from common.logging import MaskingFormatter, mask_personal_data
from consents.tokens import SensitiveAction, make_preference_token, make_sensitive_token
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db


def _tampered(token: str) -> str:
    return token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")


def test_a_failing_request_on_a_token_url_logs_neither_the_token_nor_an_address(client, log_output):
    # given Ada's preference link, a fresh link to change her address, and a confirmation link
    ada = CustomerFactory(email="ada.lovelace@example.com")
    preference = make_preference_token(ada)
    email_change = make_sensitive_token(ada, SensitiveAction.EMAIL)
    confirmation = secrets.token_urlsafe(32)
    ada.delete()  # the link now names nobody: 404
    # when the links fail: unknown customer (404), tampered links (400), an address in the path
    assert client.get(f"/preferences/{preference}/").status_code == 404
    assert client.get(f"/preferences/{_tampered(preference)}/").status_code == 400
    assert client.post(f"/preferences/secure/{_tampered(email_change)}/").status_code in (400, 404)
    assert client.post(f"/preferences/email/{confirmation}/").status_code in (400, 404)
    assert client.get("/no-such-page/grace%40example.com/").status_code == 404
    # then the log says what failed, without the secrets
    text = log_output.getvalue()
    assert "Not Found: /preferences/[token]/" in text
    assert "Bad Request: /preferences/[token]/" in text
    assert confirmation not in text
    for secret in (preference, _tampered(preference), email_change, _tampered(email_change)):
        assert secret not in text
        assert secret.split(":")[-1] not in text  # not even the signature
    for address in ("ada.lovelace@example.com", "ada.new@example.org", "grace@example.com", "grace%40example.com"):
        assert address not in text


def test_a_worker_batch_that_raises_logs_its_traceback_without_addresses(log_output, monkeypatch):
    from marketing import sending, tasks

    def refused(**kwargs):
        raise smtplib.SMTPRecipientsRefused(
            {"bounce.victim@example.net": (550, b"5.1.1 <bounce.victim@example.net>: Recipient address rejected")}
        )

    monkeypatch.setattr(sending, "deliveries_send_batch", refused)
    result = tasks.deliveries_send_batch.apply(args=(1, 1, 10))
    assert result.failed()
    text = log_output.getvalue()
    assert "SMTPRecipientsRefused" in text
    assert "Traceback" in text
    assert "bounce.victim" not in text
    assert "b***@***" in text


def test_the_masking_covers_every_form_of_an_address_and_a_token():
    token = signing.dumps({"c": "5b1e0f4c-0000-4000-8000-000000000001"}, salt="any", compress=True)
    encoded = token.replace(":", "%3A")
    text = mask_personal_data(
        f"GET /preferences/{token}/ /u/{encoded}/ ada%40example.com root@localhost zoë@example.de "
        f"<grace.hopper@navy.example> /confirm/{'x' * 40}/"
    )
    assert text == ("GET /preferences/[token]/ /u/[token]/ a***@*** r***@*** z***@*** <g***@***> /confirm/[token]/")
    # ordinary text is left alone
    assert mask_personal_data("campaign 42 sent at 12:30:45 to /admin/marketing/campaign/42/") == (
        "campaign 42 sent at 12:30:45 to /admin/marketing/campaign/42/"
    )


def test_a_traceback_is_masked_in_the_final_text():
    formatter = MaskingFormatter("%(levelname)s %(message)s")
    try:
        raise smtplib.SMTPRecipientsRefused({"ada@example.com": (550, b"no")})
    except smtplib.SMTPRecipientsRefused:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "batch failed", None, exc_info=True)
        import sys

        record.exc_info = sys.exc_info()
    text = formatter.format(record)
    assert "SMTPRecipientsRefused: {'a***@***'" in text
    assert "ada@example.com" not in text


def test_mail_of_the_development_backend_is_logged_at_info_with_addresses_masked(log_output, settings, tmp_path):
    from django.core.mail import EmailMessage, get_connection

    settings.DEV_MAIL_DIR = tmp_path
    link = "http://localhost:8000/signup/confirm/eyJyIjoiMSJ9:1tXyzA:AbCdEfGhIjKlMnOpQrStUvWxYz012345/"
    connection = get_connection("common.mail.MaskedConsoleBackend")
    EmailMessage(
        "Your link", f"Body {link}", "news@example.com", ["ada.lovelace@example.com"], connection=connection
    ).send()
    text = log_output.getvalue()
    assert "INFO common.mail: Email (development backend, not sent; with its links in" in text
    # the log has no token; the kept copy has the link whole, for the developer to follow
    assert link not in text
    (kept,) = tmp_path.glob("*.eml")
    assert link in kept.read_text() and "ada.lovelace@example.com" not in kept.read_text()
    assert "Subject: Your link" in text
    assert "ada.lovelace@example.com" not in text
    assert "WARNING" not in text


def test_what_a_task_prints_is_logged_at_info_not_as_a_warning():
    from config.celery import app

    assert app.conf.worker_redirect_stdouts_level == "INFO"
