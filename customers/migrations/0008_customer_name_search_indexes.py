"""
PostgreSQL only, as 0004: the admin's customer search also finds the start of a first name
and of a full name ("Fiona Nay"). Both compare upper-cased values with LIKE 'X%', which
under a non-C collation only an index with the pattern operator class serves. The full-name
index is built on the same expression as customers.models.FULL_NAME (upper-cased, as
istartswith compares), so the planner can match the search to it. SQLite needs nothing.
"""

from django.db import migrations

# Written out as Django compiles the search (Concat is COALESCE(...) || ..., each part
# COALESCEd): an index matches a query only when the expressions are the same.
INDEXES = [
    (
        "customer_first_name_prefix",
        "CREATE INDEX IF NOT EXISTS customer_first_name_prefix ON customers_customer "
        '((UPPER("first_name"::text)) text_pattern_ops)',
    ),
    (
        "customer_full_name_prefix",
        "CREATE INDEX IF NOT EXISTS customer_full_name_prefix ON customers_customer "
        "((UPPER((COALESCE(\"first_name\", '') || COALESCE((COALESCE(' ', '') || COALESCE(\"last_name\", '')), '')))) "
        "text_pattern_ops)",
    ),
]


def create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for _name, sql in INDEXES:
        schema_editor.execute(sql)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name, _sql in INDEXES:
        schema_editor.execute(f"DROP INDEX IF EXISTS {name}")


class Migration(migrations.Migration):
    dependencies = [("customers", "0007_remove_changed_by_system")]

    operations = [migrations.RunPython(create, drop)]
