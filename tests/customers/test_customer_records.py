import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from customers.models import Customer
from customers.validators import contains_card_number
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db


def test_two_casings_of_one_address_are_refused_by_validation():
    CustomerFactory(email="Ada.Lovelace@Example.com")
    duplicate = Customer(email="ada.lovelace@EXAMPLE.COM", language="en")
    with pytest.raises(ValidationError) as raised:
        duplicate.full_clean()
    assert "already exists" in str(raised.value)


def test_two_casings_of_one_address_are_refused_by_the_database():
    CustomerFactory(email="grace@example.com")
    with pytest.raises(IntegrityError), transaction.atomic():
        # Bypass normalisation: the named constraint on lower(email) must hold by itself.
        Customer.objects.bulk_create([Customer(email="GRACE@example.com")])


def test_email_is_stored_normalised():
    customer = CustomerFactory(email="  Alan.Turing@Example.COM ")
    customer.refresh_from_db()
    assert customer.email == "alan.turing@example.com"
    assert Customer.objects.by_email("ALAN.turing@example.com").get() == customer


def test_a_phone_number_is_validated_and_stored_in_e164():
    customer = CustomerFactory.build(phone="+44 20 7946 0958")
    customer.full_clean()
    customer.save()
    customer.refresh_from_db()
    assert str(customer.phone) == "+442079460958"


def test_an_invalid_phone_number_is_refused():
    customer = CustomerFactory.build(phone="12345")
    with pytest.raises(ValidationError) as raised:
        customer.full_clean()
    assert "phone" in raised.value.message_dict


def test_an_unknown_country_code_is_refused():
    customer = CustomerFactory.build(country="XX")
    with pytest.raises(ValidationError) as raised:
        customer.full_clean()
    assert "country" in raised.value.message_dict


def test_an_unknown_currency_is_refused():
    customer = CustomerFactory.build(currency="EUX")
    with pytest.raises(ValidationError) as raised:
        customer.full_clean()
    assert "currency" in raised.value.message_dict


@pytest.mark.parametrize(
    "text",
    [
        "4111111111111111",
        "card 4111 1111 1111 1111 exp 12/29",
        "paid with 5500-0000-0000-0004",
        "Amex 378282246310005",
    ],
)
def test_a_card_number_in_free_text_is_refused_with_a_reason(text):
    customer = CustomerFactory.build(notes=text)
    with pytest.raises(ValidationError) as raised:
        customer.full_clean()
    assert "card number" in raised.value.message_dict["notes"][0]


@pytest.mark.parametrize(
    "text",
    [
        "order PAD-12345678, call ref 4471",
        "4111111111111112",  # 16 digits failing the Luhn check
        "phoned +44 20 7946 0958 on 12 May",
        "",
    ],
)
def test_ordinary_text_with_numbers_is_accepted(text):
    assert not contains_card_number(text)
    CustomerFactory.build(notes=text).full_clean()


def test_a_line_break_in_an_address_line_is_refused():
    customer = Customer(email="dora@example.com", address_line1="Studio 78\nBeverley Fork")
    with pytest.raises(ValidationError) as raised:
        customer.full_clean()
    assert "one line" in raised.value.message_dict["address_line1"][0]
