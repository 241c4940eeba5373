"""
What the system holds about one customer is spread over several apps, yet the data
export and the erasure must see all of it. Each app registers its part here from its
AppConfig.ready(); the export and the erasure walk the registry, so `customers` never
imports an app above it.
"""

from collections.abc import Callable
from typing import Any

ExportSection = Callable[[Any], Any]
# An eraser may return a count (or a dict of counts): it is kept in the erasure's summary.
Eraser = Callable[[Any], Any]

_export_sections: dict[str, ExportSection] = {}
_erasers: dict[str, Eraser] = {}


def register_export_section(name: str, build: ExportSection) -> None:
    """`build(customer)` returns JSON-serialisable data stored under `name` in the export."""
    _export_sections[name] = build


def register_eraser(name: str, erase: Eraser) -> None:
    """
    `erase(customer)` redacts that app's personal data for the customer. Erasers run before
    the customer's own fields are blanked, so they still see the address.
    """
    _erasers[name] = erase


def export_sections() -> dict[str, ExportSection]:
    return dict(_export_sections)


def erasers() -> dict[str, Eraser]:
    return dict(_erasers)


DemoLoader = Callable[[list[Any]], None]
_demo_loaders: dict[str, DemoLoader] = {}


def register_demo_loader(name: str, load: DemoLoader) -> None:
    """`load(customers)` adds that app's demo data for the freshly created demo customers."""
    _demo_loaders[name] = load


def demo_loaders() -> dict[str, DemoLoader]:
    return dict(_demo_loaders)


# Retention: each step clears personal data recorded before a cut-off and returns a count.
RetentionStep = Callable[[Any], int]
_retention_steps: dict[str, RetentionStep] = {}


def register_retention_step(name: str, step: RetentionStep) -> None:
    """`step(cutoff)` clears log data (IP addresses, user agents) older than `cutoff`; returns rows changed."""
    _retention_steps[name] = step


def retention_steps() -> dict[str, RetentionStep]:
    return dict(_retention_steps)


# GDPR Art. 19: who received a customer's data, and so must hear of a correction or erasure.
Recipients = Callable[[Any], Any]
_recipient_sources: dict[str, Recipients] = {}


def register_recipients(name: str, recipients: Recipients) -> None:
    """`recipients(customer)` returns the ids of the third parties that received the customer's data."""
    _recipient_sources[name] = recipients


def recipient_sources() -> dict[str, Recipients]:
    return dict(_recipient_sources)
