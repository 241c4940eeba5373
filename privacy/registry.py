"""
What the system holds about one customer is spread over the apps, yet the data export and
the erasure must see all of it. Each app registers ONE part here, from its
AppConfig.ready(): an object that both exports and erases that app's personal data (as
pretix's data shredders do). The export and the erasure walk the registry, so `privacy`
never imports an app above it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any


class PersonalDataPart:
    """
    One app's part of a customer's data. `personal_fields` names, per export section, the
    keys that carry personal data: the export shows them and the erasure clears them (a
    test holds every part to that).
    """

    name: str = ""
    personal_fields: Mapping[str, tuple[str, ...]] = {}

    def export(self, customer: Any) -> dict[str, Any]:
        """JSON-serialisable data, one entry per section named in `personal_fields` (and any others)."""
        raise NotImplementedError

    def erase(self, customer: Any) -> dict[str, int] | None:
        """
        Redact this part's personal data of the customer; returns counts kept in the erasure's
        summary. Parts run before the customer's own record is blanked, so they still see
        the address and the correction history.
        """
        raise NotImplementedError

    def recipients(self, customer: Any) -> Iterable[int]:
        """Ids of the third parties this part sent the customer's data to (GDPR Art. 19)."""
        return ()

    def retention(self, cutoff: datetime) -> int | None:
        """Clear log data (IP addresses, user agents) recorded before `cutoff`; returns rows changed."""
        return None


_parts: dict[str, PersonalDataPart] = {}


def register(part: PersonalDataPart) -> None:
    if not part.name:
        raise ValueError("A personal-data part needs a name.")
    _parts[part.name] = part


def parts() -> list[PersonalDataPart]:
    return list(_parts.values())
