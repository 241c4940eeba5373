from django.db import migrations, models


class Migration(migrations.Migration):
    """A customer's ledger reads in the order decisions were made; two unused choices go."""

    dependencies = [("consents", "0004_ledger_guard_pgtrigger")]

    operations = [
        migrations.AlterModelOptions(
            name="consentevent",
            options={"ordering": ["-occurred_at", "-recorded_at", "-id"]},
        ),
        migrations.RemoveIndex(model_name="consentevent", name="consent_event_history"),
        migrations.AddIndex(
            model_name="consentevent",
            index=models.Index(fields=["customer", "-occurred_at"], name="consent_event_history"),
        ),
        migrations.AlterField(
            model_name="consentevent",
            name="method",
            field=models.CharField(
                choices=[
                    ("web", "Web form"),
                    ("email_link", "Link in an email"),
                    ("phone", "Phone"),
                    ("letter", "Letter"),
                    ("email", "Email"),
                    ("in_person", "In person"),
                    ("import", "Imported record"),
                ],
                default="web",
                max_length=20,
                verbose_name="collection method",
            ),
        ),
        migrations.AlterField(
            model_name="consentevent",
            name="source",
            field=models.CharField(
                choices=[
                    ("preference_page", "Preference page"),
                    ("unsubscribe_link", "Unsubscribe link"),
                    ("one_click", "One-click unsubscribe"),
                    ("signup_form", "Signup or registration form"),
                    ("staff", "Staff on behalf of the customer"),
                    ("import", "Import"),
                ],
                max_length=20,
            ),
        ),
    ]
