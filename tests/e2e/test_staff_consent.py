"""Staff record a decision given by phone, and a disclosure, in a real browser."""

import os
from datetime import UTC, datetime

import pytest

from consents.models import Consent, Source
from consents.services import consent_set
from tests.consents.people import ensure_disclosure_purposes, ensure_purposes
from tests.factories import CustomerFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Where to keep screenshots of these pages (nothing is written when it is not set).
SHOTS = os.environ.get("CONSENTDESK_SCREENSHOTS", "")


def sign_in(page, live_server, django_user_model):
    django_user_model.objects.create_superuser("staffer", "staffer@example.com", "correct horse battery")
    page.goto(f"{live_server.url}/admin/")
    page.fill("#id_username", "staffer")
    page.fill("#id_password", "correct horse battery")
    page.click("input[type=submit]")


def shoot(page, name: str) -> None:
    if not SHOTS:
        return
    for width in (1366, 390):
        page.set_viewport_size({"width": width, "height": 900})
        page.screenshot(path=os.path.join(SHOTS, f"{name}-{width}.png"), full_page=True)


@pytest.fixture
def purposes():
    return ensure_purposes()


@pytest.fixture
def wendy(purposes):
    """Signed up in January 2025; said no to the newsletter on 20 November 2026."""
    wendy = CustomerFactory(
        email="wendy@example.com",
        first_name="Wendy",
        last_name="Carr",
        created_at=datetime(2025, 1, 10, 9, 30, tzinfo=UTC),
    )
    consent_set(
        customer=wendy,
        purpose=purposes["newsletter"],
        granted=False,
        source=Source.PREFERENCE_PAGE,
        occurred_at=datetime(2026, 11, 20, 16, 45, tzinfo=UTC),
    )
    return wendy


def record(page, live_server, customer, *, given_on: str):
    page.goto(f"{live_server.url}/admin/customers/customer/{customer.pk}/record-consent/")
    page.select_option("#id_purpose", label="Newsletter")
    page.check("#id_decision_0")  # granted
    page.check("#id_method_0")  # phone
    page.fill("#id_given_on", given_on)
    page.fill("#id_note", "customer phoned, call ref 5120")


def test_a_back_dated_grant_by_phone_is_refused_or_kept_as_history(live_server, page, django_user_model, wendy):
    sign_in(page, live_server, django_user_model)

    # "by phone, 1 January 1990": refused, with the reason next to the date
    record(page, live_server, wendy, given_on="1990-01-01")
    shoot(page, "record-consent")
    page.click("input[type=submit]")
    error = page.locator(".field-given_on .errorlist").inner_text()
    assert "before this customer's record was created" in error
    shoot(page, "record-consent-refused")

    # "by phone, 3 March 2025", before she said no: kept as history, the state stays
    record(page, live_server, wendy, given_on="2025-03-03")
    page.click("input[type=submit]")
    message = page.locator(".messagelist").inner_text()
    assert "Recorded as history: Newsletter granted on 3 March 2025" in message
    assert "the current state stays “withdrawn since 20 November 2026”" in message
    shoot(page, "record-consent-history")
    state = Consent.objects.get(customer=wendy, purpose__code="newsletter")
    assert state.granted is False


def test_staff_record_a_disclosure_choosing_customer_partner_and_consent_by_search(
    live_server, page, django_user_model, purposes
):
    from consents.models import Disclosure
    from customers.models import ThirdParty

    ensure_disclosure_purposes()
    ada = CustomerFactory(email="ada@example.com", first_name="Ada", last_name="Lovelace")
    consent_set(customer=ada, purpose=purposes["market_research"], granted=True, source=Source.PREFERENCE_PAGE)
    ThirdParty.objects.create(name="Northwind Research", kind=ThirdParty.Kind.PARTNER, country="NL")
    sign_in(page, live_server, django_user_model)
    page.goto(f"{live_server.url}/admin/consents/disclosure/add/")
    shoot(page, "disclosure-form")

    def choose(field: str, term: str, option: str):
        page.click(f".field-{field} .select2-selection")
        page.fill(".select2-search__field", term)
        page.click(f".select2-results__option:has-text('{option}')")

    choose("customer", "ada@", "Ada Lovelace")
    choose("third_party", "North", "Northwind Research")
    page.check("input[name=data_categories][value=contact]")
    page.select_option("#id_disclosure_purpose", label="Market research (surveys, interviews, panels)")
    page.fill("#id_purpose", "Invitation to the 2026 satisfaction survey")
    page.select_option("#id_legal_basis", value="consent")
    choose("consent_event", "ada@", "Market research granted")
    page.click("input[name=_save]")

    assert page.locator(".messagelist").inner_text().count("was added successfully") == 1
    disclosure = Disclosure.objects.get()
    assert (disclosure.customer, disclosure.disclosure_purpose.code) == (ada, "market_research")
