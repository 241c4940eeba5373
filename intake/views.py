"""Reseller notification endpoints: verify, store, answer; applying happens in Celery."""

from __future__ import annotations

import logging

from django.db import transaction
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from . import services, tasks
from .resellers import adapter_for
from .resellers.base import NotificationRefused, SignatureRefused

logger = logging.getLogger(__name__)


def _answer(status: int, code: str, message: str) -> JsonResponse:
    return JsonResponse({"status": code, "detail": message}, status=status)


def _receive(request: HttpRequest, provider: str) -> JsonResponse:
    if not adapter_for(provider).is_configured():
        return _answer(404, "not_configured", f"{provider} notifications are not configured on this site.")
    try:
        event, created = services.webhook_receive(provider=provider, headers=request.headers, body=request.body)
    except SignatureRefused as refused:
        logger.warning("Refused a %s notification: %s", provider, refused)
        return _answer(refused.status, "signature_refused", str(refused))
    except NotificationRefused as refused:
        logger.warning("Refused a %s notification: %s", provider, refused)
        return _answer(400, "bad_notification", str(refused))
    if not created:
        return _answer(200, "duplicate", "This event was received before; it is processed once.")
    transaction.on_commit(lambda: tasks.webhook_event_process.delay(event.pk))
    return _answer(200, "stored", "Received; it will be applied shortly.")


@csrf_exempt
@require_POST
def paddle_webhook(request: HttpRequest) -> JsonResponse:
    return _receive(request, "paddle")
