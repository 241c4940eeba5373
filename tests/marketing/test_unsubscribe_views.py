import pytest
from django.test import Client

from consents.models import Consent, ConsentEvent, Source

from .helpers import customer_who_consents, purpose, unsubscribe_link

pytestmark = pytest.mark.django_db


@pytest.fixture
def ada(purposes):
    return customer_who_consents(email="ada@example.com")


def link_for(customer, code="newsletter") -> str:
    return unsubscribe_link(customer, code).removeprefix("https://consent.example.com")


def granted(customer, code="newsletter") -> bool:
    return Consent.objects.get(customer=customer, purpose=purpose(code)).granted


def test_get_shows_one_button_and_changes_nothing(client, ada):
    response = client.get(link_for(ada))
    assert response.status_code == 200
    page = response.content.decode()
    assert "Unsubscribe from Newsletter" in page
    assert page.count('type="submit"') == 1
    assert "/preferences/" in page
    assert response["Cache-Control"] == "no-store"
    assert response["Referrer-Policy"] == "same-origin"
    assert granted(ada)
    assert ConsentEvent.objects.filter(customer=ada).count() == 1


def test_the_button_withdraws_with_the_unsubscribe_link_source_and_confirms(ada):
    browser = Client(enforce_csrf_checks=True)
    url = link_for(ada)
    browser.get(url)
    response = browser.post(url, {"csrfmiddlewaretoken": browser.cookies["csrftoken"].value})
    assert response.status_code == 200
    assert "You are unsubscribed from Newsletter" in response.content.decode()
    assert not granted(ada)
    assert ConsentEvent.objects.filter(customer=ada).first().source == Source.UNSUBSCRIBE_LINK


def test_a_form_post_without_a_csrf_token_is_refused(ada):
    response = Client(enforce_csrf_checks=True).post(link_for(ada), {})
    assert response.status_code == 403
    assert granted(ada)


@pytest.mark.parametrize("with_slash", [True, False])
def test_one_click_post_without_cookies_withdraws_and_answers_200_twice_harmlessly(ada, with_slash):
    provider = Client(enforce_csrf_checks=True)
    url = link_for(ada) if with_slash else link_for(ada).rstrip("/")
    for _ in range(2):
        response = provider.post(url, {"List-Unsubscribe": "One-Click"})
        assert response.status_code == 200
    assert not granted(ada)
    withdrawals = ConsentEvent.objects.filter(customer=ada, granted=False)
    assert [e.source for e in withdrawals] == [Source.ONE_CLICK]


def test_one_click_only_withdraws_the_purpose_of_the_link(purposes):
    grace = customer_who_consents("promotions", email="grace@example.com")
    customer_who_consents("newsletter", email="other@example.com")
    from consents.services import consent_grant

    consent_grant(customer=grace, purpose=purpose("newsletter"), source=Source.SIGNUP_FORM)
    Client().post(link_for(grace, "promotions"), {"List-Unsubscribe": "One-Click"})
    assert not granted(grace, "promotions")
    assert granted(grace, "newsletter")


@pytest.mark.parametrize("method", ["get", "post"])
def test_a_tampered_token_gets_a_friendly_400_page(client, ada, method):
    url = link_for(ada)
    tampered = url[:-6] + ("A" if url[-6] != "A" else "B") + url[-5:]
    response = getattr(client, method)(tampered)
    assert response.status_code == 400
    assert "This link does not work" in response.content.decode()
    assert response["Cache-Control"] == "no-store"
    assert granted(ada)
