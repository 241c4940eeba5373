"""Getting onto the preference page: signed links, their failures, and the headers of token pages."""

import time
import uuid

import pytest
from django.core import signing

from consents.tokens import PREFERENCE_SALT, SensitiveAction, make_preference_token, make_sensitive_token
from marketing.tokens import make_unsubscribe_token
from tests.consents.people import customer_with_choices

pytestmark = pytest.mark.django_db


@pytest.fixture
def ada(purposes):
    return customer_with_choices("ada@example.com", granted=["newsletter"])


def _url(token: str, slash: bool = True) -> str:
    return f"/preferences/{token}" + ("/" if slash else "")


def assert_friendly_refusal(response, status: int, heading: str):
    html = response.content.decode()
    assert response.status_code == status
    assert heading in html
    # it offers a new link, and shows no trace of the error
    assert 'action="/preferences/"' in html
    assert "Email me a new link" in html
    assert "Traceback" not in html


def test_a_valid_link_opens_the_preference_page(client, ada):
    response = client.get(_url(make_preference_token(ada)))
    assert response.status_code == 200
    assert "ada@example.com" in response.content.decode()


def test_a_tampered_token_gets_the_friendly_page(client, ada):
    token = make_preference_token(ada)
    tampered = token[:-3] + ("aaa" if not token.endswith("aaa") else "bbb")
    assert_friendly_refusal(client.get(_url(tampered)), 400, "This link does not work")


def test_a_token_with_another_customer_swapped_in_is_refused(client, ada):
    token = make_preference_token(ada)
    signature = token.rpartition(":")[2]
    forged = signing.dumps({"c": str(uuid.uuid4())}, salt=PREFERENCE_SALT, compress=True).rpartition(":")[0]
    assert_friendly_refusal(client.get(_url(forged + ":" + signature)), 400, "This link does not work")


def test_an_expired_token_gets_the_friendly_page(client, ada, monkeypatch, settings):
    eight_days_ago = time.time() - 8 * 24 * 3600
    monkeypatch.setattr(signing.time, "time", lambda: eight_days_ago)
    token = make_preference_token(ada)
    monkeypatch.undo()
    response = client.get(_url(token))
    assert_friendly_refusal(response, 400, "This link has expired")


def test_a_token_signed_for_unsubscribing_does_not_open_the_preference_page(client, ada):
    token = make_unsubscribe_token(customer_public_id=ada.public_id, purpose_code="newsletter")
    assert_friendly_refusal(client.get(_url(token)), 400, "This link does not work")


def test_a_token_signed_for_a_sensitive_action_does_not_open_the_preference_page(client, ada):
    token = make_sensitive_token(ada, SensitiveAction.EXPORT)
    assert_friendly_refusal(client.get(_url(token)), 400, "This link does not work")


def test_a_preference_token_does_not_open_a_sensitive_action(client, ada):
    response = client.post(f"/preferences/secure/{make_preference_token(ada)}/")
    assert_friendly_refusal(response, 400, "This link does not work")


def test_a_preference_token_does_not_confirm_an_email_change(client, ada):
    response = client.post(f"/preferences/email/{make_preference_token(ada)}/")
    assert_friendly_refusal(response, 400, "This link does not work")
    ada.refresh_from_db()
    assert ada.email == "ada@example.com"


def test_a_signed_link_to_no_customer_is_not_found(client, purposes):
    token = signing.dumps({"c": str(uuid.uuid4())}, salt=PREFERENCE_SALT, compress=True)
    assert_friendly_refusal(client.get(_url(token)), 404, "We could not find your preferences")


def test_a_token_that_is_not_a_uuid_is_refused(client, purposes):
    token = signing.dumps({"c": "42"}, salt=PREFERENCE_SALT, compress=True)
    assert_friendly_refusal(client.get(_url(token)), 400, "This link does not work")


def test_a_posted_form_with_a_bad_token_gets_the_friendly_page_and_changes_nothing(client, ada):
    response = client.post(_url("nonsense"), {"purpose_newsletter": ""})
    assert_friendly_refusal(response, 400, "This link does not work")
    assert ada.consents.get(purpose__code="newsletter").granted


@pytest.mark.parametrize("slash", [True, False])
def test_token_pages_are_kept_out_of_caches_and_referrers(client, ada, slash):
    for url in (_url(make_preference_token(ada), slash), _url("tampered", slash)):
        response = client.get(url)
        assert "no-store" in response["Cache-Control"]
        assert response["Referrer-Policy"] == "same-origin"


def test_a_token_link_works_without_its_final_slash(client, ada):
    token = make_preference_token(ada)
    assert client.get(_url(token, slash=False)).status_code == 200
    response = client.post(_url(token, slash=False), {"purpose_promotions": "on", "purpose_newsletter": "on"})
    assert response.status_code == 302
    assert ada.consents.get(purpose__code="promotions").granted


def test_the_friendly_page_sends_a_new_link(client, ada, eager_celery, django_capture_on_commit_callbacks):
    from django.core import mail

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/preferences/", {"email": "ada@example.com"})
    assert response.status_code == 200
    assert mail.outbox[0].to == ["ada@example.com"]
