"""
Erasure erases: for a customer who has been through everything (bounced, failed, corrected,
changed address, asked for links, received campaigns and a test send, had disclosures, a
privacy request and an import), no column of any table holds a value she ever had, and every
address she ever used stays suppressed. Runs on SQLite and, with DATABASE_URL set, PostgreSQL.
"""

import hashlib
import hmac
import importlib

import pytest
from django.apps import apps

from consents.models import Purpose, Source
from consents.services import consent_set
from customers.models import address_hash_key, email_hash, legacy_email_hash
from marketing import suppression as marketing
from marketing.models import Delivery, Suppression
from privacy.models import CustomerErasure, ErasedAddress
from privacy.selectors import customer_address_was_erased
from privacy.services import customer_erase
from tests.factories import CustomerFactory

from .people import (
    AUGUSTA,
    CONSENT_IP,
    CONSENT_USER_AGENT,
    IMPORTED_CITY,
    LICENCE_KEY,
    OLD_EMAIL,
    gus_who_consents,
    send_campaign,
    text_columns_containing,
)

pytestmark = pytest.mark.django_db


EVERYTHING_SHE_EVER_HAD = [
    *AUGUSTA.values(),
    OLD_EMAIL,
    IMPORTED_CITY,
    CONSENT_IP,
    CONSENT_USER_AGENT,
    LICENCE_KEY,
    "Augustaqx",
    "Byronqx",
    "augusta.q7",
    "augusta.old",
]


def test_after_erasure_no_column_of_any_table_holds_anything_she_ever_had(officer, augusta_through_everything):
    augusta, request = augusta_through_everything
    before = text_columns_containing(EVERYTHING_SHE_EVER_HAD)
    # the search finds what there is to find before the erasure (not in the delivery errors and
    # suppression notes: the mail server's replies are stored with their addresses masked)
    assert "customers_customerchange.old_value" in before
    assert "consents_consentevent.user_agent" in before
    assert "api_webhookmessage.payload" in before  # queued for the CRM, which may receive personal data
    assert "marketing_delivery.last_error" not in before and "marketing_suppression.note" not in before
    assert Delivery.objects.filter(customer=augusta).exclude(last_error="").exists()
    assert set(Delivery.objects.filter(customer=augusta).values_list("status", flat=True)) == {"sent", "failed"}

    customer_erase(customer=augusta, staff_user=officer, request=request)

    assert text_columns_containing(EVERYTHING_SHE_EVER_HAD) == {}


def test_every_address_she_ever_had_stays_suppressed_and_recognised_as_erased(
    smtp, officer, augusta_through_everything, django_user_model
):
    augusta, request = augusta_through_everything

    customer_erase(customer=augusta, staff_user=officer, request=request)

    for address in [AUGUSTA["email"], OLD_EMAIL]:
        assert Suppression.objects.filter(address_hash=email_hash(address)).exists(), address
        assert customer_address_was_erased(address), address
    assert ErasedAddress.objects.filter(erasure__customer=augusta).count() == 2
    # a newcomer under her old address is never in a campaign's audience
    comeback = CustomerFactory(email=OLD_EMAIL.upper())
    consent_set(
        customer=comeback, purpose=Purpose.objects.get(code="newsletter"), granted=True, source=Source.PREFERENCE_PAGE
    )
    marketer = django_user_model.objects.create_superuser("max", "max@staff.example", "correct horse battery")
    gus_who_consents()
    smtp.handler.messages.clear()
    winter = send_campaign("Winter", marketer)
    assert smtp.handler.recipients() == ["gus@example.com"]
    assert not Delivery.objects.filter(campaign=winter, customer=comeback).exists()


