"""
The preference centre in a real browser: ask for a link, open it from the outbox, change two
purposes, save (the form POST must pass the CSRF check in Chromium), and find the ledger.
Accessibility is checked with axe-core (shipped by the axe-playwright-python package).
"""

import os
import re
import shutil
import time
from pathlib import Path

import pytest
from axe_playwright_python.sync_playwright import Axe
from django.core import mail, signing
from django.urls import NoReverseMatch, reverse

from config.celery import app as celery_app
from consents.models import ConsentEvent, Source
from consents.tokens import make_preference_token
from tests.consents.people import customer_with_choices

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
WCAG_22_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]


@pytest.fixture
def eager_celery():
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = previous


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    from django.core.cache import cache

    cache.clear()


def assert_no_wcag_violations(page):
    results = Axe().run(page, options={"runOnly": {"type": "tag", "values": WCAG_22_AA}})
    assert results.violations_count == 0, results.generate_report()


def assert_fits_a_phone(page):
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def keep_screenshot(page, name: str, tmp_path: Path) -> None:
    """Always rendered; copied into docs/screenshots when UPDATE_SCREENSHOTS=1."""
    path = tmp_path / name
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 0
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, SCREENSHOTS / name)


def test_a_customer_asks_for_a_link_and_changes_two_purposes(
    live_server, page, eager_celery, tmp_path, django_user_model
):
    # given Ada takes the newsletter and was never asked about promotions
    ada = customer_with_choices("ada@example.com", granted=["newsletter"], first_name="Ada", last_name="Lovelace")

    # every request the pages make stays on this site
    requested = []
    page.on("request", lambda request: requested.append(request.url))

    # she asks for a link
    page.goto(f"{live_server.url}/preferences/")
    assert_no_wcag_violations(page)
    page.get_by_label("Your email address").fill("ada@example.com")
    page.get_by_role("button", name="Email me my link").click()
    page.get_by_role("heading", name="Check your email").wait_for()

    # and opens it from her inbox
    assert [m.to for m in mail.outbox] == [["ada@example.com"]]
    link = re.search(r"http://\S+/preferences/\S+/", mail.outbox[0].body).group(0)
    path = link.split("/preferences/", 1)[1]
    response = page.goto(f"{live_server.url}/preferences/{path}")
    assert response.status == 200
    assert "no-store" in response.headers["cache-control"]
    assert response.headers["referrer-policy"] == "same-origin"
    assert_no_wcag_violations(page)
    assert_fits_a_phone(page)
    keep_screenshot(page, "preferences.png", tmp_path)

    # she withdraws the newsletter and agrees to promotions
    page.get_by_label("Newsletter").uncheck()
    page.get_by_label("Promotions and offers").check()
    page.get_by_role("button", name="Save my choices").click()
    page.get_by_text("Your choices are saved").wait_for()
    assert_no_wcag_violations(page)
    assert requested and all(url.startswith(live_server.url) for url in requested), requested

    # the ledger has exactly those two decisions, with her browser's details
    events = ConsentEvent.objects.filter(customer=ada, source=Source.PREFERENCE_PAGE).order_by("id")
    assert sorted((e.purpose.code, e.granted) for e in events) == [("newsletter", False), ("promotions", True)]
    for event in events:
        assert event.ip_address == "127.0.0.1"
        assert "Chrom" in event.user_agent
        assert event.policy_version is not None
        assert event.wording == event.purpose.wording

    # staff see them in admin (the consent ledger's admin page, where this branch has it)
    try:
        ledger_url = reverse("admin:consents_consentevent_changelist")
    except NoReverseMatch:
        return
    django_user_model.objects.create_superuser("staffer", "staffer@example.com", "correct horse battery")
    page.goto(f"{live_server.url}/admin/login/?next={ledger_url}")
    page.fill("#id_username", "staffer")
    page.fill("#id_password", "correct horse battery")
    page.click("input[type=submit]")
    page.goto(f"{live_server.url}{ledger_url}?q=ada@example.com")
    ledger = page.locator("#result_list").inner_text()
    assert ledger.count("Preference page") == 2


def test_an_expired_link_shows_the_friendly_page(live_server, page, monkeypatch):
    ada = customer_with_choices("ada@example.com", granted=["newsletter"])
    eight_days_ago = time.time() - 8 * 24 * 3600
    monkeypatch.setattr(signing.time, "time", lambda: eight_days_ago)
    token = make_preference_token(ada)
    monkeypatch.undo()

    response = page.goto(f"{live_server.url}/preferences/{token}/")
    assert response.status == 400
    page.get_by_role("heading", name="This link has expired").wait_for()
    assert_no_wcag_violations(page)
    # it offers a new link straight away
    page.get_by_label("Your email address").fill("ada@example.com")
    page.get_by_role("button", name="Email me a new link").click()
    page.get_by_role("heading", name="Check your email").wait_for()


def test_the_details_form_saves_a_correction_in_the_browser(live_server, page):
    ada = customer_with_choices("ada@example.com", first_name="Ada", last_name="Byron")
    page.goto(f"{live_server.url}/preferences/{make_preference_token(ada)}")  # no final slash
    # the main page shows her details read-only and links to the form
    assert "Ada Byron" in page.locator("#details").inner_text()
    page.get_by_role("link", name="Correct my details").click()
    page.get_by_role("heading", name="Correct your details").wait_for()
    assert_no_wcag_violations(page)
    assert_fits_a_phone(page)
    page.get_by_label("Last name").fill("Lovelace")
    page.get_by_role("button", name="Save my details").click()
    page.get_by_text("Your details are saved").wait_for()
    assert "Ada Lovelace" in page.locator("#details").inner_text()
    assert_no_wcag_violations(page)
    ada.refresh_from_db()
    assert ada.last_name == "Lovelace"
    assert ada.changes.get(field="last_name").old_value == "Byron"
