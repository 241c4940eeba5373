"""
Shared set-up for the benchmarks: a PostgreSQL database of their own (created, migrated,
filled, and dropped afterwards), Django configured against it, and small timing helpers.
"""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ADMIN_URL = os.environ.get("BENCH_POSTGRES_ADMIN_URL", "postgres://postgres@127.0.0.1:5432/postgres")
BENCH_DB = os.environ.get("BENCH_DB", "consentdesk_bench")
BENCH_REDIS = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")


def bench_database_url() -> str:
    base = ADMIN_URL.rsplit("/", 1)[0]
    return f"{base}/{BENCH_DB}"


# CHECKPOINT writes out every dirty page of the whole server, other people's databases too: a
# benchmark takes one between runs (so that one run's writes are not paid by the next) only
# when the server is its own: BENCH_CHECKPOINT=1.
OWN_SERVER = os.environ.get("BENCH_CHECKPOINT", "") == "1"


def checkpoint(cursor=None) -> None:
    """A CHECKPOINT between timed runs, on a server the benchmark has to itself (BENCH_CHECKPOINT=1)."""
    if not OWN_SERVER:
        return
    if cursor is not None:
        cursor.execute("CHECKPOINT")
    else:
        admin_sql("CHECKPOINT")


def admin_sql(sql: str) -> None:
    import psycopg

    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql)


def create_database(*, fresh: bool) -> None:
    if fresh:
        drop_database()
    with contextlib.suppress(Exception):
        admin_sql(f'CREATE DATABASE "{BENCH_DB}"')


def drop_database() -> None:
    admin_sql(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)')


def receipt_signing_key_file() -> str:
    """
    A signing key for consent receipts, made once under var/: with DEBUG off the site refuses to
    start without RECEIPT_SIGNING_KEY, and benchmarks and fault tests run as production does.
    """
    path = ROOT / "var" / "bench-receipt-signing-key.pem"
    if not path.is_file():
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec

        pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(pem)
        path.chmod(0o600)
    return str(path)


def bench_environment() -> dict[str, str]:
    env = dict(os.environ)
    # The benchmarks' own database, made and used by the one role of BENCH_POSTGRES_ADMIN_URL.
    env.pop("MIGRATION_DATABASE_URL", None)
    env.update(
        {
            "DATABASE_URL": bench_database_url(),
            "CELERY_BROKER_URL": BENCH_REDIS,
            "CELERY_QUEUE": "consentdesk-bench",
            "CACHE_URL": "locmemcache://",
            "DEBUG": "false",
            "SECRET_KEY": env.get("SECRET_KEY", "bench-" + "k" * 60),
            "RECEIPT_SIGNING_KEY": env.get("RECEIPT_SIGNING_KEY") or receipt_signing_key_file(),
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "STAFF_REQUIRE_2FA": "false",
            "LOG_LEVEL": "WARNING",
        }
    )
    return env


def setup_django() -> None:
    os.environ.update(bench_environment())
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()


def migrate() -> None:
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=bench_environment(), check=True
    )
    # DEBUG is off, as in production: static files come from collectstatic's manifest.
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"],
        cwd=ROOT,
        env=bench_environment(),
        check=True,
    )


def machine() -> str:
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = ""
    with contextlib.suppress(OSError):
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kb / 1024 / 1024:.0f} GiB RAM"
    python = platform.python_version()
    return f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores ({cpu}){mem}, Python {python}"


class Timer:
    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start


def drop_database_named(name: str) -> None:
    admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def load() -> str:
    """The 1, 5 and 15 minute load averages: the machine is shared, so every figure names it."""
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


RESULTS = Path(os.environ.get("BENCH_RESULTS", ROOT / "var" / "bench-results.json"))


def record(name: str, figures: dict) -> None:
    """Keep each benchmark's figures (with the load when measured) for bench.run_all's summary."""
    import json

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    data = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    data[name] = {**figures, "load": load(), "at": time.strftime("%Y-%m-%d %H:%M:%S")}
    RESULTS.write_text(json.dumps(data, indent=2))
