import django.db.models.deletion
from django.db import migrations, models

import customers.validators

# (code, name, the consent purpose that allows it on the basis of consent, or None)
DISCLOSURE_PURPOSES = [
    ("purchase", "Completing a purchase (payment, licence, support)", None),
    ("legal_obligation", "Required by law (tax, courts, authorities)", None),
    ("market_research", "Market research (surveys, interviews, panels)", "market_research"),
    ("newsletter", "Sending our newsletter", "newsletter"),
    ("promotions", "Promotions and offers", "promotions"),
    ("internal_analysis", "Analysis of purchasing trends", "internal_analysis"),
    ("other", "Other (say what in the details)", None),
]

# Disclosures recorded before purposes existed: by the consent they name, else by their basis.
PURPOSE_BY_BASIS = {"contract": "purchase", "legal_obligation": "legal_obligation", "legitimate_interests": "other"}


def create_and_assign(apps, schema_editor):
    Purpose = apps.get_model("consents", "Purpose")
    DisclosurePurpose = apps.get_model("consents", "DisclosurePurpose")
    Disclosure = apps.get_model("consents", "Disclosure")
    consents = {purpose.code: purpose for purpose in Purpose.objects.all()}
    for code, name, consent_code in DISCLOSURE_PURPOSES:
        if consent_code is not None and consent_code not in consents:
            continue  # a purpose staff have since renamed or never had: they map it themselves
        DisclosurePurpose.objects.get_or_create(
            code=code, defaults={"name": name, "consent_purpose": consents.get(consent_code)}
        )
    by_code = {purpose.code: purpose for purpose in DisclosurePurpose.objects.all()}
    by_consent = {p.consent_purpose_id: p for p in DisclosurePurpose.objects.exclude(consent_purpose=None)}
    for disclosure in Disclosure.objects.select_related("consent_event__purpose").iterator():
        if disclosure.consent_event_id is not None:
            consent_purpose = disclosure.consent_event.purpose
            target = by_consent.get(consent_purpose.pk)
            if target is None:
                target, _ = DisclosurePurpose.objects.get_or_create(
                    code=consent_purpose.code, defaults={"name": consent_purpose.name, "consent_purpose": consent_purpose}
                )
                by_consent[consent_purpose.pk] = target
        else:
            target = by_code[PURPOSE_BY_BASIS.get(disclosure.legal_basis, "other")]
        Disclosure.objects.filter(pk=disclosure.pk).update(disclosure_purpose=target)


class Migration(migrations.Migration):
    """Disclosures name what they are for, and each purpose of disclosure the consent it needs."""

    dependencies = [("consents", "0005_consent_history_in_decision_order")]

    operations = [
        migrations.CreateModel(
            name="DisclosurePurpose",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("code", models.SlugField(help_text="Stable identifier used in exports.")),
                ("name", models.CharField(max_length=100)),
                (
                    "consent_purpose",
                    models.ForeignKey(
                        blank=True,
                        help_text="On the basis of consent, only the customer's consent to this purpose allows the "
                        "disclosure. Empty: no consent does (the basis must be the contract, the law or legitimate "
                        "interests).",
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="disclosure_purposes",
                        to="consents.purpose",
                        verbose_name="consent that allows it",
                    ),
                ),
            ],
            options={"ordering": ["name"]},
        ),
        migrations.AddConstraint(
            model_name="disclosurepurpose",
            constraint=models.UniqueConstraint(fields=("code",), name="disclosure_purpose_code_unique"),
        ),
        migrations.AlterField(
            model_name="disclosure",
            name="purpose",
            field=models.CharField(
                help_text="What exactly, e.g. “Invitation to the 2026 customer satisfaction survey”.",
                max_length=300,
                validators=[customers.validators.reject_card_numbers],
                verbose_name="details of the purpose",
            ),
        ),
        migrations.AddField(
            model_name="disclosure",
            name="disclosure_purpose",
            field=models.ForeignKey(
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="disclosures",
                to="consents.disclosurepurpose",
                verbose_name="purpose",
            ),
        ),
        migrations.RunPython(create_and_assign, migrations.RunPython.noop),
    ]
