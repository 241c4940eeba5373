from datetime import UTC, datetime, timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from customers.models import CustomerChange
from customers.services import EmailAddressTaken, customer_email_change
from privacy.models import PrivacyRequest, add_months
from privacy.services import privacy_request_open
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db

RECEIVED = datetime(2025, 1, 31, 9, 30, tzinfo=UTC)


def test_one_month_after_the_last_day_of_january_is_the_last_day_of_february():
    assert add_months(RECEIVED, 1) == datetime(2025, 2, 28, 9, 30, tzinfo=UTC)
    assert add_months(datetime(2024, 1, 31, tzinfo=UTC), 1) == datetime(2024, 2, 29, tzinfo=UTC)
    assert add_months(datetime(2024, 11, 15, tzinfo=UTC), 2) == datetime(2025, 1, 15, tzinfo=UTC)


def test_a_request_by_letter_is_due_one_month_after_receipt():
    ada = CustomerFactory()
    request = privacy_request_open(customer=ada, kind="access", channel="letter", received_at=RECEIVED)
    request.refresh_from_db()
    assert request.due_at == datetime(2025, 2, 28, 9, 30, tzinfo=UTC)
    assert request.status == "open"
    assert request.answer_by == request.due_at


def test_a_second_request_of_the_same_kind_while_one_is_open_is_the_same_request():
    ada = CustomerFactory()
    first = privacy_request_open(customer=ada, kind="erasure", channel="preference_page")
    again = privacy_request_open(customer=ada, kind="erasure", channel="email")
    other_kind = privacy_request_open(customer=ada, kind="access", channel="email")
    assert again.pk == first.pk
    assert other_kind.pk != first.pk


def test_the_database_refuses_a_second_open_request_of_one_kind():
    ada = CustomerFactory()
    privacy_request_open(customer=ada, kind="erasure", channel="phone")
    with pytest.raises(IntegrityError), transaction.atomic():
        PrivacyRequest.objects.create(
            customer=ada, kind="erasure", channel="phone", due_at=add_months(datetime.now(UTC), 1)
        )


def test_a_refusal_without_a_reason_is_refused_by_the_database():
    ada = CustomerFactory()
    request = privacy_request_open(customer=ada, kind="erasure", channel="phone")
    with pytest.raises(IntegrityError), transaction.atomic():
        PrivacyRequest.objects.filter(pk=request.pk).update(status="refused", closed_at=datetime.now(UTC))


def test_an_extension_needs_a_reason_and_at_most_two_more_months():
    ada = CustomerFactory()
    request = privacy_request_open(customer=ada, kind="access", channel="email", received_at=RECEIVED)
    request.extended_due_at = add_months(request.due_at, 2) + timedelta(days=1)
    request.extension_reason = "Records on paper in two offices"
    with pytest.raises(ValidationError) as raised:
        request.full_clean()
    assert "two further months" in str(raised.value)
    request.extended_due_at = add_months(request.due_at, 2)
    request.extension_reason = ""
    with pytest.raises(ValidationError) as raised:
        request.full_clean()
    assert "extension_reason" in raised.value.message_dict
    with pytest.raises(IntegrityError), transaction.atomic():
        request.save()


def test_an_email_change_is_recorded_as_a_correction():
    ada = CustomerFactory(email="ada@example.com")
    change = customer_email_change(customer=ada, new_email=" Ada@Lovelace.Example ", changed_by="customer")
    ada.refresh_from_db()
    assert ada.email == "ada@lovelace.example"
    assert CustomerChange.objects.get(pk=change.pk).old_value == "ada@example.com"


def test_an_email_change_to_another_customers_address_is_refused():
    ada = CustomerFactory(email="ada@example.com")
    CustomerFactory(email="grace@example.com")
    with pytest.raises(EmailAddressTaken) as raised:
        customer_email_change(customer=ada, new_email="GRACE@example.com", changed_by="customer")
    assert "already belongs to another customer record" in str(raised.value)
    ada.refresh_from_db()
    assert ada.email == "ada@example.com"


def test_an_email_change_to_a_malformed_address_is_refused():
    ada = CustomerFactory(email="ada@example.com")
    with pytest.raises(ValidationError):
        customer_email_change(customer=ada, new_email="not an address", changed_by="customer")
