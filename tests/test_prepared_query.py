"""common.prepared.PreparedQuery: a queryset compiled once, run with one value swapped in."""

import datetime
import uuid

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db.models import F, Value

from common.prepared import PreparedQuery
from customers.models import Customer
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db

PUBLIC_ID = Customer._meta.get_field("public_id")


def by_public_id(public_id):
    return Customer.objects.filter(public_id=public_id, erased_at__isnull=True).annotate(shout=F("email"))


def test_each_value_finds_its_own_row_with_annotations():
    ada, grace = CustomerFactory(email="ada@example.com"), CustomerFactory(email="grace@example.com")
    query = PreparedQuery(by_public_id, field=PUBLIC_ID, samples=(uuid.UUID(int=1), uuid.UUID(int=2)))
    assert [(c.pk, c.shout) for c in query.fetch(ada.public_id)] == [(ada.pk, "ada@example.com")]
    assert [(c.pk, c.shout) for c in query.fetch(grace.public_id)] == [(grace.pk, "grace@example.com")]
    assert query.fetch(uuid.uuid4()) == []


def test_the_fixed_parts_of_the_query_still_apply():
    ada = CustomerFactory()
    query = PreparedQuery(by_public_id, field=PUBLIC_ID, samples=(uuid.UUID(int=1), uuid.UUID(int=2)))
    assert query.fetch(ada.public_id)
    Customer.objects.filter(pk=ada.pk).update(erased_at="2026-01-01T00:00:00Z")
    assert query.fetch(ada.public_id) == []


def test_it_compiles_once_and_then_only_runs(django_assert_num_queries, monkeypatch):
    ada = CustomerFactory()
    query = PreparedQuery(by_public_id, field=PUBLIC_ID, samples=(uuid.UUID(int=1), uuid.UUID(int=2)))
    query.fetch(ada.public_id)
    monkeypatch.setattr(query, "build", lambda value: pytest.fail("compiled again"))
    with django_assert_num_queries(1):
        assert query.fetch(ada.public_id)[0].pk == ada.pk


def test_a_query_whose_samples_differ_in_more_than_one_place_is_refused():
    query = PreparedQuery(
        lambda value: Customer.objects.filter(public_id=value, notes=str(value)),
        field=PUBLIC_ID,
        samples=(uuid.UUID(int=1), uuid.UUID(int=2)),
    )
    with pytest.raises(ImproperlyConfigured, match="exactly one parameter"):
        query.fetch(uuid.uuid4())


def test_annotations_come_back_as_the_orm_would_give_them():
    ada = CustomerFactory()
    query = PreparedQuery(
        lambda public_id: Customer.objects.filter(public_id=public_id).annotate(
            made=F("created_at"), erased=F("erased_at")
        ),
        field=PUBLIC_ID,
        samples=(uuid.UUID(int=1), uuid.UUID(int=2)),
    )
    [row] = query.fetch(ada.public_id)
    assert row.made == ada.created_at  # a timezone-aware datetime on SQLite as on PostgreSQL
    assert row.erased is None


# The two queries the site prepares, checked against the ORM itself: PreparedQuery reads Django's
# compiler internals (SQLCompiler.as_sql, .select, .annotation_col_map, .get_converters), which
# are not a public API. Django is pinned exactly (requirements.txt) and a warning is an error in
# the tests (pyproject.toml), so an upgrade that changes them fails here, not on the preference page.


def test_the_preference_page_customer_query_gives_what_the_orm_gives():
    from consents.views import _PAGE_CUSTOMER, _page_customer_query
    from privacy.models import PrivacyRequest
    from privacy.services import privacy_request_open
    from tests.consents.people import ensure_purposes

    ensure_purposes()
    ada, grace = CustomerFactory(email="ada@example.com"), CustomerFactory(email="grace@example.com")
    erasure = privacy_request_open(
        customer=grace, kind=PrivacyRequest.Kind.ERASURE, channel=PrivacyRequest.Channel.PREFERENCE_PAGE
    )
    for customer, open_erasure_id in ((ada, None), (grace, erasure.pk)):
        [prepared] = _PAGE_CUSTOMER.fetch(customer.public_id)
        [orm] = _page_customer_query(customer.public_id)
        seen = (prepared.pk, prepared.email, prepared.policy_version, prepared.open_erasure_id)
        assert seen == (orm.pk, orm.email, orm.policy_version, orm.open_erasure_id)
        assert (prepared.policy_version, prepared.open_erasure_id) == ("1.0", open_erasure_id)


def test_the_purposes_with_consent_query_gives_what_the_orm_gives():
    from consents.selectors import _PURPOSES_WITH_CONSENT, _purposes_with_consent
    from tests.consents.people import customer_with_choices, ensure_purposes

    ensure_purposes()
    ada = customer_with_choices("ada@example.com", granted=["newsletter"], withdrawn=["promotions"])

    def rows(purposes):
        return [(p.pk, p.code, p.current_granted, p.current_since, p.current_event_id) for p in purposes]

    prepared = rows(_PURPOSES_WITH_CONSENT.fetch(ada.pk))
    assert prepared == rows(_purposes_with_consent(ada.pk))
    assert [(code, granted) for _, code, granted, _, _ in prepared][:3] == [
        ("newsletter", True),
        ("promotions", False),
        ("market_research", None),
    ]
    assert all(isinstance(since, datetime.datetime) for _, _, granted, since, _ in prepared if granted is not None)


def test_django_is_pinned_to_the_version_these_tests_ran_on():
    import pathlib

    import django

    pins = [line.strip() for line in (pathlib.Path(__file__).parents[1] / "requirements.txt").read_text().splitlines()]
    assert f"Django=={django.__version__}" in pins


