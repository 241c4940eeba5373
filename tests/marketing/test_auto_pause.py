"""
The automatic pause: a sending campaign whose hard-bounce or complaint rate crosses its
threshold after enough messages pauses itself, sends nothing more (the real send path over
SMTP: a batch claims nothing for a paused campaign), tells the staff who scheduled it, shows
why on its page, and goes on only when someone confirms on the resume page.
"""

import pytest
from django.utils import timezone

from marketing import campaigns, dispatch, feedback, sending, sql
from marketing.models import Campaign, CampaignAction, Delivery
from tests.factories import CustomerFactory

from .feedback_helpers import anymail_settings, post_event
from .helpers import customer_who_consents

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("eager_celery")]


@pytest.fixture(autouse=True)
def _webhooks(settings):
    settings.ANYMAIL = anymail_settings()


def dispatched_campaign(make_campaign, staff_user, customers: int) -> tuple[Campaign, list[Delivery]]:
    for number in range(customers):
        customer_who_consents(email=f"reader{number:03}@example.com")
    campaign = make_campaign()
    campaigns.campaign_send_now(campaign=campaign, user=staff_user)
    dispatch.campaigns_dispatch_due()
    campaign.refresh_from_db()
    return campaign, list(Delivery.objects.filter(campaign=campaign).select_related("customer").order_by("id"))


def bounce(client, delivery: Delivery, name: str = "postmark_bounce"):
    delivery.refresh_from_db()
    response = post_event(client, name, message_id=delivery.message_id, recipient=delivery.customer.email)
    assert response.status_code == 200, response.content
    return response


def campaign_messages(smtp) -> list[str]:
    return [m["To"] for m in smtp.handler.received() if m["X-Campaign"]]


def test_a_campaign_with_6_percent_hard_bounces_after_200_messages_pauses_and_sends_nothing_more_until_resumed(
    client, smtp, settings, make_campaign, staff_user, django_capture_on_commit_callbacks
):
    # given the defaults: pause above 5% hard bounces, once 200 messages went out
    assert (settings.MARKETING_PAUSE_BOUNCE_RATE, settings.MARKETING_PAUSE_MIN_SAMPLE) == (0.05, 200)
    campaign, deliveries = dispatched_campaign(make_campaign, staff_user, customers=210)
    # and the first 200 messages went out over SMTP
    sending.deliveries_send_batch(campaign_id=campaign.pk, first_id=deliveries[0].pk, last_id=deliveries[199].pk)
    assert len(campaign_messages(smtp)) == 200

    # when the provider reports 10 hard bounces (5%: not above the limit)
    for delivery in deliveries[:10]:
        bounce(client, delivery)
    # then the campaign goes on
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.SENDING

    # when two more bounce (11 and 12 of 200: 6% in the end)
    with django_capture_on_commit_callbacks(execute=True):
        bounce(client, deliveries[10], "sendgrid_bounce")
    bounce(client, deliveries[11], "mailgun_failed_permanent")

    # then it paused itself at the 11th, with the figures, logged as paused by no one
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.PAUSED
    assert campaign.pause_reason == "Hard-bounce rate 5.5% (11 of 200 messages) exceeds 5.0%"
    action = CampaignAction.objects.get(campaign=campaign, action=CampaignAction.Action.AUTO_PAUSED)
    assert (action.staff_user, action.note) == (None, campaign.pause_reason)
    # and the staff member who scheduled it is told by email, with the figures and a link
    [notice] = [m for m in smtp.handler.received() if m["To"] == "marketer@example.com"]
    assert notice["Subject"] == "Campaign paused itself: Spring newsletter"
    body = notice.get_content()
    assert "Hard-bounce rate 5.5% (11 of 200 messages) exceeds 5.0%" in body
    assert f"https://consent.example.com/admin/marketing/campaign/{campaign.pk}/change/" in body

    # when the batch for the other 10 runs, and the beat ticks
    sending.deliveries_send_batch(campaign_id=campaign.pk, first_id=deliveries[200].pk, last_id=dispatch.LAST_ID)
    tick = dispatch.campaigns_tick()
    # then nothing more is sent: the 10 wait, queued
    assert len(campaign_messages(smtp)) == 200
    assert tick.work.batches == []
    assert Delivery.objects.filter(campaign=campaign, status=Delivery.Status.QUEUED).count() == 10

    # when the campaign page is opened, it shows why, with the figures now
    client.force_login(staff_user)
    page = client.get(f"/admin/marketing/campaign/{campaign.pk}/change/").content.decode()
    assert 'id="pause-banner"' in page
    assert "This campaign paused itself" in page
    assert "12 (6.0%; limit 5.0%)" in page
    assert "Resume…" in page
    # and the resume page asks first, with the same figures, sending nothing yet
    confirm = client.get(f"/admin/marketing/campaign/{campaign.pk}/resume/").content.decode()
    assert "will go on sending the <strong>10 messages still queued</strong>" in confirm
    assert "12 (6.0%; limit 5.0%)" in confirm
    assert len(campaign_messages(smtp)) == 200

    # when staff confirm
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/admin/marketing/campaign/{campaign.pk}/resume/")

    # then the other 10 are sent (the 12 bounced addresses were among the first 200), once each
    assert response.status_code == 302
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.SENT
    assert len(campaign_messages(smtp)) == 210
    assert len(set(campaign_messages(smtp))) == 210
    # and who decided to go on is recorded, with what they went on despite
    assert campaign.resumed_by == staff_user
    resumed = CampaignAction.objects.get(campaign=campaign, action=CampaignAction.Action.RESUMED)
    assert resumed.staff_user == staff_user
    assert resumed.note == "after it paused itself: Hard-bounce rate 5.5% (11 of 200 messages) exceeds 5.0%"
    assert Delivery.objects.filter(campaign=campaign, status=Delivery.Status.BOUNCED).count() == 12


