from django.db import migrations, models

# The runtime role owns no table, so it may not ANALYZE one; this function, owned by the
# owner role that migrates, refreshes the planner's statistics of the deliveries table and
# nothing else (marketing.sql.deliveries_analyze calls it after a large dispatch). New
# functions are executable by PUBLIC.
CREATE_FUNCTION = """
CREATE OR REPLACE FUNCTION marketing_delivery_analyze() RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$ BEGIN EXECUTE format('ANALYZE %I.marketing_delivery', {schema}); END $$
"""


def create_function(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT current_schema()")
        (schema,) = cursor.fetchone()
        cursor.execute(CREATE_FUNCTION.format(schema=schema_editor.quote_value(schema)))


def drop_function(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP FUNCTION IF EXISTS marketing_delivery_analyze()")


class Migration(migrations.Migration):
    dependencies = [
        ("marketing", "0012_delivery_skip_reason_frequency_cap"),
    ]

    operations = [
        migrations.AlterField(
            model_name="delivery",
            name="campaign",
            field=models.ForeignKey(
                db_index=False,
                on_delete=models.deletion.PROTECT,
                related_name="deliveries",
                to="marketing.campaign",
            ),
        ),
        migrations.AlterField(
            model_name="delivery",
            name="customer",
            field=models.ForeignKey(
                db_index=False,
                on_delete=models.deletion.CASCADE,
                related_name="marketing_deliveries",
                to="customers.customer",
            ),
        ),
        migrations.RunPython(create_function, drop_function, elidable=False),
    ]
