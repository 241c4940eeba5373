"""Staff recording a decision for a customer whose data was erased are told so, and nothing is recorded."""

import io

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.utils import timezone

from consents.models import ConsentEvent, Purpose, Source
from consents.services import CustomerErased, consent_grant, consent_withdraw
from customers.models import ERASED_MARKER, Customer
from privacy.services import customer_erase
from tests.consents.people import customer_with_choices

pytestmark = pytest.mark.django_db


@pytest.fixture
def erased_ben(purposes, admin_user):
    """Ben took the newsletter, withdrew from promotions, and was later erased."""
    ben = customer_with_choices("ben@example.com", first_name="Ben", granted=["newsletter"], withdrawn=["promotions"])
    customer_erase(customer=ben, staff_user=admin_user)
    return ben


@pytest.fixture
def staff_client(client, admin_user):
    client.force_login(admin_user)
    return client


def record_form(purpose, decision):
    return {
        "purpose": purpose.pk,
        "decision": decision,
        "method": "phone",
        "language": "en",
        "given_on": timezone.localdate().isoformat(),
        "note": "customer phoned, call ref 5120",
    }


@pytest.mark.parametrize("record", [consent_withdraw, consent_grant])
def test_the_service_refuses_a_staff_decision_for_an_erased_customer_naming_the_erasure(
    erased_ben, purposes, admin_user, record
):
    before = ConsentEvent.objects.count()
    with pytest.raises(CustomerErased) as refused:
        record(
            customer=erased_ben,
            purpose=purposes["newsletter"],
            source=Source.STAFF,
            staff_user=admin_user,
            note="customer phoned",
        )
    assert "erased" in refused.value.messages[0]
    assert isinstance(refused.value, ValidationError)
    assert ConsentEvent.objects.count() == before


def test_an_already_withdrawn_purpose_of_an_erased_customer_is_reported_as_erased_not_as_withdrawn(
    erased_ben, purposes, admin_user
):
    with pytest.raises(CustomerErased, match="erased"):
        consent_withdraw(
            customer=erased_ben,
            purpose=purposes["promotions"],
            source=Source.STAFF,
            staff_user=admin_user,
            note="letter of 3 May",
        )


@pytest.mark.parametrize(("code", "decision"), [("newsletter", "withdrawn"), ("promotions", "withdrawn")])
def test_the_staff_form_says_the_customer_was_erased_and_records_nothing(
    staff_client, erased_ben, purposes, code, decision
):
    before = ConsentEvent.objects.count()
    response = staff_client.post(
        f"/admin/customers/customer/{erased_ben.pk}/record-consent/",
        record_form(purposes[code], decision),
        follow=True,
    )
    assert response.status_code == 200
    assert "data was erased" in response.text
    assert "already withdrawn" not in response.text
    assert "Recorded:" not in response.text
    assert ConsentEvent.objects.count() == before


def test_the_staff_form_for_a_grant_says_the_customer_was_erased(staff_client, erased_ben, purposes):
    response = staff_client.post(
        f"/admin/customers/customer/{erased_ben.pk}/record-consent/",
        record_form(purposes["market_research"], "granted"),
    )
    assert "data was erased" in response.text
    assert not ConsentEvent.objects.filter(customer=erased_ben, purpose=purposes["market_research"]).exists()


def test_the_erased_customers_pages_say_so_before_staff_fill_in_the_form(staff_client, erased_ben):
    change_page = staff_client.get(f"/admin/customers/customer/{erased_ben.pk}/change/").text
    assert f"/admin/customers/customer/{erased_ben.pk}/record-consent/" not in change_page
    assert "no consent can be recorded" in change_page
    form_page = staff_client.get(f"/admin/customers/customer/{erased_ben.pk}/record-consent/").text
    assert "data was erased" in form_page
    assert "Record this decision" not in form_page


def test_a_customers_own_old_unsubscribe_link_is_still_answered_without_a_record(erased_ben, purposes):
    before = ConsentEvent.objects.count()
    assert consent_withdraw(customer=erased_ben, purpose=purposes["newsletter"], source=Source.ONE_CLICK) is None
    assert ConsentEvent.objects.count() == before


def test_an_update_import_naming_an_erased_record_is_refused_with_the_row_and_the_reason(
    tmp_path, erased_ben, purposes
):
    path = tmp_path / "customers.csv"
    path.write_text(
        f"email,first_name,consent_newsletter\nada@example.com,Ada,yes\n{erased_ben.email},Ben,no\n",
        encoding="utf-8",
    )
    err = io.StringIO()
    with pytest.raises(CommandError, match="nothing was imported"):
        call_command(
            "import_customers",
            str(path),
            "--update",
            "--evidence",
            "signup form",
            "--no-progress",
            stdout=io.StringIO(),
            stderr=err,
        )
    assert "row 3, email" in err.getvalue()
    assert "erased" in err.getvalue()
    erased_ben.refresh_from_db()
    assert erased_ben.first_name == ERASED_MARKER
    assert not Customer.objects.by_email("ada@example.com").exists()


def test_an_erased_customers_old_link_records_nothing_new(purposes):
    # given Ben, who took the newsletter and was later erased
    ben = customer_with_choices("ben@example.com", granted=["newsletter"])
    Customer.objects.filter(pk=ben.pk).update(erased_at=timezone.now())
    before = ConsentEvent.objects.count()
    # when an old unsubscribe link is followed (a scanner, or Ben's mail client)
    result = consent_withdraw(customer=ben, purpose=Purpose.objects.get(code="newsletter"), source=Source.ONE_CLICK)
    # then nothing is recorded: no IP address or browser is collected about him again
    assert result is None
    assert ConsentEvent.objects.count() == before
