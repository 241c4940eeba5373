"""An app above customers adds to the customer admin through customers.admin_parts."""

import pytest
from django.contrib import admin
from django.urls import path

from customers import admin_parts
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db


@admin.display(description="loyalty")
def loyalty_panel(customer):
    return "Gold member" if customer is not None and customer.pk else "–"


@admin.action(description="Send the selected customers a loyalty card")
def send_loyalty_card(model_admin, request, queryset):
    model_admin.message_user(request, f"{queryset.count()} loyalty cards queued.")


@pytest.fixture
def loyalty_part(monkeypatch, admin_user, client):
    monkeypatch.setattr(admin_parts, "_parts", dict(admin_parts._parts))
    admin_parts.register(
        admin_parts.CustomerAdminPart(
            app="loyalty",
            panels=[admin_parts.Panel(title="Loyalty", render=loyalty_panel, after="Person")],
            links=[
                admin_parts.Link(label="Loyalty history", url=lambda request, customer: f"/loyalty/{customer.pk}/"),
                admin_parts.Link(label="Hidden from everyone", url=lambda request, customer: None),
            ],
            actions=[send_loyalty_card],
        )
    )
    client.force_login(admin_user)
    return client


def test_a_part_adds_a_panel_where_it_asks_and_buttons_above_the_page(loyalty_part):
    fiona = CustomerFactory(first_name="Fiona")
    html = loyalty_part.get(f"/admin/customers/customer/{fiona.pk}/change/").content.decode()
    assert "Gold member" in html
    assert html.index(">Person<") < html.index(">Loyalty<") < html.index(">Postal address<")
    assert f'href="/loyalty/{fiona.pk}/"' in html
    assert "Hidden from everyone" not in html


def test_a_part_adds_an_action_to_the_customer_list(loyalty_part):
    fiona = CustomerFactory(first_name="Fiona")
    response = loyalty_part.post(
        "/admin/customers/customer/",
        {"action": "send_loyalty_card", "_selected_action": [fiona.pk]},
        follow=True,
    )
    assert "1 loyalty cards queued." in response.content.decode()


def test_a_part_adds_urls_under_the_customer_admin(monkeypatch):
    monkeypatch.setattr(admin_parts, "_parts", {})
    admin_parts.register(
        admin_parts.CustomerAdminPart(
            app="loyalty", urls=lambda customer_admin: [path("<path:object_id>/loyalty/", lambda r, object_id: None)]
        )
    )
    from customers.models import Customer

    urls = admin.site._registry[Customer].get_urls()
    assert str(urls[0].pattern) == "<path:object_id>/loyalty/"
