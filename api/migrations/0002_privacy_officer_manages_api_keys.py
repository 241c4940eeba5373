"""Privacy officers create, view and revoke API keys (superusers can anyway)."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

CODENAMES = ["view_apikey", "add_apikey", "change_apikey"]


def grant(apps, schema_editor):
    # Permissions are normally created after all migrations ran (post_migrate); create them now.
    app_config = apps.get_app_config("api")
    models_module = getattr(app_config, "models_module", None)
    app_config.models_module = models_module or True  # historical apps have none
    create_permissions(app_config, apps=apps, verbosity=0)
    app_config.models_module = models_module
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    officer = Group.objects.filter(name="Privacy officer").first()
    if officer is not None:
        officer.permissions.add(*Permission.objects.filter(content_type__app_label="api", codename__in=CODENAMES))


def revoke(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    officer = Group.objects.filter(name="Privacy officer").first()
    if officer is not None:
        officer.permissions.remove(*Permission.objects.filter(content_type__app_label="api", codename__in=CODENAMES))


class Migration(migrations.Migration):
    dependencies = [
        ("api", "0001_initial"),
        ("marketing", "0002_staff_roles"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(grant, revoke)]
