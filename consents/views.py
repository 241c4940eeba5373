"""
The preference centre. Every page reached through a signed link sends Cache-Control:
no-store (the token must not sit in a shared cache) and Referrer-Policy: same-origin (the
token never reaches another site, and Chromium still sends a real Origin on the page's own
form posts, which the CSRF check needs: no-referrer would make it send "Origin: null").
"""

from __future__ import annotations

import contextlib
import copy
import functools
import uuid
from collections.abc import Callable
from typing import Any, cast

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import OuterRef, QuerySet, Subquery
from django.db.models.functions import Now
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.template.backends.utils import csrf_input
from django.urls import reverse
from django.utils import translation
from django.utils.cache import add_never_cache_headers
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from common.client import client_ip_for_limits
from common.languages import country_name, currency_label, customer_language, language_name
from common.prepared import PreparedQuery, PreparedWithRows
from common.requests import CustomerLanguageRequest
from common.tokens import BadToken, TokenExpired, TokenSuperseded, TokenUnknown, TokenUsed
from customers.email_changes import (
    email_change_by_token,
    email_change_by_undo_token,
    email_change_confirm,
    email_change_request,
    email_change_undo,
)
from customers.models import Customer, PendingEmailChange
from customers.services import customer_update
from privacy.exports import export_response
from privacy.models import PrivacyRequest
from privacy.services import privacy_request_open

from . import tasks
from .forms import DetailsForm, EmailChangeForm, LinkRequestForm, PreferencesForm
from .models import PolicyVersion, Source
from .preferences import preferences_save, rate_limit_hit
from .receipt_signing import published_key_set, signed_receipt_json
from .receipts import ReceiptRefused, receipt_filename, signed_receipt
from .selectors import _PURPOSES_WITH_CONSENT, PurposeState, consent_states
from .services import RequestMeta, consent_withdraw_all_marketing
from .tokens import (
    CustomerLookup,
    SensitiveAction,
    SensitiveLink,
    customer_from_preference_token,
    make_preference_token,
    read_sensitive_token,
)


def _private(response: HttpResponse) -> HttpResponse:
    add_never_cache_headers(response)  # includes no-store
    response["Referrer-Policy"] = "same-origin"
    return response


def token_page(view=None, *, lookup: CustomerLookup | None = None):
    """
    Resolve the preference token to its customer, or answer with the friendly bad-link page.
    `lookup` reads the customer (with what the page shows, so that it comes in the same query).
    """
    if view is None:
        return functools.partial(token_page, lookup=lookup)

    @functools.wraps(view)
    def wrapper(request: HttpRequest, token: str, *args, **kwargs) -> HttpResponse:
        try:
            customer = customer_from_preference_token(token, lookup=lookup)
        except BadToken as error:
            return _private(bad_link(request, error))
        with in_customer_language(request, customer):
            return _private(view(request, customer, token, *args, **kwargs))

    return wrapper


@contextlib.contextmanager
def in_customer_language(request: HttpRequest, customer: Customer):
    """A page reached through a customer's own link is in their preferred language, whatever the browser says."""
    language = customer_language(customer.language)
    request.LANGUAGE_CODE = language
    cast(CustomerLanguageRequest, request).language_from_customer = True
    with translation.override(language):
        yield


def bad_link(request: HttpRequest, error: BadToken) -> HttpResponse:
    # A link naming no customer (erased, or never existed) is "not found"; a tampered,
    # expired, used, superseded or wrong-kind link is a bad request. Every page offers a
    # fresh link.
    kind = "invalid"
    for error_type, name in (
        (TokenExpired, "expired"),
        (TokenUnknown, "unknown"),
        (TokenSuperseded, "superseded"),
        (TokenUsed, "used"),
    ):
        if isinstance(error, error_type):
            kind = name
    return render(
        request,
        "consents/bad_link.html",
        {"kind": kind, "form": LinkRequestForm(), "error": str(error)},
        status=404 if kind == "unknown" else 400,
    )


# ---------------------------------------------------------------------------------------
# Getting in


def _client_ip(request: HttpRequest) -> str:
    # As limits count it: an IPv6 client holds a whole /64.
    return client_ip_for_limits(request) or "unknown"


