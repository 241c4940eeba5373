import pytest

from consents.models import Purpose, Source
from consents.selectors import (
    CONSENT_GRANTED,
    CONSENT_NEVER_ASKED,
    CONSENT_WITHDRAWN,
    customers_consenting_to,
    customers_with_consent_state,
    customers_with_consent_states,
)
from consents.services import consent_grant, consent_withdraw

pytestmark = pytest.mark.django_db


@pytest.fixture
def three_customers(ada, grace, linus, newsletter):
    consent_grant(customer=ada, purpose=newsletter, source=Source.SIGNUP_FORM)
    consent_grant(customer=grace, purpose=newsletter, source=Source.SIGNUP_FORM)
    consent_withdraw(customer=grace, purpose=newsletter, source=Source.ONE_CLICK)
    return ada, grace, linus


def test_consenting_to_lists_only_customers_whose_current_state_is_granted(three_customers):
    ada, _grace, _linus = three_customers
    assert list(customers_consenting_to("newsletter")) == [ada]
    assert not customers_consenting_to("promotions").exists()


def test_with_consent_state_tells_never_asked_from_withdrawn(three_customers):
    ada, grace, linus = three_customers
    assert list(customers_with_consent_state("newsletter", CONSENT_WITHDRAWN)) == [grace]
    assert list(customers_with_consent_state("newsletter", CONSENT_NEVER_ASKED)) == [linus]
    assert list(customers_with_consent_state("newsletter", CONSENT_GRANTED)) == [ada]


def test_with_consent_states_annotates_every_purpose(three_customers):
    _ada, _grace, _linus = three_customers
    codes = list(Purpose.objects.values_list("code", flat=True))
    rows = {c.email: c for c in customers_with_consent_states(codes)}
    assert rows["ada@example.com"].consent_newsletter == "granted"
    assert rows["ada@example.com"].consent_newsletter_source == "signup_form"
    assert rows["ada@example.com"].consent_newsletter_since is not None
    assert rows["grace@example.com"].consent_newsletter == "withdrawn"
    assert rows["grace@example.com"].consent_newsletter_source == "one_click"
    assert rows["linus@example.com"].consent_newsletter == "never_asked"
    assert rows["linus@example.com"].consent_newsletter_since is None
    assert rows["ada@example.com"].consent_internal_analysis == "never_asked"
