"""The language switch on the link-request page, in a real browser: plain links, no JavaScript."""

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_visitor_switches_the_link_request_page_to_german_and_then_french(browser, live_server):
    # given: an English browser, with JavaScript off (the switch must not need it)
    context = browser.new_context(locale="en-GB", java_script_enabled=False, viewport={"width": 390, "height": 844})
    page = context.new_page()
    try:
        page.goto(f"{live_server.url}/preferences/")
        assert page.locator("h1").inner_text() == "Your email preferences"
        assert page.locator("html").get_attribute("lang") == "en"

        # when: the visitor picks German
        page.get_by_role("link", name="Deutsch").click()

        # then: the page is German, and stays German on the next visit
        assert page.locator("h1").inner_text() == "Ihre E-Mail-Einstellungen"
        assert page.locator("html").get_attribute("lang") == "de"
        assert page.get_by_role("button", name="Meinen Link senden").is_visible()
        page.goto(f"{live_server.url}/preferences/")
        assert page.locator("h1").inner_text() == "Ihre E-Mail-Einstellungen"

        # and French from there
        page.get_by_role("link", name="français").click()
        assert page.locator("h1").inner_text() == "Vos préférences e-mail"
        assert page.locator(".language-switch [aria-current]").inner_text() == "français"
    finally:
        context.close()
