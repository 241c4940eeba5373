"""
The fault scenarios of bench/faults at a few hundred recipients: real Celery worker processes,
a real SMTP sink process, Redis and PostgreSQL killed or restarted mid-campaign. Each runs as
its own process (its own database copied from a migrated template, its own queue) and fails
here if the scenario saw a violation; its output says what happened.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

from common import database_roles

ROOT = Path(__file__).resolve().parents[2]


def run_scenario(name: str) -> None:
    env = dict(os.environ)
    # The test run's own PostgreSQL server and Redis database, never another's. Creating the
    # scenarios' databases takes the owner role; the runtime role may not.
    database = database_roles.owner_settings() or settings.DATABASES["default"]
    env["FAULTS_POSTGRES_URL"] = (
        f"postgres://{database['USER']}{':' + database['PASSWORD'] if database['PASSWORD'] else ''}"
        f"@{database['HOST'] or '127.0.0.1'}:{database['PORT'] or 5432}/postgres"
    )
    command = [sys.executable, "-m", "bench.faults", name, "--small"]
    command += ["--broker", settings.CELERY_BROKER_URL, "--queue", settings.CELERY_TASK_DEFAULT_QUEUE]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240, check=False)
    print(result.stdout[-4000:], result.stderr[-4000:])
    assert result.returncode == 0, f"{name}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    assert f"{name}: passed" in result.stdout


pytestmark = [pytest.mark.postgres, pytest.mark.redis]


def test_a_worker_killed_mid_campaign_loses_at_most_a_batch_and_sends_nobody_twice():
    run_scenario("kill-worker")


def require_binary(binary: str, package: str) -> None:
    """Skip without the server binary a scenario starts; with REQUIRE_SERVICES=1 fail instead."""
    postgres_bins = ":".join(str(path) for path in sorted(Path("/usr/lib/postgresql").glob("*/bin")))
    if shutil.which(binary) or (postgres_bins and shutil.which(binary, path=postgres_bins)):
        return
    reason = f"needs {binary} (apt-get install {package}; .ci/run installs it)"
    if os.environ.get("REQUIRE_SERVICES") == "1":
        pytest.fail(f"REQUIRE_SERVICES=1 but {reason}")
    pytest.skip(reason)


def test_a_redis_restart_that_loses_the_queue_still_finishes_the_campaign_without_duplicates():
    require_binary("redis-server", "redis-server")
    run_scenario("restart-redis")


def test_a_postgresql_restart_mid_campaign_finishes_it_without_duplicates():
    require_binary("pg_ctl", "postgresql")
    run_scenario("restart-postgres")


def test_ten_pauses_and_resumes_send_every_consenting_customer_exactly_once():
    run_scenario("pause-resume")


def test_nobody_who_withdraws_while_the_campaign_sends_receives_it_after_the_withdrawal():
    run_scenario("withdraw")


def test_a_link_scanner_fetching_every_link_changes_nobodys_consent():
    run_scenario("link-scanner")
