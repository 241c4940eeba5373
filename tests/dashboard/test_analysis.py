"""Internal analysis: consenting customers only, small figures suppressed, every view and download logged."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from django.utils import timezone

from consents.models import Purpose, Source
from consents.services import consent_grant, consent_withdraw
from dashboard import analysis
from privacy.models import AccessLog
from tests.factories import CustomerFactory, ProductFactory, RegistrationFactory, ResellerFactory

pytestmark = pytest.mark.django_db


def consenting(n: int, *, country: str, product, reseller, currency: str = "EUR", **registration):
    customers = []
    for _ in range(n):
        customer = CustomerFactory.create(country=country)
        consent_grant(
            customer=customer, purpose=Purpose.objects.get(code="internal_analysis"), source=Source.SIGNUP_FORM
        )
        RegistrationFactory(customer=customer, product=product, reseller=reseller, currency=currency, **registration)
        customers.append(customer)
    return customers


@pytest.fixture
def market():
    """Six German customers and three French ones consent; four Italians never did; two Spaniards withdrew."""
    photo = ProductFactory(name="PhotoForge Pro", code="photoforge-pro")
    paddle = ResellerFactory(name="Paddle")
    germans = consenting(6, country="DE", product=photo, reseller=paddle)
    french = consenting(3, country="FR", product=photo, reseller=paddle)
    for _ in range(4):
        RegistrationFactory(customer=CustomerFactory(country="IT"), product=photo, reseller=paddle, currency="EUR")
    for spaniard in consenting(2, country="ES", product=photo, reseller=paddle):
        consent_withdraw(
            customer=spaniard, purpose=Purpose.objects.get(code="internal_analysis"), source=Source.PREFERENCE_PAGE
        )
    return {"germans": germans, "french": french}


def table(key: str) -> analysis.Table:
    return next(t for t in analysis.analysis_tables() if t.key == key)


def test_only_customers_consenting_now_are_counted_and_small_cells_are_suppressed(market):
    by_country = table("by_country")

    assert by_country.rows == ["DE", "FR"]  # no Italian (never asked), no Spaniard (withdrew)
    germany, france = by_country.cell("DE", "Registrations"), by_country.cell("FR", "Registrations")
    assert (germany.registrations, germany.suppressed, germany.value) == (6, False, 6)
    assert (france.suppressed, france.value) == (True, None)  # 3 customers < 5


def test_the_threshold_is_a_setting(market, settings):
    settings.ANALYSIS_MIN_CELL = 3
    assert table("by_country").cell("FR", "Registrations").suppressed is False
    settings.ANALYSIS_MIN_CELL = 7
    assert table("by_country").cell("DE", "Registrations").suppressed is True


def test_a_cell_counts_customers_not_registrations(market):
    photo = ProductFactory(name="PhotoForge Pro", code="photoforge-pro")
    for _ in range(3):  # the French buy again: 6 registrations, still 3 customers
        RegistrationFactory(customer=market["french"][0], product=photo, currency="EUR")
    france = table("by_country").cell("FR", "Registrations")
    assert france.registrations == 6 and france.customers == 3 and france.suppressed


def test_refunds_within_the_money_back_window_are_counted(market, settings):
    photo = ProductFactory(name="PhotoForge Pro", code="photoforge-pro")
    paddle = ResellerFactory(name="Paddle")
    bought = timezone.now() - timedelta(days=40)
    consenting(
        5, country="GB", product=photo, reseller=paddle, purchased_at=bought, refunded_at=bought + timedelta(days=10)
    )
    consenting(
        5, country="GB", product=photo, reseller=paddle, purchased_at=bought, refunded_at=bought + timedelta(days=35)
    )
    refunds = table("refunds_in_window")
    month = f"{timezone.localtime(bought):%Y-%m}"
    assert refunds.cell(month, "PhotoForge Pro").registrations == 5  # the late refunds are not in the window


def test_the_page_shows_suppressed_figures_as_fewer_than_and_is_logged(client, market, marketer):
    client.force_login(marketer)

    page = client.get("/admin/analysis/").content.decode()

    assert '<th scope="row">FR</th><td class="num">&lt;5</td>' in page
    assert '<th scope="row">DE</th><td class="num">6</td>' in page
    assert "<script" not in page.split('<div id="content-main"', 1)[1]
    entry = AccessLog.objects.get(staff_user=marketer)
    assert entry.action == AccessLog.Action.LIST_EXPORTED and "Internal analysis page viewed" in entry.detail


def test_the_csv_leaves_suppressed_figures_out_and_is_logged(client, market, officer):
    client.force_login(officer)

    response = client.get("/admin/analysis/download/")

    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    by_country = {r["row"]: r for r in rows if r["table"] == "by_country"}
    assert by_country["DE"]["registrations"] == "6"
    assert by_country["FR"]["registrations"] == "" and by_country["FR"]["suppressed"] == "fewer than 5 customers"
    assert "IT" not in by_country and "ES" not in by_country
    assert (
        AccessLog.objects.filter(staff_user=officer, detail__startswith="Internal analysis CSV downloaded").count() == 1
    )


def test_staff_without_the_analysis_permission_are_refused(client, market, support):
    client.force_login(support)
    assert client.get("/admin/analysis/").status_code == 403
    assert client.get("/admin/analysis/download/").status_code == 403
    assert not AccessLog.objects.exists()
