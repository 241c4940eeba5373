"""
Staff schedule a campaign for the time they typed, or send it now, and nothing starts sending
before they have confirmed on a page that says to how many customers and when. A scheduled
campaign can go back to a draft until it is dispatched; any campaign can be copied.
"""

from datetime import timedelta

import pytest
from django.utils import timezone

from marketing import campaigns, dispatch, sending, tasks
from marketing.models import Campaign, CampaignAction, Delivery

from .helpers import customer_who_consents
from .test_admin import draft_form

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("eager_celery")]


@pytest.fixture
def admin_client(client, staff_user):
    client.force_login(staff_user)
    return client


@pytest.fixture
def readers(purposes):
    return [customer_who_consents(email="ada@example.com"), customer_who_consents(email="grace@example.com")]


def change_url(campaign) -> str:
    return f"/admin/marketing/campaign/{campaign.pk}/change/"


def typed(when) -> dict[str, str]:
    local = timezone.localtime(when)
    return {"scheduled_at_0": f"{local:%Y-%m-%d}", "scheduled_at_1": f"{local:%H:%M:%S}"}


def test_schedule_without_a_time_is_refused_with_a_form_message_and_sends_nothing(admin_client, make_campaign, readers):
    campaign = make_campaign()

    response = admin_client.post(change_url(campaign), draft_form(campaign, _schedule="Save and schedule…"))

    assert response.status_code == 200
    assert "Enter the time to send at. To send straight away, use “Send now”." in response.content.decode()
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.DRAFT
    assert not Delivery.objects.exists()


def test_schedule_for_a_time_that_has_passed_is_refused_with_a_form_message(admin_client, make_campaign, readers):
    campaign = make_campaign()
    an_hour_ago = timezone.now() - timedelta(hours=1)

    response = admin_client.post(
        change_url(campaign), draft_form(campaign, _schedule="Save and schedule…", **typed(an_hour_ago))
    )

    assert response.status_code == 200
    assert "The time to send at has passed." in response.content.decode()
    campaign.refresh_from_db()
    assert (campaign.status, campaign.scheduled_at) == (Campaign.Status.DRAFT, None)
    assert not Delivery.objects.exists()


def test_schedule_uses_the_time_typed_in_the_form_and_sends_only_after_the_confirmation(
    admin_client, make_campaign, readers, staff_user, django_capture_on_commit_callbacks
):
    # given Mia typed tomorrow 09:00 in the campaign's form, without saving it first
    campaign = make_campaign()
    tomorrow = (timezone.now() + timedelta(days=1)).replace(hour=9, minute=0, second=0, microsecond=0)

    # when she chooses "Save and schedule…"
    response = admin_client.post(
        change_url(campaign), draft_form(campaign, _schedule="Save and schedule…", **typed(tomorrow))
    )

    # then the confirmation says to whom and when, and nothing is scheduled yet
    assert response.status_code == 302
    assert response["Location"] == f"/admin/marketing/campaign/{campaign.pk}/schedule/"
    page = admin_client.get(response["Location"]).content.decode()
    assert "will send to <strong>2 customers</strong> at" in page
    assert f"{timezone.localtime(tomorrow):%H:%M}" in page
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.DRAFT
    assert campaign.scheduled_at == tomorrow

    # when she confirms
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(response["Location"], {"send_at": campaign.scheduled_at.isoformat()})

    # then it is scheduled for exactly that time, and still nothing was dispatched
    campaign.refresh_from_db()
    assert (campaign.status, campaign.scheduled_at, campaign.scheduled_by) == (
        Campaign.Status.SCHEDULED,
        tomorrow,
        staff_user,
    )
    assert not Delivery.objects.exists()


def test_a_confirmation_for_a_time_changed_since_it_was_shown_schedules_nothing(admin_client, make_campaign, readers):
    campaign = make_campaign(scheduled_at=timezone.now() + timedelta(days=2))
    shown = campaign.scheduled_at.isoformat()
    Campaign.objects.filter(pk=campaign.pk).update(scheduled_at=timezone.now() + timedelta(days=3))

    response = admin_client.post(f"/admin/marketing/campaign/{campaign.pk}/schedule/", {"send_at": shown})
    assert response.status_code == 302
    response = admin_client.post(f"/admin/marketing/campaign/{campaign.pk}/schedule/", {})

    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.DRAFT
    page = admin_client.get(response["Location"]).content.decode()
    assert "changed since this page was shown" in page


def test_the_schedule_service_refuses_a_missing_or_past_time(make_campaign, staff_user, purposes):
    campaign = make_campaign()
    for at in (None, timezone.now() - timedelta(minutes=1)):
        with pytest.raises(campaigns.CampaignActionRefused):
            campaigns.campaign_schedule(campaign=campaign, user=staff_user, at=at)
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.DRAFT


