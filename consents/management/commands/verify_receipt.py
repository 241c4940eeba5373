import json
import sys
import urllib.request
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from ...receipt_signing import ReceiptInvalid, receipt_verify
from ...receipts import kantara_schema_errors


def _read_jwks(source: str) -> dict:
    try:
        if source.startswith(("https://", "http://")):
            with urllib.request.urlopen(source, timeout=10) as response:  # noqa: S310 (http(s) only, checked above)
                text = response.read().decode("utf-8")
        else:
            text = Path(source).read_text(encoding="utf-8")
        return json.loads(text)
    except (OSError, ValueError) as error:
        raise CommandError(f"Cannot read the key set {source}: {error}") from None


class Command(BaseCommand):
    help = (
        "Check a signed consent receipt offline: its JWS signature, that the readable receipt is what was "
        "signed, and (Kantara) the v1.1 schema. Exits non-zero and says why when it fails."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="the receipt's JSON file, or - for standard input")
        parser.add_argument(
            "--jwks",
            metavar="FILE_OR_URL",
            help="the issuer's key set (a file, or https://…/.well-known/jwks.json); default: this site's key",
        )

    def handle(self, *args, file: str, jwks: str | None, **options):
        try:
            text = sys.stdin.read() if file == "-" else Path(file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise CommandError(f"Cannot read {file}: {error}") from None
        try:
            document = json.loads(text)
        except ValueError as error:
            raise CommandError(f"The receipt is not valid JSON ({error}): it was damaged or changed.") from None
        try:
            receipt = receipt_verify(document, jwks=_read_jwks(jwks) if jwks else None)
        except ReceiptInvalid as error:
            raise CommandError(f"Receipt NOT verified: {error}") from None
        receipt_format = document.get("format", "kantara")
        if receipt_format == "kantara":
            errors = kantara_schema_errors(receipt)
            if errors:
                raise CommandError(
                    "The signature holds, but the receipt breaks the Kantara v1.1 schema:\n" + "\n".join(errors)
                )
        if receipt_format == "kantara":
            what = f"Kantara consent receipt {receipt.get('consentReceiptID')} (valid against the v1.1 schema)"
        else:
            what = f"ISO/IEC TS 27560 consent record {receipt.get('dct:identifier')}"
        self.stdout.write(f"Receipt verified: {what}; the signature holds and nothing was changed.")
