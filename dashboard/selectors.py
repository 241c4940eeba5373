"""
What the dashboard shows, panel by panel, for one staff member: each panel only with the
permission it needs. The heavy figures come from the Figures table (one query for all of
them); the rest are small indexed reads, so the page asks a fixed number of queries whatever
the size of the tables.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db.models import Count, F, Q
from django.utils import timezone

from common import health
from marketing.readiness import sender_readiness
from privacy.models import PrivacyRequest, RecipientNotification, RetentionRun

from . import charts
from .models import Figures, Heartbeat

# Who sees which panel: any one of the permissions is enough. Marketing staff see aggregate
# counts only: no panel lists a customer for anyone.
PANEL_PERMISSIONS = {
    "consent": ["consents.view_purpose", "consents.view_consent"],
    "campaigns": ["marketing.view_campaign"],
    "privacy": ["privacy.view_privacyrequest", "privacy.view_recipientnotification"],
    "health": ["intake.view_webhookevent", "privacy.view_retentionrun", "marketing.view_suppression"],
}

OPEN_REQUESTS_SHOWN = 15

logger = logging.getLogger(__name__)


def panels_for(user: User) -> set[str]:
    return {name for name, perms in PANEL_PERMISSIONS.items() if any(user.has_perm(p) for p in perms)}


@dataclass
class Panel:
    name: str
    title: str
    computed_at: datetime | None = None
    charts: list[charts.Chart] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)


def _week_label(iso_day: str) -> str:
    return datetime.fromisoformat(iso_day).strftime("%d %b %y")


def consent_charts(data: dict[str, Any]) -> list[charts.Chart]:
    """The consent panel's charts, drawn when the figures are refreshed (drawing is most of the cost)."""
    purposes = data["purposes"]
    drawn = [
        charts.bar_chart(
            "Current consent per purpose",
            labels=[p["name"] for p in purposes],
            series={
                "Granted": [p["granted"] for p in purposes],
                "Withdrawn": [p["withdrawn"] for p in purposes],
                "Never asked": [p["never_asked"] for p in purposes],
            },
            stacked=True,
            horizontal=True,
            label_header="Purpose",
            height=90 + 45 * len(purposes),
        )
    ]
    labels = [_week_label(week) for week in data["weeks"]]
    for purpose in purposes:
        drawn.append(
            charts.line_chart(
                f"{purpose['name']}: grants and withdrawals per week, last 52 weeks",
                labels=labels,
                series={"Grants": purpose["grants_per_week"], "Withdrawals": purpose["withdrawals_per_week"]},
                label_header="Week starting",
                major_every=4,
                height=260,
            )
        )
    return drawn


def suppression_charts(data: dict[str, Any]) -> list[charts.Chart]:
    labels = [_week_label(week) for week in data["weeks"]]
    return [
        charts.line_chart(
            "Suppressed addresses, running total per week, last 52 weeks",
            labels=labels,
            series={"Suppressed addresses": data["total"]},
            label_header="Week starting",
            major_every=4,
            height=240,
        )
    ]


# Charts drawn with each refresh of the figures, by figures name.
CHARTS = {"consent": consent_charts, "suppression": suppression_charts}


def stored_charts(figures: Figures) -> list[charts.Chart]:
    return [charts.Chart.from_json(chart) for chart in figures.data.get("charts", [])]


def consent_panel(figures: Figures | None) -> Panel:
    panel = Panel("consent", "Consent per purpose", computed_at=figures.computed_at if figures else None)
    if figures is None:
        return panel
    data = figures.data
    purposes = data["purposes"]
    panel.charts = stored_charts(figures)
    sources = data["sources"]
    panel.data["sources"] = {
        "headers": ["Purpose", *(s["name"] for s in sources)],
        "rows": [
            [
                purpose["name"],
                *(
                    (purpose["by_source"][s["code"]]["granted"], purpose["by_source"][s["code"]]["withdrawn"])
                    for s in sources
                ),
            ]
            for purpose in purposes
        ],
    }
    panel.data["customers"] = data["customers"]
    return panel


def _rate(part: int | None, total: int) -> str:
    if part is None:
        return "—"
    if not total:
        return "0"
    return f"{part:,} ({100 * part / total:.1f}%)"


