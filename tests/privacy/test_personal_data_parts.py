"""
Each app registers one personal-data part that both exports and erases its data: what a part
shows the customer as personal is exactly what it clears on erasure.
"""

import ast
from pathlib import Path

import pytest

from customers.models import ERASED_MARKER
from privacy import registry
from privacy.services import customer_erase

pytestmark = pytest.mark.django_db

ERASED_VALUES = ("", None, ERASED_MARKER)


def _rows(document, section):
    rows = document[section]
    return rows if isinstance(rows, list) else [rows]


def _personal_values(part, document):
    for section, keys in part.personal_fields.items():
        for row in _rows(document, section):
            for key in keys:
                yield section, key, row[key]


def test_every_app_registers_one_part_with_its_personal_fields():
    names = [part.name for part in registry.parts()]
    assert names == ["customers", "privacy", "consents", "marketing", "intake", "api", "dashboard"]
    for part in registry.parts():
        assert part.personal_fields, f"{part.name} declares no personal fields"


def test_every_part_exports_its_personal_fields_and_erases_each_of_them(officer, augusta_through_everything):
    # given Augusta, whose record, ledger, registrations, corrections, requests and emails hold her data
    augusta, _request = augusta_through_everything
    before = {part.name: part.export(augusta) for part in registry.parts()}
    for part in registry.parts():
        for section in part.personal_fields:
            assert section in before[part.name], f"{part.name} declares {section} but does not export it"
    exported = {
        (name, section, key)
        for name, doc in before.items()
        for part in registry.parts()
        if part.name == name
        for section, key, value in _personal_values(part, doc)
        if value not in ERASED_VALUES
    }
    assert ("customers", "customer", "email") in exported
    assert ("consents", "consent_history", "ip_address") in exported
    assert ("privacy", "privacy_requests", "details") in exported
    assert ("marketing", "marketing_emails", "subject") in exported
    assert ("api", "webhook_messages", "personal_data") in exported
    assert ("marketing", "provider_reports", "reason") in exported
    assert ("dashboard", "customer_imports", "email") in exported

    # when she is erased
    customer_erase(customer=augusta, staff_user=officer)
    augusta.refresh_from_db()

    # then every value each part exported as personal is gone from what it exports now
    for part in registry.parts():
        after = part.export(augusta)
        for section, key, value in _personal_values(part, after):
            if part.name == "customers" and key == "email":
                assert value.endswith("@erased.invalid")
            else:
                assert value in ERASED_VALUES, f"{part.name}: {section}.{key} still holds {value!r}"
        old_values = {str(v) for _s, _k, v in _personal_values(part, before[part.name]) if v not in ERASED_VALUES}
        left = [v for _s, _k, v in _personal_values(part, after) if str(v) in old_values]
        assert not left, f"{part.name} still exports {left}"


def test_the_privacy_app_imports_no_app_above_it():
    above = {"consents", "marketing", "intake", "api", "dashboard", "config"}
    offending = []
    for path in Path(__file__).resolve().parents[2].joinpath("privacy").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            offending += [f"{path.name}: {name}" for name in names if name.split(".")[0] in above]
    assert offending == []


def test_erasure_takes_her_rows_out_of_a_pending_import_and_keeps_the_others(officer, augusta_through_everything):
    from dashboard.models import ImportJob

    augusta, _request = augusta_through_everything
    # when she is erased while the checked import waits
    customer_erase(customer=augusta, staff_user=officer)
    # then the file keeps the other customer's row, in its own format, and says what happened
    job = ImportJob.objects.get(file_name="crm-export.csv")
    assert job.content == "email,city\nnot.augusta@example.com,York\n"
    assert job.rows == 1
    assert "1 row(s) were taken out of this file when a customer's data was erased." in job.message
