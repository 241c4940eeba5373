"""
Campaign templates: placeholders and nothing else.

Staff write `{{ first_name }}` or `{{ first_name|default:"there" }}`. There are no tags,
filters, attribute lookups or includes, so a template can reach nothing but the plain
strings in PLACEHOLDERS: not a model, a method, a setting or another file. A full template
language (Django's, or Jinja2 in a sandbox) would be more to lock down for no gain here.
Anything that looks like template syntax but is not a known placeholder is refused when
the campaign is saved, naming the line.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

PLACEHOLDERS: dict[str, str] = {
    "first_name": "the customer's first name",
    "last_name": "the customer's last name",
    "full_name": "first and last name",
    "company": "business name",
    "job_title": "job title",
    "email": "email address",
    "country": "country name",
}

_PLACEHOLDER = re.compile(
    r"""\{\{\s*(?P<name>[A-Za-z_][A-Za-z0-9_]*)\s*(?:\|\s*default\s*:\s*"(?P<default>[^"{}%\r\n]*)"\s*)?\}\}"""
)
_TEMPLATE_SYNTAX = re.compile(r"\{\{|\{%|\{#")


class TemplateRefused(ValueError):
    """The text uses template syntax beyond the placeholders."""


@dataclass(frozen=True)
class CompiledTemplate:
    # Alternating literal text and (name, default) placeholders.
    parts: tuple[str | tuple[str, str], ...]

    def render(self, values: dict[str, str], *, escape: bool = False) -> str:
        out = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
            else:
                value = values.get(part[0], "") or part[1]
                out.append(html.escape(value) if escape else value)
        return "".join(out)


def _line_of(text: str, position: int) -> int:
    return text.count("\n", 0, position) + 1


def compile_template(text: str) -> CompiledTemplate:
    """Split the text into literals and placeholders; raise TemplateRefused with the first problem."""
    parts: list[str | tuple[str, str]] = []
    position = 0
    for match in _PLACEHOLDER.finditer(text):
        literal = text[position : match.start()]
        _refuse_syntax(text, literal, position)
        name = match.group("name")
        if name not in PLACEHOLDERS:
            raise TemplateRefused(
                f"Line {_line_of(text, match.start())}: unknown placeholder {{{{ {name} }}}}. "
                f"Use one of: {', '.join(PLACEHOLDERS)}."
            )
        if literal:
            parts.append(literal)
        parts.append((name, match.group("default") or ""))
        position = match.end()
    tail = text[position:]
    _refuse_syntax(text, tail, position)
    if tail:
        parts.append(tail)
    return CompiledTemplate(parts=tuple(parts))


def _refuse_syntax(text: str, literal: str, offset: int) -> None:
    found = _TEMPLATE_SYNTAX.search(literal)
    if found is None:
        return
    start = offset + found.start()
    snippet = text[start : start + 40].split("\n", 1)[0]
    raise TemplateRefused(
        f"Line {_line_of(text, start)}: “{snippet}” is not allowed. Templates may only use placeholders "
        f'such as {{{{ first_name }}}} or {{{{ first_name|default:"there" }}}} '
        f"(available: {', '.join(PLACEHOLDERS)})."
    )


def check_template(text: str) -> None:
    compile_template(text)
