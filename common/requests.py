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
