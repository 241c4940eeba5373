"""
Scheduling a campaign in a real browser: the time typed in the campaign's own form is the one
the confirmation shows and the schedule uses; "Send now" has a confirmation of its own; a
scheduled campaign goes back to a draft. Nothing starts before a confirmation.
Screenshots of the change page and both confirmations go to SCREENSHOT_DIR when it is set.
"""

import os
from datetime import timedelta
from pathlib import Path

import pytest
from django.core import mail
from django.test import Client
from django.utils import timezone

from config.celery import app as celery_app
from marketing.models import Campaign
from tests.marketing.helpers import customer_who_consents, ensure_purposes, purpose

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

WIDTHS = (1366, 390)


@pytest.fixture
def eager_celery():
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = previous


@pytest.fixture
def staff_page(browser, live_server, django_user_model):
    """A browser signed in as Mia, who runs the campaigns."""
    mia = django_user_model.objects.create_superuser("mia", "mia@example.com", "correct horse battery")
    client = Client()
    client.force_login(mia)
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    cookie = client.cookies["sessionid"]
    context.add_cookies([{"name": "sessionid", "value": cookie.value, "url": live_server.url}])
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def campaign(db):
    ensure_purposes()
    customer_who_consents(email="ada@example.com", first_name="Ada")
    customer_who_consents(email="grace@example.com", first_name="Grace")
    draft = Campaign(
        name="Spring newsletter",
        purpose=purpose("newsletter"),
        subject="Spring news for {{ first_name }}",
        text_body="Hello {{ first_name }},\n\nPhotoForge 5 is out.",
    )
    draft.full_clean()
    draft.save()
    return draft


def shoot(page, name: str) -> None:
    """The page at each width, full length, when SCREENSHOT_DIR is set; it must fit a phone either way."""
    folder = os.environ.get("SCREENSHOT_DIR")
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        if folder:
            page.screenshot(path=str(Path(folder) / f"{name}-{width}.png"), full_page=True)
    page.set_viewport_size({"width": 1366, "height": 900})


def test_schedule_for_a_future_time_sends_only_after_the_confirmation(staff_page, live_server, campaign):
    page = staff_page
    page.goto(f"{live_server.url}/admin/marketing/campaign/{campaign.pk}/change/")
    shoot(page, "campaign-change-draft")

    # Schedule without a time: refused on the form, nothing scheduled.
    page.click("input[name=_schedule]")
    assert "Enter the time to send at" in page.locator(".field-scheduled_at").inner_text()

    # A time tomorrow typed in the form's own "Send at" box.
    tomorrow = timezone.localtime(timezone.now() + timedelta(days=1))
    page.fill("#id_scheduled_at_0", f"{tomorrow:%Y-%m-%d}")
    page.fill("#id_scheduled_at_1", "09:30:00")
    page.click("input[name=_schedule]")

    summary = page.locator("#confirm-summary").inner_text()
    assert "will send to 2 customers at" in summary
    assert f"{tomorrow:%-d %B %Y}, 09:30" in summary
    shoot(page, "campaign-confirm-schedule")
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.DRAFT

    page.click("text=Yes, schedule it")
    assert "Scheduled for" in page.locator(".messagelist").inner_text()
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.SCHEDULED
    assert f"{timezone.localtime(campaign.scheduled_at):%Y-%m-%d %H:%M}" == f"{tomorrow:%Y-%m-%d} 09:30"
    assert not campaign.deliveries.exists()
    shoot(page, "campaign-change-scheduled")

    # Unschedule: a draft again, its fields editable.
    page.click("input[value='Unschedule (back to draft)']")
    assert "Unscheduled" in page.locator(".messagelist").inner_text()
    assert page.locator("#id_subject_en").is_editable()
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.DRAFT


def test_send_now_asks_for_a_confirmation_with_the_audience_size(
    staff_page, live_server, campaign, settings, eager_celery
):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    page = staff_page
    page.goto(f"{live_server.url}/admin/marketing/campaign/{campaign.pk}/change/")

    page.click("input[name=_send_now]")
    assert "will send now to 2 customers" in page.locator("#confirm-summary").inner_text()
    shoot(page, "campaign-confirm-send-now")
    assert mail.outbox == []
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.DRAFT

    page.click("text=Yes, send it now")
    assert "Sending has started" in page.locator(".messagelist").inner_text()
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.SENT
    assert sorted(m.to[0] for m in mail.outbox) == ["ada@example.com", "grace@example.com"]
    page.reload()
    shoot(page, "campaign-change-sent")
