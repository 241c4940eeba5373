"""common.prepared.PreparedQuery: a queryset compiled once, run with one value swapped in."""

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
