"""Correcting details, changing the email address, downloading and asking to delete one's data."""

import json
from datetime import UTC, datetime

import pytest
from django.db import connection

from consents.models import DataCategory, Disclosure, LegalBasis, Source
from consents.services import RequestMeta, consent_set
from consents.tokens import SensitiveAction, make_preference_token, make_sensitive_token
from customers.models import CustomerChange, ThirdParty
from privacy.models import PrivacyRequest
from tests.consents.people import customer_with_choices, disclosure_purpose
from tests.factories import RegistrationFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def ada(purposes):
    return customer_with_choices(
        "ada@example.com",
        granted=["newsletter"],
        first_name="Ada",
        last_name="Byron",
        company="Analytical Engines Ltd",
        city="London",
        country="GB",
        currency="GBP",
    )


def page_url(customer) -> str:
    return f"/preferences/{make_preference_token(customer)}/"


def secure_url(customer, action: SensitiveAction) -> str:
    """The fresh link the page mails to the address on file for one sensitive action."""
    return f"/preferences/secure/{make_sensitive_token(customer, action)}/"


def details_of(customer, **changes) -> dict:
    data = {
        "first_name": customer.first_name,
        "last_name": customer.last_name,
        "job_title": customer.job_title,
        "company": customer.company,
        "phone": str(customer.phone or ""),
        "address_line1": customer.address_line1,
        "address_line2": customer.address_line2,
        "city": customer.city,
        "region": customer.region,
        "postal_code": customer.postal_code,
        "country": str(customer.country or ""),
        "language": customer.language,
        "currency": customer.currency,
    }
    data.update(changes)
    return data


# --- corrections


def test_a_correction_is_recorded_with_old_and_new_values(client, ada):
    response = client.post(page_url(ada) + "details/", details_of(ada, last_name="Lovelace", job_title="Mathematician"))
    assert response.status_code == 302
    ada.refresh_from_db()
    assert (ada.last_name, ada.job_title) == ("Lovelace", "Mathematician")
    changes = {c.field: c for c in CustomerChange.objects.filter(customer=ada)}
    assert set(changes) == {"last_name", "job_title"}
    assert (changes["last_name"].old_value, changes["last_name"].new_value) == ("Byron", "Lovelace")
    assert (changes["job_title"].old_value, changes["job_title"].new_value) == ("", "Mathematician")
    assert {c.changed_by for c in changes.values()} == {"customer"}


def test_the_correction_shows_on_the_customers_admin_page(client, ada, admin_client):
    client.post(page_url(ada) + "details/", details_of(ada, last_name="Lovelace"))
    html = admin_client.get(f"/admin/customers/customer/{ada.pk}/change/").content.decode()
    assert "Byron" in html and "Lovelace" in html
    assert "Customer" in html


def test_a_bad_correction_is_refused_with_a_message_and_loses_nothing(client, ada):
    response = client.post(page_url(ada) + "details/", details_of(ada, last_name="Lovelace", phone="12345"))
    assert response.status_code == 400
    html = response.content.decode()
    assert "phone" in html.lower() and "errorlist" in html
    assert 'value="Lovelace"' in html  # what she typed is still there
    ada.refresh_from_db()
    assert ada.last_name == "Byron"
    assert not CustomerChange.objects.filter(customer=ada).exists()


def test_a_card_number_in_a_detail_field_is_refused(client, ada):
    response = client.post(page_url(ada) + "details/", details_of(ada, address_line2="4111 1111 1111 1111"))
    assert response.status_code == 400
    assert "payment card number" in response.content.decode()


def test_the_main_page_shows_the_details_read_only_with_a_link_to_correct_them(client, ada):
    url = page_url(ada)
    html = client.get(url).content.decode()
    assert "Ada Byron" in html and "Analytical Engines Ltd" in html
    assert "London, United Kingdom" in html
    assert "Pound sterling" in html or "GBP" in html
    assert f'href="{url}details/"' in html and "Correct my details" in html
    # the form with its long country and currency lists is not on the main page
    assert 'name="country"' not in html and 'name="last_name"' not in html


