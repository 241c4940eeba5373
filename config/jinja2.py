"""
The Jinja2 environment of the customer pages that are rendered for every email's readers
(jinja_templates/: the preference page). Django's template engine spent about 40% of that page's time
walking its nodes (docs/benchmarks.md); Jinja2 compiles a template to Python once.

What the templates get, as Django's templates have it: gettext and ngettext from Django's
translations (the same catalogues; `{% trans trimmed %}` gives the msgids `{% blocktranslate
trimmed %}` gives), `url()`, `static()`, the `date` filter with Django's formats, and the
context processors of the Django engine (settings.TEMPLATES), so `request`, `messages`,
`csrf_input`, COMPANY_NAME and the language switch's values are there.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.templatetags.static import static
from django.urls import reverse
from django.utils import formats, timezone
from django.utils.translation import gettext, ngettext
from jinja2 import Environment


def url(name: str, *args: Any) -> str:
    return reverse(name, args=args)


def date(value: Any, format_name: str = "DATE_FORMAT") -> str:
    """Django's `date` filter (in the current time zone) for a format name of the active language; "" for none."""
    if not value:
        return ""
    if isinstance(value, datetime) and timezone.is_aware(value):
        value = timezone.localtime(value)
    return formats.date_format(value, format_name)


def environment(**options: Any) -> Environment:
    options.setdefault("extensions", ["jinja2.ext.i18n"])
    options["autoescape"] = True  # whatever the settings say: these are HTML pages
    env = Environment(**options)  # noqa: S701 (autoescape is set just above)
    env.policies["ext.i18n.trimmed"] = True  # as {% blocktranslate trimmed %}
    env.install_gettext_callables(gettext, ngettext, newstyle=True)  # type: ignore[attr-defined]
    env.globals.update(url=url, static=static)
    env.filters["date"] = date
    return env
