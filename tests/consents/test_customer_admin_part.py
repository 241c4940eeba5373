"""The consents app's part of the customer admin, added through customers.admin_parts."""

import pytest
from django.contrib import admin
from django.urls import reverse

from customers.admin import CustomerAdmin
from customers.models import Customer

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client, admin_user):
    client.force_login(admin_user)
    return client


def test_the_customer_admin_is_the_customers_apps_own_with_the_consents_part_added(staff_client, ada):
    assert type(admin.site._registry[Customer]) is CustomerAdmin
    page = staff_client.get(f"/admin/customers/customer/{ada.pk}/change/")
    html = page.content.decode()
    assert "Record consent on the customer" in html
    assert "Consent ledger" in html
    assert "Download data export (JSON)" in html
    assert reverse("privacy_staff:customer_export", args=[ada.public_id]) in html


def test_the_customer_list_offers_a_filter_per_purpose(staff_client, ada, newsletter):
    page = staff_client.get("/admin/customers/customer/")
    assert f"By consents to {newsletter.name}" in page.content.decode()
    granted_only = staff_client.get("/admin/customers/customer/", {"consent_newsletter": "granted"})
    assert ada.email not in granted_only.content.decode()


def test_staff_without_the_export_permission_see_no_export_button(client, ada, django_user_model):
    from django.contrib.auth.models import Permission

    support = django_user_model.objects.create_user("support", is_staff=True)
    support.user_permissions.add(Permission.objects.get(codename="view_customer"))
    client.force_login(support)
    page = client.get(f"/admin/customers/customer/{ada.pk}/change/")
    assert page.status_code == 200
    assert "Download data export (JSON)" not in page.content.decode()
