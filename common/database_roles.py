"""
Two PostgreSQL roles (README: Security). The owner role (MIGRATION_DATABASE_URL) owns every
table and runs migrations; the runtime role (DATABASE_URL) runs the site, workers and beat with
plain row rights. A table's owner can disable its triggers, so the ledger's guard only holds
against a role that owns nothing; append-only tables (those whose triggers refuse TRUNCATE: the
consent ledger) also give the runtime role no DELETE.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pgtrigger
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.base.base import BaseDatabaseWrapper

# What the owner's URL changes in a connection's settings; the database itself stays.
_CREDENTIALS = ("USER", "PASSWORD", "HOST", "PORT", "OPTIONS")

TABLE_RIGHTS = "SELECT, INSERT, UPDATE, DELETE"
SEQUENCE_RIGHTS = "USAGE, SELECT"
# UPDATE stays: the ledger's trigger allows the sanctioned redaction and nothing else.
APPEND_ONLY_REVOKED = "DELETE, TRUNCATE, REFERENCES, TRIGGER"


def owner_settings() -> dict | None:
    """The owner role's connection settings, or None when one role does everything."""
    return getattr(settings, "MIGRATION_DATABASE", None)


@contextlib.contextmanager
def as_owner(alias: str = DEFAULT_DB_ALIAS, *, same_database: bool = True) -> Iterator[str | None]:
    """
    Connect `alias` as the owner role for the duration; yields the runtime role's name (to grant
    it its rights afterwards), or None when there is nothing to switch (no owner role configured,
    another alias than the default, not PostgreSQL, or already connected as the owner). With
    `same_database`, refuses an owner URL that names another database than DATABASE_URL:
    migrating the wrong one would be silent.
    """
    owner = owner_settings()
    connection = connections[alias]
    runtime_role = connection.settings_dict.get("USER")
    switch = owner and alias == DEFAULT_DB_ALIAS and connection.vendor == "postgresql"
    if owner is None or not switch or runtime_role == owner.get("USER"):
        yield None
        return
    if same_database and owner.get("NAME") != connection.settings_dict.get("NAME"):
        raise ImproperlyConfigured(
            f"MIGRATION_DATABASE_URL names database {owner.get('NAME')!r} but DATABASE_URL names "
            f"{connection.settings_dict.get('NAME')!r}: both must name the same database."
        )
    saved = {key: connection.settings_dict.get(key) for key in _CREDENTIALS}
    connection.close()
    connection.settings_dict.update({key: owner.get(key) or ({} if key == "OPTIONS" else "") for key in _CREDENTIALS})
    try:
        yield runtime_role
    finally:
        connection.close()
        connection.settings_dict.update(saved)


def append_only_tables() -> list[str]:
    """Tables whose triggers refuse TRUNCATE (declared on the model with pgtrigger)."""
    tables = {
        model._meta.db_table
        for model, trigger in pgtrigger.registered()
        if "TRUNCATE" in str(trigger.operation).split(" OR ")
    }
    return sorted(tables)


def runtime_grants_sql(connection: BaseDatabaseWrapper, *, owner_role: str, runtime_role: str) -> list[str]:
    """
    What the owner runs so the runtime role can work: row rights on every table and sequence,
    now and for whatever later migrations create, less DELETE and TRUNCATE on append-only tables.
    """
    quote = connection.ops.quote_name
    owner, runtime = quote(owner_role), quote(runtime_role)
    statements = [
        f"GRANT USAGE ON SCHEMA public TO {runtime}",
        f"GRANT {TABLE_RIGHTS} ON ALL TABLES IN SCHEMA public TO {runtime}",
        f"GRANT {SEQUENCE_RIGHTS} ON ALL SEQUENCES IN SCHEMA public TO {runtime}",
        f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA public GRANT {TABLE_RIGHTS} ON TABLES TO {runtime}",
        f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA public GRANT {SEQUENCE_RIGHTS} ON SEQUENCES TO {runtime}",
    ]
    statements += [f"REVOKE {APPEND_ONLY_REVOKED} ON {quote(table)} FROM {runtime}" for table in append_only_tables()]
    return statements


def tables_owned_by(connection: BaseDatabaseWrapper, role: str) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tableowner = %s ORDER BY 1", [role]
        )
        return [row[0] for row in cursor.fetchall()]


def grant_runtime_role(connection: BaseDatabaseWrapper, *, runtime_role: str) -> None:
    """
    Run `runtime_grants_sql` on `connection` (connected as the owner), after refusing a runtime
    role that owns tables itself: it could disable their triggers whatever it is granted.
    """
    owned = tables_owned_by(connection, runtime_role)
    if owned:
        raise ImproperlyConfigured(
            f"The runtime role {runtime_role!r} (DATABASE_URL) owns tables ({', '.join(owned[:3])}"
            f"{', …' if len(owned) > 3 else ''}), "
            "so it could disable the consent ledger's guard. As a superuser, run "
            f'REASSIGN OWNED BY "{runtime_role}" TO <the owner role in MIGRATION_DATABASE_URL>; then migrate again.'
        )
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_user")
        (owner_role,) = cursor.fetchone()
        for statement in runtime_grants_sql(connection, owner_role=owner_role, runtime_role=runtime_role):
            cursor.execute(statement)
        grant_temporary_tables(connection, runtime_role=runtime_role)


def grant_temporary_tables(connection: BaseDatabaseWrapper, *, runtime_role: str) -> bool:
    """
    Let the runtime role create temporary tables in this database (the customer import stages
    a large file in one before moving it in with one statement). PUBLIC has that right unless
    it was revoked; it is granted explicitly when the owner may grant it (it owns the database,
    or is a superuser). Returns whether the runtime role has it afterwards; without it, the
    import writes in batches instead.
    """
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT current_database(), has_database_privilege(current_database(), 'TEMPORARY WITH GRANT OPTION')"
        )
        database, may_grant = cursor.fetchone()
        if may_grant:
            cursor.execute(f"GRANT TEMPORARY ON DATABASE {quote(database)} TO {quote(runtime_role)}")
        cursor.execute("SELECT has_database_privilege(%s, current_database(), 'TEMPORARY')", [runtime_role])
        return cursor.fetchone()[0]
