"""
Staff roles as groups: Support, Marketing, Privacy officer. In the marketing app's
migrations because it is the top app: every permission named here exists by now.
Superusers remain for administrators. Re-running (or a later migration) may change a
group's permissions; staff are put in groups in admin (Authentication › Groups / Users).
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

ROLES = {
    # View and correct customers and registrations, view consent, record consent on a
    # customer's behalf (by phone or letter).
    "Support": {
        "customers": [
            "view_customer",
            "change_customer",
            "view_customerchange",
            "view_productregistration",
            "add_productregistration",
            "change_productregistration",
            "view_product",
            "view_thirdparty",
        ],
        "consents": [
            "view_consentevent",
            "add_consentevent",
            "view_consent",
            "view_purpose",
            "view_policyversion",
            "view_disclosure",
        ],
    },
    # Campaigns, their audience counts and progress; no customer details (deliveries show
    # customers by public ID only, without customers.view_customer), pseudonymised analysis.
    "Marketing": {
        "customers": ["view_product"],
        "consents": ["view_purpose"],
        "marketing": [
            "view_campaign",
            "add_campaign",
            "change_campaign",
            "view_campaignaction",
            "view_delivery",
            "view_suppression",
            "add_suppression",
            "view_exportlog",
            "export_internal_analysis",
        ],
    },
    # Data-subject requests, exports, erasure, disclosures, retention, the audit trail.
    "Privacy officer": {
        "customers": [
            "view_customer",
            "change_customer",
            "export_customer",
            "erase_customer",
            "view_customerchange",
            "view_productregistration",
            "view_product",
            "view_thirdparty",
            "add_thirdparty",
            "change_thirdparty",
            "view_privacyrequest",
            "add_privacyrequest",
            "change_privacyrequest",
            "view_customererasure",
            "view_recipientnotification",
            "change_recipientnotification",
            "view_accesslog",
            "view_retentionrun",
        ],
        "consents": [
            "view_consentevent",
            "view_consent",
            "view_purpose",
            "view_policyversion",
            "view_disclosure",
            "add_disclosure",
        ],
        "marketing": [
            "view_exportlog",
            "export_call_list",
            "export_internal_analysis",
            "view_suppression",
            "add_suppression",
        ],
        "auditlog": ["view_logentry"],
    },
}


def create_roles(apps, schema_editor):
    # Permissions are normally created after all migrations ran (post_migrate); create them now.
    for app_config in apps.get_app_configs():
        models_module = getattr(app_config, "models_module", None)
        app_config.models_module = models_module or True  # historical apps have none
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = models_module
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, by_app in ROLES.items():
        group, _created = Group.objects.get_or_create(name=name)
        permissions = []
        for app_label, codenames in by_app.items():
            found = list(Permission.objects.filter(content_type__app_label=app_label, codename__in=codenames))
            missing = set(codenames) - {p.codename for p in found}
            if missing:
                raise RuntimeError(f"{name}: no such permission(s) in {app_label}: {', '.join(sorted(missing))}")
            permissions.extend(found)
        group.permissions.set(permissions)


def remove_roles(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=list(ROLES)).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("marketing", "0001_initial"),
        ("customers", "0003_privacy_operations"),
        ("consents", "0003_ledger_guard_trigger"),
        ("auditlog", "0017_add_actor_email"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_roles, remove_roles)]
