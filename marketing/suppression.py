"""The suppression list: addresses that never receive marketing mail again, whatever their consent."""

from __future__ import annotations

from django.contrib.auth.models import User

from common.logging import mask_emails
from customers.models import email_hash, email_hashes

from .models import Suppression
from .signals import suppression_added


def suppression_add(*, email: str, reason: str, user: User | None = None, note: str = "") -> Suppression:
    """
    Never send marketing to this address again. Only its keyed hash is kept, so it outlives
    erasure; the note is masked too (a bounce's note quotes the server's reply, which names the
    address). An address suppressed before the hash was keyed is found by its older SHA-256.
    """
    existing = Suppression.objects.filter(address_hash__in=email_hashes(email)).first()
    if existing is not None:
        return existing
    suppression, created = Suppression.objects.get_or_create(
        address_hash=email_hash(email),
        defaults={"reason": reason, "created_by": user, "note": mask_emails(note)[:500]},
    )
    if created:
        suppression_added.send(sender=Suppression, suppression=suppression, email=email)
    return suppression
