"""
A customer's consent receipt in the published standards, built from the ledger, the purposes,
the disclosures and the settings (docs/receipts.md maps every field):

- `kantara_receipt`: the Kantara Initiative Consent Receipt Specification v1.1, valid against
  its published JSON schema (consents/schemas/, checked by `kantara_schema_errors`): the
  consent in force, per purpose, with the third parties it let us share data with;
- `iso27560_record`: an ISO/IEC TS 27560 consent record in W3C DPV JSON-LD: every decision the
  customer made, with its proof (time, method, source, the wording shown, the policy version).

`signed_receipt` signs either (consents.receipt_signing). An erased customer has no receipt:
the fact and time of each decision are kept, but nothing that says whose they were.
"""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from functools import lru_cache
from pathlib import Path
from typing import Any

from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from common.dates import iso
from customers.models import Customer

from .models import ConsentEvent, DataCategory, Disclosure, LegalBasis, PolicyVersion, Purpose
from .receipt_signing import receipt_sign, signing_key
from .selectors import PurposeState, consent_states

RECEIPT_FORMATS = ("kantara", "iso27560")
KANTARA_VERSION = "KI-CR-v1.1.0"
KANTARA_SCHEMA_FILE = Path(__file__).parent / "schemas" / "kantara-consent-receipt-v1_1-schema.json"
DPV_27560_RECORD = "https://w3id.org/dpv/schema/dpv-27560#record"


class ReceiptRefused(Exception):
    """No receipt can be issued for this customer (erased); the message says why."""


# Kantara v1.1 purpose categories (Appendix "Purpose categories"), per purpose code; a purpose
# staff add gets "6 - Marketing" if it is a marketing purpose, else "1 - Core Function".
KANTARA_PURPOSE_CATEGORIES = {
    "newsletter": ["6 - Marketing"],
    "promotions": ["6 - Marketing"],
    "market_research": ["6 - Marketing"],
    "internal_analysis": ["16 - Improve Performance"],
}
# The personal data each purpose uses (the privacy promise: marketing mail uses the name and the
# address; internal analysis, the purchases), as Kantara PII categories and as DPV `pd:` concepts.
PURPOSE_DATA = {
    "marketing": (["1 - Biographical", "2 - Contact"], ["pd:Name", "pd:EmailAddress", "pd:Language"]),
    "internal_analysis": (["1 - Biographical", "7 - Financial"], ["pd:Name", "pd:PurchasesAndSpendingHabit"]),
}
# A disclosure's data categories, in the same two vocabularies.
DATA_CATEGORY_TERMS = {
    DataCategory.IDENTITY: ("1 - Biographical", "pd:Identifying"),
    DataCategory.CONTACT: ("2 - Contact", "pd:Contact"),
    DataCategory.ADDRESS: ("2 - Contact", "pd:PhysicalAddress"),
    DataCategory.PURCHASE: ("7 - Financial", "pd:Purchase"),
    DataCategory.USAGE: ("5 - Network/Service", "pd:ServiceConsumptionBehaviour"),
}
DPV_PURPOSES = {
    "newsletter": "dpv:DirectMarketing",
    "promotions": "dpv:DirectMarketing",
    "market_research": "dpv:CommercialResearch",
    "internal_analysis": "dpv:ImproveExistingProductsAndServices",
}
DPV_LEGAL_BASES = {
    LegalBasis.CONTRACT: "dpv:Contract",
    LegalBasis.CONSENT: "dpv:ExplicitlyExpressedConsent",
    LegalBasis.LEGAL_OBLIGATION: "dpv:LegalObligation",
    LegalBasis.LEGITIMATE_INTERESTS: "dpv:LegitimateInterest",
}
DPV_CONTEXT = {
    "dpv": "https://w3id.org/dpv#",
    "pd": "https://w3id.org/dpv/pd#",
    "loc": "https://w3id.org/dpv/loc#",
    "dct": "http://purl.org/dc/terms/",
    "schema": "https://schema.org/",
    "xsd": "http://www.w3.org/2001/XMLSchema#",
    "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
    "dct:conformsTo": {"@type": "@id"},
    "dpv:isExercisedAt": {"@type": "@id"},
    "dpv:isIndicatedAtTime": {"@type": "xsd:dateTime"},
    "dct:created": {"@type": "xsd:dateTime"},
}


# ---------------------------------------------------------------------------------------
# What both formats share


def _site(path: str) -> str:
    return settings.SITE_URL + path


def privacy_policy_url() -> str:
    return settings.PRIVACY_POLICY_URL or _site(reverse("consents:policy"))


def _preferences_url() -> str:
    # Where a customer asks for their preference link: withdrawing needs no login (one click
    # from any marketing email, or this page).
    return _site(reverse("consents:request_link"))


