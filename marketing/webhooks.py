"""
The mail providers' tracking webhooks, at django-anymail's standard addresses
(`/anymail/<esp>/tracking/`, mounted by config/urls.py). anymail checks each post (the basic
auth of ANYMAIL_WEBHOOK_SECRET, and the provider's own signature where it has one), turns the
provider's payload into normalised events and sends its `tracking` signal, which
marketing.feedback receives.

Around anymail's view: nothing is accepted until ANYMAIL_WEBHOOK_SECRET is set (anymail would
only warn); a post without credentials gets 401 with a challenge (Amazon SNS sends its basic
auth only after one), wrong credentials or a bad signature 403, a payload that is not the
provider's 400, each with a one-line reason; and the post is one transaction, so a post that
fails writes nothing and the provider's retry finds nothing half done.
"""

from __future__ import annotations

import logging
import warnings

from anymail.exceptions import (
    AnymailAPIError,
    AnymailConfigurationError,
    AnymailNotSupportedWarning,
    AnymailWebhookValidationFailure,
)
from anymail.webhooks.amazon_ses import AmazonSESTrackingWebhookView
from anymail.webhooks.brevo import BrevoTrackingWebhookView
from anymail.webhooks.mailgun import MailgunTrackingWebhookView
from anymail.webhooks.postal import PostalTrackingWebhookView
from anymail.webhooks.postmark import PostmarkTrackingWebhookView
from anymail.webhooks.sendgrid import SendGridTrackingWebhookView
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

logger = logging.getLogger(__name__)

# anymail warns on every SendGrid request that it no longer tests against SendGrid; its
# SendGrid webhook is unchanged and covered by our own tests (tests/marketing/test_feedback_*).
warnings.filterwarnings("ignore", category=AnymailNotSupportedWarning, module=r"anymail\.webhooks\.sendgrid")

# The settings a provider's webhook cannot run without (anymail refuses to start the view).
_REQUIRED_SETTING = {
    "mailgun": "MAILGUN_WEBHOOK_SIGNING_KEY",
    "postal": "POSTAL_WEBHOOK_KEY",
}


def _answer(status: int, text: str) -> HttpResponse:
    return HttpResponse(text + "\n", status=status, content_type="text/plain; charset=utf-8")


def tracking_view(esp: str, anymail_view):
    """anymail's tracking view for one provider, with the answers described above."""
    inner = anymail_view.as_view()

    @csrf_exempt
    def view(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if request.method not in ("POST", "HEAD", "OPTIONS"):
            return _answer(405, "Only POST: this is a mail provider's webhook.")
        if request.method != "POST":
            try:
                return inner(request, *args, **kwargs)
            except AnymailConfigurationError:
                return _answer(403, f"The {esp} webhook is off: {_REQUIRED_SETTING.get(esp, 'a setting')} is not set.")
        if not settings.ANYMAIL.get("WEBHOOK_SECRET"):
            return _answer(403, "Provider webhooks are off: ANYMAIL_WEBHOOK_SECRET is not set.")
        if not request.headers.get("Authorization"):
            response = _answer(401, "This webhook needs the basic auth of ANYMAIL_WEBHOOK_SECRET.")
            response["WWW-Authenticate"] = 'Basic realm="Mail provider webhooks"'
            return response
        try:
            with transaction.atomic():
                return inner(request, *args, **kwargs)
        except AnymailWebhookValidationFailure as error:
            logger.warning("%s webhook refused: %s", esp, error)
            return _answer(403, f"Refused: {error}")
        except AnymailConfigurationError as error:
            if esp in _REQUIRED_SETTING and not settings.ANYMAIL.get(_REQUIRED_SETTING[esp]):
                return _answer(403, f"The {esp} webhook is off: {_REQUIRED_SETTING[esp]} is not set.")
            # A provider's inbound webhook pointed at the tracking address, and the like.
            return _answer(400, f"Not a {esp} tracking event: {error}")
        except (AnymailAPIError, ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError) as error:
            # json.loads' errors are ValueErrors; a payload of the wrong shape raises the others.
            logger.warning("%s webhook: unreadable payload (%s)", esp, type(error).__name__, exc_info=True)
            return _answer(400, f"Not a {esp} tracking payload: nothing was recorded.")
        except ValidationError as error:
            return _answer(400, f"Not recorded: {'; '.join(error.messages)}")

    view.__name__ = f"{esp}_tracking_webhook"
    return view


PROVIDERS = {
    "amazon_ses": AmazonSESTrackingWebhookView,
    "brevo": BrevoTrackingWebhookView,
    "mailgun": MailgunTrackingWebhookView,
    "postal": PostalTrackingWebhookView,
    "postmark": PostmarkTrackingWebhookView,
    "sendgrid": SendGridTrackingWebhookView,
}

app_name = "anymail"

urlpatterns = [
    path(f"{esp}/tracking/", tracking_view(esp, view), name=f"{esp}_tracking_webhook")
    for esp, view in PROVIDERS.items()
]
