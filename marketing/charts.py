"""
The campaign report's charts: SVG drawn on the server by pygal and put in the page as it is.
pygal always writes a <script> with its tooltip settings; the CSP allows no inline script, so
the script is taken out of the tree before it is written. Each chart comes with its figures as a
table (the page shows it under the chart, for screen readers and for anyone who wants numbers).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pygal
from django.utils.safestring import SafeString, mark_safe
from pygal.etree import etree
from pygal.style import Style

from .models import Delivery
from .selectors import CampaignReport

STYLE = Style(
    background="transparent",
    plot_background="transparent",
    foreground="#333",
    foreground_strong="#333",
    foreground_subtle="#666",
    # Sent, then one-click, link, provider unsubscribes, bounces, complaints: distinct for the
    # common colour-vision deficiencies (Okabe-Ito palette).
    colors=("#0072B2", "#E69F00", "#56B4E9", "#009E73", "#D55E00", "#CC79A7"),
    font_family="system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif",
    label_font_size=12,
    major_label_font_size=12,
    legend_font_size=13,
    title_font_size=15,
)


@dataclass(frozen=True)
class Chart:
    title: str
    svg: SafeString
    headers: list[str]
    rows: list[list[str | int]]


def _svg(chart) -> SafeString:
    tree = chart.render_tree()
    for parent in tree.iter():
        for child in list(parent):
            if isinstance(child.tag, str) and child.tag.rsplit("}", 1)[-1] == "script":
                parent.remove(child)
    # pygal's etree is lxml's when lxml is installed, else the standard library's: same call.
    svg = etree.tostring(tree, encoding="unicode")
    return mark_safe(svg)  # noqa: S308 (pygal escapes every label and value it draws; no input of ours is HTML)


def integer_ticks(highest: int, *, most: int = 8) -> list[int]:
    """Whole-number y-axis ticks (counts of messages have no fractions): 1, 2 or 5 times a power of ten apart."""
    highest = max(1, highest)
    step = 1
    while highest / step > most:
        for factor in (2, 5, 10):
            if highest / (step * factor) <= most or factor == 10:
                step *= factor
                break
    return list(range(0, highest + step, step)) if highest % step else list(range(0, highest + 1, step))


def _label(start: datetime, interval: str) -> str:
    return f"{start:%d %b %H:%M}" if interval == "hour" else f"{start:%d %b}"


def _config(title: str, labels: list[str], **options):
    return {
        "title": title,
        "x_labels": labels,
        "style": STYLE,
        "js": [],
        "disable_xml_declaration": True,
        "legend_at_bottom": True,
        "legend_at_bottom_columns": 3,
        "height": 340,
        "width": 820,
        "x_label_rotation": 30 if len(labels) > 8 else 0,
        "show_minor_x_labels": len(labels) <= 24,
        "x_labels_major_every": max(1, len(labels) // 12),
        "truncate_legend": -1,
        "min_scale": 1,
        "max_scale": 6,
        "value_formatter": lambda value: f"{value:.0f}",
        "print_zeroes": False,
        "no_data_text": "Nothing yet",
        **options,
    }


def report_charts(report: CampaignReport) -> list[Chart]:
    """Messages sent per hour or day, and the responses (unsubscribes, bounces, complaints) per hour or day."""
    per = "hour (UTC)" if report.interval == "hour" else "day (UTC)"
    labels = [_label(b.start, report.interval) for b in report.series]
    most_sent = max((b.sent for b in report.series), default=0)
    most_responses = max((b.unsubscribed + b.bounced + b.complained for b in report.series), default=0)
    sent = pygal.Bar(
        **_config(f"Messages sent per {per}", labels, show_legend=False, y_labels=integer_ticks(most_sent))
    )
    sent.add("Sent", [b.sent for b in report.series])
    responses = pygal.StackedBar(
        **_config(f"Unsubscribes, bounces and complaints per {per}", labels, y_labels=integer_ticks(most_responses))
    )
    responses.style = Style(**{**STYLE.to_dict(), "colors": STYLE.colors[1:]})
    responses.add("Unsubscribed", [b.unsubscribed for b in report.series])
    responses.add("Bounced", [b.bounced for b in report.series])
    responses.add("Complained", [b.complained for b in report.series])
    starts = [
        f"{b.start:%Y-%m-%d %H:%M}" if report.interval == "hour" else f"{b.start:%Y-%m-%d}" for b in report.series
    ]
    return [
        Chart(
            title=f"Messages sent per {per}",
            svg=_svg(sent),
            headers=[report.interval.capitalize(), "Sent"],
            rows=[[start, b.sent] for start, b in zip(starts, report.series, strict=True)],
        ),
        Chart(
            title=f"Unsubscribes, bounces and complaints per {per}",
            svg=_svg(responses),
            headers=[report.interval.capitalize(), "Unsubscribed", "Bounced", "Complained"],
            rows=[
                [start, b.unsubscribed, b.bounced, b.complained] for start, b in zip(starts, report.series, strict=True)
            ],
        ),
    ]


@dataclass(frozen=True)
class Figure:
    key: str
    label: str
    count: int
    rate: str  # "12.5%", or a dash when there is nothing to divide by
    basis: str  # "deliveries" (the outcomes) or "sent" (the responses to the messages sent)
    indent: bool = False


def _percent(value: float, denominator: int) -> str:
    if not denominator:
        return "–"
    return f"{value:.1%}" if value >= 0.01 or value == 0 else f"{value:.2%}"


def report_figures(report: CampaignReport) -> list[Figure]:
    """The report's figures as the page's table lists them: the outcomes, then the responses."""
    rates = report.rates
    deliveries = "deliveries"
    sent = "sent"
    skip_labels = dict(Delivery.SkipReason.choices)
    figures = [
        Figure("sent", "Sent", report.sent, _percent(rates["sent"], report.total), deliveries),
        Figure("skipped", "Skipped", report.skipped_total, _percent(rates["skipped"], report.total), deliveries),
    ]
    figures += [
        Figure(
            f"skipped_{reason}", skip_labels[reason], n, _percent(report.of_total(n), report.total), deliveries, True
        )
        for reason, n in report.skipped.items()
        if n
    ]
    figures += [
        Figure("failed", "Failed", report.failed, _percent(rates["failed"], report.total), deliveries),
        Figure("unknown", "Unknown", report.unknown, _percent(rates["unknown"], report.total), deliveries),
        Figure("bounced", "Bounced (hard)", report.bounced, _percent(rates["bounced"], report.sent), sent),
        Figure("complained", "Complained (spam)", report.complained, _percent(rates["complained"], report.sent), sent),
        Figure(
            "unsubscribed",
            "Unsubscribed from this campaign",
            report.unsubscribed_total,
            _percent(rates["unsubscribed"], report.sent),
            sent,
        ),
    ]
    labels = {"one_click": "one-click (mail client)", "link": "link in the message", "provider": "at the mail provider"}
    figures += [
        Figure(f"unsubscribed_{name}", labels[name], n, _percent(report.of_sent(n), report.sent), sent, True)
        for name, n in report.unsubscribed.items()
    ]
    if report.queued or report.sending:
        figures.append(Figure("pending", "Still queued or sending", report.queued + report.sending, "–", deliveries))
    return figures