def page_queries() -> int:
    """The customer and their choices: one statement on PostgreSQL (a LATERAL join), two elsewhere."""
    return 1 if connection.vendor == "postgresql" else 2


def test_the_main_page_reads_the_customer_and_their_choices_in_one_statement(client, ada, django_assert_num_queries):
    client.get(page_url(ada))  # warm caches, as a running server would be
    with django_assert_num_queries(page_queries()):
        assert client.get(page_url(ada)).status_code == 200


def test_an_open_erasure_request_costs_the_page_one_more_query(client, ada, django_assert_num_queries):
    client.post(secure_url(ada, SensitiveAction.ERASE))
    client.get(page_url(ada))
    with django_assert_num_queries(page_queries() + 1):
        page = client.get(page_url(ada)).content.decode()
    request = PrivacyRequest.objects.get(customer=ada)
    assert f"on {request.received_at.day} {request.received_at:%B %Y}" in page
    assert f"by <strong>{request.due_at.day} {request.due_at:%B %Y}</strong>" in page


def test_a_closed_erasure_request_gives_back_the_button(client, ada):
    client.post(secure_url(ada, SensitiveAction.ERASE))
    PrivacyRequest.objects.filter(customer=ada).update(
        status=PrivacyRequest.Status.DONE, closed_at="2026-01-01T00:00:00Z"
    )
    page = client.get(page_url(ada)).content.decode()
    assert "You asked us to delete your data" not in page and "Email me a link to delete my data" in page


@pytest.mark.parametrize("suffix", ["details/", "details"])
def test_the_details_page_shows_the_form_filled_in_privately(client, ada, suffix):
    url = page_url(ada)
    response = client.get(url + suffix)
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    assert response["Referrer-Policy"] == "same-origin"
    html = response.content.decode()
    assert 'value="Byron"' in html and 'for="id_last_name"' in html
    assert '<option value="GB" selected>' in html
    assert html.count('method="post"') == html.count("csrfmiddlewaretoken") == 1
    assert f'href="{url}"' in html  # back to the preferences


def test_a_saved_correction_shows_its_message_and_the_new_details_on_the_main_page(client, ada):
    response = client.post(page_url(ada) + "details", details_of(ada, last_name="Lovelace"), follow=True)
    html = response.content.decode()
    assert response.redirect_chain[-1][0].endswith("#details")
    assert "Your details are saved (1 corrected)." in html
    assert "Ada Lovelace" in html and "Correct my details" in html


def test_a_bad_link_to_the_details_page_gets_the_friendly_page(client, ada):
    response = client.get(page_url(ada)[:-5] + "xxxx/details/")
    assert response.status_code == 400
    assert "Email me a new link" in response.content.decode()


# --- download my data


@pytest.fixture
def ada_with_history(ada, purposes):
    RegistrationFactory(customer=ada)
    consent_set(
        customer=ada,
        purpose=purposes["promotions"],
        granted=True,
        source=Source.PREFERENCE_PAGE,
        request_meta=RequestMeta(ip_address="203.0.113.7", user_agent="Firefox"),
    )
    analytics = ThirdParty.objects.create(name="Insight Analytics", kind=ThirdParty.Kind.ANALYTICS, country="DE")
    Disclosure.objects.create(
        customer=ada,
        third_party=analytics,
        data_categories=[DataCategory.PURCHASE, DataCategory.IDENTITY],
        legal_basis=LegalBasis.LEGITIMATE_INTERESTS,
        disclosure_purpose=disclosure_purpose("other"),
        purpose="Purchasing-trend analysis",
        disclosed_at=datetime(2025, 3, 1, 12, 0, tzinfo=UTC),
    )
    return ada


