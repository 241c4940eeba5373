"""
The preference centre's services: saving a customer's choices, mailing preference links,
sensitive-action links and the messages of a change of address, and the rate limit on
"email me my link". Views and tasks call these; every consent change still goes through
consents.services.consent_set.
"""

from __future__ import annotations

from django.conf import settings
from django.core.mail import EmailMessage
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext as _
from django_ratelimit.core import is_ratelimited

from common.languages import customer_language
from customers.email_changes import email_change_confirmation_issue, email_change_undo_issue
from customers.models import Customer, PendingEmailChange

from .models import ConsentEvent, Source
from .selectors import PurposeState, consent_states
from .services import RequestMeta, consent_set
from .tokens import SensitiveAction, preference_url, sensitive_url


def preferences_save(
    *,
    customer: Customer,
    wanted: dict[str, bool],
    request_meta: RequestMeta,
    states: list[PurposeState] | None = None,
) -> list[ConsentEvent]:
    """
    Record the customer's choices from the preference page: one event for each purpose whose
    state changes, none for the rest. A purpose never asked about and left unticked stays
    "never asked" (leaving a box empty is not a decision to record).

    `states` are the ones the page's form was built from (consent_states), so a save works
    them out once; without them they are read here. Either way consent_set re-checks each
    change under the customer's row lock, so a save racing another records each change once.
    """
    if states is None:
        states = consent_states(customer=customer)
    events = []
    with transaction.atomic():
        for current in states:
            if current.purpose.code not in wanted:
                continue
            want = wanted[current.purpose.code]
            if want == current.granted:
                continue
            if not want and current.state == PurposeState.NEVER_ASKED:
                continue
            event = consent_set(
                customer=customer,
                purpose=current.purpose,
                granted=want,
                source=Source.PREFERENCE_PAGE,
                request_meta=request_meta,
            )
            if event is not None:
                events.append(event)
    return events


# ---------------------------------------------------------------------------------------
# Mail


def preference_link_send(*, email: str) -> bool:
    """
    Mail a preference link to the customer with this address, if there is one and their data
    is not erased. Returns whether a message went out; the caller must not tell the visitor.
    """
    customer = Customer.objects.not_erased().by_email(email).first()
    if customer is None:
        return False
    context = {
        "customer": customer,
        "url": preference_url(customer),
        "max_age_days": settings.PREFERENCE_LINK_MAX_AGE.days,
        "company_name": settings.COMPANY_NAME,
        "company_postal_address": settings.COMPANY_POSTAL_ADDRESS,
    }
    with translation.override(customer_language(customer.language)):
        _send_mail(
            subject=_("Your link to your %(company)s email preferences") % {"company": settings.COMPANY_NAME},
            template="consents/email/preference_link.txt",
            context=context,
            to=customer.email,
        )
    return True


def _send_mail(*, subject: str, template: str, context: dict, to: str) -> None:
    EmailMessage(subject=subject, body=render_to_string(template, context), to=[to]).send()


def _mail_context(customer: Customer, **extra) -> dict:
    return {
        "customer": customer,
        "company_name": settings.COMPANY_NAME,
        "company_postal_address": settings.COMPANY_POSTAL_ADDRESS,
        "max_age_minutes": int(settings.SENSITIVE_LINK_MAX_AGE.total_seconds() // 60),
        **extra,
    }


def sensitive_link_send(*, customer: Customer, action: SensitiveAction) -> None:
    """
    Mail the address on file a fresh, short-lived link for one sensitive action. Only the
    mailbox of the address on file receives it, so a forwarded marketing email (whose link
    opens the preference page) does not reach the data export or the address change.
    """
    context = _mail_context(customer, url=sensitive_url(customer, action), action=action.label)
    with translation.override(customer_language(customer.language)):
        _send_mail(
            subject=_("Your link to %(action)s at %(company)s")
            % {"action": action.label, "company": settings.COMPANY_NAME},
            template="consents/email/sensitive_link.txt",
            context=context,
            to=customer.email,
        )


def email_change_confirmation_send(*, change: PendingEmailChange) -> None:
    """Mail the new address a link that, once followed, moves the customer to it."""
    token = email_change_confirmation_issue(change=change)
    context = _mail_context(
        change.customer,
        new_email=change.new_email,
        url=settings.SITE_URL + reverse("consents:email_confirm", args=[token]),
    )
    with translation.override(customer_language(change.customer.language)):
        _send_mail(
            subject=_("Confirm your new email address for %(company)s") % {"company": settings.COMPANY_NAME},
            template="consents/email/email_change.txt",
            context=context,
            to=change.new_email,
        )


def email_change_notice_send(*, change: PendingEmailChange) -> None:
    """Tell the old address that the customer moved, with a link that takes the move back."""
    token = email_change_undo_issue(change=change)
    context = _mail_context(
        change.customer,
        old_email=change.old_email,
        new_email=change.new_email,
        changed_at=change.used_at,
        undo_days=settings.EMAIL_CHANGE_UNDO_PERIOD.days,
        url=settings.SITE_URL + reverse("consents:email_undo", args=[token]),
    )
    with translation.override(customer_language(change.customer.language)):
        _send_mail(
            subject=_("Your email address at %(company)s was changed") % {"company": settings.COMPANY_NAME},
            template="consents/email/email_change_notice.txt",
            context=context,
            to=change.old_email,
        )


# ---------------------------------------------------------------------------------------
# Rate limit


def rate_limit_hit(*, kind: str, value: str, limit: int) -> bool:
    """
    Count one attempt in the current window (PREFERENCE_LINK_LIMIT_WINDOW); True once the
    attempts exceed `limit`. django-ratelimit keeps the counters in the cache (hashed: the cache
    never holds who asked), in a fixed window: an attacker gains at most twice the limit
    across a boundary.
    """
    window = int(settings.PREFERENCE_LINK_LIMIT_WINDOW.total_seconds())
    return is_ratelimited(
        None,  # the key is given, and every method counts: the request is not read
        group=f"consents.link-limit.{kind}",
        key=lambda group, request: value,
        rate=(limit, window),
        increment=True,
    )
