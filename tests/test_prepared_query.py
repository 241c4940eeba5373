"""common.prepared.PreparedQuery: a queryset compiled once, run with one value swapped in."""

import datetime
import uuid

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db.models import F

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
