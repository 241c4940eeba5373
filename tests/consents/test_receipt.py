"""
Consent receipts in the published standards: Kantara v1.1 (checked against its published
schema), ISO/IEC TS 27560 in DPV JSON-LD, signed as JWS and verifiable offline.
"""

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from consents.models import LegalBasis, Method, PolicyVersion, Purpose, Source
from consents.receipt_signing import ReceiptInvalid, receipt_verify, signed_receipt_json
from consents.receipts import (
    ReceiptRefused,
    iso27560_record,
    kantara_receipt,
    kantara_schema,
    kantara_schema_errors,
    signed_receipt,
)
from consents.services import RequestMeta, consent_grant, consent_withdraw, disclosure_record
from customers.models import ThirdParty
from privacy.services import customer_erase
from tests.consents.people import disclosure_purpose

pytestmark = pytest.mark.django_db


@pytest.fixture
def promotions(db):
    return Purpose.objects.get(code="promotions")


@pytest.fixture
def ada_with_history(ada, newsletter, promotions, market_research):
    """Ada signed up for the newsletter, withdrew from promotions, and her market-research
    consent let us invite her to a partner's survey."""
    consent_grant(
        customer=ada,
        purpose=newsletter,
        source=Source.SIGNUP_FORM,
        request_meta=RequestMeta(ip_address="203.0.113.5", user_agent="Firefox"),
    )
    consent_grant(customer=ada, purpose=promotions, source=Source.PREFERENCE_PAGE)
    consent_withdraw(customer=ada, purpose=promotions, source=Source.ONE_CLICK, reference="campaign 12")
    research = consent_grant(customer=ada, purpose=market_research, source=Source.PREFERENCE_PAGE)
    partner = ThirdParty.objects.create(name="Northwind Research", kind=ThirdParty.Kind.PARTNER, country="NL")
    disclosure_record(
        customer=ada,
        third_party=partner,
        data_categories=["identity", "contact"],
        legal_basis=LegalBasis.CONSENT,
        disclosure_purpose=disclosure_purpose("market_research"),
        purpose="Survey panel, spring 2027",
        consent_event=research,
    )
    return ada


def purposes_of(receipt):
    (service,) = receipt["services"]
    return {p["purpose"].split(":")[0]: p for p in service["purposes"]}


# ---------------------------------------------------------------------------------------
# Kantara v1.1


def test_the_published_schema_loads_once_its_comment_lines_are_stripped():
    schema = kantara_schema()
    assert schema["$schema"] == "http://json-schema.org/draft-04/schema#"
    assert "piiControllers" in schema["required"]


def test_a_customer_with_grants_a_withdrawal_and_a_disclosure_gets_a_valid_kantara_receipt(ada_with_history, settings):
    settings.COMPANY_NAME = "PhotoForge Software GmbH"
    settings.COMPANY_POSTAL_ADDRESS = "Hauptstraße 1, 10115 Berlin, Germany"
    settings.COMPANY_EMAIL = "privacy@photoforge.example"
    settings.COMPANY_PHONE = "+49 30 1234567"
    settings.RECEIPT_JURISDICTION = "DE"

    receipt = kantara_receipt(customer=ada_with_history)

    assert kantara_schema_errors(receipt) == []
    assert receipt["version"] == "KI-CR-v1.1.0"
    assert receipt["jurisdiction"] == "DE"
    assert receipt["piiPrincipalId"] == "ada@example.com"
    assert isinstance(receipt["consentTimestamp"], int)
    (controller,) = receipt["piiControllers"]
    assert controller["piiController"] == "PhotoForge Software GmbH"
    assert controller["address"]["streetAddress"] == "Hauptstraße 1, 10115 Berlin, Germany"
    assert (controller["email"], controller["phone"]) == ("privacy@photoforge.example", "+49 30 1234567")
    assert receipt["policyUrl"] == f"{settings.SITE_URL}/preferences/policy/"
    # the consents in force, not the withdrawn one, nor the never-asked one
    purposes = purposes_of(receipt)
    assert set(purposes) == {"Newsletter", "Market research"}
    assert purposes["Market research"]["thirdPartyDisclosure"] is True
    assert purposes["Market research"]["thirdPartyName"] == "Northwind Research"
    assert purposes["Newsletter"]["thirdPartyDisclosure"] is False
    assert "thirdPartyName" not in purposes["Newsletter"]
    assert purposes["Newsletter"]["purposeCategory"] == ["6 - Marketing"]
    assert "Web form (Signup or registration form)" in receipt["collectionMethod"]
    assert receipt["sensitive"] is False and receipt["spiCat"] == []


