"""
Every benchmark and the full-size fault scenarios, in order, then a summary of the figures.

    .venv/bin/python -m bench.run_all                 # generates the 1M database if it is missing
    .venv/bin/python -m bench.run_all --skip-faults   # benchmarks only
    make bench                                        # the same as the first line

Each step runs as its own process (each configures Django for its own database). The
figures are also kept in var/bench-results.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

from bench import common


def step(title: str, *module_and_args: str) -> bool:
    print(f"\n{'=' * 8} {title} {'=' * 8}  (load average {common.load()})", flush=True)
    started = time.time()
    result = subprocess.run([sys.executable, "-m", *module_and_args], cwd=common.ROOT, check=False)
    print(f"-- {title}: {'done' if result.returncode == 0 else 'FAILED'} in {time.time() - started:.0f} s", flush=True)
    return result.returncode == 0


def big_database_ready() -> bool:
    import psycopg

    try:
        with psycopg.connect(common.bench_database_url(), connect_timeout=5) as conn:
            row = conn.execute("SELECT count(*) FROM customers_customer").fetchone()
            return row is not None and row[0] >= 1_000_000
    except Exception:
        return False


def summary() -> None:
    if not common.RESULTS.exists():
        return
    data = json.loads(common.RESULTS.read_text())
    print("\n======== Summary ========")
    print(f"Machine: {common.machine()}")
    if "dispatch" in data:
        d = data["dispatch"]
        print(
            f"1. dispatch: project {d['project_s']:.2f} s, hand-written INSERT {d['floor_s']:.2f} s, "
            f"ratio {d['ratio']:.2f}x (target <= 1.5)"
        )
    if "send" in data:
        for size, s in data["send"].items():
            if size == "decay":
                print(
                    f"   product rate largest/10k {s['rate']:.2f}x (target >= 0.9x), "
                    f"worker memory {s['memory']:.2f}x (target <= 1.1x)"
                )
                continue
            line = f"2. sending {s['product']['sent']:,}: product {s['product']['median_rate']:,.0f} msg/s"
            if "peer" in s:
                line += f", plain Celery peer {s['peer']['median_rate']:,.0f} msg/s, ratio {s['ratio']:.2f}x (>= 1.0x)"
            print(line + f"; worker peak RSS {s['product']['peak_rss_total_mb']:.0f} MB")
    for name, i in data.items():
        if name.startswith("import_"):
            print(
                f"6. import {name.removeprefix('import_')} rows: {i['rate']:,.0f} rows/s (>= 5,000), "
                f"peak RSS {i['peak_rss_mb']:.0f} MB (<= 300)"
            )
    if "web" in data:
        w = data["web"]
        print(
            f"3. preference page {w['page']['rate']:,.0f} req/s (p50 {w['page']['p50_ms']:.1f} ms, p99 "
            f"{w['page']['p99_ms']:.1f} ms) vs /healthz {w['healthz']['rate']:,.0f} req/s: {w['ratio'] * 100:.0f}% "
            f"(target >= 50%, p99 < 30 ms; median of rounds); {w['queries']} queries per view"
        )
    print("4-5. admin changelist and consent query: see the bench_queries output above")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skip-faults", action="store_true")
    parser.add_argument("--skip-large-send", action="store_true", help="sending at 10k and 100k only")
    args = parser.parse_args()
    print(f"Machine: {common.machine()}")
    ok = True
    if not big_database_ready():
        ok &= step("load 1,000,000 customers", "bench.generate", "--customers", "1000000", "--fresh")
    else:
        common.migrate()
    ok &= step("benchmark 1: dispatch", "bench.bench_dispatch")
    sizes = "10000,100000" if args.skip_large_send else "10000,100000,large"
    ok &= step("benchmark 2: sending", "bench.bench_send", "--sizes", sizes)
    ok &= step("benchmark 3: preference page", "bench.bench_web")
    ok &= step("benchmarks 4 and 5: admin changelist, consent query", "bench.bench_queries")
    ok &= step("benchmark 6: import of 1,000,000 rows", "bench.bench_import")
    if not args.skip_faults:
        ok &= step("fault scenarios, full size", "bench.faults", "all")
    summary()
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
