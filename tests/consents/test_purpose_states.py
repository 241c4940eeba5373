"""One helper works out where a customer stands on each purpose, for the preference page and for staff."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from consents import selectors
from consents.models import ConsentEvent
from consents.selectors import PurposeState, consent_states
from consents.tokens import make_preference_token
from tests.consents.people import customer_with_choices

pytestmark = pytest.mark.django_db


@pytest.fixture
def ada(purposes):
    """Ada takes the newsletter, said no to promotions, and was never asked about the rest."""
    return customer_with_choices("ada@example.com", granted=["newsletter"], withdrawn=["promotions"])


def purpose_reads(queries) -> int:
    """
    Queries that read the purposes: as SQL, or (PostgreSQL) as a prepared statement's EXECUTE,
    alone or with the preference page's customer (common/prepared.py names the statements).
    """
    return sum(
        query["sql"].startswith(("EXECUTE cd_consents_purpose_", "EXECUTE cd_customers_customer_rows_"))
        or ('FROM "consents_purpose"' in query["sql"] and not query["sql"].startswith("PREPARE "))
        for query in queries
    )


def test_every_purpose_is_listed_in_display_order_with_the_customers_state_and_since_when(ada, purposes):
    states = consent_states(customer=ada)
    assert [s.purpose.code for s in states] == ["newsletter", "promotions", "market_research", "internal_analysis"]
    assert [s.state for s in states] == [
        PurposeState.GRANTED,
        PurposeState.WITHDRAWN,
        PurposeState.NEVER_ASKED,
        PurposeState.NEVER_ASKED,
    ]
    assert [s.granted for s in states] == [True, False, False, False]
    assert [s.label for s in states] == ["Granted", "Withdrawn", "Never asked", "Never asked"]
    newsletter_event = ConsentEvent.objects.get(customer=ada, purpose__code="newsletter")
    assert states[0].since == newsletter_event.occurred_at
    assert states[2].since is None


def test_the_states_take_one_query_and_their_deciding_events_one_more(ada, django_assert_num_queries):
    with django_assert_num_queries(1):
        states = consent_states(customer=ada)
        assert states[0].event is None  # not asked for
    with django_assert_num_queries(2):
        states = consent_states(customer=ada, with_events=True)
        proof = [(s.event.get_source_display(), s.event.policy_version.version) for s in states if s.event]
    assert proof == [("Signup or registration form", "1.0"), ("Signup or registration form", "1.0")]


def test_another_customers_decisions_do_not_show(ada, purposes):
    grace = customer_with_choices("grace@example.com", granted=["market_research"])
    assert [s.state for s in consent_states(customer=grace)][:3] == [
        PurposeState.NEVER_ASKED,
        PurposeState.NEVER_ASKED,
        PurposeState.GRANTED,
    ]


def test_the_preference_page_and_the_admin_use_the_same_helper(ada):
    from consents import preferences

    assert not hasattr(preferences, "purpose_choices")
    assert preferences.consent_states is selectors.consent_states


def test_a_preference_save_works_the_states_out_once(client, ada):
    url = f"/preferences/{make_preference_token(ada)}/"
    before = ConsentEvent.objects.filter(customer=ada).count()
    with CaptureQueriesContext(connection) as queries:
        response = client.post(url, {"purpose_newsletter": "", "purpose_promotions": "on"})
    assert response.status_code == 302
    assert purpose_reads(queries.captured_queries) == 1
    # newsletter withdrawn, promotions granted; the two never asked stay so
    assert ConsentEvent.objects.filter(customer=ada).count() == before + 2
