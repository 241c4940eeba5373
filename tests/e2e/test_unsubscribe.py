from pathlib import Path

import pytest

from consents.models import Consent, ConsentEvent, Source
from tests.marketing.helpers import customer_who_consents, ensure_purposes, unsubscribe_link

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


@pytest.fixture(autouse=True)
def _site(settings, live_server):
    settings.ROOT_URLCONF = "tests.marketing.urls"
    settings.SITE_URL = live_server.url
    ensure_purposes()


def test_a_customer_unsubscribes_with_the_button_in_a_real_browser(live_server, page):
    ada = customer_who_consents(email="ada@example.com", first_name="Ada")
    url = unsubscribe_link(ada)

    response = page.goto(url)
    assert response.status == 200
    assert response.headers["referrer-policy"] == "same-origin"
    assert page.locator("h1").inner_text() == "Unsubscribe from Newsletter"
    assert page.get_by_role("link", name="See and change all your email preferences").is_visible()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "unsubscribe.png"), full_page=True)
    assert Consent.objects.get(customer=ada).granted  # opening the page changed nothing

    page.get_by_role("button", name="Unsubscribe from Newsletter").click()

    assert page.locator("h1").inner_text() == "You are unsubscribed from Newsletter"
    assert not Consent.objects.get(customer=ada).granted
    event = ConsentEvent.objects.filter(customer=ada).first()
    assert (event.granted, event.source) == (False, Source.UNSUBSCRIBE_LINK)
    assert event.user_agent  # the browser's, recorded with the decision


def test_the_link_without_its_final_slash_works_too(live_server, page):
    ada = customer_who_consents(email="ada@example.com")
    url = unsubscribe_link(ada).rstrip("/")
    page.goto(url)
    page.get_by_role("button", name="Unsubscribe from Newsletter").click()
    assert page.locator("h1").inner_text() == "You are unsubscribed from Newsletter"
    assert not Consent.objects.get(customer=ada).granted


def test_a_damaged_link_shows_a_friendly_page(live_server, page):
    ada = customer_who_consents(email="ada@example.com")
    url = unsubscribe_link(ada)
    response = page.goto(url[:-8] + "xx" + url[-6:])
    assert response.status == 400
    assert page.locator("h1").inner_text() == "This link does not work"
