"""
Customers in their own language: a link page is in the customer's preferred language, a page
without a customer in the browser's (or the one picked with the switch), mails in the
customer's; dates as each language writes them.
"""

from datetime import UTC, datetime

import pytest
from django.core import mail

from consents.models import Consent, ConsentEvent
from consents.preferences import preference_link_send
from consents.tokens import make_preference_token
from tests.consents.people import customer_with_choices

pytestmark = pytest.mark.django_db


def page_url(customer) -> str:
    return f"/preferences/{make_preference_token(customer)}/"


@pytest.fixture
def greta(purposes):
    """Greta prefers German; she takes the newsletter since 2 March 2025."""
    customer = customer_with_choices("greta@example.com", granted=["newsletter"], language="de", first_name="Greta")
    Consent.objects.filter(customer=customer).update(since=datetime(2025, 3, 2, 9, 0, tzinfo=UTC))
    return customer


@pytest.fixture
def francois(purposes):
    """François prefers French and was never asked about anything."""
    return customer_with_choices("francois@example.com", language="fr", first_name="François")


def test_a_german_customer_sees_their_preference_page_in_german_whatever_the_browser_says(client, greta):
    html = client.get(page_url(greta), HTTP_ACCEPT_LANGUAGE="en-GB,en").content.decode()
    assert '<html lang="de">' in html
    assert "<h1>Ihre Einstellungen</h1>" in html
    assert "Meine Auswahl speichern" in html
    assert "Derzeit: Sie haben am 2. März 2025 zugestimmt." in html
    assert "Save my choices" not in html
    # The page follows the customer's own preference: no switch to confuse it with.
    assert 'class="language-switch"' not in html


def test_a_french_customer_sees_their_preference_page_in_french(client, francois):
    html = client.get(page_url(francois)).content.decode()
    assert '<html lang="fr">' in html
    assert "<h1>Vos préférences</h1>" in html
    assert "Enregistrer mes choix" in html
    assert "Actuellement : la question ne vous a pas encore été posée." in html


def test_accept_language_fr_answers_the_link_request_page_in_french(client):
    html = client.get("/preferences/", HTTP_ACCEPT_LANGUAGE="fr-CH, fr;q=0.9, en;q=0.8").content.decode()
    assert '<html lang="fr">' in html
    assert "<h1>Vos préférences e-mail</h1>" in html
    assert "M’envoyer mon lien" in html


def test_a_browser_language_without_translations_gets_the_next_complete_one_or_english(client):
    # Spanish is a language a customer may prefer, but the pages are not written in it.
    html = client.get("/preferences/", HTTP_ACCEPT_LANGUAGE="es, de;q=0.8").content.decode()
    assert "<h1>Ihre E-Mail-Einstellungen</h1>" in html
    html = client.get("/preferences/", HTTP_ACCEPT_LANGUAGE="es, ja;q=0.8").content.decode()
    assert "<h1>Your email preferences</h1>" in html


def test_the_language_switch_shows_the_page_in_the_language_picked_and_remembers_it(client):
    html = client.get("/preferences/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert '<a href="?lang=de" hreflang="de" lang="de">Deutsch</a>' in html
    assert '<a href="?lang=fr" hreflang="fr" lang="fr">français</a>' in html

    response = client.get("/preferences/?lang=de", HTTP_ACCEPT_LANGUAGE="en")
    assert "<h1>Ihre E-Mail-Einstellungen</h1>" in response.content.decode()
    assert response.cookies["django_language"].value == "de"
    # The next page, with the same English browser, stays German.
    again = client.get("/preferences/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "<h1>Ihre E-Mail-Einstellungen</h1>" in again


def test_an_unknown_language_in_the_switch_is_ignored(client):
    response = client.get("/preferences/?lang=xx", HTTP_ACCEPT_LANGUAGE="fr")
    assert response.status_code == 200
    assert "<h1>Vos préférences e-mail</h1>" in response.content.decode()
    assert "django_language" not in response.cookies


def test_a_customer_who_changes_their_language_sees_the_page_in_it_at_once(client, greta):
    url = page_url(greta)
    details = client.get(url + "details/").content.decode()
    assert '<option value="fr">français</option>' in details
    form = {
        "first_name": "Greta",
        "last_name": "",
        "job_title": "",
        "company": "",
        "phone": "",
        "address_line1": "",
        "address_line2": "",
        "city": "",
        "region": "",
        "postal_code": "",
        "country": "",
        "language": "fr",
        "currency": "",
    }
    response = client.post(url + "details/", form, follow=True)
    html = response.content.decode()
    greta.refresh_from_db()
    assert greta.language == "fr"
    assert "<h1>Vos préférences</h1>" in html
    assert "Vos coordonnées sont enregistrées" in html


def test_the_preference_link_mail_is_in_the_customers_language(greta, francois):
    preference_link_send(email="greta@example.com")
    preference_link_send(email="francois@example.com")
    german, french = mail.outbox
    assert german.subject == "Ihr Link zu Ihren E-Mail-Einstellungen bei Example Software Ltd"
    assert german.body.startswith("Guten Tag Greta,")
    assert "Der Link gilt 7 Tage" in german.body
    assert french.subject == "Votre lien vers vos préférences e-mail chez Example Software Ltd"
    assert french.body.startswith("Bonjour François,")


def test_saving_the_german_page_records_the_choice_with_the_page_in_german(client, greta):
    response = client.post(
        page_url(greta),
        {"purpose_newsletter": "on", "shown_newsletter": "1", "purpose_promotions": "on", "shown_promotions": "0"},
        follow=True,
    )
    assert "Ihre Auswahl ist gespeichert; Sie haben zugestimmt: " in response.content.decode()
    assert ConsentEvent.objects.filter(customer=greta, purpose__code="promotions", granted=True).exists()


def test_the_currency_is_named_in_the_customers_language(client, purposes):
    customer = customer_with_choices("heidi@example.com", language="de", currency="CHF")
    html = client.get(page_url(customer)).content.decode()
    assert "<dt>Währung</dt><dd>CHF – Schweizer Franken</dd>" in html
    details = client.get(page_url(customer) + "details/").content.decode()
    assert '<option value="CHF" selected>CHF – Schweizer Franken</option>' in details
