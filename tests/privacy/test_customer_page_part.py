"""What privacy adds to the customer's admin page, and what staff reading personal data leave in the access log."""

import json

import pytest

from privacy.models import AccessLog
from privacy.services import customer_erase
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db


def _page(client, customer) -> str:
    return client.get(f"/admin/customers/customer/{customer.pk}/change/").content.decode()


def test_a_privacy_officer_sees_the_export_the_logs_and_erasure_on_the_customer_page(client, officer, purposes):
    ada = CustomerFactory(email="ada@example.com")
    client.force_login(officer)
    page = _page(client, ada)
    assert f"/admin/export/customer/{ada.public_id}/export.json" in page
    assert f"/admin/privacy/accesslog/?customer={ada.pk}" in page
    assert f"/admin/auditlog/logentry/?customer={ada.pk}" in page
    assert f'href="/admin/privacy/customererasure/erase/{ada.pk}/" class="deletelink">Erase…' in page
    assert f"/admin/customers/customer/{ada.pk}/consent-receipt/" in page
    # Erasure, the dangerous button, comes last.
    assert page.index("Erase…") > page.index("ISO 27560 record")


def test_support_sees_neither_exports_nor_logs_nor_erasure(client, support, purposes):
    ada = CustomerFactory(email="ada@example.com")
    client.force_login(support)
    page = _page(client, ada)
    assert "/export.json" not in page
    assert "/consent-receipt/" not in page
    assert "/admin/privacy/accesslog/" not in page
    assert "/admin/auditlog/logentry/" not in page
    assert "Erase…" not in page


def test_an_erased_customer_has_no_erase_button(client, officer, purposes):
    ada = CustomerFactory(email="ada@example.com")
    customer_erase(customer=ada, staff_user=officer)
    client.force_login(officer)
    page = _page(client, ada)
    assert "Erase…" not in page
    assert f"/admin/privacy/accesslog/?customer={ada.pk}" in page


def test_support_cannot_download_a_consent_receipt(client, support, purposes):
    ada = CustomerFactory(email="ada@example.com")
    client.force_login(support)
    assert client.get(f"/admin/customers/customer/{ada.pk}/consent-receipt/").status_code == 403
    assert not AccessLog.objects.filter(action=AccessLog.Action.RECEIPT_DOWNLOADED).exists()


def test_a_consent_receipt_download_is_in_the_customers_access_log(client, officer, purposes):
    ada = CustomerFactory(email="ada@example.com")
    client.force_login(officer)
    response = client.get(f"/admin/customers/customer/{ada.pk}/consent-receipt/")
    assert response.status_code == 200
    assert json.loads(response.content)
    (entry,) = AccessLog.objects.filter(action=AccessLog.Action.RECEIPT_DOWNLOADED)
    assert (entry.customer, entry.staff_user) == (ada, officer)
    listed = client.get(f"/admin/privacy/accesslog/?customer={ada.pk}").content.decode()
    assert "Downloaded the customer&#x27;s consent receipt" in listed


def _look_up(client, term: str):
    return client.get(
        "/admin/autocomplete/",
        {"app_label": "privacy", "model_name": "privacyrequest", "field_name": "customer", "term": term},
    )


def test_a_customer_look_up_logs_each_customer_it_showed_and_not_the_term(client, officer, purposes):
    ada = CustomerFactory(email="ada@example.com", first_name="Ada", last_name="Lovelace")
    adam = CustomerFactory(email="adam@example.com", first_name="Adam", last_name="Smith")
    CustomerFactory(email="grace@example.com", first_name="Grace", last_name="Hopper")
    client.force_login(officer)
    response = _look_up(client, "Ada")
    assert response.status_code == 200
    assert {result["id"] for result in response.json()["results"]} == {str(ada.pk), str(adam.pk)}
    looked_up = AccessLog.objects.filter(action=AccessLog.Action.LOOKED_UP)
    assert {(entry.customer, entry.staff_user) for entry in looked_up} == {(ada, officer), (adam, officer)}
    assert {entry.detail for entry in looked_up} == {"look-up in privacy.privacyrequest.customer"}


def test_a_look_up_that_finds_nobody_logs_nothing(client, officer, purposes):
    CustomerFactory(email="ada@example.com", first_name="Ada")
    client.force_login(officer)
    assert _look_up(client, "Zed").json()["results"] == []
    assert not AccessLog.objects.filter(action=AccessLog.Action.LOOKED_UP).exists()


def test_the_customer_list_search_is_not_a_look_up(client, officer, purposes):
    CustomerFactory(email="ada@example.com", first_name="Ada")
    client.force_login(officer)
    assert "ada@example.com" in client.get("/admin/customers/customer/", {"q": "Ada"}).content.decode()
    assert not AccessLog.objects.filter(action=AccessLog.Action.LOOKED_UP).exists()
