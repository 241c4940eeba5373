"""
Fault scenarios: real processes (Celery workers, an SMTP sink, Redis, PostgreSQL) killed or
restarted mid-campaign. Each prints what happened and returns non-zero on a violation.

    .venv/bin/python -m bench.faults kill-worker --recipients 100000
    .venv/bin/python -m bench.faults all --small          # the fast versions the test suite runs
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from email import message_from_bytes, policy
from pathlib import Path

from bench import common, processes

from .harness import Scenario, kill_group, say, server_url_from_environment, wait_sent_fraction


def _sizes(small: bool) -> dict:
    """Small: a few hundred recipients, slowed by the send rate so there is a "middle" to act in."""
    if small:
        return {"batch_size": 50, "claim_size": 10, "send_rate": 150, "sending_timeout": 8}
    return {"batch_size": 500, "claim_size": 50, "send_rate": 0, "sending_timeout": 20}


def kill_worker(*, recipients: int, broker: str, queue: str, small: bool) -> int:
    """kill -9 the worker (and its pool) mid-campaign, start another: finishes, no duplicates."""
    scenario = Scenario("kill-worker", recipients, server_url_from_environment(), broker, queue, **_sizes(small))
    try:
        scenario.setup()
        first = scenario.start_worker("first")
        scenario.dispatch()
        wait_sent_fraction(scenario, 0.3)
        before = len(scenario.received())
        kill_group(first, signal.SIGKILL)
        say(f"killed worker {first.pid} (kill -9, with its pool) after {before:,} messages")
        scenario.start_worker("second")
        say("started a new worker")
        scenario.wait_finished(timeout=max(120, recipients / 50))
        counts = scenario.check(max_unknown=scenario.batch_size)
        unknown_arrived = _unknown_that_arrived(scenario)
        say(
            f"rows lost in flight (unknown): {counts['unknown']} (at most one batch, {scenario.batch_size}); "
            f"of them the sink had accepted {unknown_arrived}"
        )
        return scenario.verdict()
    finally:
        scenario.teardown()


def _unknown_that_arrived(scenario: Scenario) -> int:
    from marketing.models import Delivery

    unknown = set(
        Delivery.objects.filter(campaign=scenario.campaign, status="unknown").values_list("customer__email", flat=True)
    )
    return len(unknown & {r for _, r in scenario.received()})


def restart_redis(*, recipients: int, queue: str, small: bool, **_ignored) -> int:
    """Restart a private Redis (no persistence: its queued tasks are lost) mid-campaign."""
    binary = processes.ensure_tool("redis-server", "redis-server")
    port = processes.free_port()
    command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]

    def start() -> subprocess.Popen:
        server = subprocess.Popen(command, stdout=subprocess.DEVNULL, start_new_session=True)
        processes.wait_for_port(port)
        return server

    redis_server = start()
    broker = f"redis://127.0.0.1:{port}/0"
    scenario = Scenario("restart-redis", recipients, server_url_from_environment(), broker, queue, **_sizes(small))
    try:
        scenario.setup()
        scenario.start_worker("worker")
        scenario.dispatch()
        wait_sent_fraction(scenario, 0.3)
        processes.stop(redis_server)
        say(f"stopped Redis on port {port} after {len(scenario.received()):,} messages (its queue is lost)")
        time.sleep(2)
        redis_server = start()
        say("started Redis again (empty)")
        scenario.wait_finished(timeout=max(180, recipients / 50))
        scenario.check(max_unknown=scenario.batch_size)
        return scenario.verdict()
    finally:
        scenario.teardown()
        processes.stop(redis_server)


class PrivatePostgres:
    """A PostgreSQL cluster of our own under a temporary folder, so restarting it disturbs nobody."""

    def __init__(self) -> None:
        self.port = processes.free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="consentdesk-faults-pg-"))
        self.data = self.dir / "data"
        self.bin = processes.ensure_tool("pg_ctl", "postgresql").rsplit("/", 1)[0]
        self.as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def run(self, *args: str) -> None:
        subprocess.run([*self.as_postgres, *args], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def init(self) -> str:
        if self.as_postgres:
            shutil.chown(self.dir, user="postgres", group="postgres")
        self.run(f"{self.bin}/initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        self.start()
        return f"postgres://postgres@127.0.0.1:{self.port}"

    def pg_ctl(self, action: str, *extra: str) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self.run(
            f"{self.bin}/pg_ctl", "-D", str(self.data), "-l", str(self.dir / "log"), "-o", options, "-w", action, *extra
        )

    def start(self) -> None:
        self.pg_ctl("start")

    def restart(self) -> None:
        self.pg_ctl("restart", "-m", "fast")

    def destroy(self) -> None:
        with contextlib.suppress(Exception):
            self.pg_ctl("stop", "-m", "immediate")
        shutil.rmtree(self.dir, ignore_errors=True)


def restart_postgres(*, recipients: int, broker: str, queue: str, small: bool) -> int:
    """Restart a private PostgreSQL cluster mid-campaign: finishes, no duplicates."""
    server = PrivatePostgres()
    scenario = None
    try:
        url = server.init()
        say(f"private PostgreSQL on port {server.port} in {server.dir}")
        scenario = Scenario("restart-postgres", recipients, url, broker, queue, **_sizes(small))
        scenario.setup()
        scenario.start_worker("worker")
        scenario.dispatch()
        wait_sent_fraction(scenario, 0.3)
        started = time.time()
        server.restart()
        say(f"restarted PostgreSQL (fast shutdown) in {time.time() - started:.1f} s")
        scenario.wait_finished(timeout=max(180, recipients / 50))
        scenario.check(max_unknown=scenario.batch_size)
        return scenario.verdict()
    finally:
        if scenario is not None:
            scenario.teardown(keep=True)
        server.destroy()


def pause_resume(*, recipients: int, broker: str, queue: str, small: bool) -> int:
    """Pause and resume ten times mid-campaign: no duplicates, every consenting recipient sent once."""
    scenario = Scenario("pause-resume", recipients, server_url_from_environment(), broker, queue, **_sizes(small))
    try:
        if small:
            scenario.send_rate = 40  # ten pauses and resumes fit before the end
        scenario.setup()
        from marketing import campaigns, tasks

        scenario.start_worker("worker")
        campaign = scenario.dispatch()
        wait_sent_fraction(scenario, 0.1)
        pause = 0.2 if small else 1.0
        for n in range(10):
            campaigns.campaign_pause(campaign=campaign, user=None)
            time.sleep(pause)
            tasks.work_enqueue(campaigns.campaign_resume(campaign=campaign, user=None))
            time.sleep(pause)
            say(f"pause/resume {n + 1}: {len(scenario.received()):,} messages so far")
        scenario.wait_finished(timeout=max(180, recipients / 50))
        scenario.check(max_unknown=0, every_consenting_sent=True)
        got = {r for _, r in scenario.received()}
        if got != scenario.audience:
            scenario.violations.append(f"{len(scenario.audience - got)} consenting recipient(s) never received it")
        return scenario.verdict()
    finally:
        scenario.teardown()


def withdraw_while_sending(*, recipients: int, broker: str, queue: str, small: bool, withdrawals: int = 1000) -> int:
    """Withdraw consent for random recipients while the campaign sends: none receives it after the commit."""
    scenario = Scenario("withdraw", recipients, server_url_from_environment(), broker, queue, **_sizes(small))
    if small:
        scenario.send_rate = 60
    try:
        scenario.setup()
        from consents.models import Purpose, Source
        from consents.services import consent_withdraw
        from customers.models import Customer

        scenario.start_worker("worker")
        scenario.dispatch()
        newsletter = Purpose.objects.get(code="newsletter")
        chosen = random.sample(sorted(scenario.audience), min(withdrawals, len(scenario.audience) // 3))
        wait_sent_fraction(scenario, 0.05)
        elapsed = time.time() - scenario.started
        rate = max(1.0, len(scenario.received()) / elapsed)
        # Spread the withdrawals over the middle of the campaign, in random order.
        interval = (len(scenario.audience) / rate) * 0.5 / len(chosen)
        committed: dict[str, tuple[float, float]] = {}
        for email in chosen:
            customer = Customer.objects.get(email=email)
            began = time.time()
            consent_withdraw(customer=customer, purpose=newsletter, source=Source.PREFERENCE_PAGE)
            committed[email] = (began, time.time())
            time.sleep(max(0.0, interval - (time.time() - began)))
        say(f"withdrew {len(committed):,} recipients' consent over {time.time() - scenario.started - elapsed:.1f} s")
        scenario.wait_finished(timeout=max(180, recipients / 50))
        scenario.check(max_unknown=0)
        arrivals: dict[str, list[float]] = {}
        for stamp, recipient in scenario.received():
            arrivals.setdefault(recipient, []).append(stamp)
        late, before, waited, never = 0, 0, 0, 0
        for email, (began, done) in committed.items():
            stamps = arrivals.get(email, [])
            if not stamps:
                never += 1
            for stamp in stamps:
                if stamp > done:
                    late += 1
                elif stamp > began:
                    waited += 1  # sent while the withdrawal waited for the claim's lock
                else:
                    before += 1
        say(
            f"of {len(committed):,} who withdrew: {before:,} had received it before they withdrew, {waited:,} while "
            f"their withdrawal waited for the sending claim's lock, {never:,} never; after the commit: {late}"
        )
        if late:
            scenario.violations.append(f"{late} message(s) arrived after the recipient's withdrawal committed")
        return scenario.verdict()
    finally:
        scenario.teardown()


LINK = re.compile(r"https?://[^\s\"'<>]+")


def link_scanner(*, recipients: int, broker: str, queue: str, small: bool) -> int:
    """A mail scanner GETs every link in every message: consent unchanged for all."""
    web_port = processes.free_port()
    site = f"http://127.0.0.1:{web_port}"
    scenario = Scenario(
        "link-scanner", recipients, server_url_from_environment(), broker, queue, store_messages=True, site_url=site
    )
    scenario.batch_size, scenario.claim_size = 50, 10
    server = None
    try:
        scenario.setup()
        from consents.models import Consent, ConsentEvent

        # DEBUG is off, as in production: pages need collectstatic's manifest, here one of
        # the scenario's own so that a fresh checkout serves them too.
        environment = scenario.environment()
        environment["STATIC_ROOT"] = str(scenario.dir / "static")
        subprocess.run(
            [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"],
            cwd=common.ROOT,
            env=environment,
            check=True,
        )
        server = subprocess.Popen(
            [str(common.ROOT / ".venv" / "bin" / "gunicorn"), "config.wsgi", "-b", f"127.0.0.1:{web_port}", "-w", "2"],
            cwd=common.ROOT,
            env=environment,
            stdout=subprocess.DEVNULL,
            stderr=open(scenario.dir / "gunicorn.log", "ab"),  # noqa: SIM115 - the child keeps it
            start_new_session=True,
        )
        processes.wait_for_port(web_port)
        scenario.start_worker("worker")
        scenario.dispatch()
        scenario.wait_finished(timeout=max(120, recipients / 20))

        def snapshot():
            rows = tuple(Consent.objects.order_by("customer_id", "purpose_id").values_list("pk", "granted", "event_id"))
            return ConsentEvent.objects.count(), hash(rows)

        before = snapshot()
        statuses: dict[int, int] = {}
        fetched = external = 0
        for path in sorted((scenario.dir / "mail").glob("*.eml")):
            message = message_from_bytes(path.read_bytes(), policy=policy.default)
            text = " ".join(str(message.get(h, "")) for h in ("List-Unsubscribe",))
            for part in message.walk():
                if part.get_content_maintype() == "text":
                    text += " " + part.get_content()
            for url in LINK.findall(text):
                url = url.rstrip(".,;)>")
                if not url.startswith(site):
                    external += 1  # never fetched: the network is this machine only
                    continue
                try:
                    with urllib.request.urlopen(url, timeout=10) as response:
                        status = response.status
                except urllib.error.HTTPError as error:
                    status = error.code
                statuses[status] = statuses.get(status, 0) + 1
                fetched += 1
                if status >= 500:
                    scenario.violations.append(f"GET {url} answered {status}")
        after = snapshot()
        say(f"fetched {fetched:,} links ({external:,} to other sites not fetched): statuses {statuses}")
        if before != after:
            scenario.violations.append(f"consent changed by GET requests: events {before[0]} -> {after[0]}")
        else:
            say(f"consent unchanged: {after[0]:,} events, the same current state")
        if not fetched:
            scenario.violations.append("no link was fetched")
        scenario.check(max_unknown=0)
        return scenario.verdict()
    finally:
        scenario.teardown()
        processes.stop(server)


SCENARIOS: dict[str, Callable[..., int]] = {
    "kill-worker": kill_worker,
    "restart-redis": restart_redis,
    "restart-postgres": restart_postgres,
    "pause-resume": pause_resume,
    "withdraw": withdraw_while_sending,
    "link-scanner": link_scanner,
}

# Full size (the figures) and the fast size the test suite runs.
FULL = {
    "kill-worker": 100_000,
    "restart-redis": 20_000,
    "restart-postgres": 20_000,
    "pause-resume": 20_000,
    "withdraw": 20_000,
    "link-scanner": 1_000,
}
SMALL = {
    "kill-worker": 300,
    "restart-redis": 300,
    "restart-postgres": 300,
    "pause-resume": 300,
    "withdraw": 300,
    "link-scanner": 30,
}
