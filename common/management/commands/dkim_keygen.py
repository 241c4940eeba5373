"""
`manage.py dkim_keygen`: a new DKIM key and the DNS TXT record that publishes its public half.
Nothing is stored: put the key in DKIM_PRIVATE_KEY (or a file it names), publish the record,
then set DKIM_SELECTOR and DKIM_DOMAIN.
"""

from datetime import date

from django.conf import settings
from django.core.management.base import BaseCommand

from common.dkim import domain_of, generate_key


def dns_strings(record: str, size: int = 255) -> str:
    """A TXT value longer than 255 characters goes in DNS as several quoted strings (RFC 7208 3.3)."""
    return " ".join(f'"{record[i : i + size]}"' for i in range(0, len(record), size))


class Command(BaseCommand):
    help = "Print a new DKIM private key and the DNS TXT record to publish for it."

    def add_arguments(self, parser):
        parser.add_argument(
            "--algorithm",
            choices=["rsa", "ed25519"],
            default="rsa",
            help="rsa (rsa-sha256, 2048 bits; every receiver verifies it) or ed25519 (ed25519-sha256, RFC 8463).",
        )
        parser.add_argument(
            "--selector",
            default="",
            help="The selector (DKIM_SELECTOR); default: the configured one, else cd<year><month>.",
        )
        parser.add_argument(
            "--domain", default="", help="The signing domain; default: DKIM_DOMAIN, else DEFAULT_FROM_EMAIL's domain."
        )
        parser.add_argument("--bits", type=int, choices=[1024, 2048, 3072, 4096], default=2048, help="RSA key size.")

    def handle(self, *args, **options):
        algorithm = "ed25519-sha256" if options["algorithm"] == "ed25519" else "rsa-sha256"
        selector = options["selector"] or settings.DKIM_SELECTOR or f"cd{date.today():%Y%m}"
        domain = options["domain"] or settings.DKIM_DOMAIN or domain_of(settings.DEFAULT_FROM_EMAIL)
        private_pem, record = generate_key(algorithm, rsa_bits=options["bits"])
        write = self.stdout.write
        write("# The private key: keep it secret. Set DKIM_PRIVATE_KEY to it (or to the path of a file holding it).")
        write(private_pem.rstrip("\n"))
        write("")
        write(f"# Publish this TXT record at {selector}._domainkey.{domain}:")
        write(f"{selector}._domainkey.{domain}. IN TXT {dns_strings(record)}")
        write("")
        write("# Then set:")
        write(f"DKIM_DOMAIN={domain}")
        write(f"DKIM_SELECTOR={selector}")
        write(f"DKIM_ALGORITHM={algorithm}")
