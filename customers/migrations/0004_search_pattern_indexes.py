"""
PostgreSQL only: the admin searches customers by the start of an address, last name or
business name (LIKE 'x%'). Under a non-C collation a plain btree cannot serve LIKE, so
these indexes use the pattern operator classes. SQLite needs nothing.
"""

from django.db import migrations

INDEXES = [
    (
        "customer_email_prefix",
        'CREATE INDEX IF NOT EXISTS customer_email_prefix ON customers_customer (("email"::text) text_pattern_ops)',
    ),
    (
        "customer_last_name_prefix",
        "CREATE INDEX IF NOT EXISTS customer_last_name_prefix ON customers_customer "
        '((UPPER("last_name"::text)) text_pattern_ops)',
    ),
    (
        "customer_company_prefix",
        "CREATE INDEX IF NOT EXISTS customer_company_prefix ON customers_customer "
        '((UPPER("company"::text)) text_pattern_ops)',
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
    dependencies = [("customers", "0003_privacy_operations")]

    operations = [migrations.RunPython(create, drop)]
