"""The policy version list: which version is current, at a cost that does not grow with the list."""

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from consents.models import PolicyVersion

pytestmark = pytest.mark.django_db

LIST_URL = "/admin/consents/policyversion/"


@pytest.fixture
def staff_client(client, admin_user):
    client.force_login(admin_user)
    return client


def add_versions(count: int, *, start_days_ago: int, major: int = 2) -> None:
    base = timezone.now() - timedelta(days=start_days_ago)
    for n in range(count):
        label = f"{major}.{n}"
        PolicyVersion.objects.create(version=label, effective_at=base + timedelta(days=n), text=f"Version {label}")


def list_queries(client) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(LIST_URL).status_code == 200
    return len(queries.captured_queries)


def current_flags(html: str) -> dict[str, bool]:
    """Each version label on the list, with its "current" icon."""
    rows = re.findall(r'<th class="field-version"><a [^>]*>([^<]+)</a>.*?<td class="field-is_current">(.*?)</td>', html)
    return {label: 'alt="True"' in icon for label, icon in rows}


def test_the_list_costs_the_same_number_of_queries_for_two_versions_or_twenty(staff_client):
    add_versions(1, start_days_ago=400)
    few = list_queries(staff_client)
    add_versions(19, start_days_ago=300, major=3)
    assert PolicyVersion.objects.count() == 21
    assert list_queries(staff_client) == few


def test_only_the_latest_version_in_force_is_marked_current(staff_client):
    # given the data migration's 1.0, two later versions in force and one announced for next month
    add_versions(2, start_days_ago=10)
    PolicyVersion.objects.create(
        version="4.0", effective_at=timezone.now() + timedelta(days=30), text="Announced, not yet in force"
    )
    flags = current_flags(staff_client.get(LIST_URL).text)
    assert flags.pop("2.1") is True
    assert PolicyVersion.objects.current().version == "2.1"
    assert set(flags) == {"1.0", "2.0", "4.0"}
    assert not any(flags.values())
