"""
Sending, end to end on the database in use (SQLite locally, PostgreSQL in CI): the tasks run
in-process (eager) and every message goes over real SMTP to an in-process aiosmtpd server.
"""

import time
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from consents.models import ConsentEvent, Source
from consents.services import consent_withdraw
from customers.models import Customer
from marketing import campaigns, dispatch, selectors, sending, sql, suppression, tasks
from marketing.models import Campaign, Delivery, Suppression
from tests.factories import CustomerFactory

from .helpers import customer_who_consents, customer_who_withdrew, purpose

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("eager_celery")]


def schedule_now(campaign, user, capture):
    with capture(execute=True):
        tasks.work_enqueue(campaigns.campaign_send_now(campaign=campaign, user=user))
    campaign.refresh_from_db()


def test_only_customers_who_consent_now_receive_the_campaign(
    smtp, make_campaign, staff_user, django_capture_on_commit_callbacks
):
    # given
    ada = customer_who_consents(email="ada@example.com", first_name="Ada")
    customer_who_withdrew(email="bob@example.com")
    CustomerFactory(email="carol@example.com")  # never asked
    customer_who_consents("promotions", email="dan@example.com")  # another purpose
    erin = customer_who_consents(email="erin@example.com")
    erin.erased_at = timezone.now()
    erin.save()
    frank = customer_who_consents(email="frank@example.com")
    suppression.suppression_add(email="  FRANK@example.com ", reason=Suppression.Reason.COMPLAINT)
    campaign = make_campaign()

    # when
    schedule_now(campaign, staff_user, django_capture_on_commit_callbacks)

    # then
    assert smtp.handler.recipients() == ["ada@example.com"]
    assert campaign.status == Campaign.Status.SENT
    delivery = Delivery.objects.get(campaign=campaign)
    assert (delivery.customer, delivery.status, delivery.attempts) == (ada, Delivery.Status.SENT, 1)
    assert delivery.message_id == smtp.handler.received()[0]["Message-ID"]
    assert not Delivery.objects.filter(customer=frank).exists()
    assert selectors.campaign_status_counts(campaign)["sent"] == 1


def test_a_customer_who_withdraws_after_scheduling_receives_nothing(smtp, make_campaign, staff_user):
    ada = customer_who_consents(email="ada@example.com")
    grace = customer_who_consents(email="grace@example.com")
    campaign = make_campaign()
    campaigns.campaign_send_now(campaign=campaign, user=staff_user)
    dispatch.campaigns_dispatch_due()
    assert Delivery.objects.filter(campaign=campaign, status=Delivery.Status.QUEUED).count() == 2

    consent_withdraw(customer=grace, purpose=purpose("newsletter"), source=Source.PREFERENCE_PAGE)
    sending.deliveries_send_batch(campaign_id=campaign.pk, first_id=0, last_id=dispatch.LAST_ID)

    assert smtp.handler.recipients() == ["ada@example.com"]
    skipped = Delivery.objects.get(customer=grace)
    assert (skipped.status, skipped.skip_reason) == (Delivery.Status.SKIPPED, Delivery.SkipReason.CONSENT_WITHDRAWN)
    assert Delivery.objects.get(customer=ada).status == Delivery.Status.SENT


def test_customers_who_left_at_the_head_of_the_queue_do_not_stop_the_batch(smtp, make_campaign, staff_user, settings):
    # A claim takes the first few queued rows; when every one of them has become ineligible
    # since dispatch (withdrawn, erased, suppressed), the batch goes on past them.
    settings.MARKETING_CLAIM_SIZE = 2
    first = customer_who_consents(email="first@example.com")
    second = customer_who_consents(email="second@example.com")
    customer_who_consents(email="ada@example.com")
    customer_who_consents(email="grace@example.com")
    campaign = make_campaign()
    campaigns.campaign_send_now(campaign=campaign, user=staff_user)
    dispatch.campaigns_dispatch_due()

    consent_withdraw(customer=first, purpose=purpose("newsletter"), source=Source.PREFERENCE_PAGE)
    suppression.suppression_add(email=second.email, reason=Suppression.Reason.STAFF, user=staff_user)
    result = sending.deliveries_send_batch(campaign_id=campaign.pk, first_id=0, last_id=dispatch.LAST_ID)

    assert sorted(smtp.handler.recipients()) == ["ada@example.com", "grace@example.com"]
    assert (result.sent, result.skipped) == (2, 2)
    assert not Delivery.objects.filter(campaign=campaign, status=Delivery.Status.QUEUED).exists()
    assert Campaign.objects.get(pk=campaign.pk).status == Campaign.Status.SENT


