import time

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.views import redirect_to_login
from django.shortcuts import render
from django.urls import reverse
from django.utils import translation

from .languages import customer_language
from .signin import SESSION_LAST_SEEN_AT, SESSION_SIGNED_IN_AT

STAFF_PATH_PREFIX = "/admin/"
# The language switch's query parameter: /preferences/?lang=de
LANGUAGE_PARAMETER = "lang"


class PublicBodySizeLimitMiddleware:
    """
    Refuses a request body larger than PUBLIC_MAX_BODY_BYTES on public pages before anything
    reads it (Django would spool a large upload to disk first). Content-Length is checked; a
    body without one (chunked) is refused too: Django would read it as empty and the form would
    lose what was sent. Staff pages keep Django's own limits.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not request.path_info.startswith(STAFF_PATH_PREFIX):
            refused = self._refusal(request)
            if refused is not None:
                return refused
        return self.get_response(request)

    def _refusal(self, request):
        limit = settings.PUBLIC_MAX_BODY_BYTES
        length = request.META.get("CONTENT_LENGTH") or ""
        chunked = "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower()
        try:
            too_large = int(length) > limit
        except ValueError:
            too_large = chunked
        if not too_large:
            return None
        # The server discards or closes on the unread body (a WSGI application may not send
        # "Connection: close" itself).
        # This runs before LocaleMiddleware: the answer is in the browser's language (its
        # cookie or Accept-Language) as the page it came from was.
        language = customer_language(translation.get_language_from_request(request))
        with translation.override(language):
            request.LANGUAGE_CODE = language
            return render(request, "413.html", {"limit_kib": limit // 1024}, status=413)


class StaffSessionTimeoutMiddleware:
    """
    Ends a signed-in session after STAFF_SESSION_IDLE_MINUTES without a request, and
    STAFF_SESSION_MAX_HOURS after sign-in however busy it is. The last-seen time is written at
    most once a minute, so most requests do not save the session.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            now = time.time()
            session = request.session
            signed_in_at = session.setdefault(SESSION_SIGNED_IN_AT, now)
            last_seen_at = session.get(SESSION_LAST_SEEN_AT, signed_in_at)
            idle_for = now - last_seen_at
            if idle_for > settings.STAFF_SESSION_IDLE_MINUTES * 60 or (
                now - signed_in_at > settings.STAFF_SESSION_MAX_HOURS * 3600
            ):
                logout(request)
                messages.info(request, "Your session has ended. Please sign in again.")
                return redirect_to_login(request.get_full_path(), login_url=reverse("admin:login"))
            if idle_for >= 60 or SESSION_LAST_SEEN_AT not in session:
                session[SESSION_LAST_SEEN_AT] = now
        return self.get_response(request)


class CustomerLanguageMiddleware:
    """
    After LocaleMiddleware, on customer-facing pages:

    - `?lang=de` (the language switch's links; no form, no JavaScript) shows the page in that
      language and remembers the choice in Django's language cookie, which LocaleMiddleware
      reads on the next request.
    - A page is shown only in a language it is complete in (settings.CUSTOMER_LANGUAGES).
      LocaleMiddleware takes the first of LANGUAGES the browser accepts ("es" for
      "es, de;q=0.8"), for which Django ships Spanish form errors but our pages have no words:
      the next accepted complete language is used instead ("de"), else English.

    Staff pages keep Django admin's own choice. Pages reached through a customer's link then
    switch to the customer's preferred language (consents.views.in_customer_language).
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path_info.startswith(STAFF_PATH_PREFIX):
            return self.get_response(request)
        chosen = request.GET.get(LANGUAGE_PARAMETER, "")
        if chosen not in settings.CUSTOMER_LANGUAGES:
            chosen = ""
        language = chosen or getattr(request, "LANGUAGE_CODE", None) or translation.get_language()
        if language not in settings.CUSTOMER_LANGUAGES:
            language = _accepted_complete_language(request)
        translation.activate(language)
        request.LANGUAGE_CODE = language
        response = self.get_response(request)
        if chosen:
            response.set_cookie(
                settings.LANGUAGE_COOKIE_NAME,
                chosen,
                max_age=settings.LANGUAGE_COOKIE_AGE,
                samesite="Lax",
                secure=settings.SESSION_COOKIE_SECURE,
                httponly=True,
            )
        return response


def _accepted_complete_language(request) -> str:
    from django.utils.translation.trans_real import parse_accept_lang_header

    for code, _quality in parse_accept_lang_header(request.META.get("HTTP_ACCEPT_LANGUAGE", "")):
        language = code.lower().split("-")[0]
        if language in settings.CUSTOMER_LANGUAGES:
            return language
    return settings.LANGUAGE_CODE
