from datetime import UTC, datetime

from django.db import migrations

PURPOSES = [
    (
        "newsletter",
        "Newsletter",
        "Send me the newsletter by email: product news, tips and release notes, about once a month.",
        True,
        10,
    ),
    (
        "promotions",
        "Promotions and offers",
        "Send me promotions and special offers on products I might like by email.",
        True,
        20,
    ),
    (
        "market_research",
        "Market research",
        "Invite me to take part in market research (surveys by email, phone or post) about your products.",
        True,
        30,
    ),
    (
        "internal_analysis",
        "Internal analysis",
        "Include my purchases in your internal statistics on purchasing trends and preferences "
        "(never shared, never used to contact me).",
        False,
        40,
    ),
]

POLICY_TEXT = """We collect your name, job title, business name, email address, phone number, postal address,
IP address and language and currency preferences.

Payment is taken by our reseller; card numbers never reach us.

We use your data to register your products, give support and manage your licences. We send
newsletters, promotions and market research invitations only if you agreed, and every marketing
email has an easy unsubscribe link: you can change your mind at any time. With your agreement we
include your purchases in internal analysis of purchasing trends.

We never sell your data. We share it with partners only to complete your purchase, with your
permission, or where the law requires it.

You may ask what we hold about you, have it corrected, download it, or have it deleted.
Traffic and log data (IP addresses, browser details) are kept only as long as the analysis needs."""


def create(apps, schema_editor):
    Purpose = apps.get_model("consents", "Purpose")
    PolicyVersion = apps.get_model("consents", "PolicyVersion")
    for code, name, wording, is_marketing, order in PURPOSES:
        Purpose.objects.get_or_create(
            code=code,
            defaults={"name": name, "wording": wording, "is_marketing": is_marketing, "display_order": order},
        )
    if not PolicyVersion.objects.exists():
        PolicyVersion.objects.create(version="1.0", effective_at=datetime(2024, 1, 1, tzinfo=UTC), text=POLICY_TEXT)


class Migration(migrations.Migration):
    dependencies = [("consents", "0001_initial")]

    operations = [migrations.RunPython(create, migrations.RunPython.noop)]
