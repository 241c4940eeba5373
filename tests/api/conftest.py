import pytest
from rest_framework.test import APIClient

from api.models import Scope
from api.services import api_key_create
from tests.consents.people import ensure_purposes


@pytest.fixture(autouse=True)
def _fresh_throttle_counters(db):
    from django.core.cache import cache

    cache.clear()
    ensure_purposes()
    yield
    cache.clear()


def client_with(*scopes: str) -> APIClient:
    _, key = api_key_create(name="Shop checkout", scopes=list(scopes), created_by=None)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    return client


@pytest.fixture
def every_scope():
    return client_with(*[scope.value for scope in Scope])
