"""GET /api/v1/campaigns/<public id>/report/: the campaign page's figures, with its own scope."""

from datetime import UTC, datetime, timedelta

import pytest

from api.models import Scope
from consents.models import Purpose, Source
from consents.services import consent_grant, consent_withdraw
from marketing.models import Campaign, Delivery
from tests.factories import CustomerFactory

from .conftest import client_with

pytestmark = pytest.mark.django_db

DISPATCHED = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
URL = "/api/v1/campaigns/{}/report/"


@pytest.fixture
def campaign():
    newsletter = Purpose.objects.get(code="newsletter")
    campaign = Campaign.objects.create(
        name="Spring newsletter",
        purpose=newsletter,
        subject="Spring news",
        text_body="Hello",
        status=Campaign.Status.SENT,
        scheduled_at=DISPATCHED,
        dispatched_at=DISPATCHED,
        finished_at=DISPATCHED + timedelta(hours=1),
    )
    for n in range(4):
        customer = CustomerFactory(email=f"reader{n}@example.com", created_at=DISPATCHED - timedelta(days=30))
        consent_grant(
            customer=customer, purpose=newsletter, source=Source.SIGNUP_FORM, occurred_at=DISPATCHED - timedelta(days=1)
        )
        at = DISPATCHED + timedelta(minutes=30 * n)
        Delivery.objects.create(campaign=campaign, customer=customer, status=Delivery.Status.SENT, sent_at=at)
        if n == 0:
            consent_withdraw(
                customer=customer,
                purpose=newsletter,
                source=Source.ONE_CLICK,
                occurred_at=DISPATCHED + timedelta(minutes=5),
                reference=f"campaign:{campaign.public_id}",
            )
    skipped = CustomerFactory(email="capped@example.com")
    Delivery.objects.create(
        campaign=campaign,
        customer=skipped,
        status=Delivery.Status.SKIPPED,
        skip_reason=Delivery.SkipReason.FREQUENCY_CAP,
    )
    return campaign


def test_the_report_gives_the_figures_rates_and_series_and_no_customer(campaign):
    answer = client_with(Scope.CAMPAIGNS_READ).get(URL.format(campaign.public_id), {"interval": "hour"})

    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert body["campaign"] == str(campaign.public_id)
    assert (body["deliveries"], body["sent"], body["failed"], body["unknown"]) == (5, 4, 0, 0)
    assert body["skipped"]["frequency_cap"] == 1
    assert body["unsubscribed"] == {"one_click": 1, "link": 0, "provider": 0}
    assert body["rates"]["unsubscribed"] == 0.25
    assert body["rates"]["sent"] == 0.8
    assert body["interval"] == "hour"
    assert [(b["start"], b["sent"], b["unsubscribed"]) for b in body["series"]] == [
        ("2026-11-30T09:00:00Z", 2, 1),
        ("2026-11-30T10:00:00Z", 2, 0),
    ]
    assert "@" not in answer.content.decode()


def test_the_report_needs_its_scope(campaign):
    others = [scope for scope in Scope if scope != Scope.CAMPAIGNS_READ]
    refused = client_with(*others).get(URL.format(campaign.public_id))
    assert refused.status_code == 403
    assert "campaigns:read" in refused.json()["detail"]


def test_an_unknown_campaign_is_a_404_and_a_bad_interval_a_400(campaign):
    client = client_with(Scope.CAMPAIGNS_READ)
    assert client.get(URL.format("0b0e4a9c-1111-4222-8333-944455556666")).status_code == 404
    bad = client.get(URL.format(campaign.public_id), {"interval": "week"})
    assert bad.status_code == 400
    assert "interval" in bad.json()["errors"]


def test_the_report_is_in_the_schema():
    schema = client_with(Scope.CAMPAIGNS_READ).get("/api/schema/", HTTP_ACCEPT="application/json").json()
    operation = schema["paths"]["/api/v1/campaigns/{public_id}/report/"]["get"]
    assert operation["operationId"] == "campaign_report"
    assert [p["name"] for p in operation["parameters"] if p["in"] == "query"] == ["interval"]
