"""
`manage.py check_sender`: is the configured sender ready for Gmail's and Yahoo's bulk-sender
rules? Prints each check (marketing/readiness.py) and exits 1 when one fails.
"""

import json

from django.core.management.base import BaseCommand, CommandError

from marketing.readiness import Level, sender_readiness

MARKS = {Level.PASS: "PASS", Level.WARN: "WARN", Level.FAIL: "FAIL"}


class Command(BaseCommand):
    help = "Check DKIM, From alignment, one-click unsubscribe headers, complaint and bounce rates, withdrawals."

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="Print the checks as JSON.")
        parser.add_argument("--strict", action="store_true", help="Exit non-zero on a warning too.")
        parser.add_argument(
            "--dns", action="store_true", help="Also look up the DKIM record in DNS and compare it with the key."
        )

    def handle(self, *args, **options):
        checks = sender_readiness(dns=options["dns"])
        if options["json"]:
            self.stdout.write(
                json.dumps(
                    [{"key": c.key, "title": c.title, "level": str(c.level), "detail": c.detail} for c in checks],
                    indent=2,
                )
            )
        else:
            for check in checks:
                style = {Level.PASS: self.style.SUCCESS, Level.WARN: self.style.WARNING, Level.FAIL: self.style.ERROR}
                self.stdout.write(f"{style[check.level](MARKS[check.level])}  {check.title}: {check.detail}")
        failed = [c for c in checks if c.level == Level.FAIL or (options["strict"] and c.level == Level.WARN)]
        if failed:
            raise CommandError(
                f"{len(failed)} check{'s' if len(failed) != 1 else ''} failed: {', '.join(c.title for c in failed)}.",
                returncode=1,
            )
        if not options["json"]:
            self.stdout.write("The sender is ready.")
