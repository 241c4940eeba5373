"""
SMTP replies copied into a delivery's last_error and a hard bounce's suppression note name the
address (`550 5.1.1 <bounce.victim@example.net>: Recipient address rejected`), and Marketing
staff, who may not view customers, read both. Remove every address from the rows already
stored; the rest of the reply (the code and the reason) stays.
"""

import re

from django.db import migrations

# Anything around an @ up to a space, bracket or quote: non-ASCII and dot-less addresses
# (`ſam@example.com`, `root@localhost`) too, which stricter patterns miss.
ADDRESS = re.compile(r"[^\s<>()\[\]{}'\",;:]+@[^\s<>()\[\]{}'\",;:]+")
REPLACEMENT = "[address removed]"
BATCH_SIZE = 2000  # rows per UPDATE; a few hundred kB of text in memory


def _scrub(model, field: str) -> None:
    rows = model.objects.filter(**{f"{field}__contains": "@"}).only("pk", field)
    batch = []
    for row in rows.iterator(chunk_size=BATCH_SIZE):
        setattr(row, field, ADDRESS.sub(REPLACEMENT, getattr(row, field)))
        batch.append(row)
        if len(batch) >= BATCH_SIZE:
            model.objects.bulk_update(batch, [field])
            batch = []
    model.objects.bulk_update(batch, [field])


def scrub_addresses(apps, schema_editor):
    _scrub(apps.get_model("marketing", "Delivery"), "last_error")
    _scrub(apps.get_model("marketing", "Suppression"), "note")


class Migration(migrations.Migration):
    dependencies = [("marketing", "0007_address_hash_is_keyed")]

    # The addresses are gone: there is nothing to put back.
    operations = [migrations.RunPython(scrub_addresses, migrations.RunPython.noop)]