def test_the_receipt_quotes_the_wording_that_was_shown_not_todays(ada, newsletter):
    shown = newsletter.wording
    consent_grant(customer=ada, purpose=newsletter, source=Source.PREFERENCE_PAGE)
    newsletter.wording = "Send me everything you like, as often as you like."
    newsletter.save()

    receipt = kantara_receipt(customer=ada)

    assert purposes_of(receipt)["Newsletter"]["purpose"] == f"Newsletter: {shown}"
    assert "Send me everything" not in json.dumps(receipt)


def test_the_consent_timestamp_is_when_the_customer_decided_in_whole_seconds(ada, newsletter):
    ada.created_at = timezone.now() - timedelta(days=30)
    ada.save(update_fields=["created_at"])
    decided = timezone.now() - timedelta(days=3, microseconds=1)
    consent_grant(customer=ada, purpose=newsletter, source=Source.STAFF, occurred_at=decided, **_staff(ada))

    receipt = kantara_receipt(customer=ada)

    assert receipt["consentTimestamp"] == int(decided.timestamp())
    assert receipt["collectionMethod"] == "Phone (Staff on behalf of the customer)"


def _staff(customer):
    from django.contrib.auth import get_user_model

    staff = get_user_model().objects.create_user("sam-support", is_staff=True)
    return {"staff_user": staff, "method": Method.PHONE, "note": "Customer phoned, call ref 4471"}


def test_a_customer_nobody_asked_gets_a_valid_receipt_with_no_consent_in_it(linus):
    receipt = kantara_receipt(customer=linus)

    assert kantara_schema_errors(receipt) == []
    assert receipt["services"][0]["purposes"] == []


def test_a_broken_receipt_is_caught_by_the_schema(ada_with_history):
    receipt = kantara_receipt(customer=ada_with_history)
    del receipt["piiControllers"][0]["phone"]
    receipt["consentTimestamp"] = "yesterday"
    purpose = receipt["services"][0]["purposes"][1]
    del purpose["thirdPartyName"]  # disclosed, but to whom?

    errors = kantara_schema_errors(receipt)

    assert any(e.startswith("consentTimestamp:") for e in errors)
    assert any("'phone' is a required property" in e for e in errors)
    assert any(e.startswith("services/0/purposes/1:") for e in errors)


def test_an_erased_customer_gets_no_receipt(ada_with_history, admin_user):
    customer_erase(customer=ada_with_history, staff_user=admin_user)
    ada_with_history.refresh_from_db()

    for receipt_format in ("kantara", "iso27560"):
        with pytest.raises(ReceiptRefused, match="erased"):
            signed_receipt(customer=ada_with_history, receipt_format=receipt_format)


# ---------------------------------------------------------------------------------------
# ISO/IEC TS 27560 in DPV JSON-LD


def test_the_27560_record_holds_every_decision_with_its_proof(ada_with_history):
    PolicyVersion.objects.create(version="2.0", effective_at=timezone.now() - timedelta(seconds=1), text="New text")

    record = iso27560_record(customer=ada_with_history)

    assert record["dct:conformsTo"] == "https://w3id.org/dpv/schema/dpv-27560#record"
    assert record["@type"] == "dpv:ConsentRecord"
    assert record["@context"]["dpv"] == "https://w3id.org/dpv#"
    assert record["dpv:hasDataSubject"]["@id"] == f"urn:uuid:{ada_with_history.public_id}"
    assert record["dpv:hasNotice"]["dct:identifier"] == "2.0"  # the policy in force today
    processes = {p["dct:identifier"]: p for p in record["dpv:hasProcess"]}
    assert set(processes) == {"newsletter", "promotions", "market_research"}  # asked about
    promotions = processes["promotions"]
    statuses = promotions["dpv:hasConsentStatus"]
    assert [s["@type"] for s in statuses] == [
        ["dpv:ConsentGiven", "dpv:ExplicitlyExpressedConsent"],
        "dpv:ConsentWithdrawn",
    ]
    assert statuses[1]["dpv:hasIndicationMethod"] == "Link in an email (One-click unsubscribe)"
    assert promotions["dpv:hasStatus"] == "dpv:ConsentWithdrawn"
    # the wording and the policy version in force when she decided
    newsletter_status = processes["newsletter"]["dpv:hasConsentStatus"][0]
    assert newsletter_status["dpv:hasNotice"]["dct:description"] == Purpose.objects.get(code="newsletter").wording
    assert newsletter_status["dpv:hasNotice"]["dct:isPartOf"]["dct:identifier"] == "1.0"
    research = processes["market_research"]
    assert research["dpv:hasRecipient"] == [
        {"@type": "dpv:ThirdParty", "dpv:hasName": "Northwind Research", "dpv:hasLocation": "loc:NL"}
    ]
    assert sorted(research["dpv:hasProcess"][0]["dpv:hasPersonalData"]) == ["pd:Contact", "pd:Identifying"]
    json.dumps(record)


