"""The consent receipt through the API: both standards, signed, with the scopes it needs."""

from __future__ import annotations

import pytest

from api.models import Scope
from consents.models import Purpose, Source
from consents.receipt_signing import receipt_verify
from consents.receipts import kantara_schema_errors
from consents.services import consent_grant, consent_withdraw
from privacy.models import AccessLog
from tests.factories import CustomerFactory

from .conftest import client_with

pytestmark = pytest.mark.django_db


@pytest.fixture
def ada(db):
    ada = CustomerFactory(email="ada@example.com", first_name="Ada", last_name="Lovelace")
    consent_grant(customer=ada, purpose=Purpose.objects.get(code="newsletter"), source=Source.SIGNUP_FORM)
    consent_grant(customer=ada, purpose=Purpose.objects.get(code="promotions"), source=Source.SIGNUP_FORM)
    consent_withdraw(customer=ada, purpose=Purpose.objects.get(code="promotions"), source=Source.ONE_CLICK)
    return ada


@pytest.fixture
def crm():
    return client_with(Scope.CONSENT_READ, Scope.CUSTOMERS_READ)


def url(customer, receipt_format=None):
    base = f"/api/v1/customers/{customer.public_id}/receipt/"
    return f"{base}?format={receipt_format}" if receipt_format else base


def test_the_api_gives_the_signed_kantara_receipt_by_default(ada, crm):
    response = crm.get(url(ada))

    assert response.status_code == 200, response.content
    signed = response.json()
    assert signed["format"] == "kantara"
    assert kantara_schema_errors(signed["receipt"]) == []
    assert receipt_verify(signed) == signed["receipt"]
    assert AccessLog.objects.filter(customer=ada, action=AccessLog.Action.API_READ).exists()


def test_the_api_gives_the_27560_record_on_request(ada, crm):
    signed = crm.get(url(ada, "iso27560")).json()

    assert signed["format"] == "iso27560"
    assert signed["receipt"]["dct:conformsTo"] == "https://w3id.org/dpv/schema/dpv-27560#record"
    assert receipt_verify(signed) == signed["receipt"]


def test_an_unknown_format_is_a_problem_not_a_page(ada, crm):
    response = crm.get(url(ada, "pdf"))

    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["errors"] == {"format": ["Choose one of: kantara, iso27560."]}


def test_a_receipt_needs_consent_read_and_customers_read(ada):
    # without consent:read
    response = client_with(Scope.CUSTOMERS_READ).get(url(ada))
    assert (response.status_code, response.json()["code"]) == (403, "missing_scope")
    # with consent:read only: the receipt names the customer by address
    response = client_with(Scope.CONSENT_READ).get(url(ada))
    assert (response.status_code, response.json()["code"]) == (403, "missing_scope")
    assert "customers:read" in response.json()["detail"]


def test_an_erased_customer_has_no_receipt(ada, crm, admin_user):
    from privacy.services import customer_erase

    customer_erase(customer=ada, staff_user=admin_user)

    response = crm.get(url(ada))
    assert (response.status_code, response.json()["code"]) == (409, "customer_erased")


def test_an_unknown_customer_is_not_found(crm):
    response = crm.get("/api/v1/customers/00000000-0000-4000-8000-000000000000/receipt/")
    assert (response.status_code, response.json()["code"]) == (404, "not_found")
