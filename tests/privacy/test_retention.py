"""The daily retention task clears IP addresses and user agents past RETENTION_IP_DAYS, and only those."""

import threading
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import close_old_connections, connection
from django.utils import timezone

from consents.models import ConsentEvent, Purpose, Source
from customers.models import Customer
from privacy import registry
from privacy.models import RetentionRun
from privacy.services import retention_apply
from privacy.tasks import retention_apply as retention_task
from tests.consents.people import ensure_purposes
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db


def days_ago(days: int):
    return timezone.now() - timedelta(days=days)


def event(customer, *, recorded_days_ago: int, ip="192.0.2.10", user_agent="Firefox/128", note=""):
    """A ledger entry as it was written back then (the service stamps "now")."""
    when = days_ago(recorded_days_ago)
    return ConsentEvent.objects.create(
        customer=customer,
        purpose=Purpose.objects.get(code="newsletter"),
        granted=True,
        occurred_at=when,
        recorded_at=when,
        source=Source.PREFERENCE_PAGE,
        ip_address=ip,
        user_agent=user_agent,
        note=note,
    )


@pytest.fixture
def old_and_recent(purposes):
    """Olive signed up long ago, Rita last week; both from a browser we noted."""
    olive = CustomerFactory(
        email="olive@example.com", signup_ip="192.0.2.1", signup_user_agent="Old browser", created_at=days_ago(400)
    )
    rita = CustomerFactory(
        email="rita@example.com", signup_ip="192.0.2.2", signup_user_agent="New browser", created_at=days_ago(7)
    )
    old_event = event(olive, recorded_days_ago=settings.RETENTION_IP_DAYS + 1, note="Said yes at the fair")
    recent_event = event(rita, recorded_days_ago=settings.RETENTION_IP_DAYS - 1)
    return olive, rita, old_event, recent_event


def test_retention_clears_old_ip_addresses_and_leaves_recent_ones(old_and_recent):
    olive, rita, old_event, recent_event = old_and_recent

    run = retention_apply()

    olive.refresh_from_db()
    rita.refresh_from_db()
    assert (olive.signup_ip, olive.signup_user_agent) == (None, "")
    assert (rita.signup_ip, rita.signup_user_agent) == ("192.0.2.2", "New browser")
    old_event, recent_event = ConsentEvent.objects.get(pk=old_event.pk), ConsentEvent.objects.get(pk=recent_event.pk)
    assert (old_event.ip_address, old_event.user_agent) == (None, "")
    assert old_event.note == "Said yes at the fair"  # evidence of the decision stays
    assert old_event.granted and old_event.redacted_at is not None
    assert (recent_event.ip_address, recent_event.user_agent) == ("192.0.2.10", "Firefox/128")
    assert run.counts == {"customers": 1, "consents": 1, "staff_audit_addresses": 0, "intake": 0, "api": 0}
    assert run.finished_at is not None


def test_running_retention_again_changes_nothing_more(old_and_recent):
    retention_apply()
    second = retention_task()
    assert set(second.values()) == {0}
    assert RetentionRun.objects.count() == 2


def test_the_age_is_a_setting(old_and_recent, settings):
    _olive, rita, _old, _recent = old_and_recent
    settings.RETENTION_IP_DAYS = 3
    retention_apply()
    rita.refresh_from_db()
    assert rita.signup_ip is None


def test_retention_runs_daily_from_beat():
    entry = settings.CELERY_BEAT_SCHEDULE["privacy-retention"]
    assert entry["task"] == "privacy.tasks.retention_apply"
    assert entry["schedule"].hour == {3}


def test_the_runs_are_listed_for_the_privacy_officer(client, officer, old_and_recent):
    retention_apply()
    client.force_login(officer)
    page = client.get("/admin/privacy/retentionrun/")
    assert page.status_code == 200
    assert "customers" in page.content.decode()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_runs_at_once_on_postgresql_do_the_work_once():
    ensure_purposes()
    CustomerFactory(email="olive@example.com", signup_ip="192.0.2.1", created_at=days_ago(400))
    started, release = threading.Event(), threading.Event()
    results = {}

    def slow_step(cutoff):
        started.set()
        release.wait(timeout=30)
        return 0

    def first_run():
        try:
            results["first"] = retention_apply()
        finally:
            close_old_connections()
            connection.close()

    class SlowPart(registry.PersonalDataPart):
        name = "slow"

        def retention(self, cutoff):
            return slow_step(cutoff)

    registry.register(SlowPart())
    try:
        thread = threading.Thread(target=first_run)
        thread.start()
        assert started.wait(timeout=30)
        results["second"] = retention_apply()  # while the first holds the lock
        release.set()
        thread.join(timeout=30)
    finally:
        registry._parts.pop("slow", None)

    assert results["second"] is None
    assert results["first"].counts["customers"] == 1
    assert RetentionRun.objects.count() == 1
    assert Customer.objects.get(email="olive@example.com").signup_ip is None


def test_staff_sign_in_and_audit_addresses_past_the_age_are_cleared_and_recent_ones_kept():
    from auditlog.models import LogEntry
    from axes.models import AccessLog
    from django.contrib.contenttypes.models import ContentType

    customer = CustomerFactory()
    content_type = ContentType.objects.get_for_model(Customer)

    def audit(days, ip):
        entry = LogEntry.objects.create(
            content_type=content_type, object_pk=str(customer.pk), object_repr="c", action=1, remote_addr=ip
        )
        LogEntry.objects.filter(pk=entry.pk).update(timestamp=days_ago(days))
        return entry

    old_audit, new_audit = audit(400, "198.51.100.7"), audit(3, "198.51.100.8")
    old_login = AccessLog.objects.create(username="staff", ip_address="198.51.100.7", user_agent="Firefox")
    AccessLog.objects.filter(pk=old_login.pk).update(attempt_time=days_ago(400))
    recent_login = AccessLog.objects.create(username="staff", ip_address="198.51.100.8", user_agent="Firefox")

    run = retention_apply()

    old_audit.refresh_from_db()
    new_audit.refresh_from_db()
    assert old_audit.remote_addr is None  # who changed what, and when, stays
    assert new_audit.remote_addr == "198.51.100.8"
    assert not AccessLog.objects.filter(pk=old_login.pk).exists()
    assert AccessLog.objects.filter(pk=recent_login.pk).exists()
    assert run.counts["staff_audit_addresses"] == 2
