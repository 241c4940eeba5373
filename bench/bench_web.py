"""
Benchmark 3: the preference page (a valid signed link for a customer of the benchmark
database) served by gunicorn with DEBUG off, against the trivial view /healthz on the same
server in the same run, each under `wrk -t2 -c8 -d15s --latency`, in 3 rounds that alternate
which is measured first; the medians are printed. Also the number of SQL
queries one page view makes (Django's test client with CaptureQueriesContext).

    .venv/bin/python -m bench.bench_web          # needs bench.generate to have run

Target (issue 18): the page at >= 50% of the trivial view's rate, its p99 under 30 ms at 8 connections.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess

from bench import common, processes

UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def milliseconds(text: str) -> float:
    found = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    assert found, text
    number, unit = found.groups()
    return float(number) * UNITS[unit]


def _found(pattern: str, output: str) -> str:
    """The first group of `pattern` in wrk's output (lines matched one by one)."""
    found = re.search(pattern, output, re.M)
    assert found, f"wrk's output has no {pattern!r}:\n{output}"
    return found.group(1)


def wrk(url: str, *, seconds: int, connections: int) -> dict:
    binary = processes.ensure_tool("wrk", "wrk")
    output = subprocess.run(
        [binary, "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rate = float(_found(r"Requests/sec:\s+([\d.]+)", output))
    p50 = milliseconds(_found(r"^\s+50%\s+(\S+)", output))
    p99 = milliseconds(_found(r"^\s+99%\s+(\S+)", output))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket_errors = re.search(r"Socket errors: (.*)", output)
    return {
        "rate": rate,
        "p50_ms": p50,
        "p99_ms": p99,
        "non_2xx": int(errors.group(1)) if errors else 0,
        "socket_errors": socket_errors.group(1) if socket_errors else "",
    }


def page_queries(path: str) -> tuple[int, list[str]]:
    from django.conf import settings
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    settings.ALLOWED_HOSTS.append("testserver")
    client = Client()
    client.get(path)  # a first view warms caches (ContentType, the policy version) as a server would be
    with CaptureQueriesContext(connection) as queries:
        response = client.get(path)
    assert response.status_code == 200, response.status_code
    assert b"newsletter" in response.content.lower() or b"Newsletter" in response.content
    return len(queries.captured_queries), [q["sql"][:160] for q in queries.captured_queries]


# Where a gunicorn worker's time goes on the page: (label, a frame's text that marks it).
CATEGORIES = [
    ("the view (token check, queries, rendering)", "preferences (consents/views.py"),
    ("  rendering templates (Django's engine)", "render (django/template/backends/django.py"),
    ("  the query (one prepared statement: run, convert rows)", "fetch (common/prepared.py"),
    ("    of which waiting for PostgreSQL", "wait (psycopg/"),
    ("  checking the signed link (django.core.signing)", "loads (django/core/signing.py"),
    ("middleware before and after the view", "__call__ (django/utils/deprecation.py"),
    ("gunicorn: reading the request, writing the response", "handle_request (gunicorn/"),
]


def profile_workers(master: int, page: str, *, seconds: int, connections: int) -> None:
    """py-spy over the gunicorn workers while wrk requests the page; prints where the time goes."""
    import collections
    import threading

    spy = common.ROOT / ".venv" / "bin" / "py-spy"
    out = processes.VAR / "profile-web.txt"
    load = threading.Thread(target=wrk, args=(page,), kwargs={"seconds": seconds, "connections": connections})
    load.start()
    subprocess.run(
        [
            *(str(spy), "record", "--pid", str(master), "--subprocesses", "--duration", str(seconds - 2)),
            *("--rate", "200", "--format", "raw", "--output", str(out), "--nonblocking"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,
    )
    load.join()
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in out.read_text().splitlines() if out.exists() else []:
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n, frames = int(count), stack.split(";")
        if not any("handle_request (gunicorn/" in f for f in frames):
            continue  # a worker waiting for a connection
        total += n
        own[frames[-1]] += n
        for label, needle in CATEGORIES:
            if any(needle in frame for frame in frames):
                inclusive[label] += n
    print(f"\n  py-spy of the workers serving the page ({total:,} samples in requests, {out}):")
    for label, _needle in CATEGORIES:
        print(f"    {inclusive[label] / max(total, 1) * 100:5.1f}%  {label}")
    print("    functions with the most own time:")
    for frame, n in own.most_common(10):
        print(f"    {n / max(total, 1) * 100:5.1f}%  {frame[:110]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--workers", type=int, default=int(os.environ.get("BENCH_GUNICORN_WORKERS", "4")))
    parser.add_argument("--rounds", type=int, default=3, help="rounds, alternating which is measured first")
    parser.add_argument("--profile", action="store_true", help="py-spy on the gunicorn workers during a page run")
    args = parser.parse_args()
    port = processes.free_port()
    site = f"http://127.0.0.1:{port}"
    os.environ["SITE_URL"] = site
    common.setup_django()
    from consents.tokens import preference_url
    from customers.models import Customer

    customer = Customer.objects.filter(email="customer500000@bench.example").first() or Customer.objects.last()
    assert customer is not None, "no customers: generate the data first"
    page = preference_url(customer)
    path = page.removeprefix(site)
    count, sql = page_queries(path)
    print(f"Machine: {common.machine()}; load average: {common.load()}")
    print(f"Customers: {Customer.objects.count():,}; one preference page view makes {count} SQL queries:")
    for line in sql:
        print(f"    {line}")

    env = {**common.bench_environment(), "SITE_URL": site}
    log = processes.VAR / "gunicorn.log"
    processes.VAR.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        server = subprocess.Popen(
            [
                str(common.ROOT / ".venv" / "bin" / "gunicorn"),
                *("config.wsgi", "-b", f"127.0.0.1:{port}", "-w", str(args.workers), "--log-level", "warning"),
            ],
            cwd=common.ROOT,
            env={**env, "PYTHONUNBUFFERED": "1"},
            stdout=subprocess.DEVNULL,
            stderr=out,
            start_new_session=True,
        )
    try:
        processes.wait_for_port(port)
        # Warm every worker (imports, database connection) before measuring.
        wrk(f"{site}/healthz", seconds=2, connections=args.connections)
        wrk(page, seconds=2, connections=args.connections)
        urls = {"healthz": f"{site}/healthz", "preference page": page}
        rounds: dict[str, list[dict]] = {name: [] for name in urls}
        ratios = []
        for number in range(args.rounds):
            order = list(urls) if number % 2 == 0 else list(reversed(urls))
            for name in order:
                load = common.load()
                r = wrk(urls[name], seconds=args.seconds, connections=args.connections)
                r["load"] = load
                rounds[name].append(r)
                print(
                    f"  round {number + 1} {name:16s} {r['rate']:8,.0f} req/s  p50 {r['p50_ms']:6.2f} ms"
                    f"  p99 {r['p99_ms']:6.2f} ms  non-2xx {r['non_2xx']}  (load before {load})"
                )
            ratios.append(rounds["preference page"][-1]["rate"] / rounds["healthz"][-1]["rate"])
        results = {name: _median_run(runs) for name, runs in rounds.items()}
        if args.profile:
            profile_workers(server.pid, page, seconds=args.seconds, connections=args.connections)
    finally:
        processes.stop(server)
    page_r, trivial = results["preference page"], results["healthz"]
    ratio = statistics.median(ratios)
    print(
        f"\nPreference page under wrk -t2 -c{args.connections} -d{args.seconds}s, gunicorn with {args.workers} "
        f"sync workers, DEBUG off, median of {args.rounds} rounds (healthz {trivial['rate']:,.0f} req/s, "
        f"page {page_r['rate']:,.0f} req/s; ratios {', '.join(f'{r * 100:.0f}%' for r in ratios)}):"
        f"\n  ratio to /healthz {ratio * 100:.0f}% (target >= 50%) "
        f"{'OK' if ratio >= 0.5 else 'MISSED'}; p99 {page_r['p99_ms']:.1f} ms (target < 30 ms) "
        f"{'OK' if page_r['p99_ms'] < 30 else 'MISSED'}; {count} SQL queries per view"
    )
    if any(r["non_2xx"] for runs in rounds.values() for r in runs):
        raise SystemExit("some responses were not 2xx: the figures do not measure the page")
    common.record("web", {"healthz": trivial, "page": page_r, "ratio": ratio, "ratios": ratios, "queries": count})


def _median_run(runs: list[dict]) -> dict:
    """Each figure's median over the rounds (p99 too: the median round's tail, not the worst)."""
    return {
        "rate": statistics.median(r["rate"] for r in runs),
        "p50_ms": statistics.median(r["p50_ms"] for r in runs),
        "p99_ms": statistics.median(r["p99_ms"] for r in runs),
        "non_2xx": sum(r["non_2xx"] for r in runs),
        "loads": [r["load"] for r in runs],
    }


if __name__ == "__main__":
    main()
