"""The two database roles: how migrate uses the owner and what it grants the runtime role."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

from common import database_roles

ROOT = Path(__file__).resolve().parent.parent


def _manage(*args, **environment):
    env = {key: value for key, value in os.environ.items() if key not in {"DATABASE_URL", "MIGRATION_DATABASE_URL"}}
    env.update(environment)
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_migrate_refuses_an_owner_url_that_names_another_database():
    result = _manage(
        "migrate",
        DATABASE_URL="postgres://consentdesk_app@127.0.0.1:5432/consentdesk",
        MIGRATION_DATABASE_URL="postgres://consentdesk_owner@127.0.0.1:5432/consentdesk_staging",
    )
    assert result.returncode != 0
    assert "MIGRATION_DATABASE_URL names database 'consentdesk_staging' but DATABASE_URL names 'consentdesk'" in (
        result.stderr
    )
    assert "Traceback" not in result.stderr


def test_an_owner_url_for_another_kind_of_database_stops_start_up_with_one_sentence():
    result = _manage("check", MIGRATION_DATABASE_URL="postgres://consentdesk_owner@127.0.0.1:5432/consentdesk")
    assert result.returncode != 0
    assert "MIGRATION_DATABASE_URL and DATABASE_URL must name the same kind of database" in result.stderr


def test_only_the_consent_ledger_is_append_only():
    assert database_roles.append_only_tables() == ["consents_consentevent"]


@pytest.mark.postgres
def test_the_readme_shows_exactly_the_grants_migrate_runs():
    readme = (ROOT / "README.md").read_text()
    shown = re.search(r"What `migrate` then runs.*?```sql\n(.*?)```", readme, re.S).group(1)
    statements = database_roles.runtime_grants_sql(
        connection, owner_role="consentdesk_owner", runtime_role="consentdesk_app"
    )
    assert shown.splitlines() == [statement.replace('"', "") + ";" for statement in statements]


@pytest.mark.postgres
@pytest.mark.django_db
def test_the_tests_run_as_a_role_that_owns_nothing():
    """In CI (two roles) every test has the site's rights; with one role this says nothing."""
    if database_roles.owner_settings() is None:
        pytest.skip("one role: MIGRATION_DATABASE_URL is not set")
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_user")
        (role,) = cursor.fetchone()
    assert role == connection.settings_dict["USER"] != database_roles.owner_settings()["USER"]
    assert database_roles.tables_owned_by(connection, role) == []
