import atexit
import io
import logging
import os
import shutil
import socket
import tempfile
import uuid
from pathlib import Path
from urllib.parse import urlparse

import pytest
from django.conf import settings
from django.db import connections, transaction
from django.utils import translation
from pytest_django.fixtures import _disable_migrations, _get_databases_for_setup

from common import database_roles

REQUIRE_SERVICES = os.environ.get("REQUIRE_SERVICES") == "1"


def pytest_configure(config):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    if os.environ.get("CACHE_URL", "").startswith(("redis://", "rediss://")):
        # The cache the deployment uses (CI: Redis), so the rate limits are counted where they
        # are in production; under a key prefix of this run's own, which cache.clear() empties
        # without touching anything else in that Redis database (such as the Celery queue).
        settings.CACHES = {
            "default": {
                **settings.CACHES["default"],
                "BACKEND": "tests.cache.RunScopedRedisCache",
                "KEY_PREFIX": f"test-run-{uuid.uuid4().hex[:12]}",
            }
        }
    else:
        settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    # Sign-in lockout is tested on its own (tests/test_staff_security.py); elsewhere it would
    # refuse the test client's login(), which carries no request.
    settings.AXES_ENABLED = False
    _private_filesystem_broker()
    _flush_as_owner()


def _private_filesystem_broker():
    """
    With the file-system broker (no CELERY_BROKER_URL), the tests queue their tasks in a folder of
    their own, so a `make run` worker in the same checkout never takes a test's task, and the
    tests never leave messages under var/broker.
    """
    if not settings.CELERY_BROKER_URL.startswith("filesystem://"):
        return
    folder = Path(tempfile.mkdtemp(prefix="consentdesk-test-broker-"))
    for sub in ("queue", "processed", "control"):
        (folder / sub).mkdir()
    options = {
        **settings.CELERY_BROKER_TRANSPORT_OPTIONS,
        "data_folder_in": str(folder / "queue"),
        "data_folder_out": str(folder / "queue"),
        "processed_folder": str(folder / "processed"),
        "control_folder": str(folder / "control"),
    }
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = options
    from config.celery import app

    app.conf.broker_transport_options = options
    atexit.register(shutil.rmtree, folder, ignore_errors=True)


@pytest.fixture(scope="session")
def django_db_setup(
    request,
    django_test_environment,
    django_db_blocker,
    django_db_use_migrations,
    django_db_keepdb,
    django_db_createdb,
    django_db_modify_db_settings,
):
    """
    pytest-django's set-up with the two database roles of production: the owner role
    (MIGRATION_DATABASE_URL) creates and migrates the test database and grants the runtime role
    its rights; the tests then connect as the runtime role (DATABASE_URL), so every test has the
    rights the site has and no more. Without MIGRATION_DATABASE_URL (SQLite, one role) this is
    pytest-django's own set-up.
    """
    from django.test.utils import setup_databases, teardown_databases

    if not django_db_use_migrations:
        _disable_migrations()
    keepdb = {"keepdb": True} if django_db_keepdb and not django_db_createdb else {}
    aliases, serialized_aliases = _get_databases_for_setup(request.session.items)
    verbosity = request.config.option.verbose
    with django_db_blocker.unblock(), database_roles.as_owner(same_database=False) as runtime_role:
        db_cfg = setup_databases(
            verbosity=verbosity, interactive=False, aliases=aliases, serialized_aliases=serialized_aliases, **keepdb
        )
        if runtime_role:
            database_roles.grant_runtime_role(connections["default"], runtime_role=runtime_role)
    yield
    if not django_db_keepdb:
        with django_db_blocker.unblock(), database_roles.as_owner(same_database=False):
            teardown_databases(db_cfg, verbosity=verbosity)


def _flush_as_owner() -> None:
    """
    Between transactional tests Django empties every table with one TRUNCATE, which the ledger
    refuses (and the runtime role may not run): the owner role runs it, with the ledger's
    triggers lifted for that one transaction.
    """
    from django.db.backends.postgresql.operations import DatabaseOperations

    def execute_sql_flush(self, sql_list):
        alias = self.connection.alias
        with database_roles.as_owner(alias, same_database=False):
            quote = self.connection.ops.quote_name
            ledger = [quote(table) for table in database_roles.append_only_tables()]
            with transaction.atomic(using=alias), self.connection.cursor() as cursor:
                for table in ledger:
                    cursor.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
                for sql in sql_list:
                    cursor.execute(sql)
                for table in ledger:
                    cursor.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")

    DatabaseOperations.execute_sql_flush = execute_sql_flush  # type: ignore[method-assign]  # patched for the whole run


@pytest.fixture
def database_owner():
    """
    A context manager that reconnects the default database as the owner role, for tests that
    create databases or run migrations (the runtime role may do neither). It closes the
    connection, so it belongs in transactional tests (`django_db(transaction=True)`).
    """
    return lambda: database_roles.as_owner(same_database=False)


def pytest_unconfigure(config):
    from django.core.cache import cache

    if settings.CACHES["default"]["BACKEND"] == "tests.cache.RunScopedRedisCache":
        cache.clear()


def _redis_reachable() -> bool:
    url = settings.CELERY_BROKER_URL
    if not url.startswith("redis://"):
        return False
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 6379), timeout=1):
            return True
    except OSError:
        return False


def pytest_collection_modifyitems(config, items):
    on_postgres = settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"
    redis_ok = _redis_reachable()
    for item in items:
        if "postgres" in item.keywords and not on_postgres and not REQUIRE_SERVICES:
            item.add_marker(pytest.mark.skip(reason="needs PostgreSQL: set DATABASE_URL=postgres://..."))
        if "redis" in item.keywords and not redis_ok:
            reason = f"needs Redis: set CELERY_BROKER_URL=redis://... (now {settings.CELERY_BROKER_URL})"
            if not REQUIRE_SERVICES:
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(autouse=True)
def _services_required(request):
    """With REQUIRE_SERVICES=1 a test that needs an unreachable service fails instead of skipping."""
    if not REQUIRE_SERVICES:
        return
    if "postgres" in request.keywords and settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        pytest.fail("REQUIRE_SERVICES=1 but DATABASE_URL does not point at PostgreSQL")
    if "redis" in request.keywords and not _redis_reachable():
        pytest.fail(f"REQUIRE_SERVICES=1 but Redis is unreachable at {settings.CELERY_BROKER_URL}")


@pytest.fixture
def log_output():
    """Everything the configured console handlers write during the test."""
    handlers = [
        handler
        for name in ("", "django.request")
        for handler in logging.getLogger(name).handlers
        if isinstance(handler, logging.StreamHandler) and type(handler.formatter).__name__ == "MaskingFormatter"
    ]
    assert handlers, "the settings configure no masking console handler"
    stream = io.StringIO()
    previous = [handler.setStream(stream) for handler in handlers]
    yield stream
    for handler, old in zip(handlers, previous, strict=True):
        handler.setStream(old)


@pytest.fixture(autouse=True)
def _site_language():
    """
    Every test starts in the site's language: a request that chose a customer's language leaves it
    active in the thread (LocaleMiddleware does not reset it), and modeltranslation reads and
    writes a model's `subject` or `wording` in the active language.
    """
    translation.activate(settings.LANGUAGE_CODE)
    yield
    translation.activate(settings.LANGUAGE_CODE)
