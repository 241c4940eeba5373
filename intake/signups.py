"""
Sign-up and product registration with double opt-in. The form's request is stored with what
the visitor was shown (step one); the address confirms it by a link (step two), and only then
are the customer, the registration and each consent recorded, with both steps' proof.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.core import signing
from django.core.exceptions import ValidationError
from django.core.mail import EmailMessage
from django.db import transaction
from django.db.models import Q
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from common.languages import customer_language
from consents.models import Consent, Method, PolicyVersion, Purpose, Source
from consents.services import RequestMeta, consent_grant
from consents.tokens import preference_url
from customers.models import Customer, ProductRegistration, email_hashes
from customers.services import customer_create
from marketing.models import Suppression
from privacy.selectors import customer_address_was_erased

from .models import SignupRequest

SALT = "intake.signup-confirm"


class SignupLinkInvalid(Exception):
    """The confirmation link was changed, cut short, or never ours."""


class SignupLinkExpired(Exception):
    """The confirmation link is older than SIGNUP_CONFIRM_MAX_AGE_HOURS."""


class LicenceKeyTaken(ValidationError):
    def __init__(self) -> None:
        super().__init__(
            _(
                "This licence key cannot be registered to this address. If you bought it, contact our support "
                "with your order number."
            ),
            code="licence_key_taken",
        )


def _shown(purpose: Purpose, language: str) -> dict[str, str]:
    """What the form showed of a purpose, in the words and language the ledger will copy."""
    text = purpose.text_in(language)
    return {"code": purpose.code, "name": text.name, "wording": text.wording, "language": text.language}


def _max_age() -> timedelta:
    return timedelta(hours=settings.SIGNUP_CONFIRM_MAX_AGE_HOURS)


def licence_key_taken(*, licence_key: str, email: str) -> bool:
    """Is the key registered to a customer other than the one with this address?"""
    return (
        ProductRegistration.objects.filter(licence_key=licence_key)
        .exclude(customer__in=Customer.objects.by_email(email))
        .exists()
    )


@transaction.atomic
def signup_request_create(
    *,
    kind: str,
    email: str,
    first_name: str = "",
    last_name: str = "",
    purposes: list[Purpose],
    language: str,
    request_meta: RequestMeta,
    product=None,
    licence_key: str = "",
    order_reference: str = "",
) -> SignupRequest:
    """Step one. Stores what was asked and shown; looks nobody up (the answer must not depend on it)."""
    now = timezone.now()
    signup = SignupRequest(
        kind=kind,
        email=email,
        first_name=first_name.strip(),
        last_name=last_name.strip(),
        language=language,
        purposes=[_shown(p, language) for p in purposes],
        policy_version=PolicyVersion.objects.current(),
        product=product,
        licence_key=licence_key,
        order_reference=order_reference.strip(),
        requested_at=now,
        request_ip_address=request_meta.ip_address,
        request_user_agent=request_meta.user_agent,
        expires_at=now + _max_age(),
    )
    signup.full_clean(exclude=["policy_version", "product", "customer"])
    signup.save()
    return signup


def confirm_token(signup: SignupRequest) -> str:
    return signing.dumps(str(signup.public_id), salt=SALT, compress=True)


def signup_for_token(token: str) -> SignupRequest:
    try:
        public_id = signing.loads(token, salt=SALT, max_age=_max_age())
    except signing.SignatureExpired:
        raise SignupLinkExpired from None
    except signing.BadSignature:
        raise SignupLinkInvalid from None
    signup = SignupRequest.objects.select_related("product", "policy_version").filter(public_id=public_id).first()
    if signup is None:
        # Confirmed requests are kept; a missing one expired and was deleted by retention.
        raise SignupLinkExpired
    return signup


def address_blocked(email: str) -> bool:
    """An erased customer's address, or one on the suppression list: nothing is ever sent to it."""
    return (
        customer_address_was_erased(email) or Suppression.objects.filter(address_hash__in=email_hashes(email)).exists()
    )


