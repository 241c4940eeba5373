"""Demo consent histories for `load_demo_data`: realistic shares, some changes of mind, a few disclosures."""

from __future__ import annotations

import random
from datetime import timedelta

from django.utils import timezone

from customers.models import Customer, ThirdParty

from .models import DisclosurePurpose, LegalBasis, Method, Purpose, Source
from .selectors import customers_consenting_to
from .services import RequestMeta, consent_set, disclosure_record

# Share of demo customers who agreed to each purpose when they registered.
GRANT_SHARE = {"newsletter": 0.6, "promotions": 0.3, "market_research": 0.15, "internal_analysis": 0.5}
# Share of those who were asked and said no (the rest were never asked).
DECLINE_SHARE = {"newsletter": 0.25, "promotions": 0.35, "market_research": 0.3, "internal_analysis": 0.2}
# Share of grants withdrawn later, and how.
WITHDRAW_SHARE = 0.15
WITHDRAW_SOURCES = [Source.UNSUBSCRIBE_LINK, Source.ONE_CLICK, Source.ONE_CLICK, Source.PREFERENCE_PAGE]
USER_AGENTS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605",
    "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
]
RESEARCH_PARTNER = ("Northwind Research", ThirdParty.Kind.PARTNER, "NL", "https://research.example.net", "NWR DPA 2024")
AUTHORITY = ("HM Revenue & Customs", ThirdParty.Kind.AUTHORITY, "GB", "https://www.gov.uk/hmrc", "")


def load_demo_consents(customers: list[Customer], seed: int = 2026) -> None:
    rng = random.Random(seed)
    now = timezone.now()
    purposes = list(Purpose.objects.all())
    for customer in customers:
        signed_up = customer.created_at
        web = RequestMeta(ip_address=customer.signup_ip, user_agent=rng.choice(USER_AGENTS))
        for purpose in purposes:
            roll = rng.random()
            if roll < GRANT_SHARE.get(purpose.code, 0.2):
                granted = True
            elif roll < GRANT_SHARE.get(purpose.code, 0.2) + DECLINE_SHARE.get(purpose.code, 0.3):
                granted = False
            else:
                continue  # never asked
            consent_set(
                customer=customer,
                purpose=purpose,
                granted=granted,
                source=Source.SIGNUP_FORM,
                request_meta=web,
                occurred_at=signed_up,
            )
            if granted and rng.random() < WITHDRAW_SHARE:
                source = rng.choice(WITHDRAW_SOURCES)
                later = min(signed_up + timedelta(days=rng.randint(5, 300)), now)
                consent_set(
                    customer=customer,
                    purpose=purpose,
                    granted=False,
                    source=source,
                    request_meta=RequestMeta(ip_address=None, user_agent=rng.choice(USER_AGENTS)),
                    method=Method.WEB if source == Source.PREFERENCE_PAGE else Method.EMAIL_LINK,
                    occurred_at=later,
                    reference="demo campaign",
                )
    _demo_disclosures(customers, rng)


def _demo_disclosures(customers: list[Customer], rng: random.Random) -> None:
    partner = _third_party(*RESEARCH_PARTNER)
    authority = _third_party(*AUTHORITY)
    research = customers_consenting_to(
        "market_research", customers=Customer.objects.filter(pk__in=[c.pk for c in customers])
    )
    for customer in research.select_related(None)[:3]:
        consent = customer.consents.select_related("event").get(purpose__code="market_research")
        disclosure_record(
            customer=customer,
            third_party=partner,
            data_categories=["identity", "contact"],
            legal_basis=LegalBasis.CONSENT,
            disclosure_purpose=DisclosurePurpose.objects.filter(consent_purpose__code="market_research").first(),
            purpose="Invitation to the 2025 customer satisfaction survey",
            consent_event=consent.event,
            reference=f"NWR-SURVEY-{rng.randint(1000, 9999)}",
            disclosed_at=max(consent.event.occurred_at, timezone.now() - timedelta(days=30)),
        )
    for customer in rng.sample(customers, min(4, len(customers))):
        registration = customer.registrations.select_related("reseller").first()
        if registration is None or registration.reseller is None:
            continue
        disclosure_record(
            customer=customer,
            third_party=registration.reseller,
            data_categories=["identity", "contact", "purchase"],
            legal_basis=LegalBasis.CONTRACT,
            purpose="Licence transfer to a new machine, handled by the reseller",
            reference=registration.order_reference,
            disclosed_at=registration.purchased_at,
        )
    if customers:
        customer = rng.choice(customers)
        disclosure_record(
            customer=customer,
            third_party=authority,
            data_categories=["identity", "address", "purchase"],
            legal_basis=LegalBasis.LEGAL_OBLIGATION,
            purpose="VAT enquiry about a sale",
            reference=f"HMRC-{rng.randint(100000, 999999)}",
        )


def _third_party(name: str, kind: str, country: str, website: str, dpa: str) -> ThirdParty:
    party, _ = ThirdParty.objects.get_or_create(
        name=name, defaults={"kind": kind, "country": country, "website": website, "dpa_reference": dpa}
    )
    return party
