import io
import logging
import os
import socket
import uuid
from urllib.parse import urlparse

import pytest
from django.conf import settings

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
