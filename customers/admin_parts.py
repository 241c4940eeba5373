"""
What other apps add to the customer's admin page.

The customer admin is built once, here in `customers`; apps above it (consents, privacy,
marketing) know things about a customer that this app must not import. Each registers one
`CustomerAdminPart` from its own admin module, and the customer admin reads the registry on
every request, so the order in which apps load does not matter.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from django.contrib.admin import ModelAdmin
    from django.contrib.admin.options import InlineModelAdmin
    from django.http import HttpRequest
    from django.urls import URLPattern

    from .models import Customer


@dataclass(frozen=True)
class Panel:
    """
    A read-only block of the customer's page, in a fieldset of its own placed after the
    fieldset titled `after` (None: after the first one). `render(customer)` returns the HTML;
    it is called with None on the add page.
    """

    title: str
    render: Callable[[Customer | None], Any]
    after: str | None = None


@dataclass(frozen=True)
class Link:
    """
    A button above the customer's page; `url(request, customer)` returns None to hide it.
    `label` is a text or, for a button that shows a number, `label(request, customer)`.
    Dangerous buttons (erasure) come last, in the admin's red.
    """

    label: str | Callable[[HttpRequest, Customer], str]
    url: Callable[[HttpRequest, Customer], str | None]
    dangerous: bool = False


@dataclass(frozen=True)
class CustomerAdminPart:
    """
    One app's share of the customer admin: panels and inlines on the customer's page, buttons
    above it, filters and actions on the list, and URLs (views under the customer's admin
    URLs, built with the customer admin so they can use its permissions and messages).
    """

    app: str
    panels: Sequence[Panel] = ()
    inlines: Sequence[type[InlineModelAdmin]] = ()
    links: Sequence[Link] = ()
    actions: Sequence[Callable] = ()
    list_filters: Callable[[HttpRequest], Sequence[Any]] | None = None
    urls: Callable[[ModelAdmin], list[URLPattern]] | None = None


_parts: dict[str, CustomerAdminPart] = {}


def register(part: CustomerAdminPart) -> None:
    """Register (or replace, on a reload) an app's part of the customer admin."""
    _parts[part.app] = part


def parts() -> list[CustomerAdminPart]:
    """The registered parts, in the order the apps registered them."""
    return list(_parts.values())
