import logging

import pytest
from django.test import override_settings

from common.logging import MaskEmailFilter, mask_emails

pytestmark = pytest.mark.django_db


@pytest.fixture
def axes_on(settings):
    settings.AXES_ENABLED = True
    settings.AXES_FAILURE_LIMIT = 3
    from axes.handlers.proxy import AxesProxyHandler

    AxesProxyHandler.reset_attempts()
    yield
    AxesProxyHandler.reset_attempts()


def test_the_lockout_engages_after_the_configured_number_of_failures(client, django_user_model, axes_on):
    django_user_model.objects.create_user("mallory-target", password="the right password 42", is_staff=True)
    for _ in range(3):
        response = client.post("/admin/login/", {"username": "mallory-target", "password": "wrong"})
        assert response.status_code in (200, 429)
    locked = client.post("/admin/login/", {"username": "mallory-target", "password": "the right password 42"})
    assert locked.status_code == 429
    assert b"Too many failed sign-in attempts" in locked.content


def test_a_correct_password_below_the_limit_signs_in(client, django_user_model, axes_on):
    django_user_model.objects.create_user("alice", password="the right password 42", is_staff=True)
    client.post("/admin/login/", {"username": "alice", "password": "wrong"})
    response = client.post("/admin/login/?next=/admin/", {"username": "alice", "password": "the right password 42"})
    assert response.status_code == 302


def test_pages_send_security_headers(client):
    response = client.get("/admin/login/")
    policy = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy
    assert "unsafe-inline" not in policy.split("script-src")[1].split(";")[0]
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"] == "same-origin"


def test_email_addresses_are_masked_in_log_lines(caplog):
    logger = logging.getLogger("consentdesk.test")
    logger.addFilter(MaskEmailFilter())
    with caplog.at_level(logging.INFO, logger="consentdesk.test"):
        logger.info("sent campaign 7 to %s", "ada.lovelace@example.com")
        logger.info("bounce from grace@navy.mil.example")
    text = caplog.text
    assert "ada.lovelace@example.com" not in text
    assert "grace@navy" not in text
    assert "a***@***" in text
    assert mask_emails("no address here 42") == "no address here 42"


@override_settings(STAFF_REQUIRE_2FA=True)
def test_the_totp_enrolment_command_creates_a_device(django_user_model, capsys):
    from django.core.management import call_command
    from django_otp.plugins.otp_totp.models import TOTPDevice

    user = django_user_model.objects.create_user("bob", is_staff=True)
    call_command("enrol_totp", "bob")
    assert TOTPDevice.objects.filter(user=user, confirmed=True).exists()
    assert "otpauth://totp/" in capsys.readouterr().out


def test_mail_printed_by_the_development_backend_masks_addresses(settings):
    import io

    from django.core.mail import EmailMessage

    from common.mail import MaskedConsoleBackend

    stream = io.StringIO()
    backend = MaskedConsoleBackend(stream=stream)
    backend.send_messages([EmailMessage("Hi", "Body", "news@example.com", ["ada.lovelace@example.com"])])
    printed = stream.getvalue()
    assert "ada.lovelace@example.com" not in printed
    assert "Subject: Hi" in printed


def test_behind_a_proxy_the_client_address_is_the_one_the_proxy_appended(rf, settings):
    from common.client import client_ip

    request = rf.get("/", HTTP_X_FORWARDED_FOR="6.6.6.6, 203.0.113.9", REMOTE_ADDR="10.0.0.2")
    settings.SECURE_PROXY_SSL_HEADER = None
    assert client_ip(request) == "10.0.0.2"  # no proxy configured: the header is not trusted
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    assert client_ip(request) == "203.0.113.9"
    assert client_ip(rf.get("/", HTTP_X_FORWARDED_FOR="not-an-address", REMOTE_ADDR="10.0.0.2")) is None
