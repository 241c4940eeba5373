"""
Sensitive actions need a fresh link to the address on file: the preference link (in every
marketing email, so easily forwarded) only lets one see and change consent and correct
ordinary details.
"""

import re
import time

import pytest
from django.core import mail, signing

from consents.tokens import SENSITIVE_SALT, SensitiveAction, make_preference_token, make_sensitive_token
from customers.services import customer_email_change
from privacy.models import PrivacyRequest
from tests.consents.people import customer_with_choices

pytestmark = pytest.mark.django_db


@pytest.fixture
def ada(purposes):
    return customer_with_choices("ada@example.com", granted=["newsletter"], first_name="Ada")


def page_url(customer) -> str:
    return f"/preferences/{make_preference_token(customer)}/"


def ask_for_link(client, customer, action: str, capture) -> str:
    """Press "Email me a link to ..." on the page; return the link mailed to the customer."""
    with capture(execute=True):
        response = client.post(page_url(customer) + f"send-link/{action}/")
    assert response.status_code == 302
    message = mail.outbox[-1]
    assert message.to == [customer.email]
    found = re.search(r"http://\S+(/preferences/secure/\S+/)", str(message.body))
    assert found, message.body
    return found.group(1)


def test_the_page_offers_links_by_email_instead_of_the_actions_themselves(client, ada):
    url = page_url(ada)
    html = client.get(url).content.decode()
    assert "Email me a link to download my data" in html
    assert "Email me a link to change my address" in html
    assert "Email me a link to delete my data" in html
    assert 'name="new_email"' not in html
    assert f"{url}export/" not in html and f"{url}erase/" not in html
    assert f'action="{url}send-link/export/"' in html


@pytest.mark.parametrize("suffix", ["export/", "export", "erase/", "email/"])
def test_the_preference_link_alone_reaches_no_sensitive_action(client, ada, suffix):
    assert client.get(page_url(ada) + suffix).status_code == 404
    assert client.post(page_url(ada) + suffix, {"new_email": "mallory@example.net"}).status_code == 404
    ada.refresh_from_db()
    assert ada.email == "ada@example.com"
    assert not PrivacyRequest.objects.exists()


def test_asking_for_a_download_link_mails_it_to_the_address_on_file(
    client, ada, eager_celery, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(page_url(ada) + "send-link/export/", follow=True)
    html = response.content.decode()
    assert "We sent a link to ada@example.com to download your data. It works for 60 minutes." in html
    assert response.redirect_chain[-1][0].endswith("#data")
    [message] = mail.outbox
    assert message.to == ["ada@example.com"]
    assert message.subject.startswith("Your link to download your data")
    assert "It works for 60 minutes" in message.body


def test_the_download_link_shows_a_button_and_the_button_downloads(
    client, ada, eager_celery, django_capture_on_commit_callbacks
):
    link = ask_for_link(client, ada, "export", django_capture_on_commit_callbacks)
    page = client.get(link)
    assert page.status_code == 200
    assert "Download my data" in page.content.decode()
    assert "no-store" in page["Cache-Control"] and page["Referrer-Policy"] == "same-origin"
    download = client.post(link)
    assert download.status_code == 200
    assert download["Content-Disposition"].startswith("attachment;")
    # a download that broke off can be tried again while the link lasts
    assert client.post(link.rstrip("/")).status_code == 200


def test_a_link_for_one_action_allows_only_that_action(client, ada):
    # the action is signed into the token: a download link shows no address form
    html = client.get(f"/preferences/secure/{make_sensitive_token(ada, SensitiveAction.EXPORT)}/").content.decode()
    assert "Download my data" in html and 'name="new_email"' not in html
    html = client.get(f"/preferences/secure/{make_sensitive_token(ada, SensitiveAction.EMAIL)}/").content.decode()
    assert 'name="new_email"' in html and "Download my data" not in html


def test_a_sensitive_link_expires_after_an_hour(client, ada, monkeypatch):
    sixty_one_minutes_ago = time.time() - 61 * 60
    monkeypatch.setattr(signing.time, "time", lambda: sixty_one_minutes_ago)
    token = make_sensitive_token(ada, SensitiveAction.EXPORT)
    monkeypatch.undo()
    response = client.post(f"/preferences/secure/{token}/")
    assert response.status_code == 400
    assert "This link has expired" in response.content.decode()


def test_a_sensitive_link_naming_an_unknown_action_is_refused(client, ada):
    token = signing.dumps({"c": str(ada.public_id), "g": 0, "a": "admin", "n": "x"}, salt=SENSITIVE_SALT, compress=True)
    response = client.get(f"/preferences/secure/{token}/")
    assert response.status_code == 400
    assert "This link does not work" in response.content.decode()


def test_asking_for_a_link_to_an_unknown_action_is_refused(client, ada):
    response = client.post(page_url(ada) + "send-link/everything/")
    assert response.status_code == 400
    assert mail.outbox == []


def test_asking_for_a_link_needs_a_post(client, ada):
    assert client.get(page_url(ada) + "send-link/export/").status_code == 405


def test_links_asked_for_are_limited_per_customer(client, ada, settings):
    settings.PREFERENCE_LINK_LIMIT_PER_EMAIL = 2
    statuses = [client.post(page_url(ada) + "send-link/export/").status_code for _ in range(3)]
    assert statuses == [302, 302, 429]


def test_a_change_of_address_ends_the_sensitive_links_sent_before(client, ada):
    token = make_sensitive_token(ada, SensitiveAction.EXPORT)
    customer_email_change(customer=ada, new_email="ada@lovelace.example", changed_by="customer")
    response = client.post(f"/preferences/secure/{token}/")
    assert response.status_code == 400
    assert "This link was replaced" in response.content.decode()


def test_an_erased_customers_sensitive_link_is_not_found(client, ada):
    token = make_sensitive_token(ada, SensitiveAction.EXPORT)
    type(ada).objects.filter(pk=ada.pk).update(erased_at="2026-01-01T00:00:00Z")
    response = client.post(f"/preferences/secure/{token}/")
    assert response.status_code == 404
