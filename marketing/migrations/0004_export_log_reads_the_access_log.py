"""
Every list export was written twice: an ExportLog row and a customers AccessLog entry, in the
same transaction. The access log is now the one record; ExportLog becomes a proxy that lists
its list-export entries. Its rows are dropped: each has its access-log twin (who, when, and
the row count in the detail). The content type and permissions (view_exportlog,
export_call_list, export_internal_analysis) stay the same, and so do the groups holding them.
"""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("customers", "0005_single_line_fields"),
        ("marketing", "0003_delivery_subject"),
    ]

    operations = [
        migrations.DeleteModel(
            name="ExportLog",
        ),
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
            bases=("customers.accesslog",),
        ),
    ]
