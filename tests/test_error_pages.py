import pytest
from django.core import mail, signing
from django.test import Client

pytestmark = pytest.mark.django_db


def test_an_unknown_address_gets_the_sites_friendly_page(client, settings):
    settings.DEBUG = False
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    assert b"Page not found" in response.content
    assert b"Traceback" not in response.content


@pytest.mark.urls("tests.urls_errors")
def test_a_server_error_tells_the_admins_and_the_log_and_shows_a_plain_page(settings, log_output):
    # given an operator who set ADMINS="Ops <ops@example.com>"
    settings.DEBUG = False
    settings.ADMINS = [("Ops", "ops@example.com")]
    token = signing.dumps({"c": "00000000-0000-4000-8000-000000000001"}, salt="consents.preference-link")
    # when a page fails
    response = Client(raise_request_exception=False).get(f"/broken/{token}/")
    # then the visitor sees the plain page, and what it says is true: the admins got a mail
    assert response.status_code == 500
    page = response.content.decode()
    assert "We have been told about it" in page
    assert "Traceback" not in page and "RuntimeError" not in page
    assert len(mail.outbox) == 1
    report = mail.outbox[0]
    assert report.to == ["ops@example.com"]
    assert "Internal Server Error: /broken/[token]/" in report.subject
    assert "RuntimeError" in report.body
    # ... without the customer's address or the link token
    for secret in ("ada.lovelace@example.com", token, token.split(":")[-1]):
        assert secret not in report.subject + report.body
    # and the log has an ERROR record an alert can match, masked the same way
    text = log_output.getvalue()
    assert "ERROR django.request: Internal Server Error: /broken/[token]/" in text
    assert "RuntimeError" in text
    assert "ada.lovelace@example.com" not in text and token not in text


@pytest.mark.urls("tests.urls_errors")
def test_without_admins_a_server_error_is_still_logged(settings, log_output):
    settings.DEBUG = False
    settings.ADMINS = []
    assert Client(raise_request_exception=False).get("/broken/x/").status_code == 500
    assert mail.outbox == []
    assert "ERROR django.request: Internal Server Error: /broken/x/" in log_output.getvalue()


def test_admins_are_read_from_the_environment():
    from tests.test_settings import run_manage

    result = run_manage(
        "shell",
        "-c",
        "from django.conf import settings; print(settings.ADMINS)",
        env_overrides={"ADMINS": "Ops Team <ops@example.com>,jo@example.com"},
    )
    assert result.returncode == 0, result.stderr
    assert "[('Ops Team', 'ops@example.com'), ('', 'jo@example.com')]" in result.stdout
    refused = run_manage("check", env_overrides={"ADMINS": "Ops Team"})
    assert refused.returncode != 0
    assert 'ADMINS must be a comma-separated list of "Name <address>" entries.' in refused.stderr
