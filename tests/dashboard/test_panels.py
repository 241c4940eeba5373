"""The dashboard's panels: figures checked against the database, who sees which panel, no customer shown."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from consents.models import Consent, ConsentEvent, Purpose, Source
from consents.services import consent_grant, consent_record, consent_withdraw
from dashboard import services
from dashboard.models import Figures, Heartbeat
from marketing.models import Campaign, Delivery, DeliveryEvent, Suppression
from privacy.models import PrivacyRequest, RecipientNotification, RetentionRun
from privacy.services import privacy_request_open
from tests.factories import CustomerFactory, ResellerFactory

pytestmark = pytest.mark.django_db


def purpose(code: str) -> Purpose:
    return Purpose.objects.get(code=code)


@pytest.fixture
def people():
    """Ada consents to the newsletter, Bob withdrew, Carol was never asked; Erin was erased after consenting."""
    ada = CustomerFactory(email="ada.lovelace@example.com", first_name="Adaqz", last_name="Lovelaceqz")
    bob = CustomerFactory(email="bob@example.com")
    carol = CustomerFactory(email="carol@example.com")
    erin = CustomerFactory(email="erin@example.com")
    newsletter = purpose("newsletter")
    consent_grant(customer=ada, purpose=newsletter, source=Source.SIGNUP_FORM)
    consent_grant(customer=bob, purpose=newsletter, source=Source.RESELLER_CHECKOUT)
    consent_withdraw(customer=bob, purpose=newsletter, source=Source.ONE_CLICK)
    consent_grant(customer=erin, purpose=newsletter, source=Source.PREFERENCE_PAGE)
    erin.erased_at = timezone.now()
    erin.save(update_fields=["erased_at"])
    return {"ada": ada, "bob": bob, "carol": carol, "erin": erin}


def test_the_consent_figures_match_the_database(people):
    services.figures_refresh()

    data = Figures.objects.get(name="consent").data
    newsletter = next(p for p in data["purposes"] if p["code"] == "newsletter")
    not_erased = Consent.objects.filter(purpose__code="newsletter", customer__erased_at=None)
    assert data["customers"] == 3
    assert newsletter["granted"] == not_erased.filter(granted=True).count() == 1
    assert newsletter["withdrawn"] == not_erased.filter(granted=False).count() == 1
    assert newsletter["never_asked"] == 1  # Carol
    # Grants and withdrawals of this week (the ledger keeps the erased customer's decision too).
    assert (
        newsletter["grants_per_week"][-1]
        == ConsentEvent.objects.filter(purpose__code="newsletter", granted=True).count()
        == 3
    )
    assert newsletter["withdrawals_per_week"][-1] == 1
    assert sum(newsletter["grants_per_week"][:-1]) == 0
    assert newsletter["by_source"]["one_click"] == {"granted": 0, "withdrawn": 1}
    assert newsletter["by_source"]["reseller_checkout"] == {"granted": 1, "withdrawn": 0}
    assert newsletter["by_source"]["signup_form"] == {"granted": 1, "withdrawn": 0}
    promotions = next(p for p in data["purposes"] if p["code"] == "promotions")
    assert (promotions["granted"], promotions["withdrawn"], promotions["never_asked"]) == (0, 0, 3)


def test_a_decision_of_ten_weeks_ago_counts_in_its_week(people):
    ada = people["ada"]
    ada.created_at = timezone.now() - timedelta(days=200)
    ada.save(update_fields=["created_at"])
    consent_record(
        customer=ada,
        purpose=purpose("promotions"),
        granted=True,
        source=Source.STAFF,
        staff_user=_staff(),
        note="Said yes by letter",
        method="letter",
        occurred_at=timezone.now() - timedelta(weeks=10),
    )

    services.figures_refresh()

    promotions = next(p for p in Figures.objects.get(name="consent").data["purposes"] if p["code"] == "promotions")
    assert promotions["grants_per_week"][-11] + promotions["grants_per_week"][-10] == 1
    assert sum(promotions["grants_per_week"]) == 1


def _staff():
    from django.contrib.auth import get_user_model

    return get_user_model().objects.create_user("sue-staff", is_staff=True)


def test_the_campaign_figures_count_outcomes_and_unsubscribes(people):
    campaign = Campaign.objects.create(
        name="Spring news",
        purpose=purpose("newsletter"),
        subject="News",
        text_body="Hello",
        status=Campaign.Status.SENT,
        scheduled_at=timezone.now(),
        dispatched_at=timezone.now(),
    )
    Delivery.objects.create(campaign=campaign, customer=people["ada"], status=Delivery.Status.SENT)
    Delivery.objects.create(campaign=campaign, customer=people["carol"], status=Delivery.Status.FAILED)
    bounced = Delivery.objects.create(
        campaign=campaign, customer=CustomerFactory(email="dan@example.com"), status=Delivery.Status.BOUNCED
    )
    DeliveryEvent.objects.create(
        provider="postmark",
        provider_event_id="spam-1",
        kind=DeliveryEvent.Kind.COMPLAINED,
        occurred_at=timezone.now(),
        delivery=bounced,
        campaign=campaign,
    )
    Delivery.objects.create(
        campaign=campaign,
        customer=people["bob"],
        status=Delivery.Status.SKIPPED,
        skip_reason=Delivery.SkipReason.CONSENT_WITHDRAWN,
    )
    consent_withdraw(
        customer=people["ada"],
        purpose=purpose("newsletter"),
        source=Source.UNSUBSCRIBE_LINK,
        reference=f"campaign:{campaign.public_id}",
    )

    services.figures_refresh()

    (row,) = Figures.objects.get(name="campaigns").data["campaigns"]
    # A bounced message was sent, so it is in "sent" too.
    assert (row["total"], row["sent"], row["failed"], row["skipped"], row["unsubscribed"]) == (4, 2, 1, 1, 1)
    assert (row["bounced"], row["complained"]) == (1, 1)


def test_suppression_growth_is_a_running_total(people):
    Suppression.objects.create(address_hash="a" * 64, reason=Suppression.Reason.HARD_BOUNCE)
    Suppression.objects.create(
        address_hash="b" * 64, reason=Suppression.Reason.COMPLAINT, created_at=timezone.now() - timedelta(days=400)
    )

    services.figures_refresh()

    data = Figures.objects.get(name="suppression").data
    assert data["before"] == 1
    assert data["total"][0] == 1 and data["total"][-1] == 2
    assert sum(data["added_by_reason"]["Hard bounce (mailbox does not exist)"]) == 1


def test_a_superuser_sees_every_panel_with_the_figures(admin_client, people):
    services.figures_refresh()
    privacy_request_open(
        customer=people["carol"], kind="access", channel="email", received_at=timezone.now() - timedelta(days=40)
    )
    RecipientNotification.objects.create(
        customer=people["bob"], third_party=ResellerFactory(name="Paddle"), reason="correction"
    )
    RetentionRun.objects.create(cutoff=timezone.now(), finished_at=timezone.now())
    services.heartbeat_record(name="beat")
    services.heartbeat_record(name="worker:w1@host", at=timezone.now() - timedelta(hours=1))

    page = admin_client.get("/admin/").content.decode()

    for panel in ("panel-consent", "panel-campaigns", "panel-privacy", "panel-health"):
        assert f'id="{panel}"' in page
    assert "1 overdue" in page and 'class="dash-overdue"' in page
    assert "<strong>1</strong> recipient waiting to be notified" in page
    assert "worker:w1@host: last seen" in page and "(missing)" in page
    assert "The retention job has never run." not in page
    assert "Needs attention" in page  # intake's items, through common.health
    assert "All models" in page
    assert admin_client.get("/admin/models/").status_code == 200


def test_each_role_sees_only_its_panels(client, people, support, marketer, officer):
    services.figures_refresh()
    privacy_request_open(customer=people["carol"], kind="access", channel="email")
    expected = {
        support: {"consent"},
        marketer: {"consent", "campaigns", "health"},
        officer: {"consent", "privacy", "health"},
    }
    for user, panels in expected.items():
        client.force_login(user)
        page = client.get("/admin/").content.decode()
        shown = set(re.findall(r'id="panel-(\w+)"', page))
        assert shown == panels, user.username
    client.force_login(marketer)
    page = client.get("/admin/").content.decode()
    assert "Privacy requests" not in page and "Retention job" not in page and "Reseller notifications" not in page


def test_marketing_staff_see_counts_never_a_customer(client, people, marketer):
    campaign = Campaign.objects.create(
        name="Now sending",
        purpose=purpose("newsletter"),
        subject="News",
        text_body="Hello",
        status=Campaign.Status.SENDING,
        scheduled_at=timezone.now(),
        dispatched_at=timezone.now(),
    )
    Delivery.objects.create(campaign=campaign, customer=people["ada"], status=Delivery.Status.SENT)
    Delivery.objects.create(campaign=campaign, customer=people["carol"], status=Delivery.Status.QUEUED)
    services.figures_refresh()
    client.force_login(marketer)

    page = client.get("/admin/").content.decode()

    assert "1 of 2 done (50%)" in page
    for customer in people.values():
        assert customer.email not in page
        assert str(customer.public_id)[:8] not in page
    assert "Adaqz" not in page and "Lovelaceqz" not in page


def test_charts_carry_no_script_and_are_followed_by_their_figures(admin_client, people):
    services.figures_refresh()

    response = admin_client.get("/admin/")
    page = response.content.decode()

    assert page.count('<svg role="img"') >= 5
    assert "<script" not in page.split('<div id="content-main"', 1)[1]
    assert "kozea.github.io" not in page and "//cdn" not in page
    assert page.count("Figures of this chart") == page.count('<svg role="img"')
    # The current-state chart's table: Newsletter granted 1, withdrawn 1, never asked 1.
    assert re.search(r"<th scope=\"row\">Newsletter</th><td class=\"num\">1</td><td class=\"num\">1</td>", page)
    policy = response.headers["Content-Security-Policy"]
    script_src = re.search(r"script-src ([^;]*)", policy).group(1)
    assert "'unsafe-inline'" not in script_src and "http" not in script_src


def test_before_the_first_refresh_the_page_says_so(admin_client, people):
    page = admin_client.get("/admin/").content.decode()
    assert "Figures not counted yet" in page


def test_the_dashboard_asks_the_same_number_of_queries_whatever_the_size(admin_client, people):
    # One campaign sending from the start: with none, its progress needs no query at all.
    Campaign.objects.create(
        name="Sending",
        purpose=purpose("newsletter"),
        subject="News",
        text_body="Hello",
        status=Campaign.Status.SENDING,
        scheduled_at=timezone.now(),
        dispatched_at=timezone.now(),
    )
    services.figures_refresh()
    admin_client.get("/admin/")
    with CaptureQueriesContext(connection) as small:
        assert admin_client.get("/admin/").status_code == 200
    for n in range(30):
        customer = CustomerFactory(email=f"more{n}@example.com")
        consent_grant(customer=customer, purpose=purpose("promotions"), source=Source.IMPORT)
        privacy_request_open(customer=customer, kind="access", channel="email")
        Campaign.objects.create(
            name=f"Campaign {n}",
            purpose=purpose("newsletter"),
            subject="News",
            text_body="Hello",
            status=Campaign.Status.SENDING if n % 10 == 0 else Campaign.Status.SENT,
            scheduled_at=timezone.now(),
            dispatched_at=timezone.now(),
        )
    services.figures_refresh()
    with CaptureQueriesContext(connection) as large:
        assert admin_client.get("/admin/").status_code == 200
    assert len(large.captured_queries) == len(small.captured_queries)


def test_the_heartbeat_task_notes_the_worker(settings):
    from dashboard import tasks

    tasks.heartbeat.apply()
    assert Heartbeat.objects.filter(name__startswith="worker:").exists()


def test_publishing_the_heartbeat_notes_beat():
    from dashboard import tasks

    tasks._beat_sends_heartbeat(sender=tasks.HEARTBEAT_TASK)
    tasks._beat_sends_heartbeat(sender="marketing.tasks.campaigns_tick")
    assert list(Heartbeat.objects.values_list("name", flat=True)) == ["beat"]


def test_the_privacy_panel_lists_open_requests_by_due_date(client, people, officer):
    late = privacy_request_open(
        customer=people["bob"], kind="erasure", channel="letter", received_at=timezone.now() - timedelta(days=45)
    )
    soon = privacy_request_open(customer=people["carol"], kind="access", channel="email")
    client.force_login(officer)

    page = client.get("/admin/").content.decode()

    assert page.index(f"/admin/privacy/privacyrequest/{late.pk}/") < page.index(
        f"/admin/privacy/privacyrequest/{soon.pk}/"
    )
    assert PrivacyRequest.objects.overdue().count() == 1
    assert "<strong>2</strong> open requests" in page


def test_the_progress_of_a_sending_campaign_is_recounted_until_it_ends(people):
    campaign = Campaign.objects.create(
        name="Now sending",
        purpose=purpose("newsletter"),
        subject="News",
        text_body="Hello",
        status=Campaign.Status.SENDING,
        scheduled_at=timezone.now(),
        dispatched_at=timezone.now(),
    )
    assert services.progress_refresh() is not None
    Delivery.objects.create(campaign=campaign, customer=people["ada"], status=Delivery.Status.SENT)
    Delivery.objects.create(campaign=campaign, customer=people["carol"], status=Delivery.Status.QUEUED)

    (row,) = services.progress_refresh().data["campaigns"]
    assert (row["total"], row["finished"], row["percent"]) == (2, 1, 50)

    Campaign.objects.filter(pk=campaign.pk).update(status=Campaign.Status.SENT)
    assert services.progress_refresh().data["campaigns"] == []  # once more, to clear it
    assert services.progress_refresh() is None  # then nothing to count


def test_the_sender_readiness_list_is_the_one_check_sender_gives(admin_client, people, settings):
    settings.DKIM_DOMAIN = ""

    page = admin_client.get("/admin/").content.decode()

    assert "Sender readiness" in page
    # Without DKIM the first check fails, as `check_sender` says.
    assert '<li class="dash-bad">DKIM signing' in page


def test_a_dashboard_never_counted_asks_the_worker_to_count_it_once(admin_client, people, monkeypatch):
    from django.core.cache import cache

    from dashboard import tasks

    cache.delete("dashboard:first-count-asked")
    asked = []
    monkeypatch.setattr(tasks.figures_refresh, "delay", lambda: asked.append(True))

    first = admin_client.get("/admin/").content.decode()
    admin_client.get("/admin/")

    assert "the worker is counting them" in first
    assert asked == [True]
