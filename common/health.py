"""
What the dashboard's health panel shows about apps it must not import (intake sits beside it):
each app registers a function from its AppConfig.ready() that returns its items for one staff
member (an empty list when they may not see them).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class HealthItem:
    section: str
    label: str
    count: int
    url: str = ""
    bad: bool = False


HealthSource = Callable[[object], list[HealthItem]]
_sources: dict[str, HealthSource] = {}


def register(name: str, source: HealthSource) -> None:
    """Register (or replace, on a reload) one app's health items."""
    _sources[name] = source


def items_for(user: object) -> list[HealthItem]:
    """Every registered app's items for this user, in the order the apps registered."""
    return [item for source in _sources.values() for item in source(user)]