def signup_request_send(*, signup: SignupRequest) -> bool:
    """
    Mail the confirmation link (the task calls this). An address on file gets a mail that
    confirms only the purposes it has not already agreed to, with a link to its preference
    page; an erased or suppressed address gets nothing. Returns whether a mail went out.
    """
    if signup.status != SignupRequest.Status.PENDING:
        return False
    if address_blocked(signup.email):
        signup.status = SignupRequest.Status.NOT_SENT
        signup.save(update_fields=["status"])
        return False
    customer = Customer.objects.not_erased().by_email(signup.email).first()
    if customer is not None:
        agreed = set(Consent.objects.filter(customer=customer, granted=True).values_list("purpose__code", flat=True))
        signup.purposes = [entry for entry in signup.purposes if entry["code"] not in agreed]
    signup.status = SignupRequest.Status.SENT
    signup.save(update_fields=["status", "purposes"])
    context = {
        "signup": signup,
        "known": customer is not None,
        "confirm_url": settings.SITE_URL + reverse("intake:signup_confirm", args=[confirm_token(signup)]),
        "preference_url": preference_url(customer) if customer is not None else "",
        "max_age_hours": settings.SIGNUP_CONFIRM_MAX_AGE_HOURS,
        "company_name": settings.COMPANY_NAME,
        "company_postal_address": settings.COMPANY_POSTAL_ADDRESS,
    }
    # In the language of the form the visitor filled in.
    with translation.override(customer_language(signup.language)):
        subject = (
            gettext("Confirm your product registration with %(company)s") % {"company": settings.COMPANY_NAME}
            if signup.kind == SignupRequest.Kind.REGISTRATION
            else gettext("Confirm your subscription to %(company)s") % {"company": settings.COMPANY_NAME}
        )
        body = render_to_string("intake/email/confirm.txt", context)
    EmailMessage(subject=subject, body=body, to=[signup.email]).send()
    return True


def signup_confirm(*, signup: SignupRequest, request_meta: RequestMeta) -> SignupRequest:
    """
    Step two: the address confirmed. Creates (or finds) the customer, the registration, and one
    ledger event per purpose with the proof of both steps. Confirming twice changes nothing.
    """
    with transaction.atomic():
        signup = SignupRequest.objects.select_for_update(of=("self",)).select_related("product").get(pk=signup.pk)
        if signup.status == SignupRequest.Status.CONFIRMED:
            return signup
        now = timezone.now()
        if signup.expires_at < now:
            raise SignupLinkExpired
        if address_blocked(signup.email):
            raise SignupLinkInvalid
        customer = Customer.objects.not_erased().by_email(signup.email).select_for_update().first()
        if customer is None:
            customer = customer_create(
                data={
                    "email": signup.email,
                    "first_name": signup.first_name,
                    "last_name": signup.last_name,
                    "language": signup.language,
                },
                created_at=now,
            )
        if signup.kind == SignupRequest.Kind.REGISTRATION:
            _register_product(signup=signup, customer=customer, at=now)
        signup.status = SignupRequest.Status.CONFIRMED
        signup.confirmed_at = now
        signup.confirm_ip_address = request_meta.ip_address
        signup.confirm_user_agent = request_meta.user_agent
        signup.customer = customer
        signup.save(update_fields=["status", "confirmed_at", "confirm_ip_address", "confirm_user_agent", "customer"])
        purposes = {p.code: p for p in Purpose.objects.filter(code__in=signup.purpose_codes)}
        for entry in signup.purposes:
            purpose = purposes.get(entry["code"])
            if purpose is None:
                continue
            consent_grant(
                customer=customer,
                purpose=purpose,
                source=Source.SIGNUP_FORM,
                method=Method.WEB,
                request_meta=request_meta,
                occurred_at=now,
                wording=entry["wording"],
                # Sign-ups from before translations kept no language: they were English.
                language=entry.get("language", settings.LANGUAGE_CODE),
                reference=f"signup:{signup.public_id}",
                note=(
                    f"Double opt-in: asked on the {signup.get_kind_display().lower()} form at "
                    f"{signup.requested_at:%Y-%m-%d %H:%M:%S} UTC (request {signup.public_id}), "
                    "confirmed by the link mailed to the address."
                ),
            )
    return signup


def _register_product(*, signup: SignupRequest, customer: Customer, at) -> ProductRegistration:
    if licence_key_taken(licence_key=signup.licence_key, email=signup.email):
        raise LicenceKeyTaken()
    match = Q(licence_key=signup.licence_key)
    if signup.order_reference:
        match |= Q(order_reference=signup.order_reference)
    registration = ProductRegistration.objects.filter(match, product=signup.product).first()
    if registration is not None:
        if registration.customer_id != customer.pk:
            raise LicenceKeyTaken()
        if not registration.licence_key:
            registration.licence_key = signup.licence_key
            registration.save(update_fields=["licence_key"])
        return registration
    registration = ProductRegistration(
        customer=customer,
        product=signup.product,
        licence_key=signup.licence_key,
        order_reference=signup.order_reference,
        created_at=at,
    )
    registration.full_clean()
    registration.save()
    return registration
