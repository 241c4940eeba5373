"""
Purposes and policy versions per language: the page shows the customer's language or says it
fell back to English, and every decision records the language and the exact words shown.
"""

import json
import re
from datetime import timedelta

import pytest
from django.utils import timezone

from consents.forms import wording_digest
from consents.models import ConsentEvent, PolicyVersion, Purpose
from consents.receipts import iso27560_record
from consents.tokens import make_preference_token
from customers.models import Customer
from privacy.exports import export_document
from tests.consents.people import customer_with_choices

pytestmark = pytest.mark.django_db

GERMAN_NEWSLETTER = ("Newsletter", "Senden Sie mir den Newsletter per E-Mail, etwa einmal im Monat.")
GERMAN_PROMOTIONS = ("Aktionen und Angebote", "Senden Sie mir Aktionen und Sonderangebote per E-Mail.")


@pytest.fixture
def translated(purposes):
    """Newsletter and promotions are translated into German; nothing is translated into French."""
    for code, (name, wording) in (("newsletter", GERMAN_NEWSLETTER), ("promotions", GERMAN_PROMOTIONS)):
        Purpose.objects.filter(code=code).update(name_de=name, wording_de=wording)
    return {purpose.code: purpose for purpose in Purpose.objects.all()}


@pytest.fixture
def greta(translated):
    return customer_with_choices("greta@example.com", language="de")


@pytest.fixture
def francois(translated):
    return customer_with_choices("francois@example.com", language="fr")


def greta_english(code: str) -> str:
    """A purpose's English wording (the fallback)."""
    return Purpose.objects.get(code=code).wording_en  # type: ignore[attr-defined]  # modeltranslation adds it


def page_url(customer) -> str:
    return f"/preferences/{make_preference_token(customer)}/"


def save(client, customer, **boxes):
    data = {}
    for code, want in boxes.items():
        data[f"shown_{code}"] = "0"
        if want:
            data[f"purpose_{code}"] = "on"
    return client.post(page_url(customer), data, follow=True)


def test_the_german_page_shows_the_german_name_and_wording(client, greta):
    html = client.get(page_url(greta)).content.decode()
    assert "Aktionen und Angebote" in html
    assert GERMAN_PROMOTIONS[1] in html
    assert greta_english("promotions") not in html
    # Market research has no German text yet: English, and the page says so in German.
    assert greta_english("market_research") in html
    assert html.count("Diese Auswahl ist in Ihrer Sprache noch nicht verfügbar") == 2  # and internal analysis


def test_saving_choices_on_the_german_page_records_german_and_the_german_wording(client, greta):
    save(client, greta, promotions=True, market_research=True)
    promotions = ConsentEvent.objects.get(customer=greta, purpose__code="promotions")
    assert (promotions.language, promotions.wording) == ("de", GERMAN_PROMOTIONS[1])
    # Shown in English for want of a German text, and recorded as such.
    research = ConsentEvent.objects.get(customer=greta, purpose__code="market_research")
    assert (research.language, research.wording) == ("en", greta_english("market_research"))


def test_a_purpose_without_french_wording_falls_back_to_english_and_says_so(client, francois):
    html = client.get(page_url(francois)).content.decode()
    assert greta_english("promotions") in html
    assert "Ce choix n’est pas encore disponible dans votre langue" in html
    assert 'lang="en"' in html  # the English words are marked as English for screen readers
    save(client, francois, promotions=True)
    event = ConsentEvent.objects.get(customer=francois, purpose__code="promotions")
    assert (event.language, event.wording) == ("en", greta_english("promotions"))


def test_a_change_of_a_translation_applies_to_new_decisions_only(client, greta, translated):
    save(client, greta, promotions=True)
    Purpose.objects.filter(code="promotions").update(wording_de="Neue Angebote, jede Woche.")
    greta_again = customer_with_choices("greta2@example.com", language="de")
    save(client, greta_again, promotions=True)
    assert ConsentEvent.objects.get(customer=greta, purpose__code="promotions").wording == GERMAN_PROMOTIONS[1]
    assert ConsentEvent.objects.get(customer=greta_again, purpose__code="promotions").wording == (
        "Neue Angebote, jede Woche."
    )


def test_a_page_left_open_across_a_change_of_the_german_wording_is_refused(client, greta):
    client.get(page_url(greta))
    shown_digest = wording_digest(GERMAN_PROMOTIONS[1])
    Purpose.objects.filter(code="promotions").update(wording_de="Ganz andere Worte.")
    response = client.post(
        page_url(greta), {"purpose_promotions": "on", "shown_promotions": "0", "wording_promotions": shown_digest}
    )
    assert response.status_code == 400
    assert "Der Wortlaut von „Aktionen und Angebote“ wurde geändert" in response.content.decode()
    assert not ConsentEvent.objects.filter(customer=greta, purpose__code="promotions").exists()


def test_receipts_and_exports_show_the_language_of_each_decision(client, greta):
    save(client, greta, promotions=True)
    receipt = json.dumps(iso27560_record(customer=greta), ensure_ascii=False)
    assert '"dct:language": "de"' in receipt
    assert GERMAN_PROMOTIONS[1] in receipt
    export = json.dumps(export_document(greta), ensure_ascii=False, default=str)
    assert '"language": "de"' in export


def test_staff_record_consent_in_the_language_the_customer_was_told(admin_client, greta, translated):
    Customer.objects.filter(pk=greta.pk).update(created_at=timezone.now() - timedelta(days=30))
    form = admin_client.get(f"/admin/customers/customer/{greta.pk}/record-consent/").text
    assert "Language the customer was told in" in form
    assert re.search(r'value="de"[^>]*checked', form)
    admin_client.post(
        f"/admin/customers/customer/{greta.pk}/record-consent/",
        {
            "purpose": translated["newsletter"].pk,
            "decision": "granted",
            "method": "phone",
            "language": "de",
            "given_on": timezone.localdate().isoformat(),
            "note": "customer phoned, call ref 7781",
        },
    )
    event = ConsentEvent.objects.get(customer=greta, purpose__code="newsletter")
    assert (event.language, event.wording) == ("de", GERMAN_NEWSLETTER[1])


def test_staff_see_which_purposes_miss_a_translation(admin_client, translated):
    listing = admin_client.get("/admin/consents/purpose/").text
    assert "Missing translations" in listing
    assert "German, French" in listing  # market research and internal analysis
    missing_german = admin_client.get("/admin/consents/purpose/?missing=de").text
    assert "Market research" in missing_german
    assert "Promotions and offers" not in missing_german


def test_the_policy_page_shows_the_german_text_or_says_it_is_english(client, purposes):
    policy = PolicyVersion.objects.current()
    html = client.get("/preferences/policy/", HTTP_ACCEPT_LANGUAGE="de").content.decode()
    assert "Dieser Text ist in Ihrer Sprache noch nicht verfügbar" in html
    PolicyVersion.objects.filter(pk=policy.pk).update(text_de="Wir verkaufen Ihre Daten nie.")
    html = client.get("/preferences/policy/", HTTP_ACCEPT_LANGUAGE="de").content.decode()
    assert "Wir verkaufen Ihre Daten nie." in html
    assert "noch nicht verfügbar" not in html
