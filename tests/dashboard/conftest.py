import pytest

from config.celery import app as celery_app
from tests.privacy.people import staff_in


@pytest.fixture
def support(django_user_model):
    return staff_in(django_user_model, "Support", "sam-support")


@pytest.fixture
def marketer(django_user_model):
    return staff_in(django_user_model, "Marketing", "mia-marketing")


@pytest.fixture
def officer(django_user_model):
    return staff_in(django_user_model, "Privacy officer", "olga-officer")


@pytest.fixture
def eager_celery():
    """Tasks run in-process, as a worker would call them."""
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = previous
