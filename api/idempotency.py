"""
`Idempotency-Key` on POST: the first answer is kept, a retry with the same key and body gets it
again and changes nothing; the same key with another body is refused (422).
"""

from __future__ import annotations

import functools
import hashlib

from django.db import transaction
from rest_framework.response import Response

from .models import IdempotencyRecord
from .problems import Problem

HEADER = "Idempotency-Key"


def idempotent(handler):
    @functools.wraps(handler)
    def wrapper(view, request, *args, **kwargs):
        key = request.headers.get(HEADER, "")
        if not key:
            return handler(view, request, *args, **kwargs)
        if len(key) > 255 or not key.isprintable():
            raise Problem(
                status_code=400,
                code="invalid_idempotency_key",
                detail="Idempotency-Key must be 1-255 printable characters.",
            )
        fingerprint = hashlib.sha256(request._request.body).hexdigest()
        with transaction.atomic():
            record, created = IdempotencyRecord.objects.select_for_update().get_or_create(
                api_key=request.auth,
                key=key,
                defaults={"method": request.method, "path": request.path[:500], "fingerprint": fingerprint},
            )
            if not created:
                if (record.method, record.path, record.fingerprint) != (
                    request.method,
                    request.path[:500],
                    fingerprint,
                ):
                    raise Problem(
                        status_code=422,
                        code="idempotency_key_reused",
                        detail="This Idempotency-Key was used for another request; use a new key for a new request.",
                    )
                return Response(record.response, status=record.status_code, headers={"Idempotent-Replayed": "true"})
            # An error rolls the record back with everything else: a retry runs the call again.
            response = handler(view, request, *args, **kwargs)
            record.status_code, record.response = response.status_code, response.data
            record.save(update_fields=["status_code", "response"])
            return response

    return wrapper
