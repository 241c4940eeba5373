"""
Charts as SVG drawn on the server by pygal, put in the page as they are: no script (pygal's
own config script is taken out, so the CSP needs no exception), nothing loaded from another
site. Every chart the templates show is followed by the same figures as a table
(`Chart.table`), for screen readers and for anyone who wants the numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pygal
from django.utils.safestring import SafeString, mark_safe
from pygal.style import Style

STYLE = Style(
    background="transparent",
    plot_background="transparent",
    foreground="#333",
    foreground_strong="#222",
    foreground_subtle="#777",
    font_family="-apple-system, 'Segoe UI', system-ui, Roboto, sans-serif",
    label_font_size=14,
    major_label_font_size=14,
    legend_font_size=15,
    value_font_size=13,
    title_font_size=16,
    # Distinguishable with the common colour-vision deficiencies (Okabe and Ito's palette).
    colors=("#0072B2", "#D55E00", "#999999", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442"),
)


def _strip_scripts(root):
    """pygal always writes a <script> with its tooltip config: the page allows no inline script."""
    for parent in list(root.iter()):
        for child in list(parent):
            if isinstance(child.tag, str) and child.tag.rsplit("}", 1)[-1] == "script":
                parent.remove(child)
    return root


@dataclass
class Chart:
    """A chart and its figures: `svg` for the eye, `headers` and `rows` for the table after it."""

    title: str
    svg: SafeString
    headers: list[str]
    rows: list[list] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"title": self.title, "svg": str(self.svg), "headers": self.headers, "rows": self.rows}

    @classmethod
    def from_json(cls, data: dict) -> Chart:
        # Drawn by this module at refresh time and stored in dashboard.Figures, never from input.
        return cls(data["title"], mark_safe(data["svg"]), data["headers"], data["rows"])  # noqa: S308


def _config(title: str, **options) -> dict:
    if options.pop("empty", False):
        options.pop("y_labels", None)  # pygal cannot place labels on a chart without a series
    return {
        "title": None,  # the page's heading names the chart; the SVG's <title> carries it too
        "style": STYLE,
        "js": [],
        "disable_xml_declaration": True,
        "explicit_size": False,
        "width": options.pop("width", 640),
        "height": options.pop("height", 300),
        "legend_at_bottom": True,
        "legend_box_size": 12,
        "print_values": False,
        "show_minor_x_labels": options.pop("show_minor_x_labels", True),
        "truncate_label": -1,
        "no_data_text": "No data yet",
        **options,
    }


def _render(chart, title: str) -> SafeString:
    chart.add_xml_filter(_strip_scripts)
    svg = chart.render(is_unicode=True)
    # Named for assistive technology; the table below carries the figures themselves.
    svg = svg.replace("<svg ", f'<svg role="img" aria-label="{_attribute(title)}" ', 1)
    return mark_safe(svg)  # noqa: S308 (pygal escapes the labels and values it draws)


def _attribute(text: str) -> str:
    return text.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")


def bar_chart(
    title: str,
    *,
    labels: list[str],
    series: dict[str, list[int | None]],
    stacked: bool = False,
    horizontal: bool = False,
    label_header: str = "",
    height: int = 300,
) -> Chart:
    """Bars per label, one colour per series; None is a value not shown (a suppressed cell)."""
    kind = {
        (False, False): pygal.Bar,
        (True, False): pygal.StackedBar,
        (False, True): pygal.HorizontalBar,
        (True, True): pygal.HorizontalStackedBar,
    }[(stacked, horizontal)]
    chart = kind(
        **_config(
            title,
            height=height,
            x_label_rotation=0 if horizontal else 30,
            y_labels=integer_ticks(series, stacked=stacked),
            empty=not series,
        )
    )
    chart.x_labels = labels
    for name, values in series.items():
        chart.add(name, values)
    return Chart(title, _render(chart, title), [label_header, *series], _rows(labels, series))


def line_chart(
    title: str,
    *,
    labels: list[str],
    series: dict[str, list[int | None]],
    label_header: str = "",
    major_every: int = 1,
    height: int = 300,
) -> Chart:
    chart = pygal.Line(
        **_config(
            title,
            height=height,
            x_label_rotation=30,
            show_minor_x_labels=major_every == 1,
            dots_size=2,
            y_labels=integer_ticks(series),
            empty=not series,
        )
    )
    chart.x_labels = labels
    if major_every > 1:
        chart.x_labels_major = labels[::major_every]
    for name, values in series.items():
        chart.add(name, values)
    return Chart(title, _render(chart, title), [label_header, *series], _rows(labels, series))


def integer_ticks(series: dict[str, list[int | None]], *, stacked: bool = False) -> list[int]:
    """Whole-number axis labels, about five of them: counts of people have no fractions."""
    columns = zip(*series.values(), strict=False) if series else []
    if stacked:
        top = max((sum(v or 0 for v in column) for column in columns), default=0)
    else:
        top = max((v or 0 for values in series.values() for v in values), default=0)
    step = 1
    while top / step > 5:
        for factor in (2, 2.5, 2):
            step = int(step * factor)
            if top / step <= 5:
                break
    return list(range(0, top + step, step)) if top else [0, 1]


def _rows(labels: list[str], series: dict[str, list]) -> list[list]:
    return [[label, *(values[index] for values in series.values())] for index, label in enumerate(labels)]