def _too_many(request: HttpRequest) -> HttpResponse:
    minutes = int(settings.PREFERENCE_LINK_LIMIT_WINDOW.total_seconds() // 60)
    response = render(request, "consents/too_many_requests.html", {"minutes": minutes}, status=429)
    response["Retry-After"] = str(int(settings.PREFERENCE_LINK_LIMIT_WINDOW.total_seconds()))
    return _private(response)


@require_http_methods(["GET", "POST"])
def request_link(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        return render(
            request,
            "consents/request_link.html",
            {"form": LinkRequestForm(), "link_days": settings.PREFERENCE_LINK_MAX_AGE.days},
        )
    if rate_limit_hit(kind="ip", value=_client_ip(request), limit=settings.PREFERENCE_LINK_LIMIT_PER_IP):
        return _too_many(request)
    form = LinkRequestForm(request.POST)
    if not form.is_valid():
        return render(request, "consents/request_link.html", {"form": form}, status=400)
    email = form.cleaned_data["email"]
    if rate_limit_hit(kind="email", value=email, limit=settings.PREFERENCE_LINK_LIMIT_PER_EMAIL):
        return _too_many(request)
    # The view neither looks the address up nor branches on it: the task does, so the
    # answer and its timing are the same for an address on file and one that is not.
    transaction.on_commit(lambda: tasks.send_preference_link.delay(email))
    return render(request, "consents/link_sent.html", {"email": email})


@require_GET
def policy(request: HttpRequest) -> HttpResponse:
    current = PolicyVersion.objects.current()
    context = {"policy": current, "policy_text": current.text_in(translation.get_language()) if current else None}
    return render(request, "consents/policy.html", context, status=200 if current else 404)


# ---------------------------------------------------------------------------------------
# The preference page


def _page_customer_query(public_id) -> QuerySet[Customer]:
    open_erasure = PrivacyRequest.objects.filter(
        customer=OuterRef("pk"), kind=PrivacyRequest.Kind.ERASURE, status=PrivacyRequest.Status.OPEN
    ).order_by("-received_at", "-id")
    # "Now" is the database's clock when the query runs, so the compiled query never goes stale.
    current_policy = PolicyVersion.objects.filter(effective_at__lte=Now()).order_by("-effective_at", "-id")
    return Customer.objects.filter(public_id=public_id, erased_at__isnull=True).annotate(
        policy_version=Subquery(current_policy.values("version")[:1]),
        open_erasure_id=Subquery(open_erasure.values("id")[:1]),
    )


_PAGE_CUSTOMER = PreparedQuery(
    _page_customer_query,
    field=Customer._meta.get_field("public_id"),
    samples=(uuid.UUID(int=1), uuid.UUID(int=2)),
)


# The customer and every purpose with the customer's consent, in one statement (common/prepared.py).
_PAGE_CUSTOMER_AND_PURPOSES = PreparedWithRows(_PAGE_CUSTOMER, _PURPOSES_WITH_CONSENT)


def page_customer(public_id: uuid.UUID) -> Customer | None:
    """
    The customer (not erased) with what the preference page shows beside their choices: the
    current privacy policy's version, the id of their open erasure request, if any, and the
    purposes with their consent (`page_purposes`, for consent_states). One statement rather
    than four, compiled and prepared once: this is the page customers reach from every email.
    """
    found = _PAGE_CUSTOMER_AND_PURPOSES.fetch(public_id)
    if found is None:
        return None
    customer, purposes = found
    vars(customer)["page_purposes"] = purposes
    return customer


def _page_states(customer: Customer) -> list[PurposeState]:
    """The states of the purposes page_customer read with the customer (read now if it did not)."""
    return consent_states(customer=customer, purposes=vars(customer).get("page_purposes"))


def _page_urls(token: str) -> dict[str, str]:
    """Where the page's forms and links go (the Jinja2 template has no {% url %} tag)."""
    link_request = "consents:sensitive_link_request"
    return {
        "preferences": reverse("consents:preferences", args=[token]),
        "unsubscribe_all": reverse("consents:unsubscribe_all", args=[token]),
        "details": reverse("consents:details", args=[token]),
        "policy": reverse("consents:policy"),
        "email": reverse(link_request, args=[token, SensitiveAction.EMAIL]),
        "export": reverse(link_request, args=[token, SensitiveAction.EXPORT]),
        "erase": reverse(link_request, args=[token, SensitiveAction.ERASE]),
    }


def _page(
    request: HttpRequest,
    customer: Customer,
    token: str,
    *,
    preferences_form: PreferencesForm | None = None,
    status: int = 200,
) -> HttpResponse:
    # The details form (country, language and currency lists: hundreds of options) has its
    # own page; this one shows a short summary, so it stays cheap to render. The template is
    # Jinja2's (jinja_templates/consents/preferences.html, config/jinja2.py): every email links here.
    choices = _page_states(customer)
    # Annotated by page_customer (the type checker knows the model's fields, not annotations).
    open_erasure_id = vars(customer)["open_erasure_id"]
    return render(
        request,
        "consents/preferences.html",
        {
            "customer": customer,
            "urls": _page_urls(token),
            # One masked token for the page's five forms, not one each (32 reads of
            # os.urandom per mask: a tenth of the view).
            "csrf_field": csrf_input(request),
            "preferences_form": preferences_form or PreferencesForm(choices=choices),
            "details": _details_summary(customer),
            "sensitive_minutes": _sensitive_minutes(),
            "states": PurposeState,
            "erasure_request": PrivacyRequest.objects.get(pk=open_erasure_id) if open_erasure_id else None,
            "any_marketing_granted": any(c.granted and c.purpose.is_marketing for c in choices),
        },
        status=status,
    )


def _sensitive_minutes() -> int:
    return int(settings.SENSITIVE_LINK_MAX_AGE.total_seconds() // 60)


def _details_summary(customer: Customer) -> list[tuple[str, str]]:
    """The details the main page shows read-only, as (label, value); empty values are left out."""
    address = ", ".join(
        part
        for part in (
            customer.address_line1,
            customer.address_line2,
            customer.city,
            customer.region,
            customer.postal_code,
            country_name(customer.country),  # "" if none
        )
        if part
    )
    rows = [
        (_("Name"), customer.full_name),
        (_("Company"), customer.company),
        (_("Address"), address),
        (_("Phone"), customer.phone.as_international if customer.phone else ""),
        (_("Language"), language_name(customer.language) if customer.language else ""),
        (_("Currency"), currency_label(customer.currency) if customer.currency else ""),
    ]
    return [(label, str(value)) for label, value in rows if value]


def _details_page(
    request: HttpRequest, customer: Customer, token: str, *, form: DetailsForm | None = None, status: int = 200
) -> HttpResponse:
    return render(
        request,
        "consents/details.html",
        {"customer": customer, "token": token, "details_form": form or DetailsForm(instance=copy.copy(customer))},
        status=status,
    )


def _back(token: str, anchor: str = "") -> HttpResponse:
    return redirect(reverse("consents:preferences", args=[token]) + (f"#{anchor}" if anchor else ""))


@token_page(lookup=page_customer)
@require_http_methods(["GET", "POST"])
def preferences(request: HttpRequest, customer: Customer, token: str) -> HttpResponse:
    if request.method == "GET":
        return _page(request, customer, token)
    form = PreferencesForm(request.POST, choices=_page_states(customer))
    if not form.is_valid():
        return _page(request, customer, token, preferences_form=form, status=400)
    events = preferences_save(
        customer=customer, wanted=form.wanted(), request_meta=RequestMeta.from_request(request), states=form.choices
    )
    if not events:
        messages.info(request, _("Nothing changed: your choices were already saved."))
    else:
        granted = [e.purpose.name for e in events if e.granted]
        withdrawn = [e.purpose.name for e in events if not e.granted]
        parts = []
        if granted:
            parts.append(_("you agreed to: %(purposes)s") % {"purposes": ", ".join(granted)})
        if withdrawn:
            parts.append(_("you no longer agree to: %(purposes)s") % {"purposes": ", ".join(withdrawn)})
        messages.success(request, _("Your choices are saved; %(changes)s.") % {"changes": "; ".join(parts)})
    return _back(token, "choices")


@token_page
@require_POST
def unsubscribe_all(request: HttpRequest, customer: Customer, token: str) -> HttpResponse:
    events = consent_withdraw_all_marketing(
        customer=customer, source=Source.PREFERENCE_PAGE, request_meta=RequestMeta.from_request(request)
    )
    if events:
        messages.success(request, _("You are unsubscribed from all marketing email. It takes effect at once."))
    else:
        messages.info(request, _("You were not subscribed to any marketing email."))
    return _back(token, "choices")


@token_page
@require_http_methods(["GET", "POST"])
def details(request: HttpRequest, customer: Customer, token: str) -> HttpResponse:
    if request.method == "GET":
        return _details_page(request, customer, token)
    form = DetailsForm(request.POST, instance=copy.copy(customer))
    if not form.is_valid():
        return _details_page(request, customer, token, form=form, status=400)
    changes = customer_update(
        customer=customer,
        data={name: form.cleaned_data[name] for name in form.Meta.fields},
        changed_by="customer",
    )
    # A new preferred language applies at once: to this message and to the page it leads to.
    translation.activate(customer_language(form.cleaned_data.get("language") or customer.language))
    if changes:
        messages.success(
            request,
            ngettext(
                "Your details are saved (%(count)d corrected).",
                "Your details are saved (%(count)d corrected).",
                len(changes),
            )
            % {"count": len(changes)},
        )
    else:
        messages.info(request, _("Nothing changed in your details."))
    # Back to the main page, whose summary shows the saved details.
    return _back(token, "details")


# ---------------------------------------------------------------------------------------
# Sensitive actions: downloading the data, changing the address, asking for erasure. The
# preference link (in every marketing email, so easily forwarded) only asks for a fresh,
# short-lived link to the address on file; that link allows the one action it names.


@token_page
@require_POST
def sensitive_link_request(request: HttpRequest, customer: Customer, token: str, action: str) -> HttpResponse:
    if action not in SensitiveAction.values:
        return bad_link(request, BadToken())
    if rate_limit_hit(
        kind="sensitive-link", value=str(customer.public_id), limit=settings.PREFERENCE_LINK_LIMIT_PER_EMAIL
    ):
        return _too_many(request)
    public_id = str(customer.public_id)
    transaction.on_commit(lambda: tasks.send_sensitive_link.delay(public_id, action))
    messages.success(
        request,
        _("We sent a link to %(email)s to %(action)s. It works for %(minutes)d minutes.")
        % {"email": customer.email, "action": SensitiveAction(action).label, "minutes": _sensitive_minutes()},
    )
    return _back(token, "email" if action == SensitiveAction.EMAIL else "data")


@require_http_methods(["GET", "POST"])
def sensitive(request: HttpRequest, token: str) -> HttpResponse:
    """
    The page behind a sensitive link. GET only shows what the link allows, with one button
    (mail scanners follow links); the POST does it.
    """
    try:
        link = read_sensitive_token(token)
    except BadToken as error:
        return _private(bad_link(request, error))
    handler = {
        SensitiveAction.EXPORT: _sensitive_export,
        SensitiveAction.EMAIL: _sensitive_email,
        SensitiveAction.ERASE: _sensitive_erase,
    }[link.action]
    with in_customer_language(request, link.customer):
        return _private(handler(request, link, token))


def _sensitive_export(request: HttpRequest, link: SensitiveLink, token: str) -> HttpResponse:
    # Not single-use: a download that broke off can be tried again while the link lasts.
    if request.method == "POST":
        receipt_format = request.POST.get("receipt", "")
        if receipt_format in ("kantara", "iso27560"):
            return _receipt_download(request, link.customer, receipt_format)
        if receipt_format:
            # Not one of the page's buttons: say so rather than hand over something else.
            messages.error(request, _("That download does not exist. Choose one of the buttons below."))
            return render(request, "consents/sensitive_export.html", _export_context(link, token), status=400)
        return export_response(link.customer)
    return render(request, "consents/sensitive_export.html", _export_context(link, token))


def _export_context(link: SensitiveLink, token: str) -> dict[str, Any]:
    return {
        "customer": link.customer,
        "token": token,
        "minutes": _sensitive_minutes(),
        "jwks_url": settings.SITE_URL + reverse("jwks"),
    }


def _receipt_download(request: HttpRequest, customer: Customer, receipt_format: str) -> HttpResponse:
    try:
        signed = signed_receipt(customer=customer, receipt_format=receipt_format)
    except ReceiptRefused:
        # The link resolves only customers who are not erased; this is the race with erasure.
        return bad_link(request, TokenUnknown())
    response = HttpResponse(signed_receipt_json(signed), content_type="application/json; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{receipt_filename(customer, receipt_format)}"'
    return response


def _sensitive_email(request: HttpRequest, link: SensitiveLink, token: str) -> HttpResponse:
    customer = link.customer
    if PendingEmailChange.objects.filter(request_nonce=link.nonce).exists():
        return bad_link(request, TokenUsed())
    form = EmailChangeForm(request.POST if request.method == "POST" else None, customer=customer)
    context = {"customer": customer, "token": token, "form": form, "undo_days": settings.EMAIL_CHANGE_UNDO_PERIOD.days}
    if request.method == "GET":
        return render(request, "consents/email_change.html", context)
    if not form.is_valid():
        return render(request, "consents/email_change.html", context, status=400)
    new_email = form.cleaned_data["new_email"]
    # Limited per target address too: asking to move to someone's address must not flood it.
    if rate_limit_hit(kind="email-change-to", value=new_email, limit=settings.PREFERENCE_LINK_LIMIT_PER_EMAIL):
        return _too_many(request)
    try:
        change = email_change_request(customer=customer, new_email=new_email, link_nonce=link.nonce)
    except TokenUsed as error:
        return bad_link(request, error)
    transaction.on_commit(lambda: tasks.send_email_change_confirmation.delay(change.pk))
    context.update(sent_to=new_email, minutes=_sensitive_minutes())
    return render(request, "consents/email_change.html", context)


def _sensitive_erase(request: HttpRequest, link: SensitiveLink, token: str) -> HttpResponse:
    customer = link.customer
    open_request = PrivacyRequest.objects.filter(
        customer=customer, kind=PrivacyRequest.Kind.ERASURE, status=PrivacyRequest.Status.OPEN
    ).first()
    if request.method == "POST" or open_request is not None:
        # A second use of the link finds the open request and files nothing more.
        privacy_request = open_request or privacy_request_open(
            customer=customer, kind=PrivacyRequest.Kind.ERASURE, channel=PrivacyRequest.Channel.PREFERENCE_PAGE
        )
        context = {"privacy_request": privacy_request, "token": make_preference_token(customer)}
        return render(request, "consents/erasure_requested.html", context)
    return render(request, "consents/erasure_confirm.html", {"customer": customer, "token": token})


# ---------------------------------------------------------------------------------------
# A change of address: confirmed by the new address, undone from the old one. Both links
# carry random tokens looked up by their hash (customers.email_changes).


def _email_change_link(
    request: HttpRequest,
    token: str,
    *,
    look_up: Callable[[str], PendingEmailChange],
    act: Callable[..., PendingEmailChange],
    template: str,
    context: Callable[[PendingEmailChange], dict[str, Any]],
    done: Callable[[PendingEmailChange], dict[str, Any]],
) -> HttpResponse:
    """
    GET shows a button and changes nothing (mail scanners follow links); POST calls `act`. A
    link that no longer works gets the bad-link page, a refusal the same page with 409.
    """
    try:
        change = look_up(token)
    except BadToken as error:
        return _private(bad_link(request, error))
    with in_customer_language(request, change.customer):
        page = {**context(change), "token": token}
        if request.method == "GET":
            return _private(render(request, template, page))
        try:
            change = act(token=token)
        except BadToken as error:
            return _private(bad_link(request, error))
        except ValidationError as error:
            page["error"] = " ".join(error.messages)
            return _private(render(request, template, page, status=409))
        page.update(done(change), done=True)
        # Links mailed before the change no longer work: here is a fresh one.
        page["preferences_url"] = reverse("consents:preferences", args=[make_preference_token(change.customer)])
        return _private(render(request, template, page))


@require_http_methods(["GET", "POST"])
def email_confirm(request: HttpRequest, token: str) -> HttpResponse:
    """The new address confirms the change; the old one is then told, with a link to undo it."""

    def done(change: PendingEmailChange) -> dict[str, Any]:
        change_id = change.pk
        transaction.on_commit(lambda: tasks.send_email_change_notice.delay(change_id))
        return {"old_email": change.old_email, "undo_days": settings.EMAIL_CHANGE_UNDO_PERIOD.days}

    return _email_change_link(
        request,
        token,
        look_up=email_change_by_token,
        act=email_change_confirm,
        template="consents/email_confirm.html",
        context=lambda change: {"customer": change.customer, "new_email": change.new_email},
        done=done,
    )


@require_http_methods(["GET", "POST"])
def email_undo(request: HttpRequest, token: str) -> HttpResponse:
    """The old address puts itself back."""
    return _email_change_link(
        request,
        token,
        look_up=email_change_by_undo_token,
        act=email_change_undo,
        template="consents/email_undo.html",
        context=lambda change: {"change": change},
        done=lambda change: {},
    )


# ---------------------------------------------------------------------------------------
# The key that signs consent receipts, for anyone who wants to check one


@require_GET
def jwks(request: HttpRequest) -> JsonResponse:
    response = JsonResponse(published_key_set(), json_dumps_params={"indent": 2})
    response["Content-Type"] = "application/jwk-set+json"
    response["Cache-Control"] = "public, max-age=3600"
    # A public key: any site's script may fetch it to check a receipt.
    response["Access-Control-Allow-Origin"] = "*"
    return response