def _purpose_data(purpose: Purpose) -> tuple[list[str], list[str]]:
    if purpose.code in PURPOSE_DATA:
        return PURPOSE_DATA[purpose.code]
    return PURPOSE_DATA["marketing"] if purpose.is_marketing else (["1 - Biographical"], ["pd:Identifying"])


def _collection_method(event: ConsentEvent) -> str:
    return f"{event.get_method_display()} ({event.get_source_display()})"


def _refuse_erased(customer: Customer) -> None:
    if customer.erased_at is not None:
        raise ReceiptRefused("This customer's data was erased: there is no receipt to issue.")


def _disclosures_by_purpose(customer: Customer) -> tuple[dict[int, list[Disclosure]], list[Disclosure]]:
    """Disclosures that relied on a consent, by that consent's purpose; and the others."""
    by_purpose: dict[int, list[Disclosure]] = defaultdict(list)
    others: list[Disclosure] = []
    for disclosure in (
        Disclosure.objects.filter(customer_id=customer.pk)
        .select_related("third_party", "disclosure_purpose", "consent_event")
        .order_by("disclosed_at", "id")
    ):
        if disclosure.consent_event is not None:
            by_purpose[disclosure.consent_event.purpose_id].append(disclosure)
        else:
            others.append(disclosure)
    return by_purpose, others


def _unique(values) -> list:
    return list(dict.fromkeys(values))


# ---------------------------------------------------------------------------------------
# Kantara Consent Receipt v1.1


def _kantara_purpose(state: PurposeState, disclosures: list[Disclosure]) -> dict[str, Any]:
    purpose, event = state.purpose, state.event
    assert event is not None
    pii_categories, _ = _purpose_data(purpose)
    disclosed = [DATA_CATEGORY_TERMS[c][0] for d in disclosures for c in d.data_categories if c in DATA_CATEGORY_TERMS]
    category = KANTARA_PURPOSE_CATEGORIES.get(purpose.code) or (
        ["6 - Marketing"] if purpose.is_marketing else ["1 - Core Function"]
    )
    entry: dict[str, Any] = {
        # The words the customer agreed to, as shown then (kept with the event), not today's.
        "purpose": f"{purpose.name}: {event.wording}" if event.wording else purpose.name,
        "purposeCategory": category,
        "consentType": "EXPLICIT",
        "piiCategory": _unique([*pii_categories, *disclosed]),
        "primaryPurpose": False,
        "termination": (
            "Until you withdraw it: "
            + ("one click on the unsubscribe link in any of our emails, or " if purpose.is_marketing else "")
            + f"on your preference page ({_preferences_url()}); or when your data is erased."
        ),
        "thirdPartyDisclosure": bool(disclosures),
    }
    if disclosures:
        entry["thirdPartyName"] = ", ".join(_unique(d.third_party.name for d in disclosures))
    return entry


def kantara_receipt(*, customer: Customer) -> dict[str, Any]:
    """
    The Kantara v1.1 receipt: the consents in force (purposes granted now), each with the
    third parties its consent let us share data with. Withdrawn and never-asked purposes are
    not consent, so they are not in it; the ISO/IEC TS 27560 record has every decision.
    """
    _refuse_erased(customer)
    states = consent_states(customer=customer, with_events=True)
    by_purpose, _ = _disclosures_by_purpose(customer)
    in_force = [s for s in states if s.granted and s.event is not None]
    in_force_events: list[ConsentEvent] = [s.event for s in in_force if s.event is not None]
    decided: list[ConsentEvent] = [s.event for s in states if s.event is not None]
    latest = max(in_force_events or decided, key=lambda e: e.occurred_at, default=None)
    methods = _unique(_collection_method(e) for e in in_force_events) or (
        [_collection_method(latest)] if latest else ["No decision recorded"]
    )
    moment = latest.occurred_at if latest else timezone.now()
    service = f"{settings.COMPANY_NAME}: customer records and marketing email"
    key_pem = _public_key_pem()
    receipt: dict[str, Any] = {
        "version": KANTARA_VERSION,
        "jurisdiction": settings.RECEIPT_JURISDICTION,
        "consentTimestamp": int(moment.timestamp()),
        "collectionMethod": "; ".join(methods),
        "consentReceiptID": str(uuid.uuid4()),
        "publicKey": key_pem,
        "language": customer.language,
        "piiPrincipalId": customer.email,
        "piiControllers": [
            {
                "piiController": settings.COMPANY_NAME,
                "onBehalf": False,
                "contact": settings.COMPANY_PRIVACY_CONTACT,
                "address": {
                    "streetAddress": settings.COMPANY_POSTAL_ADDRESS,
                    "addressCountry": settings.RECEIPT_JURISDICTION,
                },
                "email": settings.COMPANY_EMAIL,
                "phone": settings.COMPANY_PHONE,
                "piiControllerUrl": settings.SITE_URL,
            }
        ],
        "policyUrl": privacy_policy_url(),
        "services": [
            {
                "service": service,
                "purposes": [_kantara_purpose(s, by_purpose.get(s.purpose.pk, [])) for s in in_force],
            }
        ],
        # Nothing sensitive is collected (no special-category data; card numbers are refused).
        "sensitive": False,
        "spiCat": [],
    }
    return receipt


