"""
Benchmark 2: sending. Messages per second from dispatch to the last message accepted, with
the project's Celery worker processes on Redis sending to Postfix's smtp-sink on loopback,
against the floor, in the same run: one Python process that renders the same templates per
recipient, builds each message with the standard library's email package and sends it over
one smtplib connection to the same sink. Also the worker's peak memory (resident set of the
worker and its pool processes, sampled every 0.2 s) at a small and a large campaign, and a
py-spy profile of the pool processes during the large one.

    .venv/bin/python -m bench.bench_send                       # 10k, then the 1M database's audience
    .venv/bin/python -m bench.bench_send --skip-large          # 10k only (about a minute)

The small campaign runs on a database of its own (made and dropped here, ~16,700 customers
of whom ~10,000 consent); the large one on the database bench.generate filled (1M customers,
600,355 consenting to the newsletter). Targets on the 2-core machine: >= 1,000 messages/s end
to end, >= 0.8x the floor, peak memory at the large size <= 1.2x that at 10k.
"""

from __future__ import annotations

import argparse
import collections
import math
import os
import smtplib
import subprocess
import time
from pathlib import Path

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
SMALL_DB = "consentdesk_bench_send"


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
        cursor.execute("TRUNCATE marketing_delivery")
        cursor.execute("DELETE FROM marketing_campaignaction")
        cursor.execute("DELETE FROM marketing_campaign")
        cursor.execute("CHECKPOINT")
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
        }
        print(
            f"  [{label}] project: {result['sent']:,} sent of {recipients:,} in {seconds:.1f} s "
            f"(dispatch {dispatched:.1f} s) = {result['rate']:,.0f} msg/s; worker peak RSS "
            f"{result['peak_rss_total_mb']:.1f} MB (largest process {result['peak_rss_process_mb']:.1f} MB); "
            f"load {load_before} -> {result['load_after']}; worker CPU {user:.1f} s user + {system:.1f} s system"
        )
        return result
    finally:
        processes.stop(worker)


def run_floor(port: int, *, label: str, limit: int | None) -> dict:
    """
    The floor: one process, one query for the recipients, the same templates rendered per
    recipient (Django's engine for the campaign text and the footer, with the same two
    signed links), the message built with the standard library's email package.
    """
    from email.mime.multipart import MIMEMultipart
    from email.mime.text import MIMEText
    from email.utils import formataddr, formatdate, make_msgid

    from django.conf import settings
    from django.db import connection, transaction
    from django.template import Context, Template
    from django.template.loader import get_template

    from consents.tokens import make_preference_token
    from customers.models import Customer
    from marketing.tokens import make_unsubscribe_token

    campaign = new_campaign(scheduled=False)
    purpose = campaign.purpose
    subject, text, html = Template(SUBJECT), Template(TEXT_BODY), Template(HTML_BODY)
    footer_text, footer_html = get_template("email/footer.txt"), get_template("email/footer.html")
    load_before = common.load()
    started = time.time()
    smtp = smtplib.SMTP("127.0.0.1", port)
    sent = 0
    with transaction.atomic(), connection.chunked_cursor() as cursor:
        cursor.execute(
            "SELECT c.public_id, c.email, c.first_name, c.last_name, c.company FROM customers_customer c "
            "JOIN consents_consent k ON k.customer_id = c.id AND k.purpose_id = %s AND k.granted "
            "WHERE c.erased_at IS NULL ORDER BY c.id" + (f" LIMIT {int(limit)}" if limit else ""),
            [purpose.pk],
        )
        for public_id, email, first_name, last_name, company in cursor:
            customer = Customer(public_id=public_id, email=email, first_name=first_name, last_name=last_name)
            values = Context({"first_name": first_name, "last_name": last_name, "company": company})
            unsubscribe = (
                settings.SITE_URL
                + "/unsubscribe/"
                + make_unsubscribe_token(
                    customer_public_id=public_id, purpose_code=purpose.code, campaign_public_id=campaign.public_id
                )
                + "/"
            )
            preferences = settings.SITE_URL + "/preferences/" + make_preference_token(customer) + "/"
            footer = {
                "purpose": purpose,
                "unsubscribe_url": unsubscribe,
                "preference_url": preferences,
                "postal_address": settings.COMPANY_POSTAL_ADDRESS,
            }
            message = MIMEMultipart("alternative")
            message["From"] = campaign.from_email
            message["To"] = formataddr((f"{first_name} {last_name}", email))
            message["Subject"] = subject.render(values)
            message["Date"] = formatdate()
            message["Message-ID"] = make_msgid(domain="consent.example.com")
            message["List-Unsubscribe"] = f"<{unsubscribe}>"
            message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
            message.attach(MIMEText(text.render(values) + "\n\n" + footer_text.render(footer), "plain", "utf-8"))
            message.attach(MIMEText(html.render(values) + footer_html.render(footer), "html", "utf-8"))
            smtp.sendmail("news@example.com", [email], message.as_bytes())
            sent += 1
    smtp.quit()
    seconds = time.time() - started
    result = {"sent": sent, "seconds": seconds, "rate": sent / seconds, "load_before": load_before}
    print(f"  [{label}] floor:   {sent:,} sent in {seconds:.1f} s = {result['rate']:,.0f} msg/s; load {load_before}")
    return result


