from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from consents.models import Disclosure, DisclosurePurpose, LegalBasis, Purpose, Source
from consents.services import consent_grant, consent_withdraw, disclosure_record
from customers.models import ThirdParty
from tests.consents.people import disclosure_purpose
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def promotions(db):
    return Purpose.objects.get(code="promotions")


@pytest.fixture
def research_partner():
    return ThirdParty.objects.create(name="Northwind Research", kind=ThirdParty.Kind.PARTNER, country="NL")


def share(customer, partner, **kwargs):
    defaults = {
        "customer": customer,
        "third_party": partner,
        "data_categories": ["identity", "contact"],
        "legal_basis": LegalBasis.CONSENT,
        "disclosure_purpose": disclosure_purpose("market_research"),
        "purpose": "Survey invitation",
    }
    return disclosure_record(**{**defaults, **kwargs})


def test_a_disclosure_on_consent_of_a_customer_who_consents_is_recorded(ada, market_research, research_partner):
    event = consent_grant(customer=ada, purpose=market_research, source=Source.PREFERENCE_PAGE)

    disclosure = share(ada, research_partner, consent_event=event, reference="NWR-1")

    disclosure.refresh_from_db()
    assert disclosure.consent_event == event
    assert disclosure.data_categories == ["contact", "identity"]


def test_a_consent_based_disclosure_without_a_consent_event_is_refused(linus, research_partner):
    with pytest.raises(ValidationError, match="must name the customer's consent"):
        share(linus, research_partner, consent_event=None)
    assert not Disclosure.objects.exists()


def test_a_disclosure_on_a_withdrawn_consent_is_refused(grace, market_research, research_partner):
    granted = consent_grant(customer=grace, purpose=market_research, source=Source.SIGNUP_FORM)
    consent_withdraw(customer=grace, purpose=market_research, source=Source.UNSUBSCRIBE_LINK)

    with pytest.raises(ValidationError, match="not in force"):
        share(grace, research_partner, consent_event=granted)
    assert not Disclosure.objects.exists()


def test_a_disclosure_on_a_withdrawal_event_is_refused(grace, market_research, research_partner):
    withdrawal = consent_withdraw(customer=grace, purpose=market_research, source=Source.PREFERENCE_PAGE)
    with pytest.raises(ValidationError, match="not in force"):
        share(grace, research_partner, consent_event=withdrawal)


def test_another_customers_consent_does_not_allow_a_disclosure(ada, grace, market_research, research_partner):
    adas_consent = consent_grant(customer=ada, purpose=market_research, source=Source.SIGNUP_FORM)
    with pytest.raises(ValidationError, match="another customer"):
        share(grace, research_partner, consent_event=adas_consent)


def test_a_disclosure_cannot_predate_the_consent_that_allows_it(ada, market_research, research_partner):
    event = consent_grant(customer=ada, purpose=market_research, source=Source.SIGNUP_FORM)
    with pytest.raises(ValidationError, match="before the consent"):
        share(ada, research_partner, consent_event=event, disclosed_at=event.occurred_at - timedelta(days=1))


def test_a_disclosure_to_complete_a_purchase_needs_no_consent(research_partner):
    reseller = ThirdParty.objects.create(name="Paddle", kind=ThirdParty.Kind.RESELLER)
    customer = CustomerFactory()
    disclosure = disclosure_record(
        customer=customer,
        third_party=reseller,
        data_categories=["identity", "purchase"],
        legal_basis=LegalBasis.CONTRACT,
        purpose="Licence transfer",
        disclosed_at=timezone.now(),
    )
    assert disclosure.pk is not None


def test_selling_data_is_not_a_legal_basis(ada, research_partner):
    with pytest.raises(ValidationError):
        share(ada, research_partner, legal_basis="sale")


def test_unknown_or_missing_data_categories_are_refused(ada, research_partner):
    with pytest.raises(ValidationError, match="Choose one or more"):
        share(ada, research_partner, legal_basis=LegalBasis.CONTRACT, data_categories=[])
    with pytest.raises(ValidationError, match="Choose one or more"):
        share(ada, research_partner, legal_basis=LegalBasis.CONTRACT, data_categories=["browsing_history"])


# The consent must be to the purpose the disclosure is for


def test_a_newsletter_grant_does_not_allow_a_market_research_disclosure(ada, newsletter, research_partner):
    # given Ada, who agreed to the newsletter and never to market research
    newsletter_grant = consent_grant(customer=ada, purpose=newsletter, source=Source.SIGNUP_FORM)

    # when staff try to send her identity and contact data to a survey panel on that grant
    with pytest.raises(ValidationError) as refused:
        share(ada, research_partner, consent_event=newsletter_grant, purpose="Survey panel")

    # then it is refused, saying which consent would allow it
    assert refused.value.message_dict["consent_event"] == [
        "Consent to Newsletter does not allow a disclosure for Market research (surveys, interviews, panels): "
        "only the customer's consent to Market research does. Nothing was recorded."
    ]
    assert not Disclosure.objects.exists()


def test_a_consent_based_disclosure_must_say_what_it_is_for(ada, market_research, research_partner):
    event = consent_grant(customer=ada, purpose=market_research, source=Source.PREFERENCE_PAGE)
    with pytest.raises(ValidationError, match="Say what the disclosure is for"):
        share(ada, research_partner, consent_event=event, disclosure_purpose=None)
    assert not Disclosure.objects.exists()


def test_no_consent_allows_a_disclosure_for_a_purpose_that_names_none(ada, market_research, research_partner):
    event = consent_grant(customer=ada, purpose=market_research, source=Source.PREFERENCE_PAGE)
    with pytest.raises(ValidationError, match="No consent allows a disclosure for Completing a purchase"):
        share(ada, research_partner, consent_event=event, disclosure_purpose=disclosure_purpose("purchase"))


def test_a_purpose_staff_add_is_allowed_by_the_consent_they_name(ada, promotions, research_partner):
    # given a purpose of disclosure staff added for a partner's joint offers, allowed by consent to promotions
    joint_offers = DisclosurePurpose.objects.create(
        code="joint_offers", name="Joint offers", consent_purpose=promotions
    )
    event = consent_grant(customer=ada, purpose=promotions, source=Source.PREFERENCE_PAGE)

    disclosure = share(ada, research_partner, consent_event=event, disclosure_purpose=joint_offers)

    assert disclosure.disclosure_purpose == joint_offers


def test_a_disclosure_on_another_basis_is_filed_under_the_usual_purpose_for_it(ada, research_partner):
    disclosure = share(ada, research_partner, legal_basis=LegalBasis.LEGAL_OBLIGATION, disclosure_purpose=None)
    assert disclosure.disclosure_purpose.code == "legal_obligation"


def test_the_consent_record_names_what_each_disclosure_was_for(ada, market_research, research_partner):
    from consents.receipts import iso27560_record

    event = consent_grant(customer=ada, purpose=market_research, source=Source.PREFERENCE_PAGE)
    share(ada, research_partner, consent_event=event, purpose="Survey panel, spring 2027")

    (process,) = iso27560_record(customer=ada)["dpv:hasProcess"]
    (disclosure,) = process["dpv:hasProcess"]
    assert disclosure["dpv:hasPurpose"]["dct:title"] == "Market research (surveys, interviews, panels)"
    assert disclosure["dpv:hasPurpose"]["dct:description"] == "Survey panel, spring 2027"
    assert disclosure["dpv:hasRecipient"]["dpv:hasName"] == "Northwind Research"
