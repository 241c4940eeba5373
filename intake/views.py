"""Public intake pages: reseller notification endpoints, sign-up and product registration."""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils.cache import add_never_cache_headers
from django.utils.translation import get_language
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST

from common.client import client_ip
from consents.models import PolicyVersion, Purpose
from consents.preferences import rate_limit_hit
from consents.services import RequestMeta

from . import services, signups, tasks
from .forms import ConfirmForm, RegistrationForm, SignupForm
from .models import SignupRequest
from .resellers import adapter_for
from .resellers.base import NotificationRefused, SignatureRefused
from .signups import LicenceKeyTaken, SignupLinkExpired, SignupLinkInvalid, licence_key_taken, signup_for_token

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


# ---------------------------------------------------------------------------------------
# Sign-up and product registration (double opt-in)


def _private(response: HttpResponse) -> HttpResponse:
    add_never_cache_headers(response)
    # Not no-referrer: Chromium then sends "Origin: null" on the page's own POST and CSRF refuses it.
    response["Referrer-Policy"] = "same-origin"
    return response


def _marketing_purposes() -> list[Purpose]:
    return list(Purpose.objects.filter(is_marketing=True).order_by("display_order", "id"))


def _too_many(request: HttpRequest) -> HttpResponse:
    minutes = int(settings.PREFERENCE_LINK_LIMIT_WINDOW.total_seconds() // 60)
    response = render(request, "intake/too_many_requests.html", {"minutes": minutes}, status=429)
    response["Retry-After"] = str(int(settings.PREFERENCE_LINK_LIMIT_WINDOW.total_seconds()))
    return _private(response)


def _form_page(request: HttpRequest, *, kind: str) -> HttpResponse:
    registration = kind == SignupRequest.Kind.REGISTRATION
    form_class = RegistrationForm if registration else SignupForm
    template = "intake/register.html" if registration else "intake/signup.html"
    purposes = _marketing_purposes()
    context = {"policy": PolicyVersion.objects.current()}
    if request.method == "GET":
        return _private(render(request, template, {**context, "form": form_class(purposes=purposes)}))
    if rate_limit_hit(kind="signup-ip", value=client_ip(request) or "", limit=settings.SIGNUP_LIMIT_PER_IP):
        return _too_many(request)
    form = form_class(request.POST, purposes=purposes)
    if not form.is_valid():
        return _private(render(request, template, {**context, "form": form}, status=400))
    email = form.cleaned_data["email"]
    if rate_limit_hit(kind="signup-email", value=email, limit=settings.SIGNUP_LIMIT_PER_EMAIL):
        return _too_many(request)
    if form.is_bot:
        # The same answer as everyone gets, and nothing stored or sent.
        return _private(render(request, "intake/check_inbox.html", {"email": email}))
    if registration and licence_key_taken(licence_key=form.cleaned_data["licence_key"], email=email):
        form.add_error("licence_key", LicenceKeyTaken().messages[0])
        return _private(render(request, template, {**context, "form": form}, status=400))
    pending = signups.signup_request_create(
        kind=kind,
        email=email,
        first_name=form.cleaned_data["first_name"],
        last_name=form.cleaned_data["last_name"],
        purposes=form.ticked(),
        language=get_language() or settings.LANGUAGE_CODE,
        request_meta=RequestMeta.from_request(request),
        product=form.cleaned_data.get("product"),
        licence_key=form.cleaned_data.get("licence_key", ""),
        order_reference=form.cleaned_data.get("order_reference", ""),
    )
    # The view never looks the address up: the task does, so the answer and its timing are
    # the same for an address on file, a new one and an erased one.
    transaction.on_commit(lambda: tasks.signup_request_send.delay(pending.pk))
    return _private(render(request, "intake/check_inbox.html", {"email": email}))


@require_http_methods(["GET", "POST"])
def signup(request: HttpRequest) -> HttpResponse:
    return _form_page(request, kind=SignupRequest.Kind.SIGNUP)


@require_http_methods(["GET", "POST"])
def register(request: HttpRequest) -> HttpResponse:
    return _form_page(request, kind=SignupRequest.Kind.REGISTRATION)


def _refused(request: HttpRequest, reason: str, *, status: int = 400, **context) -> HttpResponse:
    """A confirmation link that does not confirm: the page says why, the log names the reason (no address)."""
    logger.warning("Sign-up confirmation refused (%s, %s)", reason, request.method)
    template = "intake/confirm.html" if "error" in context else "intake/bad_link.html"
    return _private(render(request, template, context, status=status))


@require_http_methods(["GET", "POST"])
def signup_confirm(request: HttpRequest, token: str) -> HttpResponse:
    try:
        pending = signup_for_token(token)
    except SignupLinkExpired:
        return _refused(request, "expired", status=410, expired=True)
    except SignupLinkInvalid:
        return _refused(request, "bad signature")
    if pending.status == SignupRequest.Status.CONFIRMED:
        return _private(render(request, "intake/confirmed.html", {"signup": pending, "again": True}))
    if pending.status != SignupRequest.Status.SENT:
        return _refused(request, f"request {pending.status}")
    if request.method == "GET":
        # Mail scanners follow links: a GET only shows what the button will confirm.
        return _private(render(request, "intake/confirm.html", {"signup": pending, "form": ConfirmForm()}))
    try:
        confirmed = signups.signup_confirm(signup=pending, request_meta=RequestMeta.from_request(request))
    except SignupLinkExpired:
        return _refused(request, "expired", status=410, expired=True)
    except SignupLinkInvalid:
        return _refused(request, "address blocked")
    except ValidationError as refused:
        errors = (
            [e for field in refused.error_dict.values() for e in field]
            if hasattr(refused, "error_dict")
            else refused.error_list
        )
        codes = ",".join(sorted({error.code or "invalid" for error in errors}))
        return _refused(request, f"refused: {codes}", signup=pending, error=refused.messages[0])
    return _private(render(request, "intake/confirmed.html", {"signup": confirmed}))
