"""Purposes, a policy and named customers for the preference-centre tests."""

from datetime import UTC, datetime

from consents.models import DisclosurePurpose, PolicyVersion, Purpose, Source
from consents.services import RequestMeta, consent_set
from tests.factories import CustomerFactory

PURPOSES = [
    ("newsletter", "Newsletter", "Send me the newsletter by email, about once a month.", True, 10),
    ("promotions", "Promotions and offers", "Send me promotions and special offers by email.", True, 20),
    ("market_research", "Market research", "Invite me to take part in market research.", True, 30),
    ("internal_analysis", "Internal analysis", "Include my purchases in internal statistics.", False, 40),
]


def ensure_purposes() -> dict[str, Purpose]:
    """The data migration creates these, but transactional (browser) tests flush tables between tests."""
    purposes = {}
    for code, name, wording, is_marketing, order in PURPOSES:
        purposes[code], _ = Purpose.objects.get_or_create(
            code=code,
            defaults={"name": name, "wording": wording, "is_marketing": is_marketing, "display_order": order},
        )
    if not PolicyVersion.objects.exists():
        PolicyVersion.objects.create(
            version="1.0", effective_at=datetime(2024, 1, 1, tzinfo=UTC), text="We never sell your data."
        )
    return purposes


# As the data migration creates them: (code, name, the consent purpose that allows it).
DISCLOSURE_PURPOSES = [
    ("purchase", "Completing a purchase (payment, licence, support)", None),
    ("legal_obligation", "Required by law (tax, courts, authorities)", None),
    ("market_research", "Market research (surveys, interviews, panels)", "market_research"),
    ("newsletter", "Sending our newsletter", "newsletter"),
    ("promotions", "Promotions and offers", "promotions"),
    ("internal_analysis", "Analysis of purchasing trends", "internal_analysis"),
    ("other", "Other (say what in the details)", None),
]


def ensure_disclosure_purposes() -> dict[str, DisclosurePurpose]:
    """The purposes of disclosure by code, each with the consent it needs (none for a purchase or the law)."""
    purposes = ensure_purposes()
    found = {}
    for code, name, consent_code in DISCLOSURE_PURPOSES:
        found[code], _ = DisclosurePurpose.objects.get_or_create(
            code=code, defaults={"name": name, "consent_purpose": purposes.get(consent_code) if consent_code else None}
        )
    return found


def disclosure_purpose(code: str) -> DisclosurePurpose:
    return ensure_disclosure_purposes()[code]


def customer_with_choices(email: str, *, granted=(), withdrawn=(), **fields):
    """A customer who agreed to `granted`, withdrew `withdrawn`, and was never asked about the rest."""
    purposes = ensure_purposes()
    customer = CustomerFactory.create(email=email, **fields)
    meta = RequestMeta(ip_address="198.51.100.1", user_agent="Signup form")
    for code in [*granted, *withdrawn]:
        consent_set(
            customer=customer, purpose=purposes[code], granted=True, source=Source.SIGNUP_FORM, request_meta=meta
        )
    for code in withdrawn:
        consent_set(
            customer=customer, purpose=purposes[code], granted=False, source=Source.SIGNUP_FORM, request_meta=meta
        )
    return customer
