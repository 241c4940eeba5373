"""
Benchmark 2: sending. Messages per second from dispatch to the last message accepted, with
the project's Celery worker processes on Redis sending to Postfix's smtp-sink on loopback,
against the peer, in the same run: the plain Celery sender a user would write by hand
(bench/peer_sender.py: the same recipients, the same message bytes, Celery on the same Redis
with the same concurrency, batches of the same size by id range, one SMTP connection per
batch, nothing recorded per message). Rounds alternate which goes first; the medians and their
ratio are printed per audience size, each figure with the load average. Also the worker's
peak memory (resident set of the worker and its pool processes, sampled every 0.2 s), and a
py-spy profile of the pool processes at the largest size.

    .venv/bin/python -m bench.bench_send                              # 10k and 100k, 3 rounds each
    .venv/bin/python -m bench.bench_send --sizes 10000 --rounds 1     # a quick look
    .venv/bin/python -m bench.bench_send --sizes 10000,100000,large   # large: the 1M database's audience

A size N runs on a database of its own made here (N / 0.6 customers, ~N consenting to the
newsletter) and dropped afterwards; `large` on the database bench.generate filled (1M
customers, 600,355 consenting). Targets on the 2-core machine: product / peer >= 1.0x at
100,000; >= 3,000 msg/s when the machine is otherwise idle; the product's rate at the largest
size >= 0.9x that at 10,000; worker peak memory there <= 1.1x.
"""

from __future__ import annotations

import argparse
import collections
import math
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench import common, processes

SUBJECT = 'What is new in PhotoForge 5, {{ first_name|default:"there" }}'
PARAGRAPH = (
    "PhotoForge 5 brings non-destructive layers, a faster RAW engine and a new export panel that "
    "remembers your presets per client. Existing licence holders upgrade at half price until the "
    "end of the month, and the upgrade keeps your settings, brushes and plug-ins where they are. "
)
TEXT_BODY = "Hello {{ first_name }},\n\n" + "\n\n".join([PARAGRAPH] * 5) + "\n\nThe PhotoForge team at {{ company }}"
HTML_BODY = (
    "<h1>PhotoForge 5 is here</h1><p>Hello {{ first_name }},</p>"
    + "".join(f"<p>{PARAGRAPH}</p>" for _ in range(5))
    + '<p><a href="https://example.com/photoforge-5">Read what is new</a></p>'
    + "<p>The PhotoForge team at {{ company }}</p>"
)
SMALL_DB = f"{common.BENCH_DB}_send"


def environment(port: int) -> dict[str, str]:
    env = common.bench_environment()
    env.update(
        {
            "EMAIL_URL": f"smtp://127.0.0.1:{port}",
            "SITE_URL": "https://consent.example.com",
            "MARKETING_SEND_RATE": "0",
        }
    )
    return env


def use_database(name: str) -> None:
    from django.conf import settings
    from django.db import connections

    connections.close_all()
    common.BENCH_DB = name
    settings.DATABASES["default"]["NAME"] = name


def clear() -> None:
    """No deliveries or campaigns left from a previous run, an empty broker database."""
    import redis
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE marketing_delivery CASCADE")
        cursor.execute("DELETE FROM marketing_campaignaction")
        cursor.execute("DELETE FROM marketing_campaign")
        common.checkpoint(cursor)
    redis.Redis.from_url(common.BENCH_REDIS).flushdb()


def new_campaign(*, scheduled: bool):
    from datetime import timedelta

    from django.utils import timezone

    from consents.models import Purpose
    from marketing.models import Campaign

    campaign = Campaign(
        name="Bench newsletter",
        purpose=Purpose.objects.get(code="newsletter"),
        subject=SUBJECT,
        text_body=TEXT_BODY,
        html_body=HTML_BODY,
        status=Campaign.Status.SCHEDULED if scheduled else Campaign.Status.DRAFT,
        scheduled_at=timezone.now() - timedelta(seconds=1),
    )
    campaign.full_clean()
    campaign.save()
    return campaign


