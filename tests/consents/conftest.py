import pytest

from config.celery import app as celery_app
from consents.models import Purpose
from tests.consents.people import ensure_purposes
from tests.factories import CustomerFactory


@pytest.fixture
def newsletter(db):
    return Purpose.objects.get(code="newsletter")


@pytest.fixture
def market_research(db):
    return Purpose.objects.get(code="market_research")


@pytest.fixture
def ada(db):
    """A customer who will consent."""
    return CustomerFactory(email="ada@example.com", first_name="Ada", last_name="Lovelace")


@pytest.fixture
def grace(db):
    """A customer who will withdraw."""
    return CustomerFactory(email="grace@example.com", first_name="Grace", last_name="Hopper")


@pytest.fixture
def linus(db):
    """A customer nobody ever asked."""
    return CustomerFactory(email="linus@example.com", first_name="Linus", last_name="Torvalds")


@pytest.fixture
def purposes(db):
    """Every purpose by code (transactional browser tests flush the data migration's rows)."""
    return ensure_purposes()


@pytest.fixture
def eager_celery():
    """Run tasks in the test process, as a worker would, when the transaction commits."""
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = previous


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()