def campaigns_panel(figures: Figures | None, sending: Figures | None) -> Panel:
    panel = Panel("campaigns", "Campaigns", computed_at=figures.computed_at if figures else None)
    rows = figures.data["campaigns"] if figures else []
    panel.data["recent"] = [
        {
            **row,
            "dispatched_at": datetime.fromisoformat(row["dispatched_at"]),
            "rates": [
                _rate(row[k], row["total"])
                for k in ("sent", "skipped", "failed", "bounced", "complained", "unsubscribed")
            ],
        }
        for row in rows
    ]
    # What is sending now: counted by beat every DASHBOARD_PROGRESS_SECONDS (services.sending_figures).
    progress = sending.data["campaigns"] if sending else []
    panel.data["sending_counted_at"] = sending.computed_at if sending else None
    panel.data["sending"] = progress
    return panel


def privacy_panel(user: User, now: datetime) -> Panel:
    panel = Panel("privacy", "Privacy requests")
    if user.has_perm("privacy.view_privacyrequest"):
        open_requests = list(
            PrivacyRequest.objects.open()
            .with_answer_by()
            # F and Q, not keywords: the type checker knows the model's fields, not this annotation.
            .order_by(F("deadline").asc(), "id")
            .only("id", "kind", "channel", "received_at", "due_at", "extended_due_at")[:OPEN_REQUESTS_SHOWN]
        )
        counts = (
            PrivacyRequest.objects.open()
            .with_answer_by()
            .aggregate(open=Count("id"), overdue=Count("id", filter=Q(deadline__lt=now)))
        )
        panel.data["requests"] = [
            {"request": r, "overdue": r.answer_by < now, "days_left": (r.answer_by - now).days} for r in open_requests
        ]
        panel.data["open_count"] = counts["open"]
        panel.data["overdue_count"] = counts["overdue"]
    if user.has_perm("privacy.view_recipientnotification"):
        panel.data["to_notify"] = RecipientNotification.objects.filter(notified_at=None).count()
    return panel


def readiness() -> list[tuple[str, bool, str]]:
    """
    The sender readiness list of `check_sender` (marketing.readiness), without its audit of every
    message of the last 30 days against the ledger: that one is for the command, not for a page
    shown on every visit. A warning shows as good with its detail; a failure as bad.
    """
    try:
        return [(check.title, check.passed, check.detail) for check in sender_readiness(audit_withdrawals=False)]
    except Exception:  # the dashboard must open even when a check is broken
        logger.exception("The sender readiness list could not be read")
        return [("The sender readiness list could not be read (see the log)", False, "")]


def health_panel(user: User, figures: Figures | None, now: datetime) -> Panel:
    panel = Panel("health", "Health", computed_at=figures.computed_at if figures else None)
    # Apps beside this one (intake) contribute their items through common.health.
    panel.data["items"] = health.items_for(user)
    if user.has_perm("marketing.view_suppression") and figures is not None:
        data = figures.data
        panel.charts = stored_charts(figures)
        panel.data["suppression_added"] = {
            "headers": ["Reason", "Added in the last 52 weeks"],
            "rows": [[reason, sum(values)] for reason, values in data["added_by_reason"].items()],
        }
    if user.has_perm("privacy.view_retentionrun"):
        panel.data["retention"] = RetentionRun.objects.order_by("-started_at", "-id").first()
        panel.data["retention_shown"] = True
    stale = timedelta(seconds=settings.DASHBOARD_HEARTBEAT_STALE_SECONDS)
    beats = list(Heartbeat.objects.order_by("name"))
    panel.data["heartbeats"] = [
        {"name": beat.name, "last_seen": beat.last_seen, "stale": now - beat.last_seen > stale} for beat in beats
    ]
    names = {beat.name for beat in beats}
    panel.data["beat_missing"] = "beat" not in names
    panel.data["worker_missing"] = not any(name.startswith("worker:") for name in names)
    panel.data["readiness"] = readiness()
    return panel


def dashboard(user: User, *, now: datetime | None = None) -> list[Panel]:
    """The panels this staff member may see, in page order."""
    now = now or timezone.now()
    allowed = panels_for(user)
    if not allowed:
        return []
    figures = {f.name: f for f in Figures.objects.all()}
    panels = []
    if "consent" in allowed:
        panels.append(consent_panel(figures.get("consent")))
    if "campaigns" in allowed:
        panels.append(campaigns_panel(figures.get("campaigns"), figures.get("sending")))
    if "privacy" in allowed:
        panels.append(privacy_panel(user, now))
    if "health" in allowed:
        panels.append(health_panel(user, figures.get("suppression"), now))
    return panels
