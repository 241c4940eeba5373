"""Request types for the type checker."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.http import HttpRequest


class StaffRequest(HttpRequest):
    """
    A request that the admin (or a staff_member_required view) has let in, so its user is a
    signed-in staff user rather than possibly anonymous. Only an annotation: Django builds the
    request as usual.
    """

    user: User


class CustomerLanguageRequest(HttpRequest):
    """
    A request for a page reached through a customer's own link, shown in the customer's preferred
    language: consents.views.in_customer_language and marketing.views.unsubscribe set
    `language_from_customer` (no language switcher on such a page), config.context_processors.site
    reads it. Only an annotation: Django builds the request as usual.
    """

    language_from_customer: bool
