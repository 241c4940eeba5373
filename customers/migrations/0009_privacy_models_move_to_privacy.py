"""
PrivacyRequest, CustomerErasure, RecipientNotification, AccessLog and RetentionRun now belong
to the privacy app (privacy/0001 adds them there, on the same tables). This removes them from
the customers app's state only, and moves their content types (customers -> privacy), so the
permissions, the groups and users holding them, and the audit and admin log entries that
point at them all stay as they are.
"""

from django.db import migrations

MOVED_MODELS = ["privacyrequest", "customererasure", "recipientnotification", "accesslog", "retentionrun"]


def _move_content_types(apps, from_label: str, to_label: str) -> None:
    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    for model in MOVED_MODELS:
        old = ContentType.objects.filter(app_label=from_label, model=model).first()
        if old is None:
            continue  # a fresh database: post_migrate creates them under the new label
        new = ContentType.objects.filter(app_label=to_label, model=model).first()
        if new is not None:
            # Created early (create_permissions in a data migration) under the new label:
            # whoever holds its permissions gets the old ones, which carry on.
            for permission in Permission.objects.filter(content_type=new):
                kept = Permission.objects.filter(content_type=old, codename=permission.codename).first()
                if kept is None:
                    permission.content_type = old
                    permission.save(update_fields=["content_type"])
                    continue
                for group in permission.group_set.all():
                    group.permissions.add(kept)
                for user in permission.user_set.all():
                    user.user_permissions.add(kept)
                permission.delete()
            new.delete()
        old.app_label = to_label
        old.save(update_fields=["app_label"])


def content_types_to_privacy(apps, schema_editor):
    _move_content_types(apps, "customers", "privacy")


def content_types_to_customers(apps, schema_editor):
    _move_content_types(apps, "privacy", "customers")


class Migration(migrations.Migration):
    dependencies = [
        ("customers", "0008_customer_name_search_indexes"),
        ("privacy", "0001_initial"),
        # marketing.ExportLog (a proxy of AccessLog) must name its new base first.
        ("marketing", "0006_export_log_base_in_privacy"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveField(
                    model_name='accesslog',
                    name='customer',
                ),
                migrations.RemoveField(
                    model_name='accesslog',
                    name='staff_user',
                ),
                migrations.RemoveField(
                    model_name='customererasure',
                    name='customer',
                ),
                migrations.RemoveField(
                    model_name='customererasure',
                    name='erased_by',
                ),
                migrations.RemoveField(
                    model_name='customererasure',
                    name='privacy_request',
                ),
                migrations.RemoveField(
                    model_name='privacyrequest',
                    name='customer',
                ),
                migrations.RemoveField(
                    model_name='privacyrequest',
                    name='handled_by',
                ),
                migrations.RemoveField(
                    model_name='recipientnotification',
                    name='customer',
                ),
                migrations.RemoveField(
                    model_name='recipientnotification',
                    name='notified_by',
                ),
                migrations.RemoveField(
                    model_name='recipientnotification',
                    name='third_party',
                ),
                migrations.DeleteModel(
                    name='RetentionRun',
                ),
                migrations.DeleteModel(
                    name='AccessLog',
                ),
                migrations.DeleteModel(
                    name='CustomerErasure',
                ),
                migrations.DeleteModel(
                    name='PrivacyRequest',
                ),
                migrations.DeleteModel(
                    name='RecipientNotification',
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(content_types_to_privacy, content_types_to_customers),
    ]
