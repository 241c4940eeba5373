"""
The peer in the sending benchmark: the plain Celery sender a user would write by hand instead
of the product. Its own Celery app on the same Redis, started with the same concurrency; the
dispatcher splits the same audience (the same SQL) into batches of the same size by customer
id range; each task reads its batch's customers in one query, builds each message with the
same templates, footer and signed links (the product's CampaignMessageBuilder, so both send
the same bytes) and sends them with smtplib on one SMTP connection. Nothing is recorded per
message: no delivery rows, no claims, no consent locks, no marks; each task adds its count to
one Redis counter when its batch is done, which is how the benchmark sees the end.

    celery -A bench.peer_sender worker --concurrency=2 -Q <PEER_QUEUE>   (bench_send starts it)
"""

from __future__ import annotations

import os
import smtplib
import time

from celery import Celery

from bench import common

QUEUE = os.environ.get("PEER_QUEUE", "consentdesk-bench-peer")
SENT_KEY = f"{QUEUE}:sent"
LAST_KEY = f"{QUEUE}:last"

# Not the current app: the product's shared tasks, enqueued by the same benchmark process, keep theirs.
app = Celery("peer", broker=os.environ.get("CELERY_BROKER_URL", common.BENCH_REDIS), set_as_current=False)
app.conf.update(
    task_default_queue=QUEUE,
    task_acks_late=False,
    worker_prefetch_multiplier=1,
    task_serializer="json",
    accept_content=["json"],
    broker_connection_retry_on_startup=True,
)


@app.on_after_configure.connect
def _django(**kwargs) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()


def _redis():
    import redis

    return redis.Redis.from_url(app.conf.broker_url)


def batch_bounds(campaign_id: int, batch_size: int) -> list[tuple[int, int]]:
    """(first, last) customer ids of each batch of batch_size customers of the audience."""
    from django.db import connection

    from marketing import sql
    from marketing.models import Campaign

    campaign = Campaign.objects.get(pk=campaign_id)
    where, params = sql.audience_where(campaign)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT min(id), max(id) FROM (SELECT c.id, (ROW_NUMBER() OVER (ORDER BY c.id) - 1) / %s AS n "
            f"FROM {sql.table(sql.Customer)} c WHERE {where}) numbered GROUP BY n ORDER BY n",
            [batch_size, *params],
        )
        return [(first, last) for first, last in cursor.fetchall()]


def dispatch(campaign_id: int, batch_size: int) -> int:
    """Enqueue one task per batch; returns the number of recipients."""
    bounds = batch_bounds(campaign_id, batch_size)
    client = _redis()
    client.delete(SENT_KEY, LAST_KEY)
    for first, last in bounds:
        send_batch.delay(campaign_id, first, last)
    return len(bounds)


@app.task(name="peer.send_batch")
def send_batch(campaign_id: int, first_id: int, last_id: int) -> int:
    from django.conf import settings

    from customers.models import Customer
    from marketing import sql
    from marketing.emails import CampaignMessageBuilder
    from marketing.models import Campaign

    campaign = Campaign.objects.select_related("purpose").get(pk=campaign_id)
    builder = CampaignMessageBuilder(campaign)
    where, params = sql.audience_where(campaign)
    customers = Customer.objects.raw(
        f"SELECT c.id, c.public_id, c.email, c.first_name, c.last_name, c.company, c.job_title, c.country, "
        f"c.link_generation FROM {sql.table(Customer)} c WHERE c.id BETWEEN %s AND %s AND {where} ORDER BY c.id",
        [first_id, last_id, *params],
    )
    host, port = settings.EMAIL_HOST, settings.EMAIL_PORT
    sent = 0
    with smtplib.SMTP(host, port) as smtp:
        for customer in customers:
            message = builder.build(customer)
            smtp.sendmail(message.envelope_from, [message.recipient], message.data)
            sent += 1
    client = _redis()
    client.incrby(SENT_KEY, sent)
    client.set(LAST_KEY, repr(time.time()))
    return sent


def progress() -> tuple[int, float | None]:
    """(messages sent so far, the time the last batch finished)."""
    client = _redis()
    sent, last = client.get(SENT_KEY), client.get(LAST_KEY)
    return int(sent or 0), float(last) if last else None
