"""Disclosures recorded before purposes of disclosure existed are filed under a sensible one."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("consents", "0005_consent_history_in_decision_order")]
AFTER = [("consents", "0007_disclosure_purpose_required")]


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


@pytest.fixture
def as_owner(database_owner):
    """Migrations run as the owner role; afterwards the database is migrated to the latest state again."""
    with database_owner():
        yield
        migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())


@pytest.mark.django_db(transaction=True)
def test_existing_disclosures_get_the_purpose_their_consent_or_basis_implies(purposes, as_owner):
    old = migrate(BEFORE)
    Customer = old.get_model("customers", "Customer")
    ThirdParty = old.get_model("customers", "ThirdParty")
    Purpose = old.get_model("consents", "Purpose")
    ConsentEvent = old.get_model("consents", "ConsentEvent")
    Disclosure = old.get_model("consents", "Disclosure")
    # given Hedda, whose data went to a survey panel on her consent to market research, to the
    # reseller for her purchase, to the tax office, and to an analytics firm
    hedda = Customer.objects.create(email="hedda@example.com")
    panel = ThirdParty.objects.create(name="Northwind Research", kind="partner")
    research = ConsentEvent.objects.create(
        customer=hedda, purpose=Purpose.objects.get(code="market_research"), granted=True, source="preference_page"
    )
    shared = {
        "research": {"legal_basis": "consent", "consent_event": research, "purpose": "Survey panel"},
        "purchase": {"legal_basis": "contract", "purpose": "Licence transfer"},
        "tax": {"legal_basis": "legal_obligation", "purpose": "VAT enquiry"},
        "analysis": {"legal_basis": "legitimate_interests", "purpose": "Trend analysis"},
    }
    ids = {
        name: Disclosure.objects.create(customer=hedda, third_party=panel, data_categories=["contact"], **fields).pk
        for name, fields in shared.items()
    }

    # when the database is migrated
    new = migrate(AFTER)

    # then each has the purpose it was for, and market research needs consent to market research
    Disclosure = new.get_model("consents", "Disclosure")
    filed = {name: Disclosure.objects.select_related("disclosure_purpose").get(pk=pk) for name, pk in ids.items()}
    assert {name: d.disclosure_purpose.code for name, d in filed.items()} == {
        "research": "market_research",
        "purchase": "purchase",
        "tax": "legal_obligation",
        "analysis": "other",
    }
    assert filed["research"].disclosure_purpose.consent_purpose.code == "market_research"
    assert filed["purchase"].disclosure_purpose.consent_purpose is None
