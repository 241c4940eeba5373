"""
Load N customers (default 1,000,000) with registrations, consent events and current
consent state into the benchmark database, server-side in chunks (INSERT … SELECT over
generate_series), with a progress bar.

    .venv/bin/python -m bench.generate --customers 1000000
    .venv/bin/python -m bench.generate --drop        # clean up: drop the benchmark database
"""

from __future__ import annotations

import argparse

from tqdm import tqdm

from bench import common

CHUNK = 100_000

# Share of customers per purpose: (granted now, withdrawn after granting).
MIX = {
    "newsletter": (0.60, 0.10),
    "promotions": (0.30, 0.15),
    "market_research": (0.15, 0.05),
    "internal_analysis": (0.50, 0.05),
}


def generate(customers: int) -> None:
    from django.db import connection, transaction

    from consents.models import PolicyVersion, Purpose
    from customers.models import Product, ThirdParty

    policy = PolicyVersion.objects.current()
    assert policy is not None, "no privacy policy: migrate first (a data migration adds one)"
    purposes = {p.code: p for p in Purpose.objects.all()}
    product_ids = [
        Product.objects.get_or_create(code=code, defaults={"name": name})[0].pk
        for name, code in [("PhotoForge Pro", "photoforge-pro"), ("DiskSense", "disksense"), ("TypeWise", "typewise")]
    ]
    reseller_ids = [
        ThirdParty.objects.get_or_create(name=name, defaults={"kind": "reseller", "country": country})[0].pk
        for name, country in [("Paddle", "GB"), ("cleverbridge", "DE")]
    ]
    with connection.cursor() as cursor:
        cursor.execute("SELECT coalesce(max(id), 0) FROM customers_customer")
        offset = cursor.fetchone()[0]
    countries = "ARRAY['US','GB','DE','FR','ES','IT','NL','PL','SE','JP']"
    languages = "ARRAY['en','en','de','fr','es','it','nl','pl','sv','ja']"
    currencies = "ARRAY['USD','GBP','EUR','EUR','EUR','EUR','EUR','PLN','SEK','JPY']"
    with tqdm(total=customers, unit="customer", desc="customers") as bar:
        for start in range(offset + 1, offset + customers + 1, CHUNK):
            stop = min(start + CHUNK - 1, offset + customers)
            with transaction.atomic(), connection.cursor() as cursor:
                # Bulk load: the rows are consistent by construction, so skip the per-row
                # foreign-key triggers (the benchmark connects as a superuser).
                cursor.execute("SET LOCAL session_replication_role = replica")
                cursor.execute(
                    f"""
                    INSERT INTO customers_customer (
                        id, public_id, email, first_name, last_name, job_title, company, phone,
                        address_line1, address_line2, city, region, postal_code, country, language,
                        currency, notes, signup_ip, signup_user_agent, created_at, updated_at)
                    SELECT n, gen_random_uuid(), 'customer' || n || '@bench.example',
                        (ARRAY['Ada','Grace','Alan','Edsger','Barbara','Donald','Margaret','Linus'])[1 + n %% 8],
                        'Surname' || (n %% 50000), '', CASE WHEN n %% 3 = 0 THEN 'Company ' || (n %% 20000) ELSE '' END,
                        '', n || ' Bench Street', '', 'City ' || (n %% 1000), '', lpad((n %% 99999)::text, 5, '0'),
                        ({countries})[1 + n %% 10], ({languages})[1 + n %% 10], ({currencies})[1 + n %% 10], '',
                        ('10.' || (n / 65536 %% 256) || '.' || (n / 256 %% 256) || '.' || (n %% 256))::inet,
                        'Mozilla/5.0 (bench)', now() - (n %% 900) * interval '1 day', now()
                    FROM generate_series(%s, %s) AS n
                    """,
                    [start, stop],
                )
                cursor.execute(
                    """
                    INSERT INTO customers_productregistration (
                        customer_id, product_id, licence_key, edition, version, reseller_id, order_reference,
                        purchased_at, refund_override_reason, created_at)
                    SELECT n, (%s::bigint[])[1 + n %% 3], 'KEY-' || md5(n::text), 'Standard', '5.1',
                        (%s::bigint[])[1 + n %% 2], 'ORD-' || n, now() - (n %% 900) * interval '1 day', '', now()
                    FROM generate_series(%s, %s) AS n
                    """,
                    [product_ids, reseller_ids, start, stop],
                )
                for code, (granted_share, withdrawn_share) in MIX.items():
                    purpose = purposes[code]
                    # A deterministic spread per purpose: hash the customer number into [0, 1).
                    share = f"(('x' || substr(md5(n::text || '{code}'), 1, 8))::bit(32)::bigint / 4294967296.0)"
                    # Everyone who ever granted has a "granted" event; some later withdrew.
                    cursor.execute(
                        f"""
                        WITH chosen AS (
                            SELECT n, {share} AS r FROM generate_series(%s, %s) AS n
                        ), granted AS (
                            INSERT INTO consents_consentevent (
                                customer_id, purpose_id, granted, occurred_at, recorded_at, source, method,
                                policy_version_id, wording, ip_address, user_agent, note, reference)
                            SELECT n, %s, true, now() - interval '400 days', now() - interval '400 days',
                                'signup_form', 'web', %s, %s, NULL, '', '', ''
                            FROM chosen WHERE r < %s
                            RETURNING id, customer_id
                        ), withdrawn AS (
                            INSERT INTO consents_consentevent (
                                customer_id, purpose_id, granted, occurred_at, recorded_at, source, method,
                                policy_version_id, wording, ip_address, user_agent, note, reference)
                            SELECT n, %s, false, now() - interval '30 days', now() - interval '30 days',
                                'preference_page', 'web', %s, %s, NULL, '', '', ''
                            FROM chosen WHERE r >= %s AND r < %s
                            RETURNING id, customer_id
                        )
                        INSERT INTO consents_consent (customer_id, purpose_id, granted, since, event_id)
                        SELECT g.customer_id, %s, w.id IS NULL, now() - interval '30 days', coalesce(w.id, g.id)
                        FROM granted g LEFT JOIN withdrawn w ON w.customer_id = g.customer_id
                        """,
                        [
                            start,
                            stop,
                            purpose.pk,
                            policy.pk,
                            purpose.wording,
                            granted_share + withdrawn_share,
                            purpose.pk,
                            policy.pk,
                            purpose.wording,
                            granted_share,
                            granted_share + withdrawn_share,
                            purpose.pk,
                        ],
                    )
            bar.update(stop - start + 1)
    with connection.cursor() as cursor:
        for table in [
            "customers_customer",
            "customers_productregistration",
            "consents_consentevent",
            "consents_consent",
        ]:
            cursor.execute(f"VACUUM ANALYZE {table}")
        cursor.execute(
            "SELECT setval(pg_get_serial_sequence('customers_customer', 'id'), max(id)) FROM customers_customer"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--fresh", action="store_true", help="drop and recreate the benchmark database first")
    parser.add_argument("--drop", action="store_true", help="drop the benchmark database and stop")
    args = parser.parse_args()
    if args.drop:
        common.drop_database()
        print(f"Dropped {common.BENCH_DB}.")
        return
    common.create_database(fresh=args.fresh)
    common.migrate()
    common.setup_django()
    generate(args.customers)
    print(f"Loaded {args.customers:,} customers into {common.BENCH_DB}.")


if __name__ == "__main__":
    main()
