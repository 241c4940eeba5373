from datetime import timedelta

import pytest
from django.utils import timezone

from customers.models import CustomerChange
from tests.factories import CustomerFactory, RegistrationFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client, admin_user):
    client.force_login(admin_user)
    return client


def test_the_customer_list_searches_by_exact_email(staff_client):
    CustomerFactory(email="ada@example.com", last_name="Lovelace")
    CustomerFactory(email="grace@example.com", last_name="Hopper")
    response = staff_client.get("/admin/customers/customer/", {"q": "ADA@example.com"})
    assert response.status_code == 200
    assert b"ada@example.com" in response.content
    assert b"grace@example.com" not in response.content


def test_the_customer_list_searches_by_name_and_company_prefix(staff_client):
    CustomerFactory(email="ada@example.com", last_name="Lovelace", company="Analytical Engines")
    CustomerFactory(email="grace@example.com", last_name="Hopper", company="Navy")
    assert b"ada@example.com" in staff_client.get("/admin/customers/customer/", {"q": "love"}).content
    response = staff_client.get("/admin/customers/customer/", {"q": "navy"})
    assert b"grace@example.com" in response.content
    assert b"ada@example.com" not in response.content


def test_the_customer_list_filters_by_country(staff_client):
    CustomerFactory(email="hans@example.de", country="DE")
    CustomerFactory(email="ada@example.com", country="GB")
    response = staff_client.get("/admin/customers/customer/", {"country": "DE"})
    assert b"hans@example.de" in response.content
    assert b"ada@example.com" not in response.content


def test_a_staff_correction_is_recorded_with_old_and_new_value(staff_client, admin_user):
    customer = CustomerFactory(email="ada@example.com", job_title="Engineer")
    page = staff_client.get(f"/admin/customers/customer/{customer.pk}/change/")
    assert page.status_code == 200
    form = page.context["adminform"].form
    data = {k: ("" if v is None else v) for k, v in form.initial.items() if k in form.fields}
    data.update(
        {
            "job_title": "Chief Engineer",
            "phone": "",
            "registrations-TOTAL_FORMS": "0",
            "registrations-INITIAL_FORMS": "0",
            "changes-TOTAL_FORMS": "0",
            "changes-INITIAL_FORMS": "0",
        }
    )
    response = staff_client.post(f"/admin/customers/customer/{customer.pk}/change/", data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    change = CustomerChange.objects.get(customer=customer)
    assert (change.field, change.old_value, change.new_value) == ("job_title", "Engineer", "Chief Engineer")
    assert change.staff_user == admin_user


def test_the_registration_list_masks_licence_keys_and_filters_the_money_back_window(staff_client):
    recent = RegistrationFactory(licence_key="AAAA-BBBB-CCCC-1111", purchased_at=timezone.now() - timedelta(days=2))
    old = RegistrationFactory(licence_key="DDDD-EEEE-FFFF-2222", purchased_at=timezone.now() - timedelta(days=90))
    response = staff_client.get("/admin/customers/productregistration/", {"money_back": "open"})
    assert response.status_code == 200
    assert recent.order_reference.encode() in response.content
    assert old.order_reference.encode() not in response.content
    assert b"AAAA-BBBB" not in response.content
    assert b"1111" in response.content


def test_a_late_refund_in_admin_needs_a_reason(staff_client, admin_user):
    registration = RegistrationFactory(purchased_at=timezone.now() - timedelta(days=60))
    url = f"/admin/customers/productregistration/{registration.pk}/change/"
    now = timezone.localtime()
    data = {
        "customer": registration.customer_id,
        "product": registration.product_id,
        "reseller": registration.reseller_id,
        "order_reference": registration.order_reference,
        "licence_key": registration.licence_key,
        "purchased_at_0": timezone.localtime(registration.purchased_at).strftime("%Y-%m-%d"),
        "purchased_at_1": timezone.localtime(registration.purchased_at).strftime("%H:%M:%S"),
        "refunded_at_0": now.strftime("%Y-%m-%d"),
        "refunded_at_1": now.strftime("%H:%M:%S"),
        "refund_override_reason": "",
    }
    refused = staff_client.post(url, data)
    assert refused.status_code == 200
    assert b"money-back deadline has passed" in refused.content
    data["refund_override_reason"] = "Goodwill refund approved by the head of support"
    accepted = staff_client.post(url, data)
    assert accepted.status_code == 302
    registration.refresh_from_db()
    assert registration.refunded_at is not None
    assert registration.refund_override_by == admin_user


def test_demo_data_loads_once(db):
    from customers.demo import load_demo_data
    from customers.models import Customer

    assert load_demo_data(customers=20) == 20
    assert load_demo_data(customers=20) == 0
    assert Customer.objects.count() == 20
