"""Behaviour found by trying the product from outside."""

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from consents.models import ConsentEvent, Purpose, Source
from consents.services import consent_withdraw
from consents.tokens import make_preference_token
from customers.models import Customer
from tests.consents.people import customer_with_choices

pytestmark = pytest.mark.django_db


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


def test_asking_to_move_to_someones_address_does_not_use_up_their_link_requests(client, purposes, settings):
    settings.PREFERENCE_LINK_LIMIT_PER_EMAIL = 2
    mallory = customer_with_choices("mallory@example.com")
    customer_with_choices("carol@example.com")
    token = make_preference_token(mallory)
    for _ in range(2):
        client.post(f"/preferences/{token}/email/", {"new_email": "carol@example.com"})
    # Carol can still ask for her own link
    assert client.post("/preferences/", {"email": "carol@example.com"}).status_code == 200


def test_the_link_request_answers_without_its_final_slash(client, purposes):
    assert client.post("/preferences", {"email": "nobody@example.com"}).status_code == 200


def test_a_line_break_in_an_address_line_is_refused():
    customer = Customer(email="dora@example.com", address_line1="Studio 78\nBeverley Fork")
    with pytest.raises(ValidationError) as raised:
        customer.full_clean()
    assert "one line" in raised.value.message_dict["address_line1"][0]
