"""EMAIL_URL names an SMTP relay (the default) or a mail provider's API through django-anymail."""

import json

import pytest

from .test_settings import run_manage

SHOW = "from django.conf import settings; import json; print(json.dumps([settings.EMAIL_BACKEND, settings.ANYMAIL]))"


def email_settings(url: str):
    result = run_manage("shell", "-c", SHOW, env_overrides={"EMAIL_URL": url})
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    ("url", "backend", "entries"),
    [
        (
            "anymail+postmark://server-token@",
            "anymail.backends.postmark.EmailBackend",
            {"POSTMARK_SERVER_TOKEN": "server-token"},
        ),
        ("anymail+sendgrid://SG.key@", "anymail.backends.sendgrid.EmailBackend", {"SENDGRID_API_KEY": "SG.key"}),
        (
            "anymail+mailgun://key-1@api.eu.mailgun.net",
            "anymail.backends.mailgun.EmailBackend",
            {"MAILGUN_API_KEY": "key-1", "MAILGUN_API_URL": "https://api.eu.mailgun.net/v3"},
        ),
        ("anymail+brevo://xkeysib-1@", "anymail.backends.brevo.EmailBackend", {"BREVO_API_KEY": "xkeysib-1"}),
        (
            "anymail+postal://key@postal.example.com",
            "anymail.backends.postal.EmailBackend",
            {"POSTAL_API_KEY": "key", "POSTAL_API_URL": "https://postal.example.com"},
        ),
        (
            "anymail+amazon_ses://?region=eu-west-1",
            "anymail.backends.amazon_ses.EmailBackend",
            {"AMAZON_SES_CLIENT_PARAMS": {"region_name": "eu-west-1"}},
        ),
    ],
)
def test_an_anymail_email_url_sends_through_the_providers_api(url, backend, entries):
    configured_backend, anymail = email_settings(url)
    assert configured_backend == backend
    assert entries.items() <= anymail.items()


def test_smtp_stays_the_default_for_other_urls():
    backend, anymail = email_settings("smtp+tls://user:password@smtp.example.com:587")
    assert backend == "django.core.mail.backends.smtp.EmailBackend"
    assert not any(key.endswith(("_API_KEY", "_SERVER_TOKEN")) for key in anymail)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("anymail+sparkle://key@", "anymail+sparkle is not one of"),
        ("anymail+postmark://", "needs the API key"),
        ("anymail+postal://key@", "needs the Postal host"),
    ],
)
def test_a_bad_anymail_email_url_stops_with_one_clear_sentence(url, message):
    result = run_manage("check", env_overrides={"EMAIL_URL": url})
    assert result.returncode != 0
    assert message in result.stderr