# PostgreSQL: a prepared statement of the server, made once per connection.

postgres_only = pytest.mark.postgres


def sent(queries):
    return [query["sql"].split(" ", 1)[0] for query in queries.captured_queries]


@postgres_only
def test_on_postgresql_the_query_is_prepared_once_per_connection_and_then_executed():
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    ada = CustomerFactory()
    # A query no other test made (the same SQL is the same statement on a connection).
    tag = str(uuid.uuid4())
    query = PreparedQuery(
        lambda public_id: by_public_id(public_id).annotate(tag=Value(tag)),
        field=PUBLIC_ID,
        samples=(uuid.UUID(int=1), uuid.UUID(int=2)),
    )
    with CaptureQueriesContext(connection) as first:
        assert query.fetch(ada.public_id)[0].shout == ada.email
    with CaptureQueriesContext(connection) as second:
        assert query.fetch(ada.public_id)[0].tag == tag
    assert sent(first) == ["PREPARE", "EXECUTE"]
    assert sent(second) == ["EXECUTE"]


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_a_new_connection_prepares_the_statement_again():
    from django.db import connection

    ada = CustomerFactory()
    query = PreparedQuery(by_public_id, field=PUBLIC_ID, samples=(uuid.UUID(int=1), uuid.UUID(int=2)))
    assert query.fetch(ada.public_id)[0].pk == ada.pk
    connection.close()  # as after a lost connection or CONN_MAX_AGE
    assert query.fetch(ada.public_id)[0].pk == ada.pk


@postgres_only
def test_a_percent_sign_in_the_fixed_sql_survives_preparing():
    # `contains` against a column writes LIKE '%%' || ... into the SQL text itself.
    ada = CustomerFactory(email="ada.lovelace@example.com", first_name="lovelace")
    grace = CustomerFactory(email="grace@example.com", first_name="hopper")
    query = PreparedQuery(
        lambda public_id: Customer.objects.filter(public_id=public_id, email__contains=F("first_name")),
        field=PUBLIC_ID,
        samples=(uuid.UUID(int=1), uuid.UUID(int=2)),
    )
    assert [c.pk for c in query.fetch(ada.public_id)] == [ada.pk]
    assert query.fetch(grace.public_id) == []


def test_with_prepared_statements_off_the_query_is_sent_as_sql(settings):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    settings.DATABASE_PREPARED_STATEMENTS = False  # behind PgBouncer in transaction mode
    ada = CustomerFactory()
    query = PreparedQuery(by_public_id, field=PUBLIC_ID, samples=(uuid.UUID(int=1), uuid.UUID(int=2)))
    with CaptureQueriesContext(connection) as queries:
        assert query.fetch(ada.public_id)[0].pk == ada.pk
    assert sent(queries) == ["SELECT"]


# The preference page's one statement: the customer and every purpose with their consent.


def test_the_customer_and_their_purposes_come_in_one_statement_as_the_orm_gives_them(django_assert_num_queries):
    from django.db import connection

    from consents.selectors import _purposes_with_consent
    from consents.views import _PAGE_CUSTOMER_AND_PURPOSES, _page_customer_query
    from tests.consents.people import customer_with_choices, ensure_purposes

    ensure_purposes()
    ada = customer_with_choices("ada@example.com", granted=["newsletter"], withdrawn=["promotions"])
    grace = CustomerFactory(email="grace@example.com")  # never asked anything

    def rows(purposes):
        return [(p.pk, p.code, p.current_granted, p.current_since, p.current_event_id) for p in purposes]

    _PAGE_CUSTOMER_AND_PURPOSES.fetch(ada.public_id)  # prepares the statement on this connection
    for customer in (ada, grace):
        with django_assert_num_queries(1 if connection.vendor == "postgresql" else 2):
            found, purposes = _PAGE_CUSTOMER_AND_PURPOSES.fetch(customer.public_id)
        [orm] = _page_customer_query(customer.public_id)
        assert (found.pk, found.email, found.policy_version, found.phone) == (orm.pk, orm.email, "1.0", orm.phone)
        assert rows(purposes) == rows(_purposes_with_consent(customer.pk))
    assert [p.current_granted for p in _PAGE_CUSTOMER_AND_PURPOSES.fetch(ada.public_id)[1]][:3] == [True, False, None]
    assert _PAGE_CUSTOMER_AND_PURPOSES.fetch(uuid.uuid4()) is None


def test_with_no_purposes_the_customer_still_comes_with_none(settings):
    from consents.models import DisclosurePurpose, Purpose
    from consents.views import _PAGE_CUSTOMER_AND_PURPOSES

    DisclosurePurpose.objects.update(consent_purpose=None)
    Purpose.objects.all().delete()
    ada = CustomerFactory()
    for prepared in (True, False):
        settings.DATABASE_PREPARED_STATEMENTS = prepared
        found, purposes = _PAGE_CUSTOMER_AND_PURPOSES.fetch(ada.public_id)
        assert (found.pk, purposes) == (ada.pk, [])


def test_with_prepared_statements_off_the_joined_statement_is_sent_as_sql(settings):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from consents.views import _PAGE_CUSTOMER_AND_PURPOSES
    from tests.consents.people import customer_with_choices, ensure_purposes

    settings.DATABASE_PREPARED_STATEMENTS = False
    ensure_purposes()
    ada = customer_with_choices("ada@example.com", granted=["newsletter"], withdrawn=[])
    with CaptureQueriesContext(connection) as queries:
        found, purposes = _PAGE_CUSTOMER_AND_PURPOSES.fetch(ada.public_id)
    assert found.pk == ada.pk and [p.code for p in purposes if p.current_granted] == ["newsletter"]
    assert all(verb == "SELECT" for verb in sent(queries))
