from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.utils import timezone

from customers.models import ProductRegistration
from customers.services import registration_refund
from tests.factories import RegistrationFactory

pytestmark = pytest.mark.django_db


def test_the_money_back_deadline_is_thirty_days_after_purchase():
    purchased = timezone.now() - timedelta(days=10)
    registration = RegistrationFactory(purchased_at=purchased)
    assert registration.money_back_deadline == purchased + timedelta(days=30)
    assert registration.within_money_back_window()
    assert ProductRegistration.objects.within_money_back_window().filter(pk=registration.pk).exists()


def test_a_purchase_older_than_thirty_days_is_outside_the_window():
    registration = RegistrationFactory(purchased_at=timezone.now() - timedelta(days=31))
    assert not registration.within_money_back_window()
    assert not ProductRegistration.objects.within_money_back_window().filter(pk=registration.pk).exists()


def test_a_refund_within_the_window_is_accepted():
    registration = RegistrationFactory(purchased_at=timezone.now() - timedelta(days=5))
    registration_refund(registration=registration, refunded_at=timezone.now())
    registration.refresh_from_db()
    assert registration.refunded_at is not None
    assert registration.refund_override_by is None


def test_a_late_refund_without_override_is_refused():
    registration = RegistrationFactory(purchased_at=timezone.now() - timedelta(days=45))
    with pytest.raises(ValidationError) as raised:
        registration_refund(registration=registration, refunded_at=timezone.now())
    assert "deadline" in str(raised.value)
    registration.refresh_from_db()
    assert registration.refunded_at is None


def test_a_late_refund_with_a_staff_override_is_recorded():
    staff = get_user_model().objects.create_user("support1", is_staff=True)
    registration = RegistrationFactory(purchased_at=timezone.now() - timedelta(days=45))
    registration_refund(
        registration=registration,
        refunded_at=timezone.now(),
        override_by=staff,
        override_reason="Customer was hospitalised during the trial; approved by J. Smith",
    )
    registration.refresh_from_db()
    assert registration.refund_override_by == staff
    assert "hospitalised" in registration.refund_override_reason


def test_an_override_without_a_reason_is_refused():
    staff = get_user_model().objects.create_user("support2", is_staff=True)
    registration = RegistrationFactory(purchased_at=timezone.now() - timedelta(days=45))
    with pytest.raises(ValidationError):
        registration_refund(registration=registration, refunded_at=timezone.now(), override_by=staff)


def test_the_licence_key_is_masked_for_lists():
    registration = RegistrationFactory.build(licence_key="ABCD-EFGH-IJKL-MNOP")
    assert registration.masked_licence_key.endswith("MNOP")
    assert "ABCD" not in registration.masked_licence_key
