"""
Campaigns per language: each customer receives the variant in their language or the fallback,
with the footer (why they receive it, unsubscribe, preferences) in the same language; the
audience view counts each variant; previews and tests can be asked for in one language.
"""

from email.utils import parseaddr

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.test import Client

from consents.models import Purpose
from marketing import campaigns, selectors, tasks
from marketing.models import Campaign

from .helpers import customer_who_consents, purpose, unsubscribe_link

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("eager_celery")]

GERMAN = {
    "subject_de": "Neuigkeiten für {{ first_name }}",
    "text_body_de": "Guten Tag {{ first_name }},\n\nPhotoForge 5 ist da.",
    "html_body_de": "<p>Guten Tag {{ first_name }},</p><p>PhotoForge 5 ist da.</p>",
}


@pytest.fixture
def german_newsletter(purposes):
    Purpose.objects.filter(code="newsletter").update(
        name_de="Newsletter", wording_de="Senden Sie mir den Newsletter per E-Mail, etwa einmal im Monat."
    )


@pytest.fixture
def bilingual(make_campaign, german_newsletter):
    """The spring newsletter in English (the fallback) and German."""
    return make_campaign(**GERMAN)


def test_a_campaign_with_english_and_german_variants_sends_each_customer_theirs(
    smtp, bilingual, staff_user, django_capture_on_commit_callbacks
):
    # given: Greta reads German, Ada English, François French (no French variant: the fallback)
    customer_who_consents(email="greta@example.com", first_name="Greta", language="de")
    customer_who_consents(email="ada@example.com", first_name="Ada", language="en")
    customer_who_consents(email="francois@example.com", first_name="François", language="fr")

    # when: the real send path (dispatch, batch, SMTP)
    with django_capture_on_commit_callbacks(execute=True):
        tasks.work_enqueue(campaigns.campaign_send_now(campaign=bilingual, user=staff_user))

    # then
    received = {parseaddr(message["To"])[1]: message for message in smtp.handler.received()}
    greta = received["greta@example.com"]
    assert greta["Subject"] == "Neuigkeiten für Greta"
    assert greta["Content-Language"] == "de"
    text = greta.get_body(("plain",)).get_content()
    assert text.startswith("Guten Tag Greta,")
    assert "Sie erhalten diese E-Mail, weil Sie eingewilligt haben in: Newsletter" in text
    assert "Mit einem Klick von Newsletter abmelden:" in text
    assert "Ihre E-Mail-Einstellungen ändern:" in text
    html = greta.get_body(("html",)).get_content()
    assert "Guten Tag Greta," in html and "Ihre E-Mail-Einstellungen ändern" in html
    ada = received["ada@example.com"]
    assert ada["Subject"] == "Spring news for Ada"
    assert "You receive this email because you agreed to: Newsletter" in ada.get_body(("plain",)).get_content()
    francois = received["francois@example.com"]
    assert francois["Subject"] == "Spring news for François"
    # The English variant, but the footer in French (and the newsletter's English words, lacking French ones).
    assert (
        "Vous recevez cet e-mail parce que vous avez accepté : Newsletter"
        in francois.get_body(("plain",)).get_content()
    )


def test_a_french_customer_gets_a_french_campaign_footer(smtp, make_campaign, staff_user, purposes):
    customer = customer_who_consents(email="claire@example.com", first_name="Claire", language="fr")
    campaign = make_campaign()
    message = campaigns.campaign_preview(campaign=campaign, customer=customer, user=staff_user)
    assert "Se désinscrire de « Newsletter » en un clic :" in message.text
    assert "Modifier vos préférences e-mail :" in message.text
    assert "Example Software Ltd, 1 Example Street" in message.text  # the postal address


@pytest.mark.parametrize(
    ("language", "country", "shown"),
    # A French reader gets the English fallback text: the country as that text names it.
    [("de", "AT", "Österreich"), ("fr", "DE", "Germany"), ("en", "DE", "Germany"), ("de", "", "")],
)
def test_the_country_placeholder_names_the_country_in_the_language_of_the_text(
    make_campaign, staff_user, german_newsletter, language, country, shown
):
    # given: a campaign whose body names the reader's country, in English and German
    campaign = make_campaign(
        text_body="Offers for {{ country }}.", text_body_de="Angebote für {{ country }}.", subject_de="Angebote"
    )
    customer = customer_who_consents(email="reader@example.com", language=language, country=country)
    # when: the message is built for the reader
    message = campaigns.campaign_preview(campaign=campaign, customer=customer, user=staff_user)
    # then: the country's name as the reader's language writes it
    assert (f"für {shown}." if language == "de" else f"for {shown}.") in message.text


def test_the_audience_view_counts_the_customers_of_each_variant(bilingual):
    for number, language in enumerate(["de", "de", "en", "fr", "ja"]):
        customer_who_consents(email=f"reader{number}@example.com", language=language)
    # French and Japanese readers get the fallback (English).
    assert selectors.audience_by_variant(bilingual) == {"en": 3, "de": 2}


def test_the_campaign_page_shows_the_audience_per_language(admin_client, bilingual):
    customer_who_consents(email="greta@example.com", language="de")
    page = admin_client.get(f"/admin/marketing/campaign/{bilingual.pk}/change/").content.decode()
    assert "English: 0; German: 1" in page
    assert 'name="subject_de"' in page


def test_previews_and_test_sends_per_language(admin_client, bilingual, admin_user):
    admin_user.email = "staff@example.com"
    admin_user.save()
    preview = admin_client.get(f"/admin/marketing/campaign/{bilingual.pk}/preview/?language=de").content.decode()
    assert "Neuigkeiten für Ada" in preview
    response = admin_client.post(f"/admin/marketing/campaign/{bilingual.pk}/action/test/", {"language": "de"})
    assert response.status_code == 302
    (test,) = mail.outbox
    assert test.subject == "[TEST] Neuigkeiten für Test"
    assert "Guten Tag" in test.body


def test_the_fallback_language_must_have_a_variant(make_campaign, purposes):
    campaign = Campaign(
        name="Only German",
        purpose=purpose("newsletter"),
        fallback_language="en",
        subject_de="Hallo",
        text_body_de="Hallo",
    )
    with pytest.raises(ValidationError) as refused:
        campaign.full_clean()
    assert "subject_en" in refused.value.message_dict
    campaign.fallback_language = "de"
    campaign.full_clean()
    campaign.save()
    campaign.refresh_from_db()
    assert campaign.language_for("fr") == "de"


def test_a_german_customer_unsubscribes_on_a_german_page(bilingual):
    greta = customer_who_consents(email="greta@example.com", language="de")
    html = Client().get(unsubscribe_link(greta)).content.decode()
    assert "<h1>Von Newsletter abmelden</h1>" in html
    assert "Sie erhalten derzeit: Senden Sie mir den Newsletter per E-Mail" in html
    done = Client().post(unsubscribe_link(greta)).content.decode()
    assert "Sie sind von Newsletter abgemeldet" in done
