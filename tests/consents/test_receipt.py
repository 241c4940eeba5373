import json
from datetime import timedelta

import pytest
from django.utils import timezone

from consents.models import PolicyVersion, Source
from consents.receipts import consent_receipt
from consents.services import RequestMeta, consent_grant, consent_withdraw

pytestmark = pytest.mark.django_db


def purpose_entry(receipt, code):
    return next(p for p in receipt["purposes"] if p["purpose"] == code)


def test_the_receipt_lists_the_wording_that_was_shown_not_todays(staff_client_fixture, ada, newsletter):
    # given a customer who agreed to the newsletter as it was worded then
    shown = newsletter.wording
    consent_grant(customer=ada, purpose=newsletter, source=Source.PREFERENCE_PAGE)
    # when staff later reword the purpose in admin
    response = staff_client_fixture.post(
        f"/admin/consents/purpose/{newsletter.pk}/change/",
        {
            "name_en": newsletter.name,
            "wording_en": "Send me everything you like, as often as you like.",
            "is_marketing": "on",
            "display_order": newsletter.display_order,
            # The inline of disclosures this consent allows, left as it is.
            "disclosure_purposes-TOTAL_FORMS": "0",
            "disclosure_purposes-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302
    newsletter.refresh_from_db()
    assert newsletter.wording.startswith("Send me everything")
    # then the receipt still shows what the customer saw
    receipt = json.loads(staff_client_fixture.get(f"/admin/customers/customer/{ada.pk}/consent-receipt/").content)
    entry = purpose_entry(receipt, "newsletter")
    assert entry["current_decision"]["wording_shown"] == shown
    assert "Send me everything" not in json.dumps(receipt)


def test_the_receipt_gives_each_purpose_its_decision_and_proof(ada, newsletter, settings):
    settings.COMPANY_NAME = "PhotoForge Software GmbH"
    settings.COMPANY_POSTAL_ADDRESS = "Hauptstraße 1, 10115 Berlin, Germany"
    meta = RequestMeta(ip_address="203.0.113.5", user_agent="Firefox")
    consent_grant(customer=ada, purpose=newsletter, source=Source.SIGNUP_FORM, request_meta=meta)
    consent_withdraw(customer=ada, purpose=newsletter, source=Source.ONE_CLICK, reference="campaign 12")
    consent_grant(customer=ada, purpose=newsletter, source=Source.PREFERENCE_PAGE, request_meta=meta)

    receipt = consent_receipt(customer=ada)

    assert receipt["controller"] == {
        "name": "PhotoForge Software GmbH",
        "postal_address": "Hauptstraße 1, 10115 Berlin, Germany",
        "contact_email": settings.DEFAULT_FROM_EMAIL,
    }
    assert receipt["subject"] == {"public_id": str(ada.public_id), "email": "ada@example.com"}
    newsletter_entry = purpose_entry(receipt, "newsletter")
    assert newsletter_entry["state"] == "granted"
    proof = newsletter_entry["current_decision"]
    assert proof["source"] == "preference_page"
    assert proof["collection_method"] == "web"
    assert proof["policy_version"] == "1.0"
    assert proof["decided_at"]
    assert [h["decision"] for h in newsletter_entry["history"]] == ["granted", "withdrawn", "granted"]
    research = purpose_entry(receipt, "market_research")
    assert research["state"] == "never_asked"
    assert research["current_decision"] is None
    assert receipt["sale_of_data"] is False
    json.dumps(receipt)  # serialisable as it is


def test_the_receipt_names_the_policy_version_in_force_when_the_customer_decided(ada, newsletter):
    consent_grant(customer=ada, purpose=newsletter, source=Source.SIGNUP_FORM)
    PolicyVersion.objects.create(version="2.0", effective_at=timezone.now() - timedelta(seconds=1), text="New text")

    receipt = consent_receipt(customer=ada)

    assert purpose_entry(receipt, "newsletter")["current_decision"]["policy_version"] == "1.0"
    assert receipt["privacy_policy"]["version"] == "2.0"


@pytest.fixture
def staff_client_fixture(client, admin_user):
    client.force_login(admin_user)
    return client
