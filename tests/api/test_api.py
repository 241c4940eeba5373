"""
The REST API as the vendor's shop and CRM use it: keys with scopes, customers, consent with
proof through the consent service, registrations, "may we mail?", idempotent retries, and errors
as problem details that never become a 500.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone
from rest_framework.test import APIClient

from api.models import ApiKey, Scope
from consents.models import Consent, ConsentEvent, Purpose, Source
from consents.services import RequestMeta, consent_grant, consent_withdraw
from customers.models import Customer, CustomerChange, ProductRegistration
from privacy.models import AccessLog
from tests.factories import CustomerFactory, ProductFactory, RegistrationFactory, ResellerFactory

from .conftest import client_with

pytestmark = pytest.mark.django_db

V1 = "/api/v1"


@pytest.fixture
def ada(db):
    return CustomerFactory(email="ada@example.com", first_name="Ada", last_name="Lovelace")


def problem(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status and body["code"] == code and body["detail"] and body["type"].endswith(code)
    return body


# --- keys and scopes ----------------------------------------------------------------------


def test_a_call_without_a_key_or_with_a_wrong_or_revoked_key_is_refused():
    assert problem(APIClient().get(f"{V1}/customers/{uuid.uuid4()}/"), 401, "not_authenticated")
    wrong = APIClient()
    wrong.credentials(HTTP_AUTHORIZATION="Api-Key nope.nope")
    assert problem(wrong.get(f"{V1}/customers/{uuid.uuid4()}/"), 401, "not_authenticated")

    revoked = client_with(Scope.CUSTOMERS_READ)
    ApiKey.objects.update(revoked=True)
    assert problem(revoked.get(f"{V1}/customers/{uuid.uuid4()}/"), 401, "not_authenticated")


CALLS = [
    ("get", "/customers/{id}/", Scope.CUSTOMERS_READ, None),
    ("patch", "/customers/{id}/", Scope.CUSTOMERS_WRITE, {"city": "Paris"}),
    ("post", "/customers/", Scope.CUSTOMERS_WRITE, {"email": "new@example.com"}),
    ("post", "/customers/lookup/", Scope.CUSTOMERS_READ, {"email": "ada@example.com"}),
    ("get", "/customers/{id}/consent/", Scope.CONSENT_READ, None),
    (
        "post",
        "/customers/{id}/consent/",
        Scope.CONSENT_WRITE,
        {"purpose": "newsletter", "granted": True, "source": "signup_form", "wording": "Yes please"},
    ),
    ("get", "/customers/{id}/consent-events/", Scope.CONSENT_READ, None),
    ("post", "/suppression/check/", Scope.SUPPRESSION_READ, {"email": "ada@example.com", "purpose": "newsletter"}),
]


@pytest.mark.parametrize(("method", "path", "scope", "body"), CALLS, ids=[f"{c[0]} {c[1]}" for c in CALLS])
def test_each_call_is_allowed_with_its_scope_and_refused_with_every_other(ada, method, path, scope, body):
    url = V1 + path.format(id=ada.public_id)
    others = [s for s in Scope if s != scope]

    refused = getattr(client_with(*others), method)(url, body, format="json")
    allowed = getattr(client_with(scope), method)(url, body, format="json")

    problem(refused, 403, "missing_scope")
    assert scope in refused.json()["detail"]
    assert allowed.status_code in (200, 201), allowed.content


def test_registrations_need_their_scope(ada):
    ProductFactory()
    body = {"customer": str(ada.public_id), "product": "photoforge-pro", "order_reference": "web-1"}

    problem(client_with(Scope.CUSTOMERS_WRITE).post(f"{V1}/registrations/", body, format="json"), 403, "missing_scope")
    assert client_with(Scope.REGISTRATIONS_WRITE).post(f"{V1}/registrations/", body, format="json").status_code == 201


def test_a_key_past_its_rate_limit_gets_429_with_retry_after(ada, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"api_key": "3/min"}}
    from rest_framework.settings import api_settings

    api_settings.reload()
    from api.throttling import ApiKeyRateThrottle

    ApiKeyRateThrottle.THROTTLE_RATES = api_settings.DEFAULT_THROTTLE_RATES
    try:
        client = client_with(Scope.CUSTOMERS_READ)
        for _ in range(3):
            assert client.get(f"{V1}/customers/{ada.public_id}/").status_code == 200
        limited = client.get(f"{V1}/customers/{ada.public_id}/")
        problem(limited, 429, "rate_limited")
        assert int(limited["Retry-After"]) > 0
        # Another key is not limited by this one's calls.
        assert client_with(Scope.CUSTOMERS_READ).get(f"{V1}/customers/{ada.public_id}/").status_code == 200
    finally:
        settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"api_key": "600/min"}}
        api_settings.reload()
        ApiKeyRateThrottle.THROTTLE_RATES = api_settings.DEFAULT_THROTTLE_RATES


def test_the_key_records_when_it_was_last_used(ada):
    client = client_with(Scope.CUSTOMERS_READ)
    assert ApiKey.objects.get().last_used_at is None

    client.get(f"{V1}/customers/{ada.public_id}/")

    assert ApiKey.objects.get().last_used_at is not None


# --- customers ----------------------------------------------------------------------------


def test_reading_a_customer_is_recorded_in_the_access_log_with_the_key(ada):
    client = client_with(Scope.CUSTOMERS_READ)

    body = client.get(f"{V1}/customers/{ada.public_id}/").json()

    assert body["email"] == "ada@example.com" and body["public_id"] == str(ada.public_id)
    entry = AccessLog.objects.get(customer=ada)
    assert entry.action == AccessLog.Action.API_READ and entry.staff_user is None
    key = ApiKey.objects.get()
    assert entry.api_key_label == f"API key {key.prefix} (Shop checkout)"


def test_a_customer_is_looked_up_by_email_with_a_post_and_an_unknown_one_is_a_404(ada):
    client = client_with(Scope.CUSTOMERS_READ)

    found = client.post(f"{V1}/customers/lookup/", {"email": " ADA@example.com "}, format="json")
    missing = client.post(f"{V1}/customers/lookup/", {"email": "nobody@example.com"}, format="json")

    assert found.json()["public_id"] == str(ada.public_id)
    problem(missing, 404, "not_found")


def test_an_update_is_recorded_as_a_correction_through_the_api_with_old_and_new_values(ada):
    client = client_with(Scope.CUSTOMERS_WRITE)

    response = client.patch(f"{V1}/customers/{ada.public_id}/", {"city": "Paris", "country": "FR"}, format="json")

    assert response.status_code == 200 and response.json()["city"] == "Paris"
    changes = {c.field: (c.old_value, c.new_value, c.changed_by) for c in CustomerChange.objects.filter(customer=ada)}
    assert changes["city"][1:] == ("Paris", "api")
    assert AccessLog.objects.get(customer=ada).action == AccessLog.Action.API_CHANGED


def test_bad_details_are_refused_with_the_field_named_and_nothing_changes(ada):
    client = client_with(Scope.CUSTOMERS_WRITE)

    response = client.patch(
        f"{V1}/customers/{ada.public_id}/", {"phone": "not a phone", "city": "Paris"}, format="json"
    )

    body = problem(response, 400, "invalid_input")
    assert "phone" in body["errors"]
    ada.refresh_from_db()
    assert ada.city != "Paris" and not CustomerChange.objects.exists()


def test_creating_a_customer_twice_is_a_409_and_a_card_number_is_refused(ada):
    client = client_with(Scope.CUSTOMERS_WRITE)

    problem(client.post(f"{V1}/customers/", {"email": "ada@example.com"}, format="json"), 409, "customer_exists")
    card = client.post(
        f"{V1}/customers/", {"email": "bob@example.com", "company": "4111 1111 1111 1111"}, format="json"
    )
    assert "company" in problem(card, 400, "invalid_input")["errors"]
    assert not Customer.objects.filter(email="bob@example.com").exists()


def test_malformed_json_and_unknown_addresses_are_problems_not_pages():
    client = client_with(Scope.CUSTOMERS_WRITE)

    problem(client.post(f"{V1}/customers/", b"{nope", content_type="application/json"), 400, "malformed_body")
    problem(client.get(f"{V1}/no-such-thing/"), 404, "not_found")
    problem(client.get(f"{V1}/customers/not-a-uuid/"), 404, "not_found")


# --- consent --------------------------------------------------------------------------------


def test_a_decision_is_recorded_with_its_proof_through_the_consent_service(ada):
    client = client_with(Scope.CONSENT_WRITE, Scope.CONSENT_READ)
    Customer.objects.filter(pk=ada.pk).update(created_at=datetime(2026, 11, 1, tzinfo=UTC))
    decided = datetime(2026, 11, 30, 9, 15, tzinfo=UTC)

    response = client.post(
        f"{V1}/customers/{ada.public_id}/consent/",
        {
            "purpose": "newsletter",
            "granted": True,
            "occurred_at": decided.isoformat(),
            "source": "signup_form",
            "method": "web",
            "wording": "Send me the newsletter.",
            "ip_address": "203.0.113.9",
            "user_agent": "Checkout/2.0",
        },
        format="json",
    )

    assert response.status_code == 201 and response.json()["recorded"] is True
    event = ConsentEvent.objects.get(customer=ada)
    assert (event.granted, event.occurred_at, event.wording) == (True, decided, "Send me the newsletter.")
    assert (event.ip_address, event.user_agent, event.source) == ("203.0.113.9", "Checkout/2.0", Source.SIGNUP_FORM)
    assert Consent.objects.get(customer=ada, purpose__code="newsletter").granted

    states = {s["purpose"]: s for s in client.get(f"{V1}/customers/{ada.public_id}/consent/").json()}
    assert states["newsletter"]["state"] == "granted" and states["newsletter"]["event_id"] == event.pk
    assert states["promotions"]["state"] == "never_asked"


def test_the_same_decision_again_records_nothing_and_says_so(ada):
    consent_grant(customer=ada, purpose=Purpose.objects.get(code="newsletter"), source=Source.PREFERENCE_PAGE)
    client = client_with(Scope.CONSENT_WRITE)

    response = client.post(
        f"{V1}/customers/{ada.public_id}/consent/",
        {"purpose": "newsletter", "granted": True, "source": "signup_form", "wording": "x"},
        format="json",
    )

    assert response.status_code == 200 and response.json() == {"recorded": False, "event": None}


def test_staff_and_erasure_are_not_sources_an_api_client_may_name(ada):
    client = client_with(Scope.CONSENT_WRITE)
    for source in ("staff", "erasure", "nonsense"):
        body = {"purpose": "newsletter", "granted": True, "source": source, "wording": "x"}
        assert (
            "source"
            in problem(
                client.post(f"{V1}/customers/{ada.public_id}/consent/", body, format="json"), 400, "invalid_input"
            )["errors"]
        )
    assert not ConsentEvent.objects.exists()


def test_the_ledger_of_one_customer_is_paginated_by_cursor(ada):
    newsletter = Purpose.objects.get(code="newsletter")
    for change in range(60):
        decide = consent_grant if change % 2 == 0 else consent_withdraw
        decide(customer=ada, purpose=newsletter, source=Source.PREFERENCE_PAGE, request_meta=RequestMeta())
    client = client_with(Scope.CONSENT_READ)

    first = client.get(f"{V1}/customers/{ada.public_id}/consent-events/").json()
    second = client.get(first["next"]).json()

    assert len(first["results"]) == 50 and len(second["results"]) == 10 and second["next"] is None
    seen = [e["id"] for e in first["results"] + second["results"]]
    assert len(set(seen)) == 60


# --- idempotency ------------------------------------------------------------------------------


def test_a_retried_post_with_the_same_idempotency_key_returns_the_first_result_and_changes_nothing(ada):
    client = client_with(Scope.CONSENT_WRITE)
    body = {"purpose": "newsletter", "granted": True, "source": "signup_form", "wording": "Yes"}
    url = f"{V1}/customers/{ada.public_id}/consent/"

    first = client.post(url, body, format="json", HTTP_IDEMPOTENCY_KEY="order-1001-consent")
    # The customer withdraws meanwhile: a retry of the shop's call must not grant again.
    consent_withdraw(customer=ada, purpose=Purpose.objects.get(code="newsletter"), source=Source.PREFERENCE_PAGE)
    again = client.post(url, body, format="json", HTTP_IDEMPOTENCY_KEY="order-1001-consent")

    assert first.status_code == again.status_code == 201
    assert first.json() == again.json() and again["Idempotent-Replayed"] == "true"
    assert ConsentEvent.objects.filter(granted=True).count() == 1
    assert not Consent.objects.get(customer=ada).granted


def test_the_same_idempotency_key_with_another_body_is_refused():
    client = client_with(Scope.CUSTOMERS_WRITE)
    client.post(f"{V1}/customers/", {"email": "one@example.com"}, format="json", HTTP_IDEMPOTENCY_KEY="k1")

    other = client.post(f"{V1}/customers/", {"email": "two@example.com"}, format="json", HTTP_IDEMPOTENCY_KEY="k1")

    problem(other, 422, "idempotency_key_reused")
    assert not Customer.objects.filter(email="two@example.com").exists()


def test_a_failed_call_is_not_remembered_so_its_retry_runs_again():
    client = client_with(Scope.CUSTOMERS_WRITE)
    bad = client.post(f"{V1}/customers/", {"email": "bad"}, format="json", HTTP_IDEMPOTENCY_KEY="k2")
    assert bad.status_code == 400

    good = client.post(f"{V1}/customers/", {"email": "bad"}, format="json", HTTP_IDEMPOTENCY_KEY="k2")
    assert good.status_code == 400  # the same body, the same answer, computed again


# --- registrations ------------------------------------------------------------------------------


def test_a_registration_is_created_and_refunded_within_the_money_back_window(ada):
    ProductFactory()
    ResellerFactory(name="Paddle")
    client = client_with(Scope.REGISTRATIONS_WRITE)

    created = client.post(
        f"{V1}/registrations/",
        {
            "customer": str(ada.public_id),
            "product": "photoforge-pro",
            "reseller": "Paddle",
            "order_reference": "txn_9",
            "purchased_at": (timezone.now() - timedelta(days=2)).isoformat(),
            "currency": "EUR",
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    refunded = client.post(f"{V1}/registrations/{created.json()['id']}/refund/", {}, format="json")

    assert refunded.status_code == 200 and refunded.json()["refunded_at"]
    problem(
        client.post(f"{V1}/registrations/{created.json()['id']}/refund/", {}, format="json"), 409, "already_refunded"
    )


def test_a_refund_after_the_money_back_deadline_needs_a_reason(ada):
    registration = RegistrationFactory(customer=ada, purchased_at=timezone.now() - timedelta(days=45))
    client = client_with(Scope.REGISTRATIONS_WRITE)

    refused = client.post(f"{V1}/registrations/{registration.pk}/refund/", {}, format="json")
    allowed = client.post(
        f"{V1}/registrations/{registration.pk}/refund/",
        {"late_refund_reason": "Goodwill: broken update"},
        format="json",
    )

    problem(refused, 422, "refund_after_deadline")
    assert allowed.status_code == 200
    registration.refresh_from_db()
    assert registration.refunded_at and registration.refund_note == "Goodwill: broken update"
    assert ProductRegistration.objects.count() == 1


# --- may we mail? -------------------------------------------------------------------------------


def test_may_we_mail_applies_consent_suppression_and_erasure_and_hides_why_without_customers_read(ada, admin_user):
    from privacy.services import customer_erase

    consent_grant(customer=ada, purpose=Purpose.objects.get(code="newsletter"), source=Source.PREFERENCE_PAGE)
    grace = CustomerFactory(email="grace@example.com")
    erased = CustomerFactory(email="erased@example.com")
    customer_erase(customer=erased, staff_user=admin_user)
    narrow = client_with(Scope.SUPPRESSION_READ)
    wide = client_with(Scope.SUPPRESSION_READ, Scope.CUSTOMERS_READ)

    def ask(client, email, purpose="newsletter"):
        return client.post(f"{V1}/suppression/check/", {"email": email, "purpose": purpose}, format="json").json()

    assert ask(narrow, "ada@example.com") == {"may_send": True}
    assert ask(narrow, "grace@example.com") == {"may_send": False}
    assert ask(wide, "grace@example.com") == {"may_send": False, "reason": "no_consent"}
    assert ask(wide, "ada@example.com", "promotions") == {"may_send": False, "reason": "no_consent"}
    assert ask(wide, "erased@example.com")["may_send"] is False
    assert ask(wide, "nobody@example.com") == {"may_send": False, "reason": "unknown_customer"}
    assert grace  # never asked, so never mailed


# --- keys for deployment scripts, and the docs ------------------------------------------------------


def test_create_api_key_prints_the_key_once_and_stores_only_its_hash(capsys):
    call_command("create_api_key", "CRM sync", "--scopes", "customers:read,consent:read")

    key = capsys.readouterr().out.strip()
    stored = ApiKey.objects.get()
    assert stored.scopes == ["consent:read", "customers:read"] and stored.name == "CRM sync"
    assert key.startswith(stored.prefix + ".") and key not in stored.hashed_key
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    assert client.get(f"{V1}/customers/{uuid.uuid4()}/").status_code == 404


def test_create_api_key_refuses_an_unknown_scope():
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="Unknown scope"):
        call_command("create_api_key", "CRM", "--scopes", "customers:read,everything")
    assert not ApiKey.objects.exists()


def test_the_schema_and_the_docs_are_served_by_the_site_itself(client):
    schema = client.get("/api/schema/")
    docs = client.get("/api/docs/")

    assert schema.status_code == 200 and b"/api/v1/customers/" in schema.content
    assert docs.status_code == 200
    html = docs.content.decode()
    assert "cdn" not in html.lower() and "<script>" not in html  # no inline script, nothing from elsewhere


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/registrations/", {"customer": "{id}", "product": "photo\u0000forge"}),
        (
            "/customers/{id}/consent/",
            {"purpose": "news\u0000letter", "granted": True, "source": "signup_form", "wording": "Yes"},
        ),
        ("/suppression/check/", {"email": "ada@example.com", "purpose": "news\u0000letter"}),
    ],
    ids=["registration product", "consent purpose", "suppression purpose"],
)
def test_a_nul_character_in_a_name_that_is_looked_up_is_invalid_input_not_a_server_error(ada, every_scope, path, body):
    # PostgreSQL cannot compare text holding NUL: the look-up must not reach it.
    url = V1 + path.format(id=ada.public_id)
    body = {k: (v.format(id=ada.public_id) if isinstance(v, str) and v == "{id}" else v) for k, v in body.items()}

    response = every_scope.post(url, body, format="json")

    problem(response, 400, "invalid_input")


def test_a_nul_character_in_a_looked_up_code_is_a_bad_request_not_a_server_error(ada):
    # PostgreSQL cannot hold NUL in a text parameter: the lookup must refuse it before the query.
    ProductFactory()
    body = {"customer": str(ada.public_id), "product": "photoforge\x00pro"}
    response = client_with(Scope.REGISTRATIONS_WRITE).post(f"{V1}/registrations/", body, format="json")
    assert response.status_code == 400
    assert "product" in response.content.decode()
    assert not ProductRegistration.objects.filter(customer=ada).exists()


def test_a_code_with_a_nul_character_is_refused_as_unknown_not_a_server_error(ada):
    # PostgreSQL cannot look up text holding NUL: found by schemathesis as a 500
    answer = client_with(Scope.SUPPRESSION_READ).post(
        f"{V1}/suppression/check/", {"email": "ada@example.com", "purpose": "news\x00letter"}, format="json"
    )
    problem(answer, 400, "invalid_input")
    assert "purpose" in answer.json()["errors"]
