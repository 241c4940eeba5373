import pytest

from tests.consents.people import ensure_purposes

from .people import augusta_with_a_full_history, staff_in


@pytest.fixture
def purposes(db):
    return ensure_purposes()


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
def augusta_and_request(purposes, support, officer):
    """Augusta, with a full history, and her open erasure request (received by letter)."""
    return augusta_with_a_full_history(support_user=support, privacy_officer=officer)
