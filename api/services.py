from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from .models import ApiKey, IdempotencyRecord, Scope


@transaction.atomic
def api_key_create(*, name: str, scopes: list[str], created_by: AbstractBaseUser | None) -> tuple[ApiKey, str]:
    """A new key; returns it and its secret, which exists nowhere else once shown."""
    valid = {scope.value for scope in Scope}
    if not scopes or set(scopes) - valid:
        raise ValueError(f"scopes must be a non-empty subset of {sorted(valid)}")
    return ApiKey.objects.create_key(name=name, scopes=sorted(set(scopes)), created_by=created_by)


@transaction.atomic
def api_key_revoke(*, api_key: ApiKey) -> ApiKey:
    api_key.revoked = True
    api_key.save(update_fields=["revoked"])
    return api_key


def idempotency_records_delete_old(cutoff=None) -> int:
    """Retried requests come within minutes; records older than API_IDEMPOTENCY_DAYS go."""
    cutoff = timezone.now() - timedelta(days=settings.API_IDEMPOTENCY_DAYS)
    deleted, _ = IdempotencyRecord.objects.filter(created_at__lt=cutoff).delete()
    return deleted
