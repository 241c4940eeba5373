"""
The parts that need the real services: a Celery worker on the Redis broker, the shared send
rate in Redis, and PostgreSQL's row locks between concurrent dispatchers and batches.
"""

import threading
import time
import uuid

import pytest
import redis
from django.db import connection, transaction

from consents.models import Source
from consents.services import consent_withdraw
from marketing import campaigns, dispatch, sending, sql, tasks
from marketing.models import Campaign, Delivery
from marketing.ratelimit import RedisRateLimiter

from .helpers import customer_who_consents, free_port, purpose


def wait_for(condition, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_sends_a_scheduled_campaign_once_to_each_consenting_customer(
    smtp, make_campaign, staff_user, settings, celery_worker_thread
):
    settings.MARKETING_BATCH_SIZE = 2
    readers = [customer_who_consents(email=f"reader{n}@example.com") for n in range(5)]
    withdrew = customer_who_consents(email="withdrew@example.com")
    campaign = make_campaign()
    consent_withdraw(customer=withdrew, purpose=purpose("newsletter"), source=Source.PREFERENCE_PAGE)

    tasks.work_enqueue(campaigns.campaign_send_now(campaign=campaign, user=staff_user))  # dispatched at once

    assert wait_for(lambda: Campaign.objects.get(pk=campaign.pk).status == Campaign.Status.SENT)
    assert smtp.handler.recipients() == sorted(r.email for r in readers)
    # A beat tick later, and a batch the broker hands out again, send nothing more.
    from marketing.tasks import campaigns_tick, deliveries_send_batch

    campaigns_tick.delay()
    deliveries_send_batch.delay(campaign.pk, 0, dispatch.LAST_ID)
    time.sleep(2)
    assert len(smtp.handler.messages) == 5
    assert Delivery.objects.filter(campaign=campaign, status="sent").count() == 5


@pytest.mark.redis
def test_the_send_rate_holds_across_workers_through_redis(settings):
    prefix = f"test:send-rate:{uuid.uuid4()}"
    workers = [RedisRateLimiter(settings.CELERY_BROKER_URL, 5, key_prefix=prefix) for _ in range(2)]
    stamps: list[float] = []
    lock = threading.Lock()

    def send(limiter):
        for _ in range(8):
            limiter.acquire()
            with lock:
                stamps.append(time.time())

    threads = [threading.Thread(target=send, args=(w,)) for w in workers]
    # Start with a whole window: a message allowed just before a second ends but stamped just
    # after it would otherwise be counted here with the next second's messages.
    time.sleep(1 - time.time() % 1 + 0.01)
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    per_second: dict[int, int] = {}
    for stamp in stamps:
        per_second[int(stamp)] = per_second.get(int(stamp), 0) + 1
    assert len(stamps) == 16
    assert max(per_second.values()) <= 5  # together, not 5 each
    assert len(per_second) >= 4


@pytest.mark.redis
def test_batches_take_a_claims_worth_of_the_rate_at_once_and_give_back_what_they_did_not_use(settings):
    prefix = f"test:send-rate:{uuid.uuid4()}"
    first, second, third = (RedisRateLimiter(settings.CELERY_BROKER_URL, 5, key_prefix=prefix) for _ in range(3))
    time.sleep(1 - time.time() % 1 + 0.01)  # all within one second's window

    assert first.acquire(3) == 3
    assert second.acquire(3) == 2  # what is left of the five
    first.release(1)  # its claim found two rows
    assert third.acquire(3) == 1
    assert int(time.time()) == int(first._last_key.rsplit(":", 1)[1])  # still the same window


@pytest.mark.redis
def test_an_allowance_given_back_after_its_window_leaves_no_key_behind(settings):
    prefix = f"test:send-rate:{uuid.uuid4()}"
    limiter = RedisRateLimiter(settings.CELERY_BROKER_URL, 5, key_prefix=prefix)
    time.sleep(1 - time.time() % 1 + 0.01)
    assert limiter.acquire(3) == 3
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    client.delete(limiter._last_key)  # the window's key has expired
    time.sleep(1.05)  # the claim took longer than its window
    limiter.release(2)
    assert not client.exists(limiter._last_key)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_dispatchers_never_both_take_a_campaign(make_campaign, staff_user):
    customer_who_consents(email="ada@example.com")
    campaign = make_campaign()
    campaigns.campaign_send_now(campaign=campaign, user=staff_user)
    locked, release = threading.Event(), threading.Event()

    def other_scheduler():
        with transaction.atomic():
            Campaign.objects.select_for_update().get(pk=campaign.pk)
            locked.set()
            release.wait(10)
        connection.close()

    thread = threading.Thread(target=other_scheduler)
    thread.start()
    locked.wait(10)
    try:
        assert dispatch.campaigns_dispatch_due().campaign_ids == []  # SKIP LOCKED: not waiting, not taking it
    finally:
        release.set()
        thread.join()
    assert dispatch.campaigns_dispatch_due().campaign_ids == [campaign.pk]
    assert Delivery.objects.filter(campaign=campaign).count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_copies_of_a_batch_send_each_message_once(smtp, make_campaign, staff_user, settings):
    settings.MARKETING_CLAIM_SIZE = 3
    readers = [customer_who_consents(email=f"reader{n}@example.com") for n in range(20)]
    campaign = make_campaign()
    campaigns.campaign_send_now(campaign=campaign, user=staff_user)
    dispatch.campaigns_dispatch_due()
    start = threading.Barrier(4)

    def worker():
        start.wait()
        sending.deliveries_send_batch(campaign_id=campaign.pk, first_id=0, last_id=dispatch.LAST_ID)
        connection.close()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert smtp.handler.recipients() == sorted(r.email for r in readers)
    assert sql.batch_starts(campaign.pk, 5) == []
    assert Delivery.objects.filter(status="sent").count() == 20


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("why_it_waits", ["the window is used up", "Redis is unreachable"])
def test_a_withdrawal_does_not_wait_for_a_batch_that_waits_for_the_send_rate(
    smtp, make_campaign, staff_user, settings, monkeypatch, why_it_waits
):
    # given a campaign for Ada, sent at one message per second across all workers
    settings.MARKETING_SEND_RATE = 1
    ada = customer_who_consents(email="ada@example.com")
    campaign = make_campaign()
    campaigns.campaign_send_now(campaign=campaign, user=staff_user)
    dispatch.campaigns_dispatch_due()
    prefix = f"test:send-rate:{uuid.uuid4()}"
    if why_it_waits == "Redis is unreachable":
        limiter = RedisRateLimiter(f"redis://127.0.0.1:{free_port()}/0", 1, key_prefix=prefix)
    else:
        limiter = RedisRateLimiter(settings.CELERY_BROKER_URL, 1, key_prefix=prefix)
        now = int(time.time())
        for slot in range(now, now + 4):  # other workers took this second's message and the next three
            limiter.client.set(f"{prefix}:{slot}", 1, ex=30)
    waiting = threading.Event()
    take_allowance = limiter.acquire

    def acquire(*args, **kwargs):
        waiting.set()
        return take_allowance(*args, **kwargs)

    monkeypatch.setattr(limiter, "acquire", acquire)
    monkeypatch.setattr(sending, "send_rate_limiter", lambda: limiter)

    def batch():
        try:
            sending.deliveries_send_batch(campaign_id=campaign.pk, first_id=0, last_id=dispatch.LAST_ID)
        finally:
            connection.close()

    thread = threading.Thread(target=batch)
    thread.start()
    assert waiting.wait(10)
    time.sleep(0.3)  # the batch is waiting for its allowance

    # when Ada unsubscribes meanwhile
    began = time.monotonic()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '3s'")  # a blocked withdrawal fails the test, not hangs it
        consent_withdraw(customer=ada, purpose=purpose("newsletter"), source=Source.ONE_CLICK)
        took = time.monotonic() - began
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET lock_timeout")
        limiter.client = redis.Redis.from_url(settings.CELERY_BROKER_URL)  # Redis is back
        thread.join(30)

    # then the withdrawal did not wait for the batch, and the batch did not send to Ada
    assert took < 1.0
    assert not thread.is_alive()
    assert smtp.handler.recipients() == []
    delivery = Delivery.objects.get(customer=ada)
    assert (delivery.status, delivery.skip_reason) == (Delivery.Status.SKIPPED, Delivery.SkipReason.CONSENT_WITHDRAWN)
