import pytest

from consents.models import ConsentEvent, Disclosure, LegalBasis
from consents.selectors import customers_consenting_to, customers_with_consent_state
from customers.demo import load_demo_data

pytestmark = pytest.mark.django_db


def test_demo_customers_get_realistic_consent_histories_and_a_few_disclosures():
    created = load_demo_data(customers=120)

    assert created == 120
    newsletter_share = customers_consenting_to("newsletter").count() / created
    assert 0.35 < newsletter_share < 0.7  # about 60% granted, some withdrawn since
    assert ConsentEvent.objects.filter(source="signup_form", granted=True).exists()
    later_withdrawals = ConsentEvent.objects.filter(
        source__in=["one_click", "unsubscribe_link", "preference_page"], granted=False
    )
    assert later_withdrawals.exists()
    assert customers_with_consent_state("market_research", "never_asked").exists()
    assert customers_with_consent_state("promotions", "withdrawn").exists()
    assert Disclosure.objects.filter(legal_basis=LegalBasis.CONSENT).exists()
    assert Disclosure.objects.filter(legal_basis=LegalBasis.CONTRACT).exists()
    for disclosure in Disclosure.objects.filter(legal_basis=LegalBasis.CONSENT):
        assert disclosure.consent_event.granted
