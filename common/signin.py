"""
Staff sign-in: one answer for every failure, second-factor failures counted by the lockout,
the lockout page in the site's own dress, and the start of the session recorded for its
lifetime (common.middleware.StaffSessionTimeoutMiddleware).
"""

import time

from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.signals import user_login_failed
from django.core.exceptions import ValidationError
from django.shortcuts import render
from django_otp import devices_for_user
from django_otp.admin import OTPAdminAuthenticationForm

# Whatever failed (the username, the password, the code, no device, a throttled device, not a
# staff account), the answer is the same: a wrong guess must not tell which part was right.
SIGN_IN_FAILED = (
    "Sign-in failed. Check your username, password and, if you use one, your authentication code; "
    "all of them are case-sensitive."
)

SESSION_SIGNED_IN_AT = "staff_signed_in_at"
SESSION_LAST_SEEN_AT = "staff_last_seen_at"


class _OneAnswerMixin:
    error_messages = {
        **AdminAuthenticationForm.error_messages,
        "invalid_login": SIGN_IN_FAILED,
        "inactive": SIGN_IN_FAILED,
    }

    def clean(self):
        try:
            return super().clean()
        except ValidationError as error:
            if self.user_cache is not None:
                # The password was right and something after it was not (the second factor, or
                # not a staff account): a failed sign-in all the same, so the lockout counts it.
                user_login_failed.send(
                    sender=__name__,
                    credentials={"username": self.cleaned_data.get("username")},
                    request=self.request,
                )
            # Forget the user, or the page would show the device choice that only a right
            # password brings up.
            self.user_cache = None
            raise ValidationError(SIGN_IN_FAILED, code="invalid_login") from error


class StaffPasswordSignInForm(_OneAnswerMixin, AdminAuthenticationForm):
    """Sign-in with a password only (STAFF_REQUIRE_2FA off)."""


class StaffSignInForm(_OneAnswerMixin, OTPAdminAuthenticationForm):
    """Sign-in with a password and a code from the user's device (STAFF_REQUIRE_2FA on)."""

    def _chosen_device(self, user):
        # Nobody has to pick a device first (the list shows only after a right password):
        # without a choice, the code is checked against the user's confirmed device.
        device = super()._chosen_device(user)
        if device is None:
            device = next(iter(devices_for_user(user, confirmed=True, for_verify=True)), None)
        return device

    def _update_form(self, user):
        # django-otp would list the user's devices and echo the password back into the page
        # after a right password: both tell a guesser that the password was right.
        pass


def lockout_response(request, original_response=None, credentials=None):
    """django-axes' lockout page, with the admin site's title and header."""
    context = {**admin.site.each_context(request), "title": "Sign-in locked"}
    return render(request, "admin/locked_out.html", context, status=429)


def record_sign_in_time(sender, request, user, **kwargs) -> None:
    """On user_logged_in: the session's lifetime and idle time count from here."""
    if request is not None and hasattr(request, "session"):
        now = time.time()
        request.session[SESSION_SIGNED_IN_AT] = now
        request.session[SESSION_LAST_SEEN_AT] = now
