import time

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.views import redirect_to_login
from django.shortcuts import render
from django.urls import reverse

from .signin import SESSION_LAST_SEEN_AT, SESSION_SIGNED_IN_AT

STAFF_PATH_PREFIX = "/admin/"


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