def test_an_address_suppressed_after_scheduling_receives_nothing(smtp, make_campaign, staff_user):
    customer_who_consents(email="ada@example.com")
    grace = customer_who_consents(email="grace@example.com")
    campaign = make_campaign()
    campaigns.campaign_send_now(campaign=campaign, user=staff_user)
    dispatch.campaigns_dispatch_due()

    suppression.suppression_add(email="grace@example.com", reason=Suppression.Reason.STAFF, user=staff_user)
    sending.deliveries_send_batch(campaign_id=campaign.pk, first_id=0, last_id=dispatch.LAST_ID)

    assert smtp.handler.recipients() == ["ada@example.com"]
    skipped = Delivery.objects.get(customer=grace)
    assert (skipped.status, skipped.skip_reason) == (Delivery.Status.SKIPPED, Delivery.SkipReason.SUPPRESSED)
    # Only the hash is kept: the address itself is nowhere in the suppression list.
    assert "grace" not in Suppression.objects.get().address_hash


def test_each_message_carries_the_unsubscribe_headers_and_footer_and_one_click_withdraws(
    smtp, make_campaign, staff_user, django_capture_on_commit_callbacks, settings
):
    settings.COMPANY_POSTAL_ADDRESS = "Example Software Ltd, 1 Example Street, London"
    zoe = customer_who_consents(email="zoe@example.com", first_name='Zoë "Z"', last_name="Müller, Jr.")
    customer_who_consents(email="sam@example.com", first_name="Sam", last_name="O'Neil, PhD")
    campaign = make_campaign()

    schedule_now(campaign, staff_user, django_capture_on_commit_callbacks)

    messages = {m["To"].addresses[0].addr_spec: m for m in smtp.handler.received()}
    assert set(messages) == {"zoe@example.com", "sam@example.com"}
    message = messages["zoe@example.com"]
    assert message["To"].addresses[0].display_name == 'Zoë "Z" Müller, Jr.'
    assert messages["sam@example.com"]["To"].addresses[0].display_name == "Sam O'Neil, PhD"
    assert message["Subject"] == 'Spring news for Zoë "Z"'
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["List-Id"] == "Newsletter <newsletter.consent.example.com>"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["Precedence"] == "bulk"
    assert messages["zoe@example.com"]["Message-ID"] != messages["sam@example.com"]["Message-ID"]
    unsubscribe = message["List-Unsubscribe"].strip("<>")
    assert unsubscribe.startswith("https://consent.example.com/unsubscribe/") and unsubscribe.endswith("/")
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    for body in (text, html):
        assert "You receive this email because you agreed to" in body
        assert unsubscribe in body
        assert "https://consent.example.com/preferences/" in body
        assert "Example Software Ltd, 1 Example Street, London" in body
    assert "Hello Zoë &quot;Z&quot;," in html  # placeholders are escaped in HTML
    assert 'Hello Zoë "Z",' in text

    # A mail provider's one-click POST: no cookies, no CSRF token, exactly the header's URL.
    provider = Client(enforce_csrf_checks=True)
    response = provider.post(
        unsubscribe.removeprefix("https://consent.example.com"),
        data="List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 200
    event = ConsentEvent.objects.filter(customer=zoe).order_by("-id").first()
    assert (event.granted, event.source) == (False, Source.ONE_CLICK)
    assert event.reference == f"campaign:{campaign.public_id}"


def test_dispatching_twice_and_redelivering_a_batch_send_no_second_message(smtp, make_campaign, staff_user):
    customer_who_consents(email="ada@example.com")
    customer_who_consents(email="grace@example.com")
    campaign = make_campaign()
    campaigns.campaign_send_now(campaign=campaign, user=staff_user)

    assert dispatch.campaigns_dispatch_due().campaign_ids == [campaign.pk]
    assert dispatch.campaigns_dispatch_due().campaign_ids == []
    # Even forced, the INSERT … SELECT adds nothing for customers who already have a row.
    assert sql.insert_deliveries(campaign, timezone.now()) == 0
    for _ in range(3):  # the broker re-delivers the same batch
        sending.deliveries_send_batch(campaign_id=campaign.pk, first_id=0, last_id=dispatch.LAST_ID)

    assert smtp.handler.recipients() == ["ada@example.com", "grace@example.com"]
    assert Delivery.objects.filter(campaign=campaign).count() == 2


def test_pause_resume_and_cancel_never_send_a_message_twice(
    smtp, make_campaign, staff_user, settings, django_capture_on_commit_callbacks
):
    settings.MARKETING_BATCH_SIZE = 2
    settings.MARKETING_CLAIM_SIZE = 2
    people = [customer_who_consents(email=f"reader{n}@example.com") for n in range(6)]
    campaign = make_campaign()
    campaigns.campaign_send_now(campaign=campaign, user=staff_user)
    dispatch.campaigns_dispatch_due()
    first, second, third = sql.batch_starts(campaign.pk, 2)

    # The first batch sends, then staff pause: the next batch claims nothing.
    sending.deliveries_send_batch(campaign_id=campaign.pk, first_id=first, last_id=second - 1)
    campaigns.campaign_pause(campaign=campaign, user=staff_user)
    sending.deliveries_send_batch(campaign_id=campaign.pk, first_id=second, last_id=third - 1)
    assert len(smtp.handler.messages) == 2

    # Resume continues with the queued rows only (every batch is enqueued again).
    with django_capture_on_commit_callbacks(execute=True):
        tasks.work_enqueue(campaigns.campaign_resume(campaign=campaign, user=staff_user))
    assert len(smtp.handler.messages) == 6
    assert smtp.handler.recipients() == sorted(p.email for p in people)

    # Cancel after the end changes nothing already sent; batches re-run send nothing.
    with pytest.raises(campaigns.CampaignActionRefused):
        campaigns.campaign_cancel(campaign=campaign, user=staff_user)
    sending.deliveries_send_batch(campaign_id=campaign.pk, first_id=0, last_id=dispatch.LAST_ID)
    assert len(smtp.handler.messages) == 6


def test_cancel_skips_what_is_queued_and_sends_nothing_more(smtp, make_campaign, staff_user):
    for n in range(3):
        customer_who_consents(email=f"reader{n}@example.com")
    campaign = make_campaign()
    campaigns.campaign_send_now(campaign=campaign, user=staff_user)
    dispatch.campaigns_dispatch_due()

    campaigns.campaign_cancel(campaign=campaign, user=staff_user)
    sending.deliveries_send_batch(campaign_id=campaign.pk, first_id=0, last_id=dispatch.LAST_ID)

    assert smtp.handler.messages == []
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.CANCELLED
    assert selectors.campaign_status_counts(campaign)["skipped"] == 3
    assert set(Delivery.objects.values_list("skip_reason", flat=True)) == {Delivery.SkipReason.CANCELLED}
    assert campaign.actions.filter(action="cancelled", staff_user=staff_user).exists()


def test_a_worker_that_dies_mid_batch_leaves_no_duplicate_and_its_rows_become_unknown(
    smtp, make_campaign, staff_user, settings
):
    settings.MARKETING_CLAIM_SIZE = 2
    for n in range(5):
        customer_who_consents(email=f"reader{n}@example.com")
    campaign = make_campaign()
    campaigns.campaign_send_now(campaign=campaign, user=staff_user)
    dispatch.campaigns_dispatch_due()
    # A worker claims two rows and dies before sending or marking them.
    claimed = sql.claim(campaign=campaign, first_id=0, last_id=dispatch.LAST_ID, limit=2, now=timezone.now())
    assert len(claimed.sending) == 2

    # The broker re-delivers the batch to another worker: it sends the other three only.
    sending.deliveries_send_batch(campaign_id=campaign.pk, first_id=0, last_id=dispatch.LAST_ID)
    assert len(smtp.handler.messages) == 3
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.SENDING  # two rows are still "sending"

    # Later the sweep marks them unknown; they are never sent, and the campaign is done.
    later = timezone.now() + settings.MARKETING_SENDING_TIMEOUT + timedelta(seconds=1)
    assert dispatch.campaigns_tick(now=later).counts == {"unknown": 2, "dispatched": 0, "requeued": 0, "finished": 1}
    sending.deliveries_send_batch(campaign_id=campaign.pk, first_id=0, last_id=dispatch.LAST_ID)
    assert len(smtp.handler.messages) == 3
    counts = selectors.campaign_status_counts(campaign)
    assert (counts["sent"], counts["unknown"]) == (3, 2)
    assert set(Delivery.objects.filter(pk__in=claimed.sending).values_list("status", flat=True)) == {"unknown"}
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.SENT


def test_smtp_errors_retry_transient_fail_permanent_and_suppress_missing_mailboxes(smtp, make_campaign, staff_user):
    customer_who_consents(email="ada@example.com")
    busy = customer_who_consents(email="busy@example.com")
    gone = customer_who_consents(email="gone@example.com")
    policy = customer_who_consents(email="policy@example.com")
    smtp.handler.replies = {
        "busy@example.com": "451 4.3.0 Try again later",
        "gone@example.com": "550 5.1.1 The email account that you tried to reach does not exist",
        "policy@example.com": "554 5.7.1 Message rejected by policy",
    }
    campaign = make_campaign()
    campaigns.campaign_send_now(campaign=campaign, user=staff_user)
    dispatch.campaigns_dispatch_due()

    result = sending.deliveries_send_batch(campaign_id=campaign.pk, first_id=0, last_id=dispatch.LAST_ID)

    assert smtp.handler.recipients() == ["ada@example.com"]
    assert result.retry_in == 60
    retry = Delivery.objects.get(customer=busy)
    assert (retry.status, retry.attempts) == (Delivery.Status.QUEUED, 1)
    assert retry.next_attempt_at > timezone.now()
    assert "451" in retry.last_error
    assert Delivery.objects.get(customer=gone).status == Delivery.Status.FAILED
    assert Delivery.objects.get(customer=policy).status == Delivery.Status.FAILED
    assert list(Suppression.objects.values_list("reason", flat=True)) == [Suppression.Reason.HARD_BOUNCE]

    # The server recovers; the retry comes when the backoff has passed and sends once.
    smtp.handler.replies = {}
    Delivery.objects.filter(pk=retry.pk).update(next_attempt_at=timezone.now())
    sending.deliveries_send_batch(campaign_id=campaign.pk, first_id=0, last_id=dispatch.LAST_ID)
    assert smtp.handler.recipients() == ["ada@example.com", "busy@example.com"]
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.SENT

    # The missing mailbox is suppressed for every later campaign, whatever its consent.
    later = make_campaign(name="Summer newsletter")
    campaigns.campaign_send_now(campaign=later, user=staff_user)
    dispatch.campaigns_dispatch_due()
    assert not Delivery.objects.filter(campaign=later, customer=gone).exists()


def test_a_lost_server_puts_the_rows_back_and_gives_up_after_the_maximum(make_campaign, staff_user, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 9, 2  # nothing listens
    settings.MARKETING_MAX_ATTEMPTS = 2
    ada = customer_who_consents(email="ada@example.com")
    customer_who_consents(email="grace@example.com")
    campaign = make_campaign()
    campaigns.campaign_send_now(campaign=campaign, user=staff_user)
    dispatch.campaigns_dispatch_due()

    sending.deliveries_send_batch(campaign_id=campaign.pk, first_id=0, last_id=dispatch.LAST_ID)
    first = Delivery.objects.get(customer=ada)
    assert (first.status, first.attempts) == (Delivery.Status.QUEUED, 1)
    assert Delivery.objects.exclude(customer=ada).get().attempts == 0  # never tried: released uncounted

    for _ in range(3):
        Delivery.objects.update(next_attempt_at=timezone.now())
        sending.deliveries_send_batch(campaign_id=campaign.pk, first_id=0, last_id=dispatch.LAST_ID)
    assert set(Delivery.objects.values_list("status", flat=True)) == {Delivery.Status.FAILED}
    assert "gave up after 2 attempts" in Delivery.objects.get(customer=ada).last_error


def test_under_a_send_rate_a_batch_sends_every_message_and_no_more_per_second_than_the_rate(
    smtp, make_campaign, staff_user, settings
):
    settings.MARKETING_SEND_RATE = 4
    settings.MARKETING_RATE_LIMIT_REDIS_URL = ""  # this process counts for itself
    readers = [customer_who_consents(email=f"reader{n}@example.com") for n in range(6)]
    campaign = make_campaign()
    campaigns.campaign_send_now(campaign=campaign, user=staff_user)
    dispatch.campaigns_dispatch_due()
    time.sleep(1 - time.time() % 1 + 0.01)  # start with a whole window, so the sends stay inside it

    result = sending.deliveries_send_batch(campaign_id=campaign.pk, first_id=0, last_id=dispatch.LAST_ID)

    assert result.sent == 6
    assert smtp.handler.recipients() == sorted(r.email for r in readers)
    per_second: dict[int, int] = {}
    for sent_at in Delivery.objects.values_list("sent_at", flat=True):
        per_second[int(sent_at.timestamp())] = per_second.get(int(sent_at.timestamp()), 0) + 1
    assert max(per_second.values()) <= 4
    assert Campaign.objects.get(pk=campaign.pk).status == Campaign.Status.SENT


def test_under_a_send_rate_a_claim_takes_about_one_seconds_worth(settings):
    from marketing.sending import claim_size

    settings.MARKETING_CLAIM_SIZE = 50
    settings.MARKETING_SEND_RATE = 0
    assert claim_size() == 50
    settings.MARKETING_SEND_RATE = 1
    assert claim_size() == 1  # a withdrawal waits at most about a second, not 50 messages' worth
    settings.MARKETING_SEND_RATE = 14.5
    assert claim_size() == 14
    settings.MARKETING_SEND_RATE = 500
    assert claim_size() == 50


def test_the_export_shows_the_subject_as_received_even_after_a_correction(
    smtp, make_campaign, staff_user, django_capture_on_commit_callbacks
):
    """Sent as "News for Terence": a later correction of the first name does not rewrite history."""
    from customers.services import customer_update
    from privacy.selectors import customer_export

    terence = customer_who_consents(email="terence@example.com", first_name="Terence")
    campaign = make_campaign(subject="News for {{ first_name }}")
    schedule_now(campaign, staff_user, django_capture_on_commit_callbacks)
    customer_update(customer=terence, data={"first_name": "Terry"}, changed_by="customer")
    emails = customer_export(customer=terence)["marketing_emails"]
    assert [e["subject"] for e in emails] == ["News for Terence"]


def test_an_internationalised_domain_is_sent_in_its_ascii_form_and_a_bad_address_fails_alone(
    smtp, make_campaign, staff_user, django_capture_on_commit_callbacks
):
    customer_who_consents(email="jorg@bücher.example", first_name="Jörg")
    customer_who_consents(email="ada@example.com", first_name="Ada")
    broken = customer_who_consents(email="zoe@example.com", first_name="Zoë")
    Customer.objects.filter(pk=broken.pk).update(email="zoë@example.com")  # bypassing validation, as old data may
    campaign = make_campaign()
    schedule_now(campaign, staff_user, django_capture_on_commit_callbacks)
    assert sorted(smtp.handler.recipients()) == ["ada@example.com", "jorg@xn--bcher-kva.example"]
    assert Delivery.objects.get(customer=broken).status == Delivery.Status.FAILED
    assert Delivery.objects.filter(status=Delivery.Status.SENT).count() == 2


def test_a_campaign_is_finished_by_its_last_batch_whichever_order_the_batches_run_in(
    smtp, make_campaign, staff_user, settings
):
    # given a campaign of six recipients in three batches of two
    settings.MARKETING_BATCH_SIZE = 2
    settings.MARKETING_CLAIM_SIZE = 2
    for n in range(6):
        customer_who_consents(email=f"reader{n}@example.com")
    campaign = make_campaign()
    campaigns.campaign_send_now(campaign=campaign, user=staff_user)
    dispatch.campaigns_dispatch_due()
    first, second, third = sql.batch_starts(campaign.pk, 2)
    finish_checks = []
    real_finish = sending.campaigns_finish

    def counting_finish(**kwargs):
        finish_checks.append(kwargs)
        return real_finish(**kwargs)

    import unittest.mock

    with unittest.mock.patch.object(sending, "campaigns_finish", counting_finish):
        # when the last batch runs first, then the first one: rows remain elsewhere, not finished
        sending.deliveries_send_batch(campaign_id=campaign.pk, first_id=third, last_id=dispatch.LAST_ID)
        campaign.refresh_from_db()
        assert campaign.status == Campaign.Status.SENDING
        sending.deliveries_send_batch(campaign_id=campaign.pk, first_id=first, last_id=second - 1)
        campaign.refresh_from_db()
        # the first batch saw rows queued after its range: no whole-campaign check
        assert (campaign.status, len(finish_checks)) == (Campaign.Status.SENDING, 1)
        # then the middle batch, the last to run, finishes the campaign
        sending.deliveries_send_batch(campaign_id=campaign.pk, first_id=second, last_id=third - 1)
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.SENT
    assert len(smtp.handler.messages) == 6


def test_rows_being_sent_after_a_batch_s_range_keep_the_campaign_sending(make_campaign, staff_user):
    customer_who_consents(email="ada@example.com")
    customer_who_consents(email="grace@example.com")
    campaign = make_campaign()
    campaigns.campaign_send_now(campaign=campaign, user=staff_user)
    dispatch.campaigns_dispatch_due()
    first, last = Delivery.objects.filter(campaign=campaign).order_by("pk").values_list("pk", flat=True)
    assert sql.pending_after(campaign=campaign, after_id=first) is True
    Delivery.objects.filter(pk=last).update(status=Delivery.Status.SENDING)
    assert sql.pending_after(campaign=campaign, after_id=first) is True
    Delivery.objects.filter(pk=last).update(status=Delivery.Status.SENT)
    assert sql.pending_after(campaign=campaign, after_id=first) is False


@pytest.mark.postgres
def test_a_large_dispatch_refreshes_the_planners_statistics_as_the_runtime_role(make_campaign, staff_user, monkeypatch):
    # given: a campaign whose audience is over the threshold (lowered for the test)
    from django.db import connection

    monkeypatch.setattr(sql, "ANALYZE_AFTER_ROWS", 3)
    for number in range(3):
        customer_who_consents(email=f"reader{number}@example.com")
    campaign = make_campaign()
    campaigns.campaign_send_now(campaign=campaign, user=staff_user)
    # when: the dispatcher queues its deliveries (CI connects as the runtime role, which owns no table)
    dispatch.campaigns_dispatch_due()
    # then: PostgreSQL's statistics know the new campaign, so batches are planned for its size
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples FROM pg_class WHERE relname = 'marketing_delivery'")
        assert cursor.fetchone()[0] == 3
        cursor.execute(
            "SELECT most_common_vals::text FROM pg_stats "
            "WHERE tablename = 'marketing_delivery' AND attname = 'campaign_id'"
        )
        row = cursor.fetchone()
    assert row is not None and str(campaign.pk) in row[0]