def _public_key_pem() -> str:
    return signing_key().public_pem()


@lru_cache(maxsize=1)
def kantara_schema() -> dict[str, Any]:
    """The published schema; it carries `//` comment lines, which JSON does not allow."""
    lines = KANTARA_SCHEMA_FILE.read_text(encoding="utf-8").splitlines()
    return json.loads("\n".join(line for line in lines if not line.lstrip().startswith("//")))


def kantara_schema_errors(receipt: Any) -> list[str]:
    """Where the receipt breaks the Kantara v1.1 schema (draft-04); empty when it is valid."""
    from jsonschema import Draft4Validator

    validator = Draft4Validator(kantara_schema())
    return [
        f"{'/'.join(str(p) for p in error.absolute_path) or '(top level)'}: {error.message}"
        for error in sorted(validator.iter_errors(receipt), key=lambda e: list(map(str, e.absolute_path)))
    ]


# ---------------------------------------------------------------------------------------
# ISO/IEC TS 27560 consent record, W3C DPV JSON-LD


def _dpv_status(event: ConsentEvent, customer: Customer) -> dict[str, Any]:
    policy: PolicyVersion | None = event.policy_version
    status: dict[str, Any] = {
        "@id": f"urn:consentdesk:consent-event:{event.pk}",
        "@type": ["dpv:ConsentGiven", "dpv:ExplicitlyExpressedConsent"] if event.granted else "dpv:ConsentWithdrawn",
        "dct:identifier": str(event.pk),
        "dpv:isIndicatedAtTime": iso(event.occurred_at),
        "dct:created": iso(event.recorded_at),
        # Staff record a decision the customer made by phone or letter: the customer made it.
        "dpv:isIndicatedBy": "dpv:DataSubject",
        "dpv:hasIndicationMethod": _collection_method(event),
        "dpv:hasNotice": {
            "@type": "dpv:ConsentNotice",
            "dct:description": event.wording,
            "dct:language": event.language,  # the language the customer was shown
        },
    }
    if policy is not None:
        status["dpv:hasNotice"]["dct:isPartOf"] = {
            "@type": "dpv:PrivacyNotice",
            "dct:identifier": policy.version,
            "dct:valid": iso(policy.effective_at),
        }
    if event.staff_user_id is not None:
        status["dpv:isImplementedBy"] = "dpv:DataController"
    if event.redacted_at is not None:
        status["dct:modified"] = iso(event.redacted_at)
    return status


def _dpv_recipient(disclosure: Disclosure) -> dict[str, Any]:
    party = disclosure.third_party
    recipient: dict[str, Any] = {"@type": "dpv:ThirdParty", "dpv:hasName": party.name}
    if party.country:
        recipient["dpv:hasLocation"] = f"loc:{party.country}"
    return recipient


def _dpv_disclosure(disclosure: Disclosure) -> dict[str, Any]:
    return {
        "@type": "dpv:Process",
        "dct:identifier": f"disclosure:{disclosure.pk}",
        "dpv:hasPurpose": {
            "@type": "dpv:Purpose",
            "dct:title": disclosure.disclosure_purpose.name,
            "dct:description": disclosure.purpose,
        },
        "dpv:hasLegalBasis": DPV_LEGAL_BASES[LegalBasis(disclosure.legal_basis)],
        "dpv:hasProcessing": "dpv:Disclose",
        "dpv:hasPersonalData": [
            DATA_CATEGORY_TERMS[c][1] for c in disclosure.data_categories if c in DATA_CATEGORY_TERMS
        ],
        "dpv:hasRecipient": _dpv_recipient(disclosure),
        "dct:date": iso(disclosure.disclosed_at),
    }


