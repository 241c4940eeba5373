"""
A database from before the privacy app existed migrates without copying a row: the five
tables keep their names and rows, and the groups keep the permissions they held.
"""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from privacy.models import AccessLog, CustomerErasure, PrivacyRequest, RecipientNotification, RetentionRun

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

BEFORE_THE_MOVE = [
    ("customers", "0008_customer_name_search_indexes"),
    ("marketing", "0005_campaign_action_unscheduled_duplicated"),
    ("privacy", None),
]
MOVED_TABLES = [
    "customers_privacyrequest",
    "customers_customererasure",
    "customers_recipientnotification",
    "customers_accesslog",
    "customers_retentionrun",
]
AUDITOR_PERMISSIONS = ["view_privacyrequest", "change_privacyrequest", "view_accesslog", "view_customererasure"]


@pytest.fixture(autouse=True)
def _as_owner(database_owner):
    """Migrations run as the owner role (the runtime role may not change the schema)."""
    with database_owner():
        yield
        _migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())


def _migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    return executor.migrate(targets).apps


def _everything_as_before(old_apps):
    """Rows of every moved model, and a group holding their permissions, written with the old schema."""
    User = old_apps.get_model("auth", "User")
    Group = old_apps.get_model("auth", "Group")
    Permission = old_apps.get_model("auth", "Permission")
    Customer = old_apps.get_model("customers", "Customer")
    ThirdParty = old_apps.get_model("customers", "ThirdParty")
    now = timezone.now()
    officer = User.objects.create(username="priya", is_staff=True)
    ada = Customer.objects.create(email="ada@example.com", first_name="Ada", created_at=now, updated_at=now)
    paddle = ThirdParty.objects.create(name="Paddle", kind="reseller")
    request = old_apps.get_model("customers", "PrivacyRequest").objects.create(
        customer=ada, kind="access", channel="email", received_at=now, due_at=now + timedelta(days=30)
    )
    old_apps.get_model("customers", "CustomerErasure").objects.create(
        customer=ada, address_hash="0" * 64, erased_at=now, erased_by=officer, summary={"customers": {}}
    )
    old_apps.get_model("customers", "RecipientNotification").objects.create(
        customer=ada, third_party=paddle, reason="correction", fields=["city"], created_at=now
    )
    old_apps.get_model("customers", "AccessLog").objects.create(
        staff_user=officer, customer=ada, action="viewed", at=now
    )
    old_apps.get_model("customers", "RetentionRun").objects.create(started_at=now, cutoff=now, counts={"x": 1})
    # What the staff-roles migration would have made: permissions under the customers app.
    ContentType = old_apps.get_model("contenttypes", "ContentType")
    for model in ["privacyrequest", "accesslog", "customererasure"]:
        content_type, _ = ContentType.objects.get_or_create(app_label="customers", model=model)
        for action in ["view", "change"]:
            Permission.objects.get_or_create(
                content_type=content_type, codename=f"{action}_{model}", defaults={"name": f"Can {action} {model}"}
            )
    auditors = Group.objects.create(name="Auditors")
    auditors.permissions.set(
        Permission.objects.filter(content_type__app_label="customers", codename__in=AUDITOR_PERMISSIONS)
    )
    officer.groups.add(auditors)
    return request.pk


def test_a_database_from_before_the_privacy_app_keeps_its_rows_tables_and_group_permissions():
    # given a database at the schema before the move, with a row in every moved table
    old_apps = _migrate(BEFORE_THE_MOVE)
    request_pk = _everything_as_before(old_apps)

    # when it migrates to today's schema
    _migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())

    # then the same tables hold the same rows, now read through the privacy app
    tables = connection.introspection.table_names()
    assert all(table in tables for table in MOVED_TABLES)
    assert not [
        table for table in tables if table.replace("customers_", "privacy_", 1) in tables and table in MOVED_TABLES
    ]
    assert PrivacyRequest.objects.get(pk=request_pk).customer.email == "ada@example.com"
    assert CustomerErasure.objects.get().summary == {"customers": {}}
    assert RecipientNotification.objects.get().fields == ["city"]
    assert AccessLog.objects.get().action == AccessLog.Action.VIEWED
    assert RetentionRun.objects.get().counts == {"x": 1}

    # and the group holds the same permissions, under the privacy app's label
    auditors = Group.objects.get(name="Auditors")
    held = sorted(f"{p.content_type.app_label}.{p.codename}" for p in auditors.permissions.all())
    assert held == sorted(f"privacy.{codename}" for codename in AUDITOR_PERMISSIONS)
    officer = auditors.user_set.get()
    assert officer.has_perm("privacy.view_accesslog") and officer.has_perm("privacy.change_privacyrequest")
    assert not ContentType.objects.filter(app_label="customers", model__in=["privacyrequest", "accesslog"]).exists()


def test_the_move_can_be_undone_and_done_again():
    _migrate(BEFORE_THE_MOVE)
    assert ContentType.objects.filter(app_label="customers", model="accesslog").exists()
    _migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())
    assert ContentType.objects.filter(app_label="privacy", model="accesslog").exists()
    assert not ContentType.objects.filter(app_label="customers", model="accesslog").exists()