def prepare_small(recipients: int) -> None:
    from bench.generate import MIX, generate

    use_database(SMALL_DB)
    common.create_database(fresh=True)
    common.migrate()
    use_database(SMALL_DB)
    generate(math.ceil(recipients / MIX["newsletter"][0]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", type=int, default=10_000, help="recipients of the small campaign")
    parser.add_argument("--skip-large", action="store_true", help="only the small campaign")
    parser.add_argument("--floor-limit", type=int, default=100_000, help="recipients the floor sends at the large size")
    parser.add_argument("--timeout", type=float, default=3600)
    parser.add_argument("--profile-seconds", type=int, default=20)
    args = parser.parse_args()

    big_db = common.BENCH_DB
    common.setup_django()
    print(f"Machine: {common.machine()}; load average: {common.load()}")
    port = processes.free_port()
    sink = processes.start_smtp_sink(port)
    results: dict[str, dict] = {}
    try:
        prepare_small(args.small)
        small = run_project(port, label="small", timeout=args.timeout)
        small_floor = run_floor(port, label="small", limit=None)
        results["small"] = {"project": small, "floor": small_floor}
        common.drop_database_named(SMALL_DB)
        if not args.skip_large:
            use_database(big_db)
            large = run_project(port, label="large", timeout=args.timeout, profile_seconds=args.profile_seconds)
            large_floor = run_floor(port, label="large", limit=args.floor_limit)
            results["large"] = {"project": large, "floor": large_floor}
            clear()
    finally:
        processes.stop(sink)
        use_database(big_db)

    print("\nSending, end to end (dispatch to the last message accepted by smtp-sink):")
    for size, figures in results.items():
        project, floor = figures["project"], figures["floor"]
        ratio = project["rate"] / floor["rate"]
        figures["ratio"] = ratio
        print(
            f"  {size:5s} {project['sent']:>9,} messages: project {project['rate']:7,.0f} msg/s, floor "
            f"{floor['rate']:7,.0f} msg/s ({floor['sent']:,} messages), ratio {ratio:.2f}x "
            f"(targets >= 1,000 msg/s {'OK' if project['rate'] >= 1000 else 'MISSED'}, "
            f">= 0.8x {'OK' if ratio >= 0.8 else 'MISSED'})"
        )
    if "large" in results:
        small_mb = results["small"]["project"]["peak_rss_total_mb"]
        large_mb = results["large"]["project"]["peak_rss_total_mb"]
        growth = large_mb / small_mb
        results["memory_growth"] = growth
        print(
            f"  worker peak RSS: {small_mb:.1f} MB at {results['small']['project']['sent']:,}, {large_mb:.1f} MB at "
            f"{results['large']['project']['sent']:,}: {growth:.2f}x (target <= 1.2x) "
            f"{'OK' if growth <= 1.2 else 'MISSED'}"
        )
    common.record("send", results)


if __name__ == "__main__":
    main()
