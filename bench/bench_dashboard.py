"""
The dashboard (the admin's home page) at two sizes: server time (median of 5) and query
count at 1,000 customers and at the big database (1,000,000 from bench.generate), with a
campaign sending to every newsletter subscriber, ten campaigns sent, open privacy requests
and suppressions; also how long the beat refresh of its figures takes at each size.

    .venv/bin/python -m bench.generate --customers 1000000     # once (BENCH_DB)
    .venv/bin/python -m bench.bench_dashboard

Target: under 300 ms at the big size, with the same number of queries at both sizes.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from datetime import timedelta

from bench import common

TARGET_MS = 300


def add_activity() -> None:
    """Campaigns (one sending to every newsletter subscriber), privacy requests and suppressions."""
    from django.db import connection, transaction
    from django.utils import timezone

    from consents.models import Purpose
    from marketing.models import Campaign, Delivery
    from privacy.models import PrivacyRequest

    newsletter = Purpose.objects.get(code="newsletter")
    now = timezone.now()
    if Campaign.objects.filter(name__startswith="Bench dashboard").exists():
        return
    with transaction.atomic():
        for n in range(11):
            campaign = Campaign.objects.create(
                name=f"Bench dashboard {n}",
                purpose=newsletter,
                subject="News",
                text_body="Hello",
                status=Campaign.Status.SENDING if n == 10 else Campaign.Status.SENT,
                scheduled_at=now,
                dispatched_at=now - timedelta(days=10 - n),
            )
            share = f"k.customer_id %% 10 = {n}" if n < 10 else "true"
            # The sending one: every subscriber, a third already sent; the sent ones: a tenth each.
            with connection.cursor() as cursor:
                cursor.execute(
                    f"""
                    INSERT INTO marketing_delivery (campaign_id, customer_id, status, skip_reason, attempts,
                        next_attempt_at, message_id, subject, last_error, created_at)
                    SELECT %s, k.customer_id,
                        CASE WHEN k.customer_id %% 3 = 0 OR %s THEN 'sent' ELSE 'queued' END,
                        '', 0, now(), '', '', '', now()
                    FROM consents_consent k WHERE k.purpose_id = %s AND k.granted AND {share}
                    """,
                    [campaign.pk, n < 10, newsletter.pk],
                )
        with connection.cursor() as cursor:
            cursor.execute(
                """
                INSERT INTO customers_privacyrequest (customer_id, kind, channel, details, received_at, due_at,
                    extension_reason, status, refusal_reason)
                SELECT n, 'access', 'email', '', now() - (n % 60) * interval '1 day',
                    now() - (n % 60) * interval '1 day' + interval '30 days', '', 'open', ''
                FROM generate_series(1, 200) AS n
                """
            )
            cursor.execute(
                """
                INSERT INTO marketing_suppression (address_hash, reason, created_at, note)
                SELECT md5(n::text) || md5((n + 1)::text), 'hard_bounce', now() - (n % 365) * interval '1 day', ''
                FROM generate_series(1, 5000) AS n
                """
            )
    assert PrivacyRequest.objects.filter(status="open").exists()
    with connection.cursor() as cursor:
        for table in [Delivery._meta.db_table, "customers_privacyrequest", "marketing_suppression"]:
            cursor.execute(f"VACUUM ANALYZE {table}")


def measure(label: str) -> dict:
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from customers.models import Customer
    from dashboard.services import figures_refresh

    customers = Customer.objects.count()
    start = time.perf_counter()
    figures = figures_refresh()
    refresh = time.perf_counter() - start
    user, _ = get_user_model().objects.get_or_create(
        username="bench-admin", defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client()
    client.force_login(user)
    client.get("/admin/")  # warm: templates compiled, connection open
    timings = []
    for _ in range(5):
        with CaptureQueriesContext(connection) as queries:
            start = time.perf_counter()
            response = client.get("/admin/")
            timings.append(time.perf_counter() - start)
        assert response.status_code == 200, response.status_code
    query_ms = sum(float(q["time"]) for q in queries.captured_queries) * 1000
    result = {
        "customers": customers,
        "median_ms": statistics.median(timings) * 1000,
        "queries": len(queries.captured_queries),
        "query_ms": query_ms,
        "refresh_s": refresh,
        "refresh_parts_ms": {f.name: f.took_ms for f in figures},
        "load": common.load(),
    }
    print(
        f"  [{label}] {customers:>9,} customers: dashboard {result['median_ms']:7.1f} ms server time "
        f"(median of 5), {result['queries']} queries ({query_ms:.1f} ms in the database); "
        f"beat refresh {refresh:.1f} s {result['refresh_parts_ms']}; load average {result['load']}"
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small-db", default=os.environ.get("BENCH_SMALL_DB", common.BENCH_DB + "_dash_1k"))
    parser.add_argument("--small", type=int, default=1000)
    parser.add_argument("--small-only", action="store_true", help="measure the small size only")
    args = parser.parse_args()
    print(f"Machine: {common.machine()}")
    big_db = common.BENCH_DB
    # The small database is made here, so the two sizes are measured in the same run.
    common.BENCH_DB = args.small_db
    common.create_database(fresh=True)
    common.migrate()
    common.setup_django()
    from django.conf import settings
    from django.db import connections

    from bench.generate import generate

    settings.ALLOWED_HOSTS.append("testserver")
    settings.DEBUG = False
    generate(args.small)
    add_activity()
    small = measure("small")
    results = {"small": small}
    if not args.small_only:
        connections.close_all()
        settings.DATABASES["default"]["NAME"] = big_db
        add_activity()
        big = measure("big")
        results["big"] = big
        verdict = "PASS" if big["median_ms"] < TARGET_MS and big["queries"] == small["queries"] else "FAIL"
        print(
            f"\nDashboard at {big['customers']:,} customers: {big['median_ms']:.1f} ms, {big['queries']} queries "
            f"(at {small['customers']:,}: {small['median_ms']:.1f} ms, {small['queries']} queries); "
            f"target under {TARGET_MS} ms with a constant query count: {verdict}"
        )
    common.record("dashboard", results)
    connections.close_all()
    common.drop_database_named(args.small_db)


if __name__ == "__main__":
    main()
