"""The customer's admin page counts the reseller notifications about the customer that need a person."""

from datetime import UTC, datetime

import pytest

from intake.models import WebhookEvent
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db


def _page(client, customer) -> str:
    return client.get(f"/admin/customers/customer/{customer.pk}/change/").content.decode()


def test_the_customer_page_links_to_the_reseller_notifications_that_need_attention(admin_client):
    fiona = CustomerFactory(email="fiona@example.com")
    other = CustomerFactory(email="otto@example.com")
    for n, (customer, status) in enumerate(
        [
            (fiona, WebhookEvent.Status.NEEDS_ATTENTION),
            (fiona, WebhookEvent.Status.NEEDS_ATTENTION),
            (fiona, WebhookEvent.Status.PROCESSED),
            (other, WebhookEvent.Status.NEEDS_ATTENTION),
        ]
    ):
        WebhookEvent.objects.create(
            provider="paddle",
            event_id=f"evt_{n}",
            event_type="transaction.completed",
            occurred_at=datetime(2026, 11, 20, tzinfo=UTC),
            customer=customer,
            payload={},
            status=status,
        )
    page = _page(admin_client, fiona)
    url = f"/admin/intake/webhookevent/?status__exact=needs_attention&amp;customer__id__exact={fiona.pk}"
    assert f'href="{url}">2 reseller notifications need attention' in page
    listed = admin_client.get(url.replace("&amp;", "&"))
    assert listed.status_code == 200
    assert [event.event_id for event in listed.context["cl"].result_list] in (["evt_0", "evt_1"], ["evt_1", "evt_0"])
    assert "1 reseller notification needs attention" in _page(admin_client, other)


def test_a_customer_without_notifications_needing_attention_shows_no_button(admin_client):
    ada = CustomerFactory(email="ada@example.com")
    assert "need attention" not in _page(admin_client, ada)
    assert "needs attention" not in _page(admin_client, ada)
