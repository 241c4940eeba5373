"""
Benchmarks 4 and 5: the admin customer changelist at two sizes, and the consent query.

    .venv/bin/python -m bench.bench_queries            # uses the databases bench.generate filled

Admin: the changelist's first page, a search by email and a filter by consent, each timed
(median of 5) with its query count, at 1k and at the big database; no query may count the
whole customer table. Consent query: "customers consenting to newsletter" through the
current-state table and its partial index, with the plan.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import time

from bench import common

PAGES = {
    "first page": ("/admin/customers/customer/", {}),
    "search by email": ("/admin/customers/customer/", {"q": "customer{n}@bench.example"}),
    "filter by consent": ("/admin/customers/customer/", {"consent_newsletter": "granted"}),
}


def measure_admin(label: str) -> dict[str, tuple[float, int, bool]]:
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from customers.models import Customer

    user, _ = get_user_model().objects.get_or_create(
        username="bench-admin", defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client()
    client.force_login(user)
    some = Customer.objects.order_by("-id").values_list("id", flat=True).first()
    assert some is not None, "no customers: generate the data first"
    results = {}
    for name, (url, params) in PAGES.items():
        params = {k: v.format(n=some // 2 or 1) for k, v in params.items()}
        timings = []
        for _ in range(5):
            with CaptureQueriesContext(connection) as queries:
                start = time.perf_counter()
                response = client.get(url, params)
                timings.append(time.perf_counter() - start)
            assert response.status_code == 200, (name, response.status_code)
        unbounded = any(
            re.search(r'COUNT\(\*\).*FROM "customers_customer"(?!.*WHERE)', q["sql"]) for q in queries.captured_queries
        )
        results[name] = (statistics.median(timings), len(queries.captured_queries), unbounded)
        print(
            f"  [{label}] {name:18s} {results[name][0] * 1000:8.1f} ms  {results[name][1]:3d} queries"
            f"{'  UNBOUNDED COUNT(*)' if unbounded else ''}"
        )
    return results


def consent_query() -> None:
    from django.db import connection

    from consents.models import Consent, Purpose

    newsletter = Purpose.objects.get(code="newsletter")
    queryset = Consent.objects.filter(purpose=newsletter, granted=True).values_list("customer_id", flat=True)
    plan = queryset.explain(analyze=True)
    start = time.perf_counter()
    with connection.cursor() as cursor:
        sql, params = queryset.query.sql_with_params()
        cursor.execute(sql, params)
        rows = len(cursor.fetchall())
    seconds = time.perf_counter() - start
    uses_index = "consent_granted_by_purpose" in plan
    print(
        f"  consenting to newsletter: {rows:,} customers in {seconds * 1000:.1f} ms; "
        f"partial index used: {'yes' if uses_index else 'NO'}"
    )
    print("  plan: " + "\n        ".join(line for line in plan.splitlines() if line.strip())[:1500])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small-db", default=os.environ.get("BENCH_SMALL_DB", "consentdesk_bench_1k"))
    parser.add_argument("--small", type=int, default=1000)
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
    generate(args.small)
    small = measure_admin(f"{args.small:,}")
    connections.close_all()
    settings.DATABASES["default"]["NAME"] = big_db
    from customers.models import Customer

    size = Customer.objects.count()
    big = measure_admin(f"{size:,}")
    print("\nAdmin changelist, big vs small (target: within 3x, same query count, no unbounded COUNT):")
    for name in PAGES:
        ratio = big[name][0] / small[name][0]
        print(f"  {name:18s} {ratio:5.2f}x   queries {small[name][1]} -> {big[name][1]}")
    print("\nConsent query at the big size:")
    consent_query()
    common.drop_database_named(args.small_db)


if __name__ == "__main__":
    main()
