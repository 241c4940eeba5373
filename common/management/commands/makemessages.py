"""
Django's makemessages, which also reads the Jinja2 templates of jinja_templates/ (the
preference page, config/jinja2.py). Django's own reads every .html file as a Django template
and would find no strings there, so `--no-obsolete` would drop the page's translations. Here
such a file is handed to xgettext as the gettext calls Jinja2's own extraction finds in it,
each on its line, so the catalogue's references point at the template.
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.management.commands import makemessages
from django.template import engines

JINJA_DIR = Path(settings.BASE_DIR) / "jinja_templates"


def jinja_as_python(source: str) -> str:
    """One line per template line; a line with strings holds their gettext/ngettext calls."""
    lines = [""] * len(source.split("\n"))
    environment = engines["jinja2"].env  # type: ignore[attr-defined]
    for line, function, message in environment.extract_translations(source):
        texts = message if isinstance(message, tuple) else (message,)
        arguments = ", ".join(repr(text) for text in texts if isinstance(text, str))
        name = "ngettext" if function == "ngettext" else "gettext"
        lines[line - 1] += f"{name}({arguments}); "
    return "\n".join(lines)


class JinjaAwareBuildFile(makemessages.BuildFile):
    def preprocess(self) -> None:
        path = Path(self.path).resolve()
        if self.domain != "django" or JINJA_DIR not in path.parents:
            super().preprocess()
            return
        Path(self.work_path).write_text(jinja_as_python(path.read_text(encoding="utf-8")), encoding="utf-8")


class Command(makemessages.Command):
    build_file_class = JinjaAwareBuildFile
