"""
The customer import end to end on PostgreSQL: a generated CSV of N new customers (1,000,000
by default) imported with `manage.py import_customers` into a migrated database of its own,
as a user runs it. Prints rows per second (from starting the command to its exit: reading,
checking, COPY, the one INSERT … SELECT, commit) and the command's peak memory (maximum
resident set size, from the kernel's accounting of the finished child), with the load average.

    .venv/bin/python -m bench.bench_import                     # 1,000,000 rows, one round
    .venv/bin/python -m bench.bench_import --rows 100000 --rounds 3
    .venv/bin/python -m bench.bench_import --profile           # py-spy on the command as well

Targets (issue 18): >= 5,000 rows/s, peak memory <= 300 MB.
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench import common

TEMPLATE = f"{common.BENCH_DB}_import_template"
HEADER = [
    "email",
    "first_name",
    "last_name",
    "job_title",
    "company",
    "phone",
    "address_line1",
    "address_line2",
    "city",
    "region",
    "postal_code",
    "country",
    "language",
    "currency",
]
FIRST = ["Ada", "Grace", "Linus", "Barbara", "Edsger", "Margaret", "Alan", "Katherine", "Dennis", "Frances"]
LAST = ["Lovelace", "Hopper", "Torvalds", "Liskov", "Dijkstra", "Hamilton", "Turing", "Johnson", "Ritchie", "Allen"]
JOBS = ["", "", "Engineer", "Buyer", "Office manager", "Director"]
COMPANIES = ["", "", "", "Analytical Ltd", "Compiler GmbH", "Kernel SARL", "Byte & Co"]
# (country, currency, language, city, region, postal code, phone pattern): all valid numbers.
PLACES = [
    ("GB", "GBP", "en", "London", "", "EC1A 1AA", "+44 20 7946 {:04d}"),
    ("US", "USD", "en", "Arlington", "VA", "22201", "+1 202 555 {:04d}"),
    ("DE", "EUR", "de", "Berlin", "", "10115", "+49 30 9018{:04d}"),
    ("FR", "EUR", "fr", "Paris", "", "75001", "+33 1 42 68 {:02d} 00"),
]


def generate_csv(path: Path, rows: int, *, seed: int = 18) -> None:
    """New customers with a mix of filled and empty columns; 30% have a phone number."""
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(HEADER)
        for n in range(rows):
            country, currency, language, city, region, postal, phone = rng.choice(PLACES)
            number = phone.format(n % (100 if "{:02d}" in phone else 10000)) if rng.random() < 0.3 else ""
            writer.writerow(
                [
                    f"customer{n}@example.com",
                    rng.choice(FIRST),
                    rng.choice(LAST),
                    rng.choice(JOBS),
                    rng.choice(COMPANIES),
                    number,
                    f"{rng.randint(1, 200)} High Street",
                    "",
                    city,
                    region,
                    postal,
                    country,
                    language if rng.random() < 0.9 else "",
                    currency,
                ]
            )


def import_once(path: Path, *, profile: Path | None) -> dict:
    import psycopg

    # A fresh copy of the migrated database for each round (the ledger refuses TRUNCATE).
    common.drop_database()
    common.admin_sql(f'CREATE DATABASE "{common.BENCH_DB}" TEMPLATE "{TEMPLATE}"')
    common.checkpoint()
    command = [sys.executable, "manage.py", "import_customers", str(path), "--no-progress"]
    if profile:
        py_spy = Path(sys.executable).with_name("py-spy")
        command = [str(py_spy), "record", "--rate", "100", "--format", "raw", "-o", str(profile), "--", *command]
    load_before = common.load()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run(command, cwd=common.ROOT, env=common.bench_environment(), capture_output=True, text=True)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise SystemExit(f"import failed:\n{result.stdout}\n{result.stderr}")
    with psycopg.connect(common.bench_database_url()) as conn:
        counted = conn.execute("SELECT count(*) FROM customers_customer").fetchone()
        assert counted is not None  # count(*) returns one row
        imported = counted[0]
    return {
        "rows": imported,
        "seconds": seconds,
        "rate": imported / seconds,
        # ru_maxrss of the children is the largest one's peak (kB): the import command.
        "peak_rss_mb": after.ru_maxrss / 1024,
        "cpu_s": (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
        "load_before": load_before,
        "load_after": common.load(),
        "output": [line for line in result.stdout.splitlines() if line.startswith("Imported")][-1:],
    }


# Where the command's time goes: (label, a frame's text that marks it), inclusive shares.
CATEGORIES = [
    ("reading the file (csv)", "_checked_rows"),
    ("checking rows in this process (_RowChecker.clean)", "_RowChecker.clean"),
    ("... of which the fast check (FastRowCheck.clean)", "FastRowCheck.clean"),
    ("... of which the form (CustomerImportRowForm)", "BaseForm.is_valid"),
    ("... of which phone numbers (phonenumbers)", "phonenumbers"),
    ("waiting for the worker processes (IMPORT_CHECK_WORKERS)", "AsyncResult.get"),
    ("COPY into the staging table", "write_row"),
    ("looking up existing customers", "_existing_customers"),
    ("the new-address check (erased addresses)", "refuse_erased_addresses"),
    ("INSERT ... SELECT (the move into customers_customer)", "!check_chunk"),
    ("starting Django", "setup ("),
]


def summarise_profile(path: Path) -> None:
    import collections

    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n, frames = int(count), stack.split(";")
        total += n
        own[frames[-1]] += n
        for label, needle in CATEGORIES:
            if needle.startswith("!"):  # a statement run by _import_by_copy itself, not by a chunk's check
                hit = any("_import_by_copy" in f for f in frames) and not any(needle[1:] in f for f in frames)
                hit = hit and any("CursorWrapper.execute" in f for f in frames)
            else:
                hit = any(needle in frame for frame in frames)
            if hit:
                inclusive[label] += n
    print(f"  profile ({total:,} samples at 100 Hz, {path}):")
    for label, _needle in CATEGORIES:
        print(f"    {inclusive[label] / max(total, 1) * 100:5.1f}%  {label}")
    print("    functions with the most own time:")
    for frame, n in own.most_common(10):
        print(f"    {n / total * 100:5.1f}%  {frame[:110]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--profile", action="store_true", help="record the last round with py-spy (raw stacks)")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()

    os.environ["BENCH_DB"] = common.BENCH_DB = TEMPLATE
    print(f"Machine: {common.machine()}; load average {common.load()}")
    common.create_database(fresh=True)
    common.migrate()
    os.environ["BENCH_DB"] = common.BENCH_DB = TEMPLATE.removesuffix("_template")
    path = common.ROOT / "var" / "bench" / f"import-{args.rows}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        with common.Timer() as timer:
            generate_csv(path, args.rows)
        print(f"Generated {path} ({path.stat().st_size / 1e6:.0f} MB) in {timer.seconds:.0f} s")
    results = []
    for number in range(1, args.rounds + 1):
        profile = path.with_suffix(".profile.txt") if args.profile and number == args.rounds else None
        figures = import_once(path, profile=profile)
        results.append(figures)
        print(
            f"round {number}: {figures['rows']:,} rows in {figures['seconds']:.1f} s = {figures['rate']:,.0f} rows/s, "
            f"peak RSS {figures['peak_rss_mb']:.0f} MB, CPU {figures['cpu_s']:.0f} s; "
            f"load {figures['load_before']} -> {figures['load_after']}; {figures['output']}",
            flush=True,
        )
        if profile:
            summarise_profile(profile)
    rate = statistics.median(r["rate"] for r in results)
    peak = max(r["peak_rss_mb"] for r in results)
    print(
        f"\nImport of {args.rows:,} rows on PostgreSQL: median {rate:,.0f} rows/s (target >= 5,000), "
        f"peak RSS {peak:.0f} MB (target <= 300)"
    )
    common.record(f"import_{args.rows}", {"rate": rate, "peak_rss_mb": peak, "rounds": results})
    if not args.keep:
        common.drop_database()
    common.drop_database_named(TEMPLATE)


if __name__ == "__main__":
    main()
