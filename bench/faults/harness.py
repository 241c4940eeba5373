"""
What every fault scenario shares: a database of its own (copied from a migrated template),
customers who consent, a recording SMTP sink process, the project's Celery workers as real
processes, a beat stand-in that runs the tick, and the checks at the end.

Each scenario runs in its own process (Django is configured once, from the environment this
module sets before django.setup()).
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import math
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench import common, processes

FAULTS_DIR = processes.VAR / "faults"


def migrations_fingerprint() -> str:
    """Names the template database after the migrations it was made with (names and contents)."""
    digest = hashlib.sha256()
    for path in sorted(common.ROOT.glob("*/migrations/0*.py")):
        digest.update(str(path.relative_to(common.ROOT)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:10]


def admin_connect(server_url: str):
    import psycopg

    return psycopg.connect(f"{server_url}/postgres", autocommit=True)


def database_exists(server_url: str, name: str) -> bool:
    with admin_connect(server_url) as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is not None


def migrate(database_url: str) -> None:
    env = {**os.environ, "DATABASE_URL": database_url, "CELERY_BROKER_URL": "memory://", "LOG_LEVEL": "WARNING"}
    # The scenario's database is its own, made and used by the one role of database_url.
    env.pop("MIGRATION_DATABASE_URL", None)
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=common.ROOT, env=env, check=True)


def create_database(server_url: str, name: str) -> None:
    """A fresh copy of a migrated template (migrating once, not once per scenario)."""
    template = f"consentdesk_bench_fault_tpl_{migrations_fingerprint()}"
    if not database_exists(server_url, template):
        with admin_connect(server_url) as conn:
            conn.execute(f'CREATE DATABASE "{template}_new"')
        migrate(f"{server_url}/{template}_new")
        with admin_connect(server_url) as conn, contextlib.suppress(Exception):
            conn.execute(f'ALTER DATABASE "{template}_new" RENAME TO "{template}"')
    with admin_connect(server_url) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')


def drop_database(server_url: str, name: str) -> None:
    with contextlib.suppress(Exception), admin_connect(server_url) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class Scenario:
    name: str
    recipients: int
    server_url: str  # postgres://user@host:port (no database)
    broker_url: str
    queue: str
    batch_size: int = 500
    claim_size: int = 50
    send_rate: float = 0
    concurrency: int = 2
    store_messages: bool = False
    sending_timeout: int = 20  # seconds before a row left "sending" becomes "unknown"
    site_url: str = "https://consent.example.com"
    workers: list[subprocess.Popen] = field(default_factory=list)
    sink: subprocess.Popen | None = None
    violations: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.database = f"consentdesk_bench_fault_{self.name.replace('-', '_')}_{os.getpid()}"
        # A queue of its own: nothing left by an earlier run, nothing taken from another.
        self.queue = f"{self.queue}-{self.name}-{os.getpid()}"
        self.dir = FAULTS_DIR / f"{self.name}-{os.getpid()}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.record = self.dir / "sink.tsv"
        self.smtp_port = processes.free_port()

    # -- set-up ---------------------------------------------------------------------------

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("MIGRATION_DATABASE_URL", None)
        env.update(
            {
                "DATABASE_URL": f"{self.server_url}/{self.database}",
                "CELERY_BROKER_URL": self.broker_url,
                "CELERY_QUEUE": self.queue,
                "EMAIL_URL": f"smtp://127.0.0.1:{self.smtp_port}",
                "SITE_URL": self.site_url,
                "DEBUG": "false",
                "SECRET_KEY": env.get("SECRET_KEY", "fault-" + "k" * 60),
                "RECEIPT_SIGNING_KEY": env.get("RECEIPT_SIGNING_KEY") or common.receipt_signing_key_file(),
                "ALLOWED_HOSTS": "127.0.0.1,localhost,testserver",
                "STAFF_REQUIRE_2FA": "false",
                "CACHE_URL": "locmemcache://",
                "LOG_LEVEL": "WARNING",
                "MARKETING_BATCH_SIZE": str(self.batch_size),
                "MARKETING_CLAIM_SIZE": str(self.claim_size),
                "MARKETING_SEND_RATE": str(self.send_rate),
                # Short enough to see the sweep and the stall recovery within a test.
                "MARKETING_SENDING_TIMEOUT_SECONDS": str(self.sending_timeout),
                "MARKETING_STALL_SECONDS": "4",
                "MARKETING_RETRY_BASE_SECONDS": "2",
                "CELERY_TASK_SOFT_TIME_LIMIT": str(max(3, self.sending_timeout - 5)),
                "CELERY_TASK_TIME_LIMIT": str(max(4, self.sending_timeout - 2)),
            }
        )
        return env

    def setup(self, *, create: bool = True) -> None:
        if create:
            create_database(self.server_url, self.database)
        os.environ.pop("MIGRATION_DATABASE_URL", None)
        os.environ.update(self.environment())
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
        import django

        django.setup()
        from bench.generate import MIX, generate

        generate_quietly(generate, math.ceil(self.recipients / MIX["newsletter"][0]))
        store = self.dir / "mail" if self.store_messages else None
        self.sink = processes.start_recording_sink(self.smtp_port, self.record, store=store)

    def start_worker(self, label: str) -> subprocess.Popen:
        name = f"{self.name}-{label}-{os.getpid()}"
        worker = processes.start_worker(
            self.environment(), name=name, concurrency=self.concurrency, log=self.dir / f"worker-{label}.log"
        )
        self.workers.append(worker)
        processes.wait_worker_ready(worker, name)
        return worker

    def dispatch(self):
        from bench.bench_send import new_campaign
        from marketing import tasks

        self.campaign = new_campaign(scheduled=True)
        self.started = time.time()
        tasks.campaigns_dispatch_due()
        self.audience = set(self.campaign.deliveries.values_list("customer__email", flat=True))
        say(f"dispatched {len(self.audience):,} deliveries")
        return self.campaign

    # -- while it runs --------------------------------------------------------------------

    def tick(self) -> dict | None:
        """What beat does every minute; here every couple of seconds. Survives a dead service."""
        from django.db import connections

        from marketing import tasks

        try:
            return tasks.campaigns_tick()
        except Exception as error:  # the broker or the database may be down on purpose
            say(f"tick failed ({type(error).__name__}: {str(error)[:80]}); next time")
            for conn in connections.all(initialized_only=True):
                conn.close()
            return None

    def received(self) -> list[tuple[float, str]]:
        if not self.record.exists():
            return []
        rows = []
        for line in self.record.read_text().splitlines():
            stamp, _, recipient = line.partition("\t")
            if recipient:
                rows.append((float(stamp), recipient))
        return rows

    def wait_until(self, condition, *, timeout: float, tick_every: float = 2.0, label: str = "") -> bool:
        deadline = time.time() + timeout
        last_tick = 0.0
        while time.time() < deadline:
            if time.time() - last_tick >= tick_every:
                self.tick()
                last_tick = time.time()
            try:
                if condition():
                    return True
            except Exception:  # a service is down on purpose: ask again
                from django.db import connections

                for conn in connections.all(initialized_only=True):
                    conn.close()
            time.sleep(0.2)
        self.violations.append(f"timed out after {timeout:.0f} s waiting for {label or 'a condition'}")
        return False

    def finished(self) -> bool:
        self.campaign.refresh_from_db()
        return self.campaign.status == "sent"

    def wait_finished(self, timeout: float) -> bool:
        return self.wait_until(self.finished, timeout=timeout, label="the campaign to finish")

    # -- checks ---------------------------------------------------------------------------

    def check(self, *, max_unknown: int = 0, every_consenting_sent: bool = False) -> dict[str, int]:
        from marketing import selectors
        from marketing.models import Delivery

        counts = selectors.campaign_status_counts(self.campaign)
        received = self.received()
        per_address = collections.Counter(recipient for _, recipient in received)
        duplicates = {address: n for address, n in per_address.items() if n > 1}
        if duplicates:
            sample = ", ".join(f"{a} x{n}" for a, n in list(duplicates.items())[:5])
            self.violations.append(f"{len(duplicates)} address(es) received the campaign twice or more: {sample}")
        strangers = set(per_address) - self.audience
        if strangers:
            self.violations.append(f"{len(strangers)} message(s) to addresses outside the campaign")
        sent = set(
            Delivery.objects.filter(campaign=self.campaign, status="sent").values_list("customer__email", flat=True)
        )
        missing = sent - set(per_address)
        if missing:
            self.violations.append(f"{len(missing)} row(s) marked sent that the sink never accepted")
        not_sent = set(per_address) - sent
        unknown = set(
            Delivery.objects.filter(campaign=self.campaign, status="unknown").values_list("customer__email", flat=True)
        )
        if not_sent - unknown:
            self.violations.append(f"{len(not_sent - unknown)} message(s) accepted for rows neither sent nor unknown")
        if counts["unknown"] > max_unknown:
            self.violations.append(f"{counts['unknown']} rows unknown (at most {max_unknown} allowed)")
        if counts["queued"] or counts["sending"]:
            self.violations.append(f"rows left queued ({counts['queued']}) or sending ({counts['sending']})")
        if every_consenting_sent and (counts["skipped"] or counts["failed"] or counts["unknown"]):
            self.violations.append(
                f"consenting recipients not sent: skipped {counts['skipped']}, failed {counts['failed']}, "
                f"unknown {counts['unknown']}"
            )
        seconds = (max((t for t, _ in received), default=self.started) - self.started) or 1
        say(
            f"sink accepted {len(received):,} messages for {len(per_address):,} addresses in {seconds:.1f} s; "
            f"rows: {', '.join(f'{k} {v:,}' for k, v in counts.items() if v)}"
        )
        return counts

    def teardown(self, *, keep: bool = False) -> None:
        for worker in self.workers:
            processes.stop(worker)
        processes.stop(self.sink)
        from django.db import connections

        connections.close_all()
        if not keep:
            drop_database(self.server_url, self.database)

    def verdict(self) -> int:
        if self.violations:
            for violation in self.violations:
                say(f"VIOLATION: {violation}")
            say(f"{self.name}: FAILED (logs in {self.dir})")
            return 1
        say(f"{self.name}: passed")
        return 0


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def generate_quietly(generate, customers: int) -> None:
    """The generator's progress bar is noise in a test's output."""
    import io

    with contextlib.redirect_stderr(io.StringIO()):
        generate(customers)


def kill_group(process: subprocess.Popen, signal_number: int) -> None:
    """kill -9 the worker and its pool processes together, as a crashed machine would."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal_number)
    process.wait()


def server_url_from_environment() -> str:
    """The PostgreSQL server named by DATABASE_URL (or the benchmarks' admin URL), without a database."""
    url = os.environ.get("FAULTS_POSTGRES_URL") or os.environ.get("DATABASE_URL") or common.ADMIN_URL
    if not url.startswith("postgres"):
        url = common.ADMIN_URL
    return url.rsplit("/", 1)[0]


def wait_sent_fraction(scenario: Scenario, fraction: float, timeout: float = 300) -> None:
    target = max(1, int(len(scenario.audience) * fraction))
    scenario.wait_until(lambda: len(scenario.received()) >= target, timeout=timeout, label=f"{target} messages")


def pg_ctl() -> Path:
    return Path(processes.ensure_tool("pg_ctl", "postgresql"))
