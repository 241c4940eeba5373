"""
Sign-up in a real browser: tick a box, confirm from the outbox (the confirmation is a POST the
CSRF check must pass in Chromium), then find the consent on the customer's preference page.
"""

import re

import pytest
from django.core import mail

from config.celery import app as celery_app
from consents.models import ConsentEvent, Source
from consents.tokens import preference_url
from customers.models import Customer
from tests.consents.people import ensure_purposes
from tests.e2e.test_preferences import assert_fits_a_phone, assert_no_wcag_violations

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


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


def test_a_visitor_signs_up_confirms_from_the_inbox_and_sees_the_consent_on_the_preference_page(
    live_server,
    page,
    eager_celery,
    settings,
    tmp_path,
):
    settings.SITE_URL = live_server.url
    purposes = ensure_purposes()

    page.goto(f"{live_server.url}/signup/")
    assert_no_wcag_violations(page)
    assert_fits_a_phone(page)
    page.screenshot(path=str(tmp_path / "signup.png"), full_page=True)
    page.get_by_label("Your email address").fill("nina.park@example.com")
    page.get_by_label("First name").fill("Nina")
    page.get_by_label(purposes["newsletter"].name).check()
    page.get_by_role("button", name="Sign up").click()
    page.get_by_role("heading", name="Check your inbox to confirm").wait_for()
    assert not Customer.objects.exists()

    (message,) = mail.outbox
    link = re.search(r"https?://\S+/signup/confirm/\S+", message.body).group(0)
    page.goto(link)
    page.get_by_role("heading", name="Confirm your subscription").wait_for()
    assert_no_wcag_violations(page)
    assert not ConsentEvent.objects.exists()
    with page.expect_navigation():
        page.get_by_role("button", name="Confirm").click()
    # The page says why when it does not confirm (the view logs the reason too).
    assert page.get_by_role("heading", name="Thank you, that is confirmed").is_visible(), page.inner_text("main")

    nina = Customer.objects.get(email="nina.park@example.com")
    assert ConsentEvent.objects.get(customer=nina).source == Source.SIGNUP_FORM
    page.goto(preference_url(nina))
    newsletter = page.get_by_label(purposes["newsletter"].name)
    assert newsletter.is_checked()
    assert "you agreed on" in page.content()
