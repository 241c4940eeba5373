"""
The preference centre. Every page reached through a signed link sends Cache-Control:
no-store (the token must not sit in a shared cache) and Referrer-Policy: same-origin (the
token never reaches another site, and Chromium still sends a real Origin on the page's own
form posts, which the CSRF check needs: no-referrer would make it send "Origin: null").
"""

from __future__ import annotations

import copy
import functools
import uuid

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import OuterRef, QuerySet, Subquery
from django.db.models.functions import Now
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from common.client import client_ip
from common.prepared import PreparedQuery
from customers.models import Customer
from customers.services import customer_email_change, customer_update
from privacy.exports import export_response
from privacy.models import PrivacyRequest
from privacy.services import privacy_request_open

from . import tasks
from .forms import DetailsForm, EmailChangeForm, LinkRequestForm, PreferencesForm
from .models import PolicyVersion, Source
from .preferences import preferences_save, rate_limit_hit
from .selectors import PurposeState, consent_states
from .services import RequestMeta, consent_withdraw_all_marketing
from .tokens import (
    BadToken,
    CustomerLookup,
    customer_from_preference_token,
    make_preference_token,
    read_email_change_token,
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
        return _private(view(request, customer, token, *args, **kwargs))

    return wrapper


def bad_link(request: HttpRequest, error: BadToken) -> HttpResponse:
    # A link naming no customer (erased, or never existed) is "not found"; a tampered,
    # expired or wrong-kind link is a bad request. Both pages offer a fresh link.
    unknown = not error.expired and "does not lead" in str(error)
    return render(
        request,
        "consents/bad_link.html",
        {"expired": error.expired, "unknown": unknown, "form": LinkRequestForm(), "error": str(error)},
        status=404 if unknown else 400,
    )


# ---------------------------------------------------------------------------------------
# Getting in


def _client_ip(request: HttpRequest) -> str:
    return client_ip(request) or "unknown"


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
    return render(request, "consents/policy.html", {"policy": current}, status=200 if current else 404)


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


def page_customer(public_id: uuid.UUID) -> Customer | None:
    """
    The customer (not erased) with what the preference page shows beside their choices: the
    current privacy policy's version and the id of their open erasure request, if any. One
    query rather than three, compiled once: this is the page customers reach from every email.
    """
    found = _PAGE_CUSTOMER.fetch(public_id)
    return found[0] if found else None


def _page(
    request: HttpRequest,
    customer: Customer,
    token: str,
    *,
    preferences_form: PreferencesForm | None = None,
    email_form: EmailChangeForm | None = None,
    status: int = 200,
) -> HttpResponse:
    # The details form (country, language and currency lists: hundreds of options) has its
    # own page; this one shows a short summary, so it stays cheap to render.
    choices = consent_states(customer=customer)
    return render(
        request,
        "consents/preferences.html",
        {
            "customer": customer,
            "token": token,
            "preferences_form": preferences_form or PreferencesForm(choices=choices),
            "details": _details_summary(customer),
            "email_field": email_form["new_email"].as_field_group() if email_form else _blank_email_field(),
            "states": PurposeState,
            "erasure_request": PrivacyRequest.objects.get(pk=customer.open_erasure_id)
            if customer.open_erasure_id
            else None,
            "any_marketing_granted": any(c.granted and c.purpose.is_marketing for c in choices),
        },
        status=status,
    )


@functools.cache
def _blank_email_field() -> str:
    """The empty "new email address" field: the same markup for everyone, so rendered once."""
    return EmailChangeForm(customer=Customer())["new_email"].as_field_group()


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
            customer.country.name if customer.country else "",
        )
        if part
    )
    rows = [
        ("Name", customer.full_name),
        ("Company", customer.company),
        ("Address", address),
        ("Phone", customer.phone.as_international if customer.phone else ""),
        ("Language", customer.get_language_display() if customer.language else ""),
        ("Currency", customer.get_currency_display() if customer.currency else ""),
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
    form = PreferencesForm(request.POST, choices=consent_states(customer=customer))
    if not form.is_valid():
        return _page(request, customer, token, preferences_form=form, status=400)
    events = preferences_save(
        customer=customer, wanted=form.wanted(), request_meta=RequestMeta.from_request(request), states=form.choices
    )
    if not events:
        messages.info(request, "Nothing changed: your choices were already saved.")
    else:
        granted = [e.purpose.name for e in events if e.granted]
        withdrawn = [e.purpose.name for e in events if not e.granted]
        parts = []
        if granted:
            parts.append("you agreed to: " + ", ".join(granted))
        if withdrawn:
            parts.append("you no longer agree to: " + ", ".join(withdrawn))
        messages.success(request, "Your choices are saved; " + "; ".join(parts) + ".")
    return _back(token, "choices")


@token_page
@require_POST
def unsubscribe_all(request: HttpRequest, customer: Customer, token: str) -> HttpResponse:
    events = consent_withdraw_all_marketing(
        customer=customer, source=Source.PREFERENCE_PAGE, request_meta=RequestMeta.from_request(request)
    )
    if events:
        messages.success(request, "You are unsubscribed from all marketing email. It takes effect at once.")
    else:
        messages.info(request, "You were not subscribed to any marketing email.")
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
    if changes:
        messages.success(request, f"Your details are saved ({len(changes)} corrected).")
    else:
        messages.info(request, "Nothing changed in your details.")
    # Back to the main page, whose summary shows the saved details.
    return _back(token, "details")


@token_page(lookup=page_customer)
@require_POST
def email_change(request: HttpRequest, customer: Customer, token: str) -> HttpResponse:
    form = EmailChangeForm(request.POST, customer=customer)
    if not form.is_valid():
        return _page(request, customer, token, email_form=form, status=400)
    new_email = form.cleaned_data["new_email"]
    # Counted apart from "email me my link": asking to move to someone's address must not use
    # up that person's own link requests. Limited per customer and per target address.
    if rate_limit_hit(
        kind="email-change-from", value=str(customer.public_id), limit=settings.PREFERENCE_LINK_LIMIT_PER_EMAIL
    ) or rate_limit_hit(kind="email-change-to", value=new_email, limit=settings.PREFERENCE_LINK_LIMIT_PER_EMAIL):
        return _too_many(request)
    public_id = str(customer.public_id)
    transaction.on_commit(lambda: tasks.send_email_change_confirmation.delay(public_id, new_email))
    messages.success(
        request,
        f"We sent a link to {new_email}. Your address changes when you follow it; until then we keep using "
        f"{customer.email}.",
    )
    return _back(token, "email")


@require_http_methods(["GET", "POST"])
def email_confirm(request: HttpRequest, token: str) -> HttpResponse:
    """
    GET shows a button and changes nothing (mail scanners follow links); POST makes the change.
    """
    try:
        customer, new_email = read_email_change_token(token)
    except BadToken as error:
        return _private(bad_link(request, error))
    context = {"customer": customer, "new_email": new_email, "token": token}
    if request.method == "GET":
        return _private(render(request, "consents/email_confirm.html", context))
    try:
        customer_email_change(customer=customer, new_email=new_email, changed_by="customer")
    except ValidationError as error:
        context["error"] = " ".join(error.messages)
        return _private(render(request, "consents/email_confirm.html", context, status=409))
    context["done"] = True
    # A fresh preference link: the old one still works, but the customer is here now.
    context["preferences_url"] = reverse("consents:preferences", args=[make_preference_token(customer)])
    return _private(render(request, "consents/email_confirm.html", context))


@token_page
@require_GET
def export(request: HttpRequest, customer: Customer, token: str) -> HttpResponse:
    return export_response(customer)


@token_page
@require_POST
def erasure_request(request: HttpRequest, customer: Customer, token: str) -> HttpResponse:
    privacy_request = privacy_request_open(
        customer=customer, kind=PrivacyRequest.Kind.ERASURE, channel=PrivacyRequest.Channel.PREFERENCE_PAGE
    )
    return render(request, "consents/erasure_requested.html", {"privacy_request": privacy_request, "token": token})