def test_send_now_has_its_own_confirmation_with_the_audience_and_sends_after_it(
    admin_client, make_campaign, readers, smtp, django_capture_on_commit_callbacks
):
    campaign = make_campaign()

    response = admin_client.post(change_url(campaign), draft_form(campaign, _send_now="Save and send now…"))

    assert response["Location"] == f"/admin/marketing/campaign/{campaign.pk}/send-now/"
    page = admin_client.get(response["Location"]).content.decode()
    assert "will send <strong>now</strong> to <strong>2 customers</strong>" in page
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.DRAFT
    assert smtp.handler.messages == []

    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(response["Location"])

    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.SENT
    assert smtp.handler.recipients() == ["ada@example.com", "grace@example.com"]


def test_a_get_of_a_confirmation_page_never_starts_anything(admin_client, make_campaign, readers):
    campaign = make_campaign(scheduled_at=timezone.now() + timedelta(days=1))
    admin_client.get(f"/admin/marketing/campaign/{campaign.pk}/schedule/")
    admin_client.get(f"/admin/marketing/campaign/{campaign.pk}/send-now/")
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.DRAFT


def test_a_scheduled_campaign_goes_back_to_a_draft_that_can_be_edited(admin_client, make_campaign, readers, staff_user):
    # given a campaign scheduled for next week, with a typo in its subject
    campaign = make_campaign(subject="Sprnig news")
    campaigns.campaign_schedule(campaign=campaign, user=staff_user, at=timezone.now() + timedelta(days=7))
    assert 'name="_save"' not in admin_client.get(change_url(campaign)).content.decode()

    # when Mia unschedules it
    response = admin_client.post(f"/admin/marketing/campaign/{campaign.pk}/action/unschedule/")

    # then it is a draft again, its time kept, and its form saves
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.DRAFT
    assert campaign.scheduled_at is not None and campaign.scheduled_by is None
    assert "Unscheduled" in admin_client.get(response["Location"]).content.decode()
    admin_client.post(
        change_url(campaign), draft_form(campaign, subject_en="Spring news", **typed(campaign.scheduled_at))
    )
    campaign.refresh_from_db()
    assert campaign.subject == "Spring news"
    assert campaign.actions.filter(action=CampaignAction.Action.UNSCHEDULED, staff_user=staff_user).exists()


def test_a_dispatched_campaign_cannot_be_unscheduled(make_campaign, readers, staff_user):
    campaign = make_campaign()
    campaigns.campaign_send_now(campaign=campaign, user=staff_user)
    dispatch.campaigns_dispatch_due()
    campaigns.campaign_pause(campaign=campaign, user=staff_user)

    with pytest.raises(campaigns.CampaignActionRefused, match="Sending has started"):
        campaigns.campaign_unschedule(campaign=campaign, user=staff_user)
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.PAUSED


def test_any_campaign_can_be_duplicated_as_a_new_draft(admin_client, make_campaign, readers, staff_user, smtp):
    # given a campaign that has been sent
    sent = make_campaign(name="Spring newsletter", filter_language="de")
    campaigns.campaign_send_now(campaign=sent, user=staff_user)
    dispatch.campaigns_dispatch_due()
    sending.deliveries_send_batch(campaign_id=sent.pk, first_id=0, last_id=dispatch.LAST_ID)
    sent.refresh_from_db()
    assert sent.status == Campaign.Status.SENT

    # when Mia duplicates it
    response = admin_client.post(f"/admin/marketing/campaign/{sent.pk}/action/duplicate/")

    # then she is on a new draft with the same message and audience, and nothing of the sending
    copy = Campaign.objects.exclude(pk=sent.pk).get()
    assert response["Location"] == change_url(copy)
    assert (copy.name, copy.status, copy.scheduled_at) == ("Copy of Spring newsletter", Campaign.Status.DRAFT, None)
    assert (copy.subject, copy.text_body, copy.filter_language) == (sent.subject, sent.text_body, "de")
    assert not copy.deliveries.exists()
    assert copy.actions.get().action == CampaignAction.Action.DUPLICATED


def test_a_cancelled_campaign_shows_what_was_sent_and_what_was_cancelled(
    admin_client, make_campaign, purposes, staff_user, settings
):
    # given a campaign to three readers, cancelled after the first message went out
    for name in ("ada", "grace", "mary"):
        customer_who_consents(email=f"{name}@example.com")
    campaign = make_campaign()
    campaigns.campaign_send_now(campaign=campaign, user=staff_user)
    dispatch.campaigns_dispatch_due()
    Delivery.objects.filter(pk=Delivery.objects.order_by("pk").first().pk).update(status=Delivery.Status.SENT)
    campaigns.campaign_cancel(campaign=campaign, user=staff_user)

    page = admin_client.get(change_url(campaign)).content.decode()
    listing = admin_client.get("/admin/marketing/campaign/").content.decode()

    assert "<strong>1</strong> of 3 messages sent before that, <strong>2</strong> cancelled (never sent)" in page
    assert "<progress" not in page
    assert "1 of 3 sent, 2 cancelled" in listing
    assert "<progress" not in listing


def test_a_campaign_with_nobody_to_send_to_is_dispatched_and_finishes(make_campaign, staff_user, purposes):
    campaign = make_campaign()
    tasks.work_enqueue(campaigns.campaign_send_now(campaign=campaign, user=staff_user))

    assert dispatch.campaigns_dispatch_due().batches == []
    assert dispatch.campaigns_tick().counts["finished"] == 1
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.SENT
