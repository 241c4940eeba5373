"""
Internal analysis of purchasing trends: product registrations of customers currently
consenting to `internal_analysis` (and not erased), counted per product and month, by
country, by reseller and currency, and refunds within the money-back window. A figure that
describes fewer than ANALYSIS_MIN_CELL customers is suppressed (shown as "<N", left out of
the chart and the CSV), so no figure singles out a person; no totals are shown, so a
suppressed figure cannot be worked out from the others.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from django.conf import settings
from django.db.models import Count, DurationField, ExpressionWrapper, F, Value
from django.db.models.functions import Coalesce, NullIf, TruncMonth
from django.utils import timezone

from consents.selectors import customers_consenting_to
from customers.models import Customer, ProductRegistration

PURPOSE = "internal_analysis"


@dataclass
class Cell:
    registrations: int
    customers: int
    suppressed: bool

    @property
    def value(self) -> int | None:
        """The figure a chart or a CSV may show: None when suppressed."""
        return None if self.suppressed else self.registrations


@dataclass
class Table:
    """Rows by columns of cells; a missing cell is zero registrations of zero customers."""

    key: str
    title: str
    row_header: str
    rows: list[str]
    columns: list[str]
    cells: dict[tuple[str, str], Cell] = field(default_factory=dict)

    def cell(self, row: str, column: str) -> Cell:
        return self.cells.get((row, column), Cell(0, 0, False))

    def series(self) -> dict[str, list[int | None]]:
        return {column: [self.cell(row, column).value for row in self.rows] for column in self.columns}


def minimum_cell() -> int:
    return settings.ANALYSIS_MIN_CELL


def _cell(registrations: int, customers: int) -> Cell:
    return Cell(registrations, customers, 0 < customers < minimum_cell())


def months(today: date, count: int) -> list[date]:
    first = today.replace(day=1)
    result = []
    for _ in range(count):
        result.append(first)
        first = (first - timedelta(days=1)).replace(day=1)
    return list(reversed(result))


def _month_key(moment) -> str:
    if isinstance(moment, datetime):
        moment = timezone.localtime(moment) if timezone.is_aware(moment) else moment
    return f"{moment:%Y-%m}"


def registrations(*, now: datetime | None = None):
    """Registrations in the period, of customers consenting now to internal analysis."""
    now = now or timezone.now()
    start = months(timezone.localdate(now), settings.ANALYSIS_MONTHS)[0]
    consenting = customers_consenting_to(PURPOSE, customers=Customer.objects.not_erased()).values("pk")
    return ProductRegistration.objects.filter(
        customer__in=consenting,
        purchased_at__gte=timezone.make_aware(datetime.combine(start, datetime.min.time())),
        purchased_at__lte=now,
    )


def analysis_tables(*, now: datetime | None = None) -> list[Table]:
    """The four tables of the page and its CSV: four GROUP BY queries."""
    now = now or timezone.now()
    month_keys = [f"{m:%Y-%m}" for m in months(timezone.localdate(now), settings.ANALYSIS_MONTHS)]
    base = registrations(now=now)
    counted = {"n": Count("id"), "people": Count("customer_id", distinct=True)}

    per_month = Table("per_product_month", "Registrations per product per month", "Month", month_keys, [])
    for row in (
        base.annotate(month=TruncMonth("purchased_at")).values("product__name", "month").annotate(**counted).order_by()
    ):
        per_month.cells[(_month_key(row["month"]), row["product__name"])] = _cell(row["n"], row["people"])
    per_month.columns = sorted({column for _row, column in per_month.cells})

    by_country = Table("by_country", "Registrations by country", "Country", [], ["Registrations"])
    for row in base.values("customer__country").annotate(**counted).order_by():
        country = row["customer__country"] or "unknown"
        by_country.cells[(country, "Registrations")] = _cell(row["n"], row["people"])
    by_country.rows = sorted({row for row, _column in by_country.cells})

    by_reseller = Table("by_reseller_currency", "Registrations by reseller and currency", "Reseller", [], [])
    # The registration's currency, or the customer's preferred one where the reseller sent none.
    paid_in = Coalesce(NullIf("currency", Value("")), NullIf("customer__currency", Value("")), Value("unknown"))
    for row in base.annotate(paid_in=paid_in).values("reseller__name", "paid_in").annotate(**counted).order_by():
        reseller = row["reseller__name"] or "direct"
        by_reseller.cells[(reseller, row["paid_in"])] = _cell(row["n"], row["people"])
    by_reseller.rows = sorted({row for row, _column in by_reseller.cells})
    by_reseller.columns = sorted({column for _row, column in by_reseller.cells})

    refunds = Table(
        "refunds_in_window",
        f"Refunds within the money-back window ({settings.MONEY_BACK_DAYS} days), per product per month of purchase",
        "Month",
        month_keys,
        [],
    )
    window = timedelta(days=settings.MONEY_BACK_DAYS)
    refunded = base.filter(refunded_at__isnull=False).annotate(
        refunded_after=ExpressionWrapper(F("refunded_at") - F("purchased_at"), output_field=DurationField())
    )
    for row in (
        refunded.filter(refunded_after__lte=window)
        .annotate(month=TruncMonth("purchased_at"))
        .values("product__name", "month")
        .annotate(**counted)
        .order_by()
    ):
        refunds.cells[(_month_key(row["month"]), row["product__name"])] = _cell(row["n"], row["people"])
    refunds.columns = sorted({column for _row, column in refunds.cells})
    return [per_month, by_country, by_reseller, refunds]


def analysis_csv(tables: list[Table]) -> str:
    """One CSV of every table: table, row, column, registrations ('' when suppressed), suppressed."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["table", "row", "column", "registrations", "suppressed"])
    for table in tables:
        for row in table.rows:
            for column in table.columns:
                cell = table.cell(row, column)
                writer.writerow(
                    [
                        table.key,
                        row,
                        column,
                        "" if cell.suppressed else cell.registrations,
                        f"fewer than {minimum_cell()} customers" if cell.suppressed else "",
                    ]
                )
    return out.getvalue()
