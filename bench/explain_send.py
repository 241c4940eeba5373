"""
Why sending slows down with the audience: the per-batch statements of deliveries_send_batch
under EXPLAIN (ANALYZE, BUFFERS) on the benchmark database (bench.generate's 1M customers:
600,355 deliveries), at the start of a campaign and after a share of it was sent the way
the workers send it (claimed, then marked sent, row versions left for vacuum), with
pg_stat_user_tables for marketing_delivery at each point.

    .venv/bin/python -m bench.explain_send               # after bench.generate
    .venv/bin/python -m bench.explain_send --sent 0.5    # half the campaign sent first

Each EXPLAIN ANALYZE of a statement that writes runs in a transaction that is rolled back.
"""

from __future__ import annotations

import argparse
import contextlib
import re

from bench import common


def explain(cursor, sql: str, params: list) -> tuple[str, str]:
    cursor.execute("BEGIN")
    try:
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS, TIMING OFF) " + sql, params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    finally:
        cursor.execute("ROLLBACK")
    found = re.search(r"Execution Time: ([\d.]+) ms", plan)
    assert found is not None  # EXPLAIN ANALYZE always ends with it
    total = found.group(1)
    return plan, total


def table_stats(cursor) -> str:
    cursor.execute(
        "SELECT n_live_tup, n_dead_tup, n_tup_upd, n_tup_hot_upd, autovacuum_count, vacuum_count, "
        "pg_size_pretty(pg_table_size(relid)), pg_size_pretty(pg_indexes_size(relid)) "
        "FROM pg_stat_user_tables WHERE relname = 'marketing_delivery'"
    )
    live, dead, upd, hot, autovacuums, vacuums, size, index_size = cursor.fetchone()
    return (
        f"live {live:,}, dead {dead:,}, updated {upd:,} (HOT {hot:,}), autovacuums {autovacuums}, "
        f"vacuums {vacuums}; table {size}, indexes {index_size}"
    )


def statements(campaign, first_id: int, last_id: int, now) -> dict[str, tuple[str, list]]:
    from django.db import connection

    from marketing import sql
    from marketing.models import Campaign, Delivery

    captured: dict[str, tuple[str, list]] = {}

    class Capture:
        def __init__(self, name):
            self.name = name

        def __call__(self, execute, statement, params, many, context):
            captured.setdefault(self.name, (statement, list(params or [])))
            raise _Captured

    for name, call in [
        (
            "claim (UPDATE … RETURNING, 50 rows)",
            lambda: sql.claim(campaign=campaign, first_id=first_id, last_id=last_id, limit=50, now=now),
        ),
        ("finish check (campaigns_finish)", lambda: _finish(campaign)),
        ("rows after this batch? (sql.pending_after)", lambda: sql.pending_after(campaign=campaign, after_id=last_id)),
    ]:
        with connection.execute_wrapper(Capture(name)), contextlib.suppress(_Captured):
            call()
    delivery = sql.table(Delivery)
    captured["mark sent (50 rows, one UPDATE)"] = (
        f"UPDATE {delivery} SET status = %s, message_id = 'x', sent_at = now(), subject = 's' "
        f"WHERE id IN (SELECT id FROM {delivery} WHERE campaign_id = %s AND id >= %s AND status = %s "
        "ORDER BY id LIMIT 50)",
        [Delivery.Status.SENT, campaign.pk, first_id, Delivery.Status.QUEUED],
    )
    del Campaign
    return captured


class _Captured(Exception):
    pass


def _finish(campaign) -> None:
    from marketing.sending import campaigns_finish

    campaigns_finish(campaign_ids=[campaign.pk])


def clear_campaigns() -> None:
    """No deliveries or campaigns left (the broker is not touched: nothing is enqueued here)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE marketing_delivery CASCADE")
        cursor.execute("DELETE FROM marketing_campaignaction")
        cursor.execute("DELETE FROM marketing_campaign")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sent", type=float, default=0.5, help="share of the campaign sent before the second look")
    parser.add_argument("--plans", action="store_true", help="print the whole plans")
    args = parser.parse_args()
    common.setup_django()
    from django.db import connection
    from django.utils import timezone

    from bench.bench_send import new_campaign
    from marketing import dispatch, sql
    from marketing.models import Campaign, Delivery

    print(f"Machine: {common.machine()}; load average {common.load()}")
    clear_campaigns()
    campaign = new_campaign(scheduled=True)
    dispatch.campaigns_dispatch_due()
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.SENDING
    ranges = dispatch.batch_ranges(campaign.pk)
    total = Delivery.objects.filter(campaign=campaign).count()
    print(f"{total:,} deliveries in {len(ranges):,} batches")
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE marketing_delivery")
        points = [("start", 0), (f"after {args.sent:.0%} sent", int(len(ranges) * args.sent))]
        done = 0
        for label, upto in points:
            delivery = sql.table(Delivery)
            # Send the batches before `upto` as the workers do: claim (queued -> sending), then mark.
            for batch in ranges[done:upto]:
                cursor.execute(
                    f"UPDATE {delivery} SET status = 'sending', claimed_at = now(), attempts = attempts + 1 "
                    "WHERE campaign_id = %s AND id >= %s AND id <= %s AND status = 'queued'",
                    [campaign.pk, batch.first_id, batch.last_id],
                )
                cursor.execute(
                    f"UPDATE {delivery} SET status = 'sent', sent_at = now(), message_id = md5(id::text), "
                    "subject = 'What is new in PhotoForge 5' "
                    "WHERE campaign_id = %s AND id >= %s AND id <= %s AND status = 'sending'",
                    [campaign.pk, batch.first_id, batch.last_id],
                )
            done = upto
            batch = ranges[min(upto, len(ranges) - 1)]
            print(f"\n== {label} (next batch {batch.first_id}..{batch.last_id}); load {common.load()}")
            print(f"   pg_stat_user_tables: {table_stats(cursor)}")
            for name, (statement, params) in statements(
                campaign, batch.first_id, batch.last_id, timezone.now()
            ).items():
                plan, ms = explain(cursor, statement, params)
                buffers = re.findall(r"Buffers: shared ([^\n]+)", plan)
                print(f"   {name}: {ms} ms; top node buffers: {buffers[0] if buffers else '-'}")
                if args.plans:
                    print("\n".join("      " + line for line in plan.splitlines()))
    clear_campaigns()


if __name__ == "__main__":
    main()
