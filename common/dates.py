"""Dates as the exports write them."""

from __future__ import annotations

from datetime import date


def iso(value: date | None) -> str | None:
    """ISO 8601, or None for a missing date (exports write `null`, never an empty string)."""
    return value.isoformat() if value is not None else None