def test_a_disclosure_on_another_basis_is_a_process_of_its_own(ada):
    reseller = ThirdParty.objects.create(name="Paddle", kind=ThirdParty.Kind.RESELLER, country="GB")
    disclosure_record(
        customer=ada,
        third_party=reseller,
        data_categories=["contact", "purchase"],
        legal_basis=LegalBasis.CONTRACT,
        disclosure_purpose=disclosure_purpose("purchase"),
        purpose="Completing the order",
    )

    (process,) = iso27560_record(customer=ada)["dpv:hasProcess"]

    assert process["dpv:hasLegalBasis"] == "dpv:Contract"
    assert process["dpv:hasRecipient"]["dpv:hasName"] == "Paddle"


# ---------------------------------------------------------------------------------------
# The signature


@pytest.mark.parametrize("receipt_format", ["kantara", "iso27560"])
def test_a_signed_receipt_verifies_with_the_published_key(ada_with_history, client, receipt_format):
    signed = json.loads(signed_receipt_json(signed_receipt(customer=ada_with_history, receipt_format=receipt_format)))
    jwks = client.get("/.well-known/jwks.json").json()

    receipt = receipt_verify(signed, jwks=jwks)

    assert receipt == signed["receipt"]
    assert signed["format"] == receipt_format


def test_a_receipt_with_one_changed_byte_fails(ada_with_history):
    text = signed_receipt_json(signed_receipt(customer=ada_with_history))
    signed = json.loads(text)
    timestamp = str(signed["receipt"]["consentTimestamp"])
    last = timestamp[-1]
    changes = {
        # the readable receipt: one digit of the time of consent
        "receipt": text.replace(timestamp, timestamp[:-1] + ("1" if last != "1" else "2"), 1),
        # a letter of the address it was issued to
        "address": text.replace('"piiPrincipalId": "ada@', '"piiPrincipalId": "adb@', 1),
        # one character of the signature itself
        "signature": text.replace(
            signed["jws"], signed["jws"][:-5] + ("A" if signed["jws"][-5] != "A" else "B") + signed["jws"][-4:]
        ),
        # one character of the signed payload
        "payload": text.replace(signed["jws"], _flip_payload_byte(signed["jws"])),
    }
    for what, changed in changes.items():
        assert changed != text, what
        assert sum(a != b for a, b in zip(changed, text, strict=True)) == 1, what
        with pytest.raises(ReceiptInvalid):
            receipt_verify(json.loads(changed))


def _flip_payload_byte(token: str) -> str:
    header, payload, signature = token.split(".")
    middle = len(payload) // 2
    replacement = "A" if payload[middle] != "A" else "B"
    return ".".join([header, payload[:middle] + replacement + payload[middle + 1 :], signature])


def test_a_receipt_signed_by_another_key_fails(ada_with_history, settings, tmp_path):
    signed = signed_receipt(customer=ada_with_history)
    # the site's key changes (a forger's key, or a rotation the holder does not know of)
    settings.RECEIPT_SIGNING_KEY = ""
    settings.RECEIPT_DEVELOPMENT_KEY_FILE = tmp_path / "other-key.pem"

    with pytest.raises(ReceiptInvalid, match="key id"):
        receipt_verify(signed)


def test_an_rsa_key_from_the_settings_signs_with_rs256(ada, settings):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    settings.RECEIPT_SIGNING_KEY = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()

    signed = signed_receipt(customer=ada)

    from consents.receipt_signing import published_key_set

    (key,) = published_key_set()["keys"]
    assert (key["kty"], key["alg"]) == ("RSA", "RS256")
    assert "d" not in key  # the public half only
    assert receipt_verify(signed) == signed["receipt"]
