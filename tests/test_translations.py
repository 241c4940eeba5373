"""
Every customer-facing string has a German and a French translation, and the compiled .mo
files say what the .po files say. The strings are read from the templates with Django's own
template parser and from the Python sources with `ast`, so the check needs no GNU gettext.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import polib
import pytest
from django.conf import settings
from django.template import engines
from django.template.backends.django import DjangoTemplates
from django.template.base import Node
from django.templatetags.i18n import BlockTranslateNode, TranslateNode

from common.management.commands.compile_translations import stale_catalogues

BASE = Path(settings.BASE_DIR)
COMPLETE = [code for code in settings.CUSTOMER_LANGUAGES if code != settings.LANGUAGE_CODE]
# Staff pages stay in Django admin's own translations (issue 16); the rest is customer-facing.
CUSTOMER_TEMPLATES = sorted(
    path for path in (BASE / "templates").rglob("*") if path.suffix in {".html", ".txt"} and "admin" not in path.parts
)
# The customer pages rendered by Jinja2 (config/jinja2.py), read with Jinja2's own extraction.
JINJA_TEMPLATES = sorted(path for path in (BASE / "jinja_templates").rglob("*.html"))
# The Python modules whose marked strings customers see: forms, messages, subjects, link errors.
CUSTOMER_SOURCES = [
    BASE / name
    for name in (
        "common/tokens.py",
        "consents/forms.py",
        "consents/preferences.py",
        "consents/tokens.py",
        "consents/views.py",
        "intake/forms.py",
        "intake/signups.py",
        "intake/views.py",
        "marketing/tokens.py",
        "marketing/views.py",
    )
]
GETTEXT_NAMES = {"_", "gettext", "gettext_lazy", "ngettext", "ngettext_lazy", "pgettext", "pgettext_lazy"}
PLACEHOLDER = re.compile(r"%\((\w+)\)[sd]")


def _catalogue(language: str) -> polib.POFile:
    return polib.pofile(str(BASE / "locale" / language / "LC_MESSAGES" / "django.po"))


def _template_strings(path: Path) -> set[str]:
    backend = engines["django"]
    assert isinstance(backend, DjangoTemplates)
    template = backend.engine.from_string(path.read_text())
    found: set[str] = set()

    def walk(nodes) -> None:
        for node in nodes:
            if isinstance(node, TranslateNode):
                if node.filter_expression.var.literal is not None:
                    found.add(str(node.filter_expression.var.literal))
            elif isinstance(node, BlockTranslateNode):
                found.add(node.render_token_list(node.singular)[0])
                if node.plural:
                    found.add(node.render_token_list(node.plural)[0])
            for attribute in getattr(node, "child_nodelists", ()):
                walk(getattr(node, attribute, None) or [])
            if isinstance(node, Node) and hasattr(node, "nodelist") and "nodelist" not in node.child_nodelists:
                walk(node.nodelist)

    walk(template.nodelist)
    return found


def _template_strings_trimmed(path: Path) -> set[str]:
    # {% blocktranslate trimmed %} joins its lines with single spaces, as makemessages does.
    return {" ".join(line.strip() for line in text.strip().splitlines()) for text in _template_strings(path)}


def _jinja_strings(path: Path) -> set[str]:
    environment = engines["jinja2"].env  # type: ignore[attr-defined]
    found: set[str] = set()
    for _line, _function, message in environment.extract_translations(path.read_text()):
        found.update(text for text in (message if isinstance(message, tuple) else (message,)) if text)
    return found


def _python_strings(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in GETTEXT_NAMES:
            for argument in node.args[:2]:
                if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
                    found.add(argument.value)
    return found


def customer_strings() -> dict[str, str]:
    """Every marked customer-facing string, with where it was found."""
    strings: dict[str, str] = {}
    for path in CUSTOMER_TEMPLATES:
        for text in _template_strings_trimmed(path):
            strings.setdefault(text, str(path.relative_to(BASE)))
    for path in JINJA_TEMPLATES:
        for text in _jinja_strings(path):
            strings.setdefault(text, str(path.relative_to(BASE)))
    for path in CUSTOMER_SOURCES:
        for text in _python_strings(path):
            strings.setdefault(text, str(path.relative_to(BASE)))
    return strings


def test_the_customer_pages_and_mails_have_strings_to_translate():
    strings = customer_strings()
    # The check would pass vacuously if the extraction found nothing.
    assert "Your preferences" in strings
    assert "Unsubscribe from %(name)s" in strings
    assert "Your link to your %(company)s email preferences" in strings
    assert "Do not share this page's address: anyone with it can change your choices." in strings  # jinja_templates/
    assert len(strings) > 200


@pytest.mark.parametrize("language", COMPLETE)
def test_every_customer_facing_string_is_translated(language):
    entries = [entry for entry in _catalogue(language) if not entry.obsolete]
    translated = {entry.msgid for entry in entries} | {entry.msgid_plural for entry in entries if entry.msgid_plural}
    missing = sorted(f"{where}: {text!r}" for text, where in customer_strings().items() if text not in translated)
    assert not missing, f"Not in locale/{language}/LC_MESSAGES/django.po (run makemessages):\n" + "\n".join(missing)


@pytest.mark.parametrize("language", COMPLETE)
def test_no_translation_is_empty_fuzzy_or_loses_a_placeholder(language):
    problems = []
    for entry in _catalogue(language):
        if entry.obsolete:
            continue
        texts = list(entry.msgstr_plural.values()) if entry.msgid_plural else [entry.msgstr]
        if "fuzzy" in entry.flags:
            problems.append(f"fuzzy: {entry.msgid!r}")
        for text in texts:
            if not text.strip():
                problems.append(f"empty: {entry.msgid!r}")
            elif set(PLACEHOLDER.findall(text)) != set(PLACEHOLDER.findall(entry.msgid)):
                problems.append(f"placeholders differ: {entry.msgid!r} -> {text!r}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("language", COMPLETE)
def test_translations_are_not_the_english_left_in_place(language):
    # A few words are the same in both languages ("Name", "Adresse", "Version ..."); whole
    # sentences are not.
    same = [e.msgid for e in _catalogue(language) if not e.msgid_plural and e.msgstr == e.msgid and len(e.msgid) > 12]
    assert not same


def test_the_compiled_mo_files_are_up_to_date():
    assert stale_catalogues() == []


def test_makemessages_hands_xgettext_the_strings_of_the_jinja_templates(tmp_path):
    from common.management.commands.makemessages import jinja_as_python

    # given: the preference page's Jinja2 source
    template = BASE / "jinja_templates" / "consents" / "preferences.html"
    source = template.read_text()
    # when: the project's makemessages turns it into what xgettext reads
    python = jinja_as_python(source)
    # then: every string is a gettext call, on the line of the template it is on
    lines = python.split("\n")
    assert len(lines) == len(source.split("\n"))
    line = next(number for number, text in enumerate(source.split("\n")) if '_("Save my choices")' in text)
    assert "gettext('Save my choices')" in lines[line]
    (tmp_path / "strings.py").write_text(python)
    assert _python_strings(tmp_path / "strings.py") == _jinja_strings(template)