def profile(pid: int, seconds: int, out: Path) -> None:
    """py-spy over the worker and its pool processes; writes raw collapsed stacks and a summary."""
    spy = common.ROOT / ".venv" / "bin" / "py-spy"
    if not spy.exists():
        print("  (py-spy not installed: .venv/bin/pip install -r requirements-dev.txt; no profile)")
        return
    subprocess.run(
        [
            str(spy),
            "record",
            "--pid",
            str(pid),
            "--subprocesses",
            "--duration",
            str(seconds),
            "--rate",
            "200",
            "--format",
            "raw",
            "--output",
            str(out),
            "--nonblocking",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,
    )
    summarise_profile(out)


# Where the time of a pool process goes, by the function on the stack that owns it.
CATEGORIES = [
    ("build the message (marketing/emails.py build)", "build (marketing/emails.py"),
    ("  of which signed links (django.core.signing)", "dumps (django/core/signing.py"),
    ("  of which quoted-printable + compose", "_compose (marketing/emails.py"),
    ("send over SMTP (Sender.send: pipelined commands, data, replies)", "Sender.send (marketing/smtp.py"),
    ("  of which writing to the socket (loopback TCP, in the kernel)", "SMTP.send (smtplib.py"),
    ("  of which waiting for the sink's replies", "SMTP.getreply (smtplib.py"),
    ("claim rows (UPDATE … RETURNING)", "claim (marketing/sql.py"),
    ("lock the claim's consent rows (SELECT … FOR SHARE)", "lock_consents (marketing/sql.py"),
    ("load claimed rows and customers", "__iter__ (django/db/models/query.py"),
    ("mark rows sent (one UPDATE per claim)", "mark_sent (marketing/sql.py"),
    ("idle: waiting for a task (Celery/kombu)", "_recv"),
]


def summarise_profile(path: Path) -> dict[str, float]:
    if not path.exists():
        print("  (no profile written: py-spy may lack ptrace permission)")
        return {}
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        total += n
        own[frames[-1]] += n
        for label, needle in CATEGORIES:
            if any(needle in frame for frame in frames):
                inclusive[label] += n
    if not total:
        return {}
    print(f"  profile of the pool processes ({total:,} samples, {path}):")
    shares = {}
    for label, _needle in CATEGORIES:
        share = inclusive[label] / total
        shares[label.strip()] = share
        print(f"    {share * 100:5.1f}%  {label}")
    print("    functions with the most own time:")
    for frame, n in own.most_common(12):
        print(f"    {n / total * 100:5.1f}%  {frame[:110]}")
    return shares


def run_project(port: int, *, label: str, timeout: float, profile_seconds: int = 0, profile_after: float = 30) -> dict:
    from django.db.models import Max

    from marketing import selectors, tasks
    from marketing.models import Campaign, Delivery

    clear()
    env = environment(port)
    name = f"bench-send-{os.getpid()}"
    worker = processes.start_worker(env, name=name, concurrency=int(os.environ.get("BENCH_WORKER_CONCURRENCY", "2")))
    try:
        processes.wait_worker_ready(worker, name)
        sampler = processes.MemorySampler(worker.pid)
        sampler.start()
        campaign = new_campaign(scheduled=True)
        stats_before = delivery_table_stats()
        load_before = common.load()
        started = time.time()
        tasks.campaigns_dispatch_due()
        dispatched = time.time() - started
        recipients = Delivery.objects.filter(campaign=campaign).count()
        profiled = False
        deadline = started + timeout
        while time.time() < deadline:
            campaign.refresh_from_db()
            if campaign.status == Campaign.Status.SENT:
                break
            if profile_seconds and not profiled and time.time() - started > dispatched + profile_after:
                profiled = True
                profile(worker.pid, profile_seconds, processes.VAR / f"profile-{label}.txt")
            time.sleep(1)
        else:
            raise SystemExit(f"[{label}] the campaign did not finish within {timeout} s")
        sampler.stop()
        stats_after = delivery_table_stats()
        user, system = sampler.cpu_seconds()
        counts = selectors.campaign_status_counts(campaign)
        last = Delivery.objects.filter(campaign=campaign).aggregate(last=Max("sent_at"))["last"]
        seconds = last.timestamp() - started
        result = {
            "recipients": recipients,
            "sent": counts["sent"],
            "seconds": seconds,
            "dispatch_seconds": dispatched,
            "rate": counts["sent"] / seconds,
            "peak_rss_total_mb": sampler.peak_total / 2**20,
            "peak_rss_process_mb": sampler.peak_process / 2**20,
            "counts": {k: v for k, v in counts.items() if v},
            "worker_cpu_user_s": user,
            "worker_cpu_system_s": system,
            "load_before": load_before,
            "load_after": common.load(),
            "delivery_table": {
                key: stats_after[key] - stats_before.get(key, 0)
                if key.endswith("_count") or key.startswith("n_tup")
                else stats_after[key]
                for key in stats_after
            },
        }
        print(
            f"  [{label}] project: {result['sent']:,} sent of {recipients:,} in {seconds:.1f} s "
            f"(dispatch {dispatched:.1f} s) = {result['rate']:,.0f} msg/s; worker peak RSS "
            f"{result['peak_rss_total_mb']:.1f} MB (largest process {result['peak_rss_process_mb']:.1f} MB); "
            f"load {load_before} -> {result['load_after']}; worker CPU {user:.1f} s user + {system:.1f} s system"
        )
        table = result["delivery_table"]
        print(
            f"  [{label}] marketing_delivery during the run: {table['n_tup_upd']:,} row updates "
            f"({table['n_tup_hot_upd']:,} HOT), {table['autovacuum_count']} autovacuum(s); afterwards "
            f"{table['n_dead_tup']:,} dead tuples, table {table['table_mb']:.0f} MB, "
            f"indexes {table['indexes_mb']:.0f} MB",
            flush=True,
        )
        return result
    finally:
        processes.stop(worker)


def delivery_table_stats() -> dict:
    """marketing_delivery's counters in pg_stat_user_tables (updates, HOT updates, autovacuums, dead tuples)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT n_tup_upd, n_tup_hot_upd, autovacuum_count, n_dead_tup, pg_table_size(relid) / 1048576.0, "
            "pg_indexes_size(relid) / 1048576.0 FROM pg_stat_user_tables WHERE relname = 'marketing_delivery'"
        )
        row = cursor.fetchone()
    keys = ("n_tup_upd", "n_tup_hot_upd", "autovacuum_count", "n_dead_tup", "table_mb", "indexes_mb")
    return dict(
        zip(keys, [float(v) if isinstance(v, float) or hasattr(v, "as_tuple") else v for v in row], strict=True)
    )


def run_peer(port: int, *, label: str, timeout: float) -> dict:
    """The plain Celery sender (bench/peer_sender.py) on its own queue, the same concurrency."""
    from bench import peer_sender

    clear()
    env = {**environment(port), "PEER_QUEUE": peer_sender.QUEUE}
    name = f"bench-peer-{os.getpid()}"
    concurrency = int(os.environ.get("BENCH_WORKER_CONCURRENCY", "2"))
    worker = processes.start_worker(
        env,
        name=name,
        concurrency=concurrency,
        app="bench.peer_sender",
        extra=["-Q", peer_sender.QUEUE],
    )
    try:
        wait_peer_ready(worker, name)
        sampler = processes.MemorySampler(worker.pid)
        sampler.start()
        campaign = new_campaign(scheduled=False)
        load_before = common.load()
        started = time.time()
        peer_sender.dispatch(campaign.pk, settings_batch_size())
        dispatched = time.time() - started
        expected = audience(campaign)
        deadline = started + timeout
        while time.time() < deadline:
            sent, last = peer_sender.progress()
            if sent >= expected:
                break
            time.sleep(0.5)
        else:
            raise SystemExit(f"[{label}] the peer did not finish within {timeout} s ({sent:,} of {expected:,})")
        sampler.stop()
        user, system = sampler.cpu_seconds()
        assert last is not None  # it finished, so the peer noted when its last batch did
        seconds = last - started
        result = {
            "sent": sent,
            "seconds": seconds,
            "dispatch_seconds": dispatched,
            "rate": sent / seconds,
            "peak_rss_total_mb": sampler.peak_total / 2**20,
            "worker_cpu_user_s": user,
            "worker_cpu_system_s": system,
            "load_before": load_before,
            "load_after": common.load(),
        }
        print(
            f"  [{label}] peer:    {sent:,} sent in {seconds:.1f} s (dispatch {dispatched:.1f} s) = "
            f"{result['rate']:,.0f} msg/s; worker peak RSS {result['peak_rss_total_mb']:.1f} MB; "
            f"load {load_before} -> {result['load_after']}; worker CPU {user:.1f} s user + {system:.1f} s system",
            flush=True,
        )
        return result
    finally:
        processes.stop(worker)


def settings_batch_size() -> int:
    from django.conf import settings

    return settings.MARKETING_BATCH_SIZE


def audience(campaign) -> int:
    from marketing import sql

    return sql.audience_count(campaign)


def wait_peer_ready(process: subprocess.Popen, name: str, timeout: float = 60.0) -> None:
    from bench.peer_sender import app

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"peer worker exited with {process.returncode} (see var/bench/worker-{name}.log)")
        try:
            if app.control.ping(destination=[f"{name}@{socket.gethostname()}"], timeout=0.5):
                return
        except Exception:  # the broker connection is still being made
            time.sleep(0.2)
    raise RuntimeError(f"peer worker {name} did not answer a ping within {timeout} s")


def prepare_size(recipients: int, name: str) -> None:
    from bench.generate import MIX, generate

    use_database(name)
    common.create_database(fresh=True)
    common.migrate()
    use_database(name)
    generate(math.ceil(recipients / MIX["newsletter"][0]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--sizes",
        default="10000,100000",
        help="comma-separated audience sizes; 'large' is the 1M database's audience (bench.generate)",
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds per size, alternating who goes first")
    parser.add_argument("--timeout", type=float, default=3600)
    parser.add_argument("--profile-seconds", type=int, default=20, help="py-spy on the product at the largest size")
    parser.add_argument("--product-only", action="store_true", help="no peer (for the decay with audience size)")
    args = parser.parse_args()

    # Stopped from outside (a timeout): still stop the workers and the sink below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sizes = [size.strip() for size in args.sizes.split(",") if size.strip()]
    big_db = common.BENCH_DB
    common.setup_django()
    print(f"Machine: {common.machine()}; load average: {common.load()}", flush=True)
    port = processes.free_port()
    sink = processes.start_smtp_sink(port)
    results: dict[str, dict] = {}
    try:
        for size in sizes:
            if size == "large":
                name = big_db
                use_database(big_db)
            else:
                name = f"{SMALL_DB}_{size}"
                prepare_size(int(size), name)
            print(f"\n{size}: database {name}, load average {common.load()}", flush=True)
            rounds = []
            for number in range(1, args.rounds + 1):
                order = ["product", "peer"] if number % 2 else ["peer", "product"]
                if args.product_only:
                    order = ["product"]
                figures = {}
                for who in order:
                    label = f"{size} round {number}"
                    if who == "product":
                        last_round = number == args.rounds and size == sizes[-1]
                        figures[who] = run_project(
                            port,
                            label=label,
                            timeout=args.timeout,
                            profile_seconds=args.profile_seconds if last_round else 0,
                            profile_after=5,
                        )
                    else:
                        figures[who] = run_peer(port, label=label, timeout=args.timeout)
                rounds.append(figures)
            summary: dict[str, Any] = {"rounds": rounds}
            for who in ("product", "peer"):
                rates = [r[who]["rate"] for r in rounds if who in r]
                if rates:
                    summary[who] = {
                        "median_rate": statistics.median(rates),
                        "rates": rates,
                        "peak_rss_total_mb": max(r[who]["peak_rss_total_mb"] for r in rounds if who in r),
                        "sent": rounds[0][who]["sent"],
                    }
            if "peer" in summary:
                summary["ratio"] = summary["product"]["median_rate"] / summary["peer"]["median_rate"]
                summary["round_ratios"] = [r["product"]["rate"] / r["peer"]["rate"] for r in rounds]
            results[size] = summary
            clear()
            if size != "large":
                use_database(big_db)
                common.drop_database_named(name)
    finally:
        processes.stop(sink)
        use_database(big_db)

    print(f"\nSending, end to end (dispatch to the last message accepted by smtp-sink); load now {common.load()}:")
    for size, summary in results.items():
        product = summary["product"]
        line = (
            f"  {size:>7s} ({product['sent']:,} recipients): product median {product['median_rate']:,.0f} msg/s "
            f"({', '.join(f'{r:,.0f}' for r in product['rates'])})"
        )
        if "peer" in summary:
            peer = summary["peer"]
            line += (
                f", peer median {peer['median_rate']:,.0f} msg/s ({', '.join(f'{r:,.0f}' for r in peer['rates'])}), "
                f"ratio {summary['ratio']:.2f}x (per round {', '.join(f'{r:.2f}' for r in summary['round_ratios'])}; "
                f"target >= 1.0x)"
            )
        line += f"; product worker peak RSS {product['peak_rss_total_mb']:.1f} MB"
        print(line)
    if len(results) > 1:
        first, last = next(iter(results)), list(results)[-1]
        decay = results[last]["product"]["median_rate"] / results[first]["product"]["median_rate"]
        memory = results[last]["product"]["peak_rss_total_mb"] / results[first]["product"]["peak_rss_total_mb"]
        results["decay"] = {"rate": decay, "memory": memory}
        print(
            f"  product at {last} / at {first}: rate {decay:.2f}x (target >= 0.9x at the largest size), "
            f"worker peak memory {memory:.2f}x (target <= 1.1x)"
        )
    common.record("send", results)


if __name__ == "__main__":
    main()
