"""
The unsubscribe page behind every marketing email's link.

GET only shows the page (mail scanners fetch links). A POST from the page's button withdraws
the purpose (CSRF-checked). A POST whose body is `List-Unsubscribe=One-Click` comes from the
mail provider (RFC 8058) with no cookies and no CSRF token: it withdraws too and answers 200.
The signed token is the credential, so that one case is exempt from the CSRF check.
"""

from typing import cast

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import translation
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_http_methods

from common.languages import customer_language
from common.requests import CustomerLanguageRequest
from consents.models import Consent, Source
from consents.services import RequestMeta, consent_withdraw
from consents.tokens import BadToken, preference_url

from .tokens import UnsubscribeTarget, read_unsubscribe_token


def _token_page(response: HttpResponse) -> HttpResponse:
    # The token is a credential: never cached. "same-origin" rather than "no-referrer": with
    # no-referrer Chromium sends Origin: null on the page's own POST and the CSRF check refuses it.
    response["Cache-Control"] = "no-store"
    response["Referrer-Policy"] = "same-origin"
    return response


def _is_one_click(request: HttpRequest) -> bool:
    return request.method == "POST" and request.POST.get("List-Unsubscribe") == "One-Click"


@csrf_exempt
@require_http_methods(["GET", "HEAD", "POST"])
def unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    try:
        target = read_unsubscribe_token(token)
    except BadToken as error:
        response = render(request, "marketing/unsubscribe_invalid.html", {"message": str(error)}, status=400)
        return _token_page(response)
    # The page and the one-click answer are in the customer's preferred language.
    language = customer_language(target.customer.language)
    request.LANGUAGE_CODE = language
    cast(CustomerLanguageRequest, request).language_from_customer = True
    with translation.override(language):
        return _answer(request, token, target)


def _answer(request: HttpRequest, token: str, target: UnsubscribeTarget) -> HttpResponse:
    if _is_one_click(request):
        _withdraw(request, target, Source.ONE_CLICK)
        response = HttpResponse(
            _("Unsubscribed from %(purpose)s.") % {"purpose": target.purpose.text_in(request.LANGUAGE_CODE).name}
            + "\n",
            content_type="text/plain; charset=utf-8",
        )
        return _token_page(response)
    return _token_page(_page(request, token=token, target=target))


@csrf_protect
def _page(request: HttpRequest, *, token: str, target: UnsubscribeTarget) -> HttpResponse:
    context = {
        "token": token,
        # Its name and wording in the customer's language, or English where it has none.
        "purpose": target.purpose.text_in(request.LANGUAGE_CODE),
        "preference_url": preference_url(target.customer) if not target.customer.is_erased else "",
    }
    if request.method == "POST":
        _withdraw(request, target, Source.UNSUBSCRIBE_LINK)
        return render(request, "marketing/unsubscribe_done.html", context)
    context["subscribed"] = Consent.objects.filter(
        customer=target.customer, purpose=target.purpose, granted=True
    ).exists()
    return render(request, "marketing/unsubscribe.html", context)


def _withdraw(request: HttpRequest, target: UnsubscribeTarget, source: str) -> None:
    # Committed before the response: it holds for every message not yet claimed for sending.
    consent_withdraw(
        customer=target.customer,
        purpose=target.purpose,
        source=source,
        request_meta=RequestMeta.from_request(request),
        reference=f"campaign:{target.campaign_public_id}" if target.campaign_public_id else "",
    )
