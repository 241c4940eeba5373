"""System checks: a site that issues receipts must be able to sign them."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Error, register
from django.core.exceptions import ImproperlyConfigured


@register()
def receipt_signing_key_check(app_configs, **kwargs) -> list[Error]:
    if not settings.RECEIPT_SIGNING_KEY and not getattr(settings, "RECEIPT_DEVELOPMENT_KEY_FILE", None):
        return [
            Error(
                "RECEIPT_SIGNING_KEY is not set: with DEBUG off, consent receipts need a signing key of yours "
                "(the development key is never used in production).",
                hint="Make one with `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 "
                "-out receipt-key.pem` and set RECEIPT_SIGNING_KEY to the PEM or to the file's path.",
                id="consents.E001",
            )
        ]
    from .receipt_signing import signing_key

    try:
        signing_key()
    except ImproperlyConfigured as error:
        return [Error(str(error), id="consents.E002")]
    return []
