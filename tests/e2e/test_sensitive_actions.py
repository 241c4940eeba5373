"""
Sensitive actions in a real browser: each needs a fresh link mailed to the address on file.
A change of address is confirmed from the new mailbox and announced to the old one with an
undo link; the data export downloads through its own link; a deletion request is confirmed on
a page that says what will happen. Every form POST must pass Chromium's CSRF check.

Set SCREENSHOT_DIR to keep a full-page screenshot of each page at 1366 and 390 px.
"""

import json
import os
import re
from pathlib import Path

import pytest
from axe_playwright_python.sync_playwright import Axe
from django.core import mail

from config.celery import app as celery_app
from consents.tokens import make_preference_token
from customers.models import CustomerChange
from privacy.models import PrivacyRequest
from tests.consents.people import customer_with_choices

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

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


@pytest.fixture
def ada(db):
    return customer_with_choices(
        "ada@example.com", granted=["newsletter"], first_name="Ada", last_name="Lovelace", city="London"
    )


def check_page(page, name: str) -> None:
    """No WCAG 2.2 AA violation, nothing wider than a phone, and a screenshot at both widths."""
    results = Axe().run(page, options={"runOnly": {"type": "tag", "values": WCAG_22_AA}})
    assert results.violations_count == 0, results.generate_report()
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    folder = os.environ.get("SCREENSHOT_DIR")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        for width, height in ((1366, 900), (390, 844)):
            page.set_viewport_size({"width": width, "height": height})
            page.screenshot(path=str(Path(folder) / f"{name}-{width}.png"), full_page=True)
        page.set_viewport_size({"width": 390, "height": 844})


def link_in(message, route: str) -> str:
    found = re.search(rf"http://[^/\s]+(/preferences/{route}/\S+/)", str(message.body))
    assert found, message.body
    return found.group(1)


def test_a_customer_changes_her_address_and_the_old_one_can_undo_it(live_server, page, ada, eager_celery):
    # Ada opens her preference page and asks for a link to change her address
    response = page.goto(f"{live_server.url}/preferences/{make_preference_token(ada)}/")
    assert response.headers["referrer-policy"] == "same-origin"
    check_page(page, "preferences")
    page.get_by_role("button", name="Email me a link to change my address").click()
    page.get_by_text("We sent a link to ada@example.com to change your email address").wait_for()

    # the link reaches the address on file only
    assert [m.to for m in mail.outbox] == [["ada@example.com"]]
    response = page.goto(live_server.url + link_in(mail.outbox[-1], "secure"))
    assert response.status == 200 and response.headers["referrer-policy"] == "same-origin"
    check_page(page, "email-change-form")
    page.get_by_label("New email address").fill("Ada@Lovelace.example")
    page.get_by_role("button", name="Send a confirmation link").click()
    page.get_by_role("heading", name="Check the new mailbox").wait_for()
    check_page(page, "email-change-sent")
    ada.refresh_from_db()
    assert ada.email == "ada@example.com"

    # the new mailbox confirms
    assert mail.outbox[-1].to == ["ada@lovelace.example"]
    page.goto(live_server.url + link_in(mail.outbox[-1], "email"))
    check_page(page, "email-confirm")
    page.get_by_role("button", name="Yes, use ada@lovelace.example").click()
    page.get_by_role("heading", name="Your email address is changed").wait_for()
    check_page(page, "email-confirm-done")
    ada.refresh_from_db()
    assert ada.email == "ada@lovelace.example"
    in_between = make_preference_token(ada)

    # the old mailbox is told, with a link that undoes the change
    notice = mail.outbox[-1]
    assert notice.to == ["ada@example.com"]
    assert "from ada@example.com to ada@lovelace.example" in notice.body
    page.goto(live_server.url + link_in(notice, "email-undo"))
    check_page(page, "email-undo")
    page.get_by_role("button", name="Yes, use ada@example.com again").click()
    page.get_by_role("heading", name="Your email address is back").wait_for()
    check_page(page, "email-undo-done")
    ada.refresh_from_db()
    assert ada.email == "ada@example.com"
    assert CustomerChange.objects.filter(customer=ada, field="email").count() == 2

    # the fresh link on the page works; one sent to the new address in between does not
    page.get_by_role("link", name="Go to your preferences").click()
    page.get_by_role("heading", name="Your preferences").wait_for()
    assert page.get_by_text("For ada@example.com").count() == 1
    response = page.goto(f"{live_server.url}/preferences/{in_between}/")
    assert response.status == 400


def test_a_link_from_before_the_change_shows_the_friendly_page(live_server, page, ada):
    old_link = make_preference_token(ada)
    from customers.services import customer_email_change

    customer_email_change(customer=ada, new_email="ada@lovelace.example", changed_by="customer")
    response = page.goto(f"{live_server.url}/preferences/{old_link}/")
    assert response.status == 400
    page.get_by_role("heading", name="This link was replaced").wait_for()
    check_page(page, "bad-link-replaced")


def test_a_customer_downloads_her_data_through_a_fresh_link(live_server, page, ada, eager_celery, tmp_path):
    page.goto(f"{live_server.url}/preferences/{make_preference_token(ada)}/")
    page.get_by_role("button", name="Email me a link to download my data").click()
    page.get_by_text("We sent a link to ada@example.com to download your data").wait_for()
    assert [m.to for m in mail.outbox] == [["ada@example.com"]]

    page.goto(live_server.url + link_in(mail.outbox[-1], "secure"))
    check_page(page, "export")
    with page.expect_download() as download_info:
        page.get_by_role("button", name="Download my data").click()
    download = download_info.value
    assert download.suggested_filename.endswith(".json")
    path = tmp_path / "export.json"
    download.save_as(path)
    data = json.loads(path.read_text())
    assert data["customer"]["email"] == "ada@example.com"
    assert {c["purpose"] for c in data["consents"]} == {"newsletter"}


def test_a_customer_asks_to_delete_her_data_and_confirms_first(live_server, page, ada, eager_celery):
    page.goto(f"{live_server.url}/preferences/{make_preference_token(ada)}/")
    page.get_by_role("button", name="Email me a link to delete my data").click()
    page.get_by_text("We sent a link to ada@example.com to delete your data").wait_for()
    assert not PrivacyRequest.objects.exists()

    page.goto(live_server.url + link_in(mail.outbox[-1], "secure"))
    page.get_by_role("heading", name="Delete your data?").wait_for()
    check_page(page, "erasure-confirm")
    assert not PrivacyRequest.objects.exists()
    page.get_by_role("button", name="Yes, delete my data").click()
    page.get_by_role("heading", name="We have your request to delete your data").wait_for()
    check_page(page, "erasure-requested")
    request = PrivacyRequest.objects.get(customer=ada)
    assert (request.kind, request.status) == ("erasure", "open")
    # the links on that page lead back to her preferences
    page.get_by_role("link", name="Back to your preferences").click()
    page.get_by_text("You asked us to delete your data").wait_for()
