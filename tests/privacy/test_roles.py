"""Each staff role opens exactly the admin pages its work needs."""

import pytest

from consents.models import Purpose, Source
from consents.services import consent_grant
from marketing.models import Campaign, Delivery
from privacy.services import privacy_request_open
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db

ALLOWED, FORBIDDEN = 200, 403


@pytest.fixture
def world(purposes, django_user_model):
    """Ada consents to the newsletter, asked for her data; a campaign went to her."""
    ada = CustomerFactory(email="ada@example.com", first_name="Ada", last_name="Lovelace")
    newsletter = Purpose.objects.get(code="newsletter")
    consent_grant(customer=ada, purpose=newsletter, source=Source.PREFERENCE_PAGE)
    request = privacy_request_open(customer=ada, kind="access", channel="email")
    campaign = Campaign.objects.create(name="Spring news", purpose=newsletter, subject="News", text_body="Hello")
    Delivery.objects.create(campaign=campaign, customer=ada, status=Delivery.Status.SENT)
    return {"ada": ada, "request": request, "campaign": campaign}


def pages(world):
    ada, request, campaign = world["ada"], world["request"], world["campaign"]
    return {
        "customer list": "/admin/customers/customer/",
        "customer page": f"/admin/customers/customer/{ada.pk}/change/",
        "record consent": f"/admin/customers/customer/{ada.pk}/record-consent/",
        "registrations": "/admin/customers/productregistration/",
        "consent ledger": "/admin/consents/consentevent/",
        "disclosures": "/admin/consents/disclosure/",
        "campaigns": "/admin/marketing/campaign/",
        "new campaign": "/admin/marketing/campaign/add/",
        "campaign page": f"/admin/marketing/campaign/{campaign.pk}/change/",
        "deliveries": "/admin/marketing/delivery/",
        "list exports": "/admin/marketing/exportlog/",
        "requests": "/admin/privacy/privacyrequest/",
        "request page": f"/admin/privacy/privacyrequest/{request.pk}/change/",
        "new request": "/admin/privacy/privacyrequest/add/",
        "erasure": f"/admin/privacy/customererasure/erase/{ada.pk}/",
        "data export": f"/admin/export/customer/{ada.public_id}/export.json",
        "consent receipt": f"/admin/customers/customer/{ada.pk}/consent-receipt/",
        "third parties to notify": "/admin/privacy/recipientnotification/",
        "access log": "/admin/privacy/accesslog/",
        "field audit log": "/admin/auditlog/logentry/",
        "retention runs": "/admin/privacy/retentionrun/",
    }


EXPECTED = {
    "Support": {
        "customer list",
        "customer page",
        "record consent",
        "registrations",
        "consent ledger",
        "disclosures",
    },
    "Marketing": {"campaigns", "new campaign", "campaign page", "deliveries", "list exports"},
    "Privacy officer": {
        "customer list",
        "customer page",
        "registrations",
        "consent ledger",
        "disclosures",
        "list exports",
        "requests",
        "request page",
        "new request",
        "erasure",
        "data export",
        "consent receipt",
        "third parties to notify",
        "access log",
        "field audit log",
        "retention runs",
    },
}


@pytest.mark.parametrize("role", ["Support", "Marketing", "Privacy officer"])
def test_each_role_opens_exactly_its_pages(client, world, role, support, marketer, officer):
    user = {"Support": support, "Marketing": marketer, "Privacy officer": officer}[role]
    client.force_login(user)
    seen = {name: client.get(url).status_code for name, url in pages(world).items()}
    assert {name for name, status in seen.items() if status == ALLOWED} == EXPECTED[role]
    assert {name for name, status in seen.items() if status != ALLOWED} == {
        name for name, status in seen.items() if status == FORBIDDEN
    }


def test_marketing_sees_audience_counts_but_no_customer_details(client, world, marketer):
    client.force_login(marketer)
    campaign_page = client.get(f"/admin/marketing/campaign/{world['campaign'].pk}/change/").content.decode()
    assert "Audience now:" in campaign_page
    deliveries = client.get("/admin/marketing/delivery/").content.decode()
    assert f"customer {world['ada'].public_id}" in deliveries
    for page in (campaign_page, deliveries):
        assert "ada@example.com" not in page
        assert "Lovelace" not in page


def test_the_admin_index_shows_each_role_its_own_sections(client, world, support, marketer, officer):
    client.force_login(support)
    index = client.get("/admin/").content.decode()
    assert "/admin/customers/customer/" in index and "/admin/marketing/campaign/" not in index
    client.force_login(marketer)
    index = client.get("/admin/").content.decode()
    assert "/admin/marketing/campaign/" in index
    assert "/admin/customers/customer/" not in index and "/admin/privacy/privacyrequest/" not in index
    client.force_login(officer)
    index = client.get("/admin/").content.decode()
    assert "/admin/privacy/privacyrequest/" in index and "/admin/marketing/campaign/" not in index


def test_a_superuser_still_opens_everything(admin_client, world):
    for name, url in pages(world).items():
        assert admin_client.get(url).status_code == ALLOWED, name


def test_marketing_staff_preview_a_campaign_with_the_sample_customer_only(client, db):
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    CustomerFactory(email="fiona@example.com", first_name="Fiona", company="Matthews-Whittaker")
    marketer = get_user_model().objects.create_user("mark", is_staff=True)
    marketer.groups.add(Group.objects.get(name="Marketing"))
    campaign = Campaign.objects.create(
        name="Spring",
        purpose=Purpose.objects.get(code="newsletter"),
        subject="Hi {{ first_name }}",
        text_body="E={{ email }} C={{ company }}",
        created_by=marketer,
    )
    client.force_login(marketer)
    response = client.get(f"/admin/marketing/campaign/{campaign.pk}/preview/", {"customer": "fiona@example.com"})
    assert response.status_code == 200
    assert b"fiona@example.com" not in response.content
    assert b"Matthews-Whittaker" not in response.content
    assert b"Ada" in response.content  # the sample customer