def test_the_suppression_key_is_a_keyed_hash_that_a_list_of_guesses_cannot_test(settings):
    plain = hashlib.sha256(b"ada@example.com").hexdigest()
    keyed = hmac.new(address_hash_key(), b"ada@example.com", hashlib.sha256).hexdigest()

    marketing.suppression_add(email="Ada@Example.com ", reason=Suppression.Reason.STAFF)

    assert Suppression.objects.get().address_hash == keyed != plain
    settings.ADDRESS_HASH_KEY = "another server's secret"
    assert email_hash("ada@example.com") != keyed


def test_addresses_suppressed_or_erased_under_the_old_sha256_are_still_honoured(smtp, officer, django_user_model):
    # given Ben, suppressed before hashes were keyed, and Cleo, erased before then
    ben = CustomerFactory(email="ben@example.com")
    consent_set(
        customer=ben, purpose=Purpose.objects.get(code="newsletter"), granted=True, source=Source.PREFERENCE_PAGE
    )
    Suppression.objects.create(address_hash=legacy_email_hash("ben@example.com"), reason=Suppression.Reason.STAFF)
    cleo = CustomerFactory(email="cleo@example.com", erased_at=None)
    CustomerErasure.objects.create(customer=cleo, address_hash=legacy_email_hash("cleo@example.com"), erased_by=officer)
    marketer = django_user_model.objects.create_superuser("mo", "mo@staff.example", "correct horse battery")
    gus_who_consents()

    # when a campaign goes out
    send_campaign("Spring", marketer)

    # then Ben receives nothing, and the old hash is not stored a second time
    assert smtp.handler.recipients() == ["gus@example.com"]
    assert marketing.suppression_add(email="ben@example.com", reason=Suppression.Reason.ERASURE).reason == "staff"
    assert Suppression.objects.count() == 1
    assert customer_address_was_erased("cleo@example.com")


def test_the_database_computes_the_same_keyed_hash_as_python(smtp, django_user_model):
    # Dispatch compares hashes in SQL (an HMAC spelled out on PostgreSQL): a suppression made
    # in Python keeps Dora out of the audience.
    dora = CustomerFactory(email="dora@example.com")
    consent_set(
        customer=dora, purpose=Purpose.objects.get(code="newsletter"), granted=True, source=Source.PREFERENCE_PAGE
    )
    CustomerFactory(email="eve@example.com")
    marketing.suppression_add(email="dora@example.com", reason=Suppression.Reason.STAFF)
    marketer = django_user_model.objects.create_superuser("mo", "mo@staff.example", "correct horse battery")
    gus_who_consents()

    campaign = send_campaign("Spring", marketer)

    assert smtp.handler.recipients() == ["gus@example.com"]
    assert not Delivery.objects.filter(campaign=campaign, customer=dora, status="sent").exists()


def test_the_data_migration_scrubs_addresses_from_replies_already_stored(django_user_model, smtp):
    # given a bounce stored before replies were masked
    fay = CustomerFactory(email="fay@example.com")
    consent_set(
        customer=fay, purpose=Purpose.objects.get(code="newsletter"), granted=True, source=Source.PREFERENCE_PAGE
    )
    marketer = django_user_model.objects.create_superuser("mo", "mo@staff.example", "correct horse battery")
    campaign = send_campaign("Spring", marketer)
    Delivery.objects.filter(campaign=campaign).update(
        status="failed", last_error="550 5.1.1 <fay@example.com>: Recipient address rejected; ſam@localhost too"
    )
    Suppression.objects.create(
        address_hash=email_hash("fay@example.com"),
        reason=Suppression.Reason.HARD_BOUNCE,
        note="the mailbox name of 'ſam@example.com' is not ASCII",
    )

    importlib.import_module("marketing.migrations.0008_scrub_addresses_from_stored_text").scrub_addresses(apps, None)

    assert Delivery.objects.get(campaign=campaign).last_error == (
        "550 5.1.1 <[address removed]>: Recipient address rejected; [address removed] too"
    )
    assert Suppression.objects.get().note == "the mailbox name of '[address removed]' is not ASCII"
