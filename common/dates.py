"""Dates and times as staff read them and as the exports write them."""

from __future__ import annotations

from datetime import date, datetime

from django.utils import timezone


def format_moment(value: datetime | None, empty: str = "–") -> str:
    """
    "1 Jan 2027, 03:39 UTC": day, month name, year and minute, in the site's time zone and
    naming it. A raw datetime (`2027-01-01 03:39:17.560239+00:00`) is what Python prints,
    not what a person reads; the seconds only matter to the ledger, which shows its own.
    """
    if value is None:
        return empty
    local = timezone.localtime(value) if timezone.is_aware(value) else value
    zone = local.tzname() or ""
    return f"{local.day} {local:%b %Y, %H:%M} {zone}".rstrip()


def iso(value: date | None) -> str | None:
    """ISO 8601, or None for a missing date (exports write `null`, never an empty string)."""
    return value.isoformat() if value is not None else None
