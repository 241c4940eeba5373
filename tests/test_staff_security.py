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


# --- one answer for every failed sign-in, and the second factor counted by the lockout ------


@pytest.fixture
def two_factor_site():
    """The admin as production runs it (STAFF_REQUIRE_2FA): password and a TOTP code."""
    from django.contrib import admin
    from django_otp.admin import OTPAdminSite

    from common.signin import StaffSignInForm

    previous = admin.site.__class__, admin.site.login_form
    admin.site.__class__, admin.site.login_form = OTPAdminSite, StaffSignInForm
    yield
    admin.site.__class__, admin.site.login_form = previous


@pytest.fixture
def grace(django_user_model):
    from django_otp.plugins.otp_totp.models import TOTPDevice

    user = django_user_model.objects.create_user("grace", password="the right password 42", is_staff=True)
    device = TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
    return user, device


def _code(device, *, wrong: bool = False) -> str:
    from django_otp.oath import TOTP

    right = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift).token()
    return f"{(right + 1) % 10**6:06d}" if wrong else f"{right:06d}"


def _sign_in(client, password: str, code: str = "", **extra):
    return client.post(
        "/admin/login/?next=/admin/",
        {"username": "grace", "password": password, "otp_token": code},
        **extra,
    )


def _visible(response) -> str:
    import re

    return re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", response.content.decode())


def test_a_right_password_with_a_wrong_code_answers_exactly_like_a_wrong_password(client, grace, two_factor_site):
    _, device = grace
    # the same code typed each time, so that the pages can be compared whole
    wrong_password = _sign_in(client, "not the password", _code(device, wrong=True))
    wrong_code = _sign_in(client, "the right password 42", _code(device, wrong=True))
    assert wrong_password.status_code == wrong_code.status_code == 200
    assert _visible(wrong_password) == _visible(wrong_code)
    no_code, no_code_wrong_password = _sign_in(client, "the right password 42"), _sign_in(client, "not it")
    assert _visible(no_code) == _visible(no_code_wrong_password)
    page = _visible(wrong_code)
    assert "Sign-in failed." in page
    for telltale in ("Invalid token", "Please select a device", "OTP Device", "Please enter your OTP token"):
        assert telltale not in page


def test_the_right_password_and_code_sign_in_without_choosing_a_device(client, grace, two_factor_site):
    _, device = grace
    response = _sign_in(client, "the right password 42", _code(device))
    assert response.status_code == 302
    assert client.get("/admin/").status_code == 200


def test_wrong_codes_count_towards_the_lockout(client, grace, two_factor_site, axes_on):
    _, device = grace
    for _ in range(3):
        _sign_in(client, "the right password 42", _code(device, wrong=True))
    locked = _sign_in(client, "the right password 42", _code(device))
    assert locked.status_code == 429
    assert b"Too many failed sign-in attempts" in locked.content


def test_guessing_one_username_from_many_addresses_locks_it(client, django_user_model, axes_on):
    django_user_model.objects.create_user("grace", password="the right password 42", is_staff=True)
    for n in range(3):
        _sign_in(client, f"guess {n}", REMOTE_ADDR=f"203.0.113.{n}")
    locked = _sign_in(client, "the right password 42", REMOTE_ADDR="198.51.100.200")
    assert locked.status_code == 429


def test_the_lockout_counts_an_ipv6_client_by_its_64(client, django_user_model, axes_on, settings):
    from axes.models import AccessAttempt

    settings.AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
    django_user_model.objects.create_user("grace", password="the right password 42", is_staff=True)
    for n in range(1, 4):
        _sign_in(client, f"guess {n}", REMOTE_ADDR=f"2001:db8:5:5::{n}")
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {"2001:db8:5:5::"}
    assert _sign_in(client, "the right password 42", REMOTE_ADDR="2001:db8:5:5::beef").status_code == 429
    # another network is not locked by Grace's neighbour's guesses
    assert _sign_in(client, "the right password 42", REMOTE_ADDR="2001:db8:6:6::1").status_code == 302


def test_the_lockout_page_carries_the_sites_title(client, django_user_model, axes_on):
    django_user_model.objects.create_user("grace", password="the right password 42", is_staff=True)
    for n in range(3):
        _sign_in(client, f"guess {n}")
    page = _sign_in(client, "the right password 42").content.decode()
    assert "<title>Sign-in locked | ConsentDesk</title>" in page
    assert "ConsentDesk" in page.split('id="site-name"')[1][:200]
    assert "Django administration" not in page
    assert "Django site admin" not in page


# --- staff sessions: an idle timeout and a lifetime -------------------------------------------


class Clock:
    def __init__(self):
        import time

        self.now = time.time()

    def time(self) -> float:
        return self.now

    def advance(self, *, minutes: float = 0, hours: float = 0) -> None:
        self.now += minutes * 60 + hours * 3600


@pytest.fixture
def clock(monkeypatch):
    import common.middleware
    import common.signin

    clock = Clock()
    monkeypatch.setattr(common.middleware, "time", clock)
    monkeypatch.setattr(common.signin, "time", clock)
    return clock


def test_a_staff_session_ends_after_thirty_idle_minutes(client, admin_user, clock):
    client.force_login(admin_user)
    clock.advance(minutes=29)
    assert client.get("/admin/").status_code == 200
    clock.advance(minutes=29)
    assert client.get("/admin/").status_code == 200  # each request starts the idle time again
    clock.advance(minutes=31)
    ended = client.get("/admin/customers/")
    assert ended.status_code == 302
    assert ended["Location"].startswith("/admin/login/?next=/admin/customers/")
    # and it stays ended: the session was signed out, not just refused once
    clock.advance(minutes=1)
    assert client.get("/admin/").status_code == 302


def test_a_busy_staff_session_still_ends_eight_hours_after_sign_in(client, admin_user, clock):
    client.force_login(admin_user)
    for _ in range(23):  # a request every 20 minutes for 7 h 40 min
        clock.advance(minutes=20)
        assert client.get("/admin/").status_code == 200
    clock.advance(minutes=21)
    assert client.get("/admin/").status_code == 302


def test_the_timeouts_follow_their_settings(client, admin_user, clock, settings):
    settings.STAFF_SESSION_IDLE_MINUTES = 5
    client.force_login(admin_user)
    clock.advance(minutes=6)
    assert client.get("/admin/").status_code == 302


def test_customers_get_no_session(client, db):
    client.get("/preferences/")
    client.post("/preferences/", {"email": "ada@example.com"})
    assert "sessionid" not in client.cookies
