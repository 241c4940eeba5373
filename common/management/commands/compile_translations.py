"""
Compile locale/<language>/LC_MESSAGES/django.po into the .mo files Django reads, with polib
(pure Python): Django's own compilemessages needs GNU gettext's msgfmt, which a fresh machine
with only Python does not have. `make install` runs this; `--check` fails when a committed .mo
does not say what its .po says (tests/test_translations.py runs the same check).
"""

from __future__ import annotations

from pathlib import Path

import polib
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError


def catalogues() -> list[Path]:
    return sorted(path for folder in settings.LOCALE_PATHS for path in Path(folder).glob("*/LC_MESSAGES/*.po"))


def translations(catalogue: polib.POFile | polib.MOFile) -> dict:
    """What a catalogue translates: (context, msgid, plural) to its translation(s), fuzzy entries left out."""
    found = {}
    for entry in catalogue:
        if entry.obsolete or "fuzzy" in entry.flags or not entry.msgid:
            continue
        key = (entry.msgctxt, entry.msgid, entry.msgid_plural)
        found[key] = tuple(sorted(entry.msgstr_plural.items())) if entry.msgid_plural else entry.msgstr
    return found


def stale_catalogues() -> list[Path]:
    """The .po files whose .mo is missing or says something else."""
    stale = []
    for po_path in catalogues():
        mo_path = po_path.with_suffix(".mo")
        if not mo_path.exists() or translations(polib.mofile(str(mo_path))) != translations(polib.pofile(str(po_path))):
            stale.append(po_path)
    return stale


class Command(BaseCommand):
    help = "Compile the .po translation catalogues into .mo files (no GNU gettext needed)."

    def add_arguments(self, parser):
        parser.add_argument("--check", action="store_true", help="Only check that every .mo is up to date.")

    def handle(self, *args, check: bool = False, **options):
        if check:
            stale = stale_catalogues()
            if stale:
                raise CommandError("Out of date (run `manage.py compile_translations`): " + ", ".join(map(str, stale)))
            self.stdout.write("Every .mo file is up to date.")
            return
        for po_path in catalogues():
            polib.pofile(str(po_path)).save_as_mofile(str(po_path.with_suffix(".mo")))
            if options["verbosity"] > 0:
                self.stdout.write(f"Compiled {po_path.with_suffix('.mo')}")