def test_after_a_resume_the_rates_count_the_messages_sent_since(
    client, smtp, settings, make_campaign, staff_user, django_capture_on_commit_callbacks
):
    # given a campaign that paused itself at 20% bounces and was resumed
    settings.MARKETING_PAUSE_MIN_SAMPLE = 10
    campaign, deliveries = dispatched_campaign(make_campaign, staff_user, customers=14)
    sending.deliveries_send_batch(campaign_id=campaign.pk, first_id=deliveries[0].pk, last_id=deliveries[9].pk)
    for delivery in deliveries[:2]:
        bounce(client, delivery)
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.PAUSED
    campaigns.campaign_resume(campaign=campaign, user=staff_user)
    campaign.refresh_from_db()

    # when a late bounce for a message sent before the resume arrives
    bounce(client, deliveries[2])

    # then it does not pause again: staff saw those figures when they resumed
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.SENDING


def test_a_complaint_rate_above_0_3_percent_pauses_the_campaign(client, smtp, settings, make_campaign, staff_user):
    # given 20 messages are enough to judge (the default is 200), and the limit is 0.3%
    settings.MARKETING_PAUSE_MIN_SAMPLE = 20
    campaign, deliveries = dispatched_campaign(make_campaign, staff_user, customers=25)
    sending.deliveries_send_batch(campaign_id=campaign.pk, first_id=deliveries[0].pk, last_id=deliveries[19].pk)

    # when one reader of 20 (5%) marks it as spam
    delivery = deliveries[0]
    delivery.refresh_from_db()
    post_event(client, "amazon_ses_complaint", message_id=delivery.message_id, recipient=delivery.customer.email)

    # then it pauses, naming the complaint rate
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.PAUSED
    assert campaign.pause_reason == "Complaint rate 5.00% (1 of 20 messages) exceeds 0.30%"


def test_a_campaign_with_fewer_messages_than_the_sample_never_pauses_itself(client, smtp, make_campaign, staff_user):
    # given only 10 messages went out (fewer than the 200 needed to judge)
    campaign, deliveries = dispatched_campaign(make_campaign, staff_user, customers=10)
    sending.deliveries_send_batch(campaign_id=campaign.pk, first_id=0, last_id=dispatch.LAST_ID)

    # when half of them bounce
    for delivery in deliveries[:5]:
        bounce(client, delivery)

    # then it is not paused: it finished
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.SENT


def test_a_batch_in_flight_stops_claiming_once_its_campaign_pauses_itself(
    client, smtp, settings, make_campaign, staff_user, monkeypatch
):
    # given a batch that claims 20 rows at a time, and 20 messages are enough to judge
    settings.MARKETING_CLAIM_SIZE = 20
    settings.MARKETING_PAUSE_MIN_SAMPLE = 20
    campaign, _deliveries = dispatched_campaign(make_campaign, staff_user, customers=45)
    mark_sent = sql.mark_sent
    claims = []

    def mark_sent_then_report_bounces(rows):
        marked = mark_sent(rows)
        claims.append(len(rows))
        if len(claims) == 1:
            # the provider reports 2 of the first 20 (10%) as hard bounces while the batch runs
            for pk, message_id, _sent_at, _subject in rows[:2]:
                recipient = Delivery.objects.get(pk=pk).customer.email
                feedback.delivery_event_record(
                    event=feedback.ProviderEvent(
                        provider="postmark",
                        kind="bounced",
                        recipient=recipient,
                        occurred_at=timezone.now(),
                        event_id=f"bounce-{pk}",
                        message_ids=[message_id],
                        reason="550 5.1.1 user unknown",
                    )
                )
        return marked

    monkeypatch.setattr(sql, "mark_sent", mark_sent_then_report_bounces)

    # when one batch sends the whole campaign
    result = sending.deliveries_send_batch(campaign_id=campaign.pk, first_id=0, last_id=dispatch.LAST_ID)

    # then it stopped after its first claim: the campaign paused itself, 25 rows wait
    assert claims == [20]
    assert result.sent == 20
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.PAUSED
    assert len(campaign_messages(smtp)) == 20
    assert Delivery.objects.filter(campaign=campaign, status=Delivery.Status.QUEUED).count() == 25


def test_a_paused_campaigns_resume_button_leads_to_the_confirmation(client, smtp, make_campaign, staff_user):
    # Resuming from the old action address asks on the confirmation page rather than resuming at once.
    customer_who_consents(email="ada@example.com")
    CustomerFactory(email="bob@example.com")
    campaign = make_campaign()
    campaigns.campaign_send_now(campaign=campaign, user=staff_user)
    campaigns.campaign_pause(campaign=campaign, user=staff_user)
    client.force_login(staff_user)

    response = client.post(f"/admin/marketing/campaign/{campaign.pk}/action/resume/")

    assert response.status_code == 302
    assert response["Location"] == f"/admin/marketing/campaign/{campaign.pk}/resume/"
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.PAUSED
    page = client.get(response["Location"]).content.decode()
    assert "Paused by staff" in page
    assert "Yes, resume sending" in page
