"""
Sign-up and product registration with double opt-in: nothing is granted until the address
confirms with a POST; the page answers the same whoever asks; both steps are the proof.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from consents.models import Consent, ConsentEvent, Source
from consents.services import RequestMeta, consent_grant
from customers.models import Customer, Product, ProductRegistration, email_hashes
from intake.models import SignupRequest
from marketing.models import Suppression
from tests.consents.conftest import eager_celery  # noqa: F401 (fixture)
from tests.consents.people import ensure_purposes
from tests.factories import CustomerFactory, RegistrationFactory

pytestmark = pytest.mark.django_db

SIGNUP = "/signup/"


@pytest.fixture(autouse=True)
def purposes(db):
    return ensure_purposes()


@pytest.fixture
def submit(client, eager_celery, django_capture_on_commit_callbacks):  # noqa: F811
    def submit_(url=SIGNUP, **fields):
        page = client.get(url)
        form = page.context["form"]
        data = {name: form[name].value() for name in form.fields if name.startswith("wording_")}
        data.update(fields)
        with django_capture_on_commit_callbacks(execute=True):
            return client.post(url, data, REMOTE_ADDR="203.0.113.7", HTTP_USER_AGENT="Firefox/140 at sign-up")

    return submit_


def confirm_link(message) -> str:
    found = re.search(r"https?://\S+/signup/confirm/\S+", str(message.body))
    assert found, message.body
    return found.group(0)


def path_of(url: str) -> str:
    return re.sub(r"^https?://[^/]+", "", url)


def test_the_signup_page_shows_one_unticked_box_per_marketing_purpose_with_its_wording(client, purposes):
    page = client.get(SIGNUP)

    html = page.content.decode()
    assert page.status_code == 200
    for code in ("newsletter", "promotions", "market_research"):
        assert f'name="purpose_{code}"' in html
        assert purposes[code].wording in html
    assert 'name="purpose_internal_analysis"' not in html  # not a marketing purpose
    assert "checked" not in html
    assert "privacy policy" in html


def test_a_signup_grants_nothing_until_the_confirmation_is_posted(client, submit):
    page = submit(email="Nina.Park@example.com", first_name="Nina", purpose_newsletter="on")

    assert page.status_code == 200 and "Check your inbox" in page.content.decode()
    assert not Customer.objects.exists() and not ConsentEvent.objects.exists()
    (message,) = mail.outbox
    assert message.to == ["nina.park@example.com"]
    link = path_of(confirm_link(message))

    shown = client.get(link)  # what a mail scanner does
    assert shown.status_code == 200 and "Confirm" in shown.content.decode()
    assert not Customer.objects.exists() and not ConsentEvent.objects.exists()

    done = client.post(link, REMOTE_ADDR="198.51.100.20", HTTP_USER_AGENT="Safari at confirmation")
    assert done.status_code == 200

    nina = Customer.objects.get(email="nina.park@example.com")
    grant = ConsentEvent.objects.get(customer=nina)
    assert grant.granted and grant.purpose.code == "newsletter" and grant.source == Source.SIGNUP_FORM
    assert (grant.ip_address, grant.user_agent) == ("198.51.100.20", "Safari at confirmation")
    signup = SignupRequest.objects.get()
    assert (signup.request_ip_address, signup.request_user_agent) == ("203.0.113.7", "Firefox/140 at sign-up")
    assert signup.confirmed_at == grant.occurred_at
    assert grant.reference == f"signup:{signup.public_id}"
    assert signup.requested_at.strftime("%Y-%m-%d %H:%M:%S") in grant.note
    assert grant.wording == signup.purposes[0]["wording"]

    again = client.post(link)
    assert again.status_code == 200 and "Already confirmed" in again.content.decode()
    assert ConsentEvent.objects.count() == 1


def test_the_signup_page_answers_the_same_for_a_known_an_unknown_and_an_erased_address(submit, admin_user):
    from privacy.services import customer_erase

    CustomerFactory(email="known@example.com")
    erased = CustomerFactory(email="erased@example.com")
    customer_erase(customer=erased, staff_user=admin_user)

    answers = []
    for email in ("known@example.com", "new@example.com", "erased@example.com"):
        page = submit(email=email, purpose_newsletter="on")
        answers.append((page.status_code, page.content.decode().replace(email, "ADDRESS")))

    assert answers[0] == answers[1] == answers[2]
    assert sorted(m.to[0] for m in mail.outbox) == ["known@example.com", "new@example.com"]
    assert SignupRequest.objects.get(email="erased@example.com").status == SignupRequest.Status.NOT_SENT


def test_a_known_customer_is_asked_to_confirm_only_what_they_had_not_agreed_to(submit, purposes, client):
    ada = CustomerFactory(email="ada@example.com")
    consent_grant(
        customer=ada, purpose=purposes["newsletter"], source=Source.PREFERENCE_PAGE, request_meta=RequestMeta()
    )

    submit(email="ada@example.com", purpose_newsletter="on", purpose_promotions="on")

    (message,) = mail.outbox
    assert "Promotions" in message.body or purposes["promotions"].name in message.body
    assert purposes["newsletter"].name not in message.body.split("You ticked:")[1].split("To confirm")[0]
    assert "/preferences/" in message.body  # a link to the preference page
    client.post(path_of(confirm_link(message)))
    assert Consent.objects.filter(customer=ada, granted=True).count() == 2
    assert ConsentEvent.objects.filter(customer=ada).count() == 2


def test_the_honeypot_field_answers_as_usual_and_stores_nothing(submit):
    page = submit(email="bot@example.com", purpose_newsletter="on", website="http://spam.example")

    assert page.status_code == 200 and "Check your inbox" in page.content.decode()
    assert not SignupRequest.objects.exists() and not mail.outbox


def test_signups_are_rate_limited_per_address_with_a_429_page(submit, settings):
    settings.SIGNUP_LIMIT_PER_EMAIL = 2
    for _ in range(2):
        assert submit(email="flood@example.com", purpose_newsletter="on").status_code == 200

    refused = submit(email="flood@example.com", purpose_newsletter="on")

    assert refused.status_code == 429 and refused["Retry-After"]
    assert "Too many requests" in refused.content.decode()


def test_a_signup_with_no_box_ticked_or_a_bad_address_is_refused_with_a_message(submit):
    nothing = submit(email="nina@example.com")
    bad = submit(email="not an address", purpose_newsletter="on")

    assert nothing.status_code == 400 and "Tick at least one" in nothing.content.decode()
    assert bad.status_code == 400 and "valid email" in bad.content.decode()
    assert not SignupRequest.objects.exists()


def test_an_expired_or_tampered_confirmation_link_gets_a_clear_page_and_grants_nothing(client, submit, settings):
    submit(email="nina@example.com", purpose_newsletter="on")
    link = path_of(confirm_link(mail.outbox[0]))

    tampered = client.post(link[:-3] + "xx/")
    SignupRequest.objects.update(expires_at=timezone.now() - timedelta(minutes=1))
    expired = client.post(link)

    assert tampered.status_code == 400 and "does not work" in tampered.content.decode()
    assert expired.status_code == 410 and "expired" in expired.content.decode()
    assert not ConsentEvent.objects.exists() and not Customer.objects.exists()


def test_a_confirmation_link_without_its_final_slash_works(client, submit):
    submit(email="nina@example.com", purpose_newsletter="on")
    link = path_of(confirm_link(mail.outbox[0])).rstrip("/")

    assert client.post(link).status_code == 200
    assert ConsentEvent.objects.count() == 1


def test_expired_unconfirmed_requests_are_deleted_by_the_retention_job(submit):
    from privacy.services import retention_apply

    submit(email="nina@example.com", purpose_newsletter="on")
    SignupRequest.objects.update(expires_at=timezone.now() - timedelta(hours=1))

    retention_apply()

    assert not SignupRequest.objects.exists()


# --- product registration ----------------------------------------------------------------


@pytest.fixture
def photoforge(db):
    return Product.objects.create(name="PhotoForge Pro", code="photoforge-pro")


def test_a_product_registration_is_created_on_confirmation_with_its_consents(client, submit, photoforge):
    submit(
        "/register/",
        email="omar@example.com",
        first_name="Omar",
        product=photoforge.pk,
        licence_key="PFP-1234-5678",
        purpose_promotions="on",
    )
    assert not ProductRegistration.objects.exists()

    client.post(path_of(confirm_link(mail.outbox[0])))

    registration = ProductRegistration.objects.get()
    assert (registration.customer.email, registration.licence_key) == ("omar@example.com", "PFP-1234-5678")
    assert ConsentEvent.objects.get().purpose.code == "promotions"


def test_a_registration_matches_the_one_the_reseller_reported_by_order_reference(client, submit, photoforge):
    omar = CustomerFactory(email="omar@example.com")
    reported = RegistrationFactory(customer=omar, product=photoforge, licence_key="", order_reference="txn_42")

    submit(
        "/register/", email="omar@example.com", product=photoforge.pk, licence_key="PFP-42", order_reference="txn_42"
    )
    client.post(path_of(confirm_link(mail.outbox[0])))

    reported.refresh_from_db()
    assert ProductRegistration.objects.count() == 1 and reported.licence_key == "PFP-42"


def test_a_licence_key_registered_to_another_customer_is_refused_revealing_nothing(submit, photoforge):
    RegistrationFactory(
        customer=CustomerFactory(email="owner@example.com"), product=photoforge, licence_key="PFP-TAKEN"
    )

    page = submit("/register/", email="thief@example.com", product=photoforge.pk, licence_key="PFP-TAKEN")

    text = page.content.decode()
    assert page.status_code == 400 and "cannot be registered" in text
    assert "owner@example.com" not in text
    assert not SignupRequest.objects.exists() and not mail.outbox


def test_a_refused_confirmation_names_its_reason_in_the_log_but_not_the_address(client, submit, caplog):
    submit(email="nina@example.com", purpose_newsletter="on")
    link = path_of(confirm_link(mail.outbox[0]))
    Suppression.objects.create(address_hash=email_hashes("nina@example.com")[0], reason="complaint")

    with caplog.at_level("WARNING", logger="intake.views"):
        refused = client.post(link)

    assert refused.status_code == 400 and "does not work" in refused.content.decode()
    assert "Sign-up confirmation refused (address blocked, POST)" in caplog.text
    assert "nina" not in caplog.text
    assert not ConsentEvent.objects.exists()
