"""
AccessLog moved to the privacy app (same table): the ExportLog proxy names its new base.
State only; the content type and permissions of ExportLog stay.
"""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("marketing", "0005_campaign_action_unscheduled_duplicated"),
        ("privacy", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.DeleteModel(name="ExportLog"),
                migrations.CreateModel(
                    name="ExportLog",
                    fields=[],
                    options={
                        "permissions": [
                            ("export_call_list", "Can export the market-research call list"),
                            ("export_internal_analysis", "Can export internal-analysis purchase data"),
                        ],
                        "proxy": True,
                        "indexes": [],
                        "constraints": [],
                    },
                    bases=("privacy.accesslog",),
                ),
            ],
            database_operations=[],
        ),
    ]
