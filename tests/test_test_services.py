"""The test run itself: missing services fail under REQUIRE_SERVICES=1, and the run keeps to its own keys."""

import os

import pytest

from tests.faults.test_faults import require_binary


def test_a_missing_server_binary_fails_a_run_that_requires_services(monkeypatch):
    monkeypatch.setenv("REQUIRE_SERVICES", "1")
    with pytest.raises(pytest.fail.Exception, match="REQUIRE_SERVICES=1 but needs no-such-server"):
        require_binary("no-such-server", "no-such-package")


def test_a_missing_server_binary_skips_a_run_that_does_not(monkeypatch):
    monkeypatch.delenv("REQUIRE_SERVICES", raising=False)
    with pytest.raises(pytest.skip.Exception):
        require_binary("no-such-server", "no-such-package")


@pytest.mark.redis
def test_clearing_the_test_cache_leaves_the_rest_of_the_redis_database_alone():
    from django.core.cache import cache

    if not os.environ.get("CACHE_URL", "").startswith("redis://"):
        if os.environ.get("REQUIRE_SERVICES") == "1":
            pytest.fail("REQUIRE_SERVICES=1 but CACHE_URL does not point at Redis")
        pytest.skip("needs CACHE_URL=redis://...")
    redis = cache._cache.get_client(None, write=True)
    # given a key someone else keeps in the same database (a Celery queue, another run's counter)
    redis.set("someone-elses-key", "kept", ex=60)
    cache.set("ours", 1)
    # when the tests clear their cache
    cache.clear()
    # then only this run's keys are gone
    assert cache.get("ours") is None
    assert redis.get("someone-elses-key") == b"kept"
    redis.delete("someone-elses-key")