def iso27560_record(*, customer: Customer) -> dict[str, Any]:
    """
    The consent record: one process per purpose the customer was asked about, with every
    decision in the order made (oldest first) and its proof; then the disclosures made on
    another basis than consent.
    """
    _refuse_erased(customer)
    by_purpose, others = _disclosures_by_purpose(customer)
    history: dict[int, list[ConsentEvent]] = defaultdict(list)
    for event in (
        ConsentEvent.objects.filter(customer_id=customer.pk)
        .select_related("policy_version")
        .order_by("occurred_at", "recorded_at", "id")
    ):
        history[event.purpose_id].append(event)
    current_policy = PolicyVersion.objects.current()
    processes = []
    for state in consent_states(customer=customer):
        purpose = state.purpose
        if purpose.pk not in history:
            continue  # never asked: no consent to record
        _, personal_data = _purpose_data(purpose)
        process: dict[str, Any] = {
            "@type": "dpv:Process",
            "dct:identifier": purpose.code,
            "dpv:hasPurpose": {
                "@type": DPV_PURPOSES.get(
                    purpose.code, "dpv:DirectMarketing" if purpose.is_marketing else "dpv:Purpose"
                ),
                "dct:title": purpose.name,
                "dct:description": purpose.wording,
            },
            "dpv:hasLegalBasis": "dpv:ExplicitlyExpressedConsent",
            "dpv:hasPersonalData": personal_data,
            "dpv:hasDataSource": "dpv:DataSubjectDataSource",
            "dpv:hasConsentStatus": [_dpv_status(event, customer) for event in history[purpose.pk]],
            # The state in force: the latest decision by the time it was made.
            "dpv:hasStatus": "dpv:ConsentGiven" if state.granted else "dpv:ConsentWithdrawn",
        }
        recipients = by_purpose.get(purpose.pk, [])
        if recipients:
            process["dpv:hasRecipient"] = [_dpv_recipient(d) for d in recipients]
            process["dpv:hasProcess"] = [_dpv_disclosure(d) for d in recipients]
        processes.append(process)
    processes.extend(_dpv_disclosure(d) for d in others)
    record_id = str(uuid.uuid4())
    notice: dict[str, Any] = {"@id": privacy_policy_url(), "@type": "dpv:PrivacyNotice"}
    if current_policy is not None:
        notice.update({"dct:identifier": current_policy.version, "dct:valid": iso(current_policy.effective_at)})
    return {
        "@context": DPV_CONTEXT,
        "@id": f"urn:uuid:{record_id}",
        "@type": "dpv:ConsentRecord",
        "dct:identifier": record_id,
        "dct:conformsTo": DPV_27560_RECORD,
        "dct:created": iso(timezone.now()),
        "dct:language": customer.language,
        "dpv:hasDataSubject": {
            "@id": f"urn:uuid:{customer.public_id}",
            "@type": "dpv:DataSubject",
            "dct:identifier": customer.email,
        },
        "dpv:hasDataController": {
            "@id": settings.SITE_URL,
            "@type": "dpv:DataController",
            "dpv:hasName": settings.COMPANY_NAME,
            "dpv:hasAddress": settings.COMPANY_POSTAL_ADDRESS,
            "dpv:hasContact": {
                "@type": "schema:ContactPoint",
                "schema:name": settings.COMPANY_PRIVACY_CONTACT,
                "schema:email": settings.COMPANY_EMAIL,
                "schema:telephone": settings.COMPANY_PHONE,
                "schema:url": settings.SITE_URL,
            },
        },
        "dpv:hasJurisdiction": f"loc:{settings.RECEIPT_JURISDICTION}",
        "dpv:hasNotice": notice,
        "dpv:hasConsentControl": {
            "@type": ["dpv:ProvideConsent", "dpv:WithdrawConsent"],
            "dpv:isExercisedAt": _preferences_url(),
        },
        "dpv:hasRight": [
            {
                "@type": "dpv:DataSubjectRight",
                "dct:title": title,
                "dpv:isExercisedAt": _preferences_url(),
            }
            for title in ("Right to withdraw consent", "Right of access and data portability", "Right to erasure")
        ],
        "dpv:hasStorageCondition": {
            "@type": "dpv:StorageDuration",
            "dpv:hasDuration": {
                "@type": "dpv:UntilEventDuration",
                "rdf:value": "Until the customer's data is erased; the fact and time of each decision are kept",
            },
        },
        "dpv:hasProcess": processes,
    }


# ---------------------------------------------------------------------------------------
# Signed, as the admin download, the API, the customer's data page and the command give it


def consent_receipt_document(*, customer: Customer, receipt_format: str) -> dict[str, Any]:
    if receipt_format == "kantara":
        return kantara_receipt(customer=customer)
    if receipt_format == "iso27560":
        return iso27560_record(customer=customer)
    raise ValueError(f"unknown receipt format {receipt_format!r}: use one of {', '.join(RECEIPT_FORMATS)}")


def signed_receipt(*, customer: Customer, receipt_format: str = "kantara") -> dict[str, Any]:
    """The receipt in the format asked for, signed. Raises ReceiptRefused for an erased customer."""
    return receipt_sign(
        consent_receipt_document(customer=customer, receipt_format=receipt_format), receipt_format=receipt_format
    )


def receipt_filename(customer: Customer, receipt_format: str) -> str:
    suffix = "kantara" if receipt_format == "kantara" else "iso27560"
    return f"consent-receipt-{customer.public_id}-{suffix}.json"
