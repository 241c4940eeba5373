"""
The OpenAPI schema is the contract: schemathesis generates requests from it (valid and not) with
a key of every scope, and no answer may be a server error or break the schema.
"""

from __future__ import annotations

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.models import Scope
from api.services import api_key_create
from tests.consents.people import ensure_purposes
from tests.factories import CustomerFactory, ProductFactory

schema = schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application())

# The WSGI app runs in the test's own thread, on its connection: an ordinary (rolled back)
# database test, which leaves the migrations' rows (purposes, policy) for the tests after it.
pytestmark = [pytest.mark.django_db]


@pytest.fixture(autouse=True)
def _one_connection_for_the_test():
    """
    As Django's test client does: the WSGI handler closes database connections at the end of a
    request, which would close the test's own (its transaction is rolled back afterwards).
    """
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def every_scope_key():
    ensure_purposes()
    ProductFactory()
    CustomerFactory(email="ada@example.com")
    _, key = api_key_create(name="Schemathesis", scopes=[s.value for s in Scope], created_by=None)
    return key


@schema.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_generated_request_gets_a_server_error_or_an_answer_outside_the_schema(case, every_scope_key):
    # The checks on what the API answers. Not the ones on what it accepts: a request the schema
    # allows may still be refused when the service finds it invalid (a country code that does not
    # exist), and HTTP itself trims a header's value before any server sees it, so a "wrong" header
    # can arrive right.
    case.call_and_validate(
        headers={"Authorization": f"Api-Key {every_scope_key}"},
        checks=[
            not_a_server_error,
            response_schema_conformance,
            status_code_conformance,
            content_type_conformance,
            response_headers_conformance,
        ],
    )
