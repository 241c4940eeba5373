"""
Benchmark 1: dispatch. The project's dispatcher (marketing.tasks.campaigns_dispatch_due:
row lock, INSERT … SELECT of the deliveries, batch boundaries, one task per batch enqueued on
Redis) for a newsletter campaign over the benchmark database, against the floor of a
hand-written INSERT … SELECT of the same rows, in the same run, alternating.

    .venv/bin/python -m bench.bench_dispatch            # needs bench.generate to have run

The deliveries are removed (TRUNCATE), and with BENCH_CHECKPOINT=1 a CHECKPOINT is taken, before every timed run, so
each run starts from the same state. Target: ratio <= 1.5.
"""

from __future__ import annotations

import argparse
import os
import statistics

from bench import common


def checkpoint_and_clear() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE marketing_delivery CASCADE")
        cursor.execute("DELETE FROM marketing_campaignaction")
        cursor.execute("DELETE FROM marketing_campaign")
        common.checkpoint(cursor)


def new_campaign(*, scheduled: bool):
    from datetime import timedelta

    from django.utils import timezone

    from consents.models import Purpose
    from marketing.models import Campaign

    return Campaign.objects.create(
        name="Bench newsletter",
        purpose=Purpose.objects.get(code="newsletter"),
        subject="News for {{ first_name }}",
        text_body="Hello {{ first_name }}",
        status=Campaign.Status.SCHEDULED if scheduled else Campaign.Status.DRAFT,
        scheduled_at=timezone.now() - timedelta(seconds=1),
    )


def purge_queue() -> None:
    """The dispatcher enqueued batch tasks on our own Redis database: drop them."""
    import redis

    redis.Redis.from_url(common.BENCH_REDIS).flushdb()


def run_project() -> tuple[float, int]:
    from marketing import tasks
    from marketing.models import Delivery

    campaign = new_campaign(scheduled=True)
    with common.Timer() as timer:
        dispatched = tasks.campaigns_dispatch_due()
    assert dispatched == [campaign.pk], dispatched
    return timer.seconds, Delivery.objects.filter(campaign=campaign).count()


# What one would write by hand for the same rows and the same rules: consenting now (the
# current-state table through its partial index), not erased, address not suppressed.
FLOOR_SQL = """
INSERT INTO marketing_delivery
    (campaign_id, customer_id, status, skip_reason, attempts, next_attempt_at, message_id, subject, last_error,
     created_at)
SELECT %(campaign)s, k.customer_id, 'queued', '', 0, now(), '', '', '', now()
FROM consents_consent k
JOIN customers_customer c ON c.id = k.customer_id
WHERE k.purpose_id = %(purpose)s AND k.granted AND c.erased_at IS NULL
  AND NOT EXISTS (SELECT 1 FROM marketing_suppression s
                  WHERE s.address_hash = encode(sha256(convert_to(lower(btrim(c.email)), 'UTF8')), 'hex'))
"""


def run_floor() -> tuple[float, int]:
    from django.db import connection, transaction

    campaign = new_campaign(scheduled=False)
    with common.Timer() as timer, transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(FLOOR_SQL, {"campaign": campaign.pk, "purpose": campaign.purpose_id})
        rows = cursor.rowcount
    return timer.seconds, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=int(os.environ.get("BENCH_ROUNDS", "3")))
    args = parser.parse_args()
    common.setup_django()
    from customers.models import Customer

    print(f"Machine: {common.machine()}; load average before: {common.load()}")
    print(f"Customers: {Customer.objects.count():,}")
    project: list[float] = []
    floor: list[float] = []
    rows = set()
    for round_number in range(args.rounds):
        # Alternate the order so neither always runs on a warmer cache.
        order = [("project", run_project), ("floor", run_floor)]
        if round_number % 2:
            order.reverse()
        for name, run in order:
            checkpoint_and_clear()
            seconds, count = run()
            rows.add(count)
            (project if name == "project" else floor).append(seconds)
            print(f"  round {round_number + 1}: {name:8s} {seconds:6.2f} s  {count:,} deliveries")
        purge_queue()
    checkpoint_and_clear()
    assert len(rows) == 1, f"the two ways created different numbers of rows: {rows}"
    project_s, floor_s = statistics.median(project), statistics.median(floor)
    ratio = project_s / floor_s
    print(f"\nDispatch of {rows.pop():,} deliveries (median of {args.rounds}; load average after: {common.load()}):")
    print(f"  project dispatcher   {project_s:6.2f} s")
    print(f"  hand-written INSERT  {floor_s:6.2f} s")
    print(f"  ratio                {ratio:6.2f}x   (target <= 1.5) {'OK' if ratio <= 1.5 else 'MISSED'}")
    common.record("dispatch", {"project_s": project_s, "floor_s": floor_s, "ratio": ratio})


if __name__ == "__main__":
    main()
