import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    """Every disclosure now says what it was for (0005 filled in the ones recorded before)."""

    # A migration of its own: PostgreSQL cannot alter a table with the previous one's updates
    # still pending their foreign-key checks in the same transaction.
    dependencies = [("consents", "0006_disclosure_purposes")]

    operations = [
        migrations.AlterField(
            model_name="disclosure",
            name="disclosure_purpose",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT,
                related_name="disclosures",
                to="consents.disclosurepurpose",
                verbose_name="purpose",
            ),
        ),
    ]