def test_the_export_contains_the_consent_history_and_the_disclosures(client, ada_with_history):
    response = client.post(secure_url(ada_with_history, SensitiveAction.EXPORT))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/json")
    assert response["Content-Disposition"].startswith("attachment;")
    assert "no-store" in response["Cache-Control"]
    data = json.loads(response.content)

    assert data["format"] == "consentdesk.customer-export/1"
    assert data["customer"]["email"] == "ada@example.com"
    assert len(data["registrations"]) == 1
    assert {c["purpose"]: c["granted"] for c in data["consents"]} == {"newsletter": True, "promotions": True}
    history = data["consent_history"]
    assert [(e["purpose"], e["decision"], e["source"]) for e in history] == [
        ("newsletter", "granted", "signup_form"),
        ("promotions", "granted", "preference_page"),
    ]
    latest = history[-1]
    assert latest["ip_address"] == "203.0.113.7"
    assert latest["user_agent"] == "Firefox"
    assert latest["policy_version"] == "1.0"
    assert latest["wording"]
    assert data["disclosures"] == [
        {
            "third_party": "Insight Analytics",
            "third_party_kind": "analytics",
            "third_party_country": "DE",
            "data_categories": ["purchase", "identity"],
            "legal_basis": "legitimate_interests",
            "purpose": "Purchasing-trend analysis",
            "disclosed_at": "2025-03-01T12:00:00+00:00",
            "reference": "",
        }
    ]


def test_staff_download_the_same_file_from_admin(client, admin_client, ada_with_history):
    customer_file = json.loads(client.post(secure_url(ada_with_history, SensitiveAction.EXPORT)).content)
    response = admin_client.get(f"/admin/export/customer/{ada_with_history.public_id}/export.json")
    assert response.status_code == 200
    staff_file = json.loads(response.content)
    customer_file.pop("generated_at"), staff_file.pop("generated_at")
    assert staff_file == customer_file


def test_the_staff_download_is_for_staff_only(client, ada):
    response = client.get(f"/admin/export/customer/{ada.public_id}/export.json")
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


# --- delete my data


def test_asking_to_delete_records_an_erasure_request_due_in_a_month(client, ada):
    response = client.post(secure_url(ada, SensitiveAction.ERASE))
    assert response.status_code == 200
    request = PrivacyRequest.objects.get(customer=ada)
    assert (request.kind, request.status, request.channel) == ("erasure", "open", "preference_page")
    assert request.due_at.date() > request.received_at.date()
    assert (request.due_at - request.received_at).days in (28, 29, 30, 31)
    html = response.content.decode()
    assert "We have your request to delete your data" in html
    assert f"{request.due_at.day} {request.due_at:%B %Y}" in html
    # the preference page now says so instead of offering the button again
    page = client.get(page_url(ada)).content.decode()
    assert "You asked us to delete your data" in page


def test_asking_twice_keeps_one_open_request(client, ada):
    link = secure_url(ada, SensitiveAction.ERASE)
    client.post(link)
    client.post(link)
    client.post(secure_url(ada, SensitiveAction.ERASE))
    assert PrivacyRequest.objects.filter(customer=ada).count() == 1
    # the link opened again shows the request, not the question
    assert "We have your request to delete your data" in client.get(link).content.decode()


def test_following_the_delete_link_asks_first_and_says_what_will_happen(client, ada):
    response = client.get(secure_url(ada, SensitiveAction.ERASE))
    assert response.status_code == 200
    html = response.content.decode()
    assert "Delete your data?" in html and "What will happen" in html
    assert "within one month" in html and "Yes, delete my data" in html
    assert "no-store" in response["Cache-Control"] and response["Referrer-Policy"] == "same-origin"
    assert not PrivacyRequest.objects.exists()


def test_the_preference_link_alone_cannot_file_a_deletion_request(client, ada):
    assert client.post(page_url(ada) + "erase/").status_code == 404
    assert client.get(page_url(ada) + "erase/").status_code == 404
    assert not PrivacyRequest.objects.exists()


def test_the_staff_download_needs_permission_to_view_customers(client, ada, django_user_model):
    clerk = django_user_model.objects.create_user("clerk", "clerk@example.com", "correct horse battery", is_staff=True)
    client.force_login(clerk)
    assert client.get(f"/admin/export/customer/{ada.public_id}/export.json").status_code == 403
