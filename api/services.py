from __future__ import annotations

from typing import cast

from django.contrib.auth.models import User
from django.db import transaction

from .models import ApiKey, Scope


@transaction.atomic
def api_key_create(*, name: str, scopes: list[str], created_by: User | None) -> tuple[ApiKey, str]:
    """A new key; returns it and its secret, which exists nowhere else once shown."""
    valid = {scope.value for scope in Scope}
    if not scopes or set(scopes) - valid:
        raise ValueError(f"scopes must be a non-empty subset of {sorted(valid)}")
    key, secret = ApiKey.objects.create_key(name=name, scopes=sorted(set(scopes)), created_by=created_by)
    return cast(ApiKey, key), secret  # the library's manager is typed for its abstract base


@transaction.atomic
def api_key_revoke(*, api_key: ApiKey) -> ApiKey:
    api_key.revoked = True
    api_key.save(update_fields=["revoked"])
    return api_key
