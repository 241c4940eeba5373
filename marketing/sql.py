"""
The audience of a campaign as SQL, shared by the dispatcher's INSERT … SELECT, the batch's
claim (which re-checks it per row) and the audience count in admin. Written for both
PostgreSQL and SQLite (3.35+: INSERT … SELECT … ON CONFLICT, UPDATE … RETURNING).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from django.conf import settings
from django.db import connection
from django.utils import timezone

from consents.models import Consent, Purpose
from customers.models import Customer, ProductRegistration, address_hash_key, email_hash, legacy_email_hash

from .models import AudienceSegment, Campaign, Delivery, Suppression

SQLITE_HASH_FUNCTION = "marketing_address_hash"
SQLITE_LEGACY_HASH_FUNCTION = "marketing_address_sha256"


def register_sqlite_functions(sender, connection, **kwargs) -> None:
    """SQLite has no SHA-256: give each connection the same functions Python uses."""
    if connection.vendor == "sqlite":
        connection.connection.create_function(SQLITE_HASH_FUNCTION, 1, _sqlite_hash, deterministic=True)
        connection.connection.create_function(SQLITE_LEGACY_HASH_FUNCTION, 1, _sqlite_legacy_hash, deterministic=True)


def _sqlite_hash(value):
    return None if value is None else email_hash(value)


def _sqlite_legacy_hash(value):
    return None if value is None else legacy_email_hash(value)


def q(name: str) -> str:
    return connection.ops.quote_name(name)


def table(model) -> str:
    return q(model._meta.db_table)


def _hmac_pads() -> tuple[str, str]:
    """The key XOR ipad and XOR opad of HMAC-SHA256 (RFC 2104), hex-encoded."""
    key = address_hash_key().ljust(64, b"\0")
    return bytes(b ^ 0x36 for b in key).hex(), bytes(b ^ 0x5C for b in key).hex()


def address_hash_sql(column: str) -> str:
    """customers.models.email_hash of an address column, computed by the database."""
    if connection.vendor == "postgresql":
        # PostgreSQL has sha256() but no HMAC without pgcrypto: HMAC spelled out.
        inner, outer = _hmac_pads()
        message = f"convert_to(lower(btrim({column})), 'UTF8')"
        return f"encode(sha256(decode('{outer}', 'hex') || sha256(decode('{inner}', 'hex') || {message})), 'hex')"
    return f"{SQLITE_HASH_FUNCTION}({column})"


def legacy_address_hash_sql(column: str) -> str:
    """The plain SHA-256 that suppressions written before the keyed hash hold."""
    if connection.vendor == "postgresql":
        return f"encode(sha256(convert_to(lower(btrim({column})), 'UTF8')), 'hex')"
    return f"{SQLITE_LEGACY_HASH_FUNCTION}({column})"


def consent_granted_sql(customer_column: str) -> str:
    """True while the customer's current consent for the purpose (parameter 1) is granted."""
    return (
        f"EXISTS (SELECT 1 FROM {table(Consent)} k WHERE k.customer_id = {customer_column} "
        f"AND k.purpose_id = %s AND k.granted = %s)"
    )


def not_suppressed_sql(email_column: str) -> str:
    hashes = f"{address_hash_sql(email_column)}, {legacy_address_hash_sql(email_column)}"
    return f"NOT EXISTS (SELECT 1 FROM {table(Suppression)} s WHERE s.address_hash IN ({hashes}))"


# What counts against the frequency cap: messages that went out, or may have (a worker that died
# mid-send). A failed message never arrived; a skipped one was never sent.
CAP_COUNTED_STATUSES = (Delivery.Status.SENT, Delivery.Status.SENDING, Delivery.Status.UNKNOWN)


def frequency_cap() -> tuple[int, timedelta] | None:
    """(messages, window) when MARKETING_MAX_PER_CUSTOMER is set; None when unlimited."""
    limit = getattr(settings, "MARKETING_MAX_PER_CUSTOMER", 0) or 0
    days = getattr(settings, "MARKETING_CAP_DAYS", 0) or 0
    if limit <= 0 or days <= 0:
        return None
    return limit, timedelta(days=days)


def capped_sql(customer_column: str, *, before: str | None = None) -> str:
    """
    True when the customer already has the cap's number of marketing messages in the window
    (parameters: the window's start, the limit). With `before` (a delivery table alias), only
    the messages claimed before that row count: of two claims made at the same instant by two
    campaigns, the earlier one (by claim time, then id) keeps its message. The index on
    (customer, sent_at) finds the customer's few rows.
    """
    statuses = ", ".join(f"'{status}'" for status in CAP_COUNTED_STATUSES)
    earlier = ""
    if before:
        earlier = (
            f" AND (COALESCE(o.claimed_at, o.sent_at) < {before}.claimed_at "
            f"OR (o.claimed_at = {before}.claimed_at AND o.id < {before}.id))"
        )
    return (
        f"(SELECT COUNT(*) FROM {table(Delivery)} o WHERE o.customer_id = {customer_column} "
        f"AND o.status IN ({statuses}) AND COALESCE(o.sent_at, o.claimed_at) >= %s{earlier}) >= %s"
    )


def audience_where(campaign: Campaign) -> tuple[str, list]:
    """WHERE clause over customers `c` for the campaign's audience right now."""
    clauses = [
        f"EXISTS (SELECT 1 FROM {table(Purpose)} p WHERE p.id = %s AND p.is_marketing = %s)",
        "c.erased_at IS NULL",
        consent_granted_sql("c.id"),
        not_suppressed_sql("c.email"),
    ]
    params: list = [campaign.purpose_id, True, campaign.purpose_id, True]
    if campaign.filter_country:
        clauses.append("c.country = %s")
        params.append(str(campaign.filter_country))
    if campaign.filter_language:
        clauses.append("c.language = %s")
        params.append(campaign.filter_language)
    if campaign.filter_product_id:
        clauses.append(
            f"EXISTS (SELECT 1 FROM {table(ProductRegistration)} r WHERE r.customer_id = c.id AND r.product_id = %s)"
        )
        params.append(campaign.filter_product_id)
    if campaign.segment is not None:
        segment_clauses, segment_params = segment_where(campaign.segment, purpose_id=campaign.purpose_id)
        clauses += segment_clauses
        params += segment_params
    return " AND ".join(clauses), params


def segment_where(segment: AudienceSegment, *, purpose_id: int, products: list | None = None) -> tuple[list[str], list]:
    """
    The segment's criteria over customers `c`, for a campaign of the purpose (one query's
    clauses). `products` replaces the segment's own (a form not saved yet has none).
    """
    clauses: list[str] = []
    params: list = []
    if segment.countries:
        clauses.append(f"c.country IN ({', '.join('%s' for _ in segment.countries)})")
        params += [str(code) for code in segment.countries]
    if segment.languages:
        clauses.append(f"c.language IN ({', '.join('%s' for _ in segment.languages)})")
        params += list(segment.languages)
    if products is not None:
        product_ids = sorted(getattr(product, "pk", product) for product in products)
    else:
        product_ids = sorted(segment.products.values_list("pk", flat=True)) if segment.pk else []
    if product_ids or segment.registered_from or segment.registered_until:
        registration = ["r.customer_id = c.id"]
        if product_ids:
            registration.append(f"r.product_id IN ({', '.join('%s' for _ in product_ids)})")
            params += product_ids
        if segment.registered_from:
            registration.append("r.purchased_at >= %s")
            params.append(day_start(segment.registered_from))
        if segment.registered_until:
            registration.append("r.purchased_at < %s")
            params.append(day_start(segment.registered_until + timedelta(days=1)))
        clauses.append(f"EXISTS (SELECT 1 FROM {table(ProductRegistration)} r WHERE {' AND '.join(registration)})")
    if segment.consenting_since:
        clauses.append(
            f"EXISTS (SELECT 1 FROM {table(Consent)} ks WHERE ks.customer_id = c.id AND ks.purpose_id = %s "
            "AND ks.granted = %s AND ks.since < %s)"
        )
        params += [purpose_id, True, day_start(segment.consenting_since + timedelta(days=1))]
    return clauses, params


def day_start(day: date) -> datetime:
    """Midnight at the start of `day` in the site's time zone."""
    return timezone.make_aware(datetime.combine(day, time.min))


def segment_audience_count(segment: AudienceSegment, *, purpose_id: int, products: list | None = None) -> int:
    """Customers a campaign of the purpose for this segment would reach now (one COUNT query)."""
    campaign = Campaign(purpose_id=purpose_id)
    where, params = audience_where(campaign)
    extra, extra_params = segment_where(segment, purpose_id=purpose_id, products=products)
    if extra:
        where = " AND ".join([where, *extra])
        params = [*params, *extra_params]
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT COUNT(*) FROM {table(Customer)} c WHERE {where}", params)
        return cursor.fetchone()[0]


def audience_count(campaign: Campaign) -> int:
    return audience_counts(campaign, now=None)[0]


def audience_counts(campaign: Campaign, *, now) -> tuple[int, int]:
    """
    (customers in the audience now, how many of them the frequency cap would skip now), in one
    query. Without a cap the second is 0 and the query is the plain COUNT.
    """
    where, params = audience_where(campaign)
    cap = frequency_cap()
    with connection.cursor() as cursor:
        if cap is None or now is None:
            cursor.execute(f"SELECT COUNT(*) FROM {table(Customer)} c WHERE {where}", params)
            return cursor.fetchone()[0], 0
        limit, window = cap
        cursor.execute(
            f"SELECT COUNT(*), COALESCE(SUM(CASE WHEN {capped_sql('c.id')} THEN 1 ELSE 0 END), 0) "
            f"FROM {table(Customer)} c WHERE {where}",
            [now - window, limit, *params],
        )
        total, capped = cursor.fetchone()
        return total, int(capped)


def audience_count_by_language(campaign: Campaign) -> list[tuple[str, int]]:
    where, params = audience_where(campaign)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT c.language, COUNT(*) FROM {table(Customer)} c WHERE {where} GROUP BY c.language", params
        )
        return cursor.fetchall()


def insert_deliveries(campaign: Campaign, now) -> int:
    """One INSERT … SELECT creates every delivery; existing rows are left alone (ON CONFLICT)."""
    where, params = audience_where(campaign)
    sql = (
        f"INSERT INTO {table(Delivery)} "
        "(campaign_id, customer_id, status, skip_reason, attempts, next_attempt_at, message_id, "
        "subject, last_error, created_at) "
        f"SELECT %s, c.id, %s, '', 0, %s, '', '', '', %s FROM {table(Customer)} c WHERE {where} "
        "ON CONFLICT (campaign_id, customer_id) DO NOTHING"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [campaign.pk, Delivery.Status.QUEUED, now, now, *params])
        return cursor.rowcount


# A dispatch that queues at least this many deliveries refreshes the table's statistics.
ANALYZE_AFTER_ROWS = 10_000


def deliveries_analyze() -> None:
    """
    Refresh PostgreSQL's statistics of the deliveries table (through the owner's function of
    migration 0013: the runtime role may not ANALYZE). Right after a dispatch the planner has
    never seen the new campaign's id: it took it for a handful of rows and read each batch
    through an index on the campaign alone, every row of the campaign for every claim, so a
    batch's claim grew with the campaign (200 ms per claim at 600,000 recipients against 4 ms).
    About 0.3 s at 600,000 rows. Nothing to do on SQLite.
    """
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT marketing_delivery_analyze()")


def batch_starts(campaign_id: int, batch_size: int) -> list[int]:
    """The first id of each batch of queued rows: every batch_size-th id, by a window function."""
    sql = (
        "SELECT id FROM (SELECT id, ROW_NUMBER() OVER (ORDER BY id) AS n "
        f"FROM {table(Delivery)} WHERE campaign_id = %s AND status = %s) numbered "
        "WHERE (n - 1) %% %s = 0 ORDER BY id"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [campaign_id, Delivery.Status.QUEUED, batch_size])
        return [row[0] for row in cursor.fetchall()]


@dataclass
class Claimed:
    sending: list[int]  # the ids taken for sending, in order
    capped: int = 0  # rows the same statement skipped for the frequency cap


def claim(*, campaign: Campaign, first_id: int, last_id: int, limit: int, now) -> Claimed:
    """
    Take up to `limit` queued rows in [first_id, last_id] for sending, in one conditional
    UPDATE that re-checks, in the same statement, that the campaign is still sending, the
    customer still consents, is not erased and the address is not suppressed. Returns the ids
    taken; another worker's rows are never taken twice (status = 'queued' is re-evaluated
    under the row lock).

    With a frequency cap (MARKETING_MAX_PER_CUSTOMER per MARKETING_CAP_DAYS), the same statement
    takes a row whose customer has reached the cap as skipped ("frequency cap") instead of
    sending; those ids are not returned.
    """
    delivery = table(Delivery)
    customer_ok = (
        f"EXISTS (SELECT 1 FROM {table(Customer)} c WHERE c.id = {delivery}.customer_id "
        f"AND c.erased_at IS NULL AND {not_suppressed_sql('c.email')})"
    )
    cap = frequency_cap()
    if cap is None:
        assignments = "status = %s, claimed_at = %s, attempts = attempts + 1"
        assignment_params: list = [Delivery.Status.SENDING, now]
    else:
        limit_per_customer, window = cap
        capped = capped_sql(f"{delivery}.customer_id")
        assignments = (
            f"status = CASE WHEN {capped} THEN %s ELSE %s END, "
            f"skip_reason = CASE WHEN {capped} THEN %s ELSE '' END, "
            f"claimed_at = %s, attempts = attempts + CASE WHEN {capped} THEN 0 ELSE 1 END"
        )
        cap_params = [now - window, limit_per_customer]
        assignment_params = [
            *cap_params,
            Delivery.Status.SKIPPED,
            Delivery.Status.SENDING,
            *cap_params,
            Delivery.SkipReason.FREQUENCY_CAP,
            now,
            *cap_params,
        ]
    sql = (
        f"UPDATE {delivery} SET {assignments} "
        f"WHERE id IN (SELECT id FROM {delivery} WHERE campaign_id = %s AND id >= %s AND id <= %s "
        "AND status = %s AND next_attempt_at <= %s ORDER BY id LIMIT %s) "
        "AND status = %s "
        f"AND EXISTS (SELECT 1 FROM {table(Campaign)} m WHERE m.id = %s AND m.status = %s) "
        f"AND {consent_granted_sql(f'{delivery}.customer_id')} "
        f"AND {customer_ok} "
        "RETURNING id, status"
    )
    params = [
        *assignment_params,
        campaign.pk,
        first_id,
        last_id,
        Delivery.Status.QUEUED,
        now,
        limit,
        Delivery.Status.QUEUED,
        campaign.pk,
        Campaign.Status.SENDING,
        campaign.purpose_id,
        True,
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    sending = sorted(pk for pk, status in rows if status == Delivery.Status.SENDING)
    return Claimed(sending=sending, capped=len(rows) - len(sending))


def skip_capped(*, ids: list[int], now) -> int:
    """
    Claimed rows whose customer reached the frequency cap with messages claimed just before them
    (by another campaign's claim at the same instant, which the claim's own statement could not
    see): skipped ("frequency cap"), never sent. Run in the claim's transaction, before sending.
    """
    cap = frequency_cap()
    if cap is None or not ids:
        return 0
    limit, window = cap
    delivery = table(Delivery)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {delivery} SET status = %s, skip_reason = %s "
            f"WHERE id IN ({', '.join('%s' for _ in ids)}) AND status = %s "
            f"AND {capped_sql(f'{delivery}.customer_id', before=delivery)}",
            [
                Delivery.Status.SKIPPED,
                Delivery.SkipReason.FREQUENCY_CAP,
                *ids,
                Delivery.Status.SENDING,
                now - window,
                limit,
            ],
        )
        return cursor.rowcount


def pending_after(*, campaign: Campaign, after_id: int) -> bool:
    """
    Whether the campaign has rows queued or being sent with ids above `after_id`: two short
    index range scans (delivery_by_campaign_status) that start at that id, whatever the number
    of rows already sent below it.
    """
    delivery = table(Delivery)
    sql = (
        f"SELECT EXISTS (SELECT 1 FROM {delivery} WHERE campaign_id = %s AND status = %s AND id > %s) "
        f"OR EXISTS (SELECT 1 FROM {delivery} WHERE campaign_id = %s AND status = %s AND id > %s)"
    )
    params: list[Any] = [campaign.pk, Delivery.Status.QUEUED, after_id, campaign.pk, Delivery.Status.SENDING, after_id]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return bool(cursor.fetchone()[0])


def skip_ineligible(*, campaign: Campaign, first_id: int, last_id: int) -> int:
    """Queued rows in the range that may no longer be sent become skipped, with the reason."""
    delivery = table(Delivery)
    base = "campaign_id = %s AND id >= %s AND id <= %s AND status = %s"
    base_params: list[Any] = [campaign.pk, first_id, last_id, Delivery.Status.QUEUED]
    customer = f"(SELECT c.{{}} FROM {table(Customer)} c WHERE c.id = {delivery}.customer_id)"
    steps: list[tuple[str, str, list[Any]]] = [
        (
            Delivery.SkipReason.ERASED,
            f"EXISTS (SELECT 1 FROM {table(Customer)} c WHERE c.id = {delivery}.customer_id "
            "AND c.erased_at IS NOT NULL)",
            [],
        ),
        (
            Delivery.SkipReason.CONSENT_WITHDRAWN,
            f"NOT {consent_granted_sql(f'{delivery}.customer_id')}",
            [campaign.purpose_id, True],
        ),
        (
            Delivery.SkipReason.SUPPRESSED,
            f"NOT {not_suppressed_sql(customer.format('email'))}",
            [],
        ),
    ]
    total = 0
    with connection.cursor() as cursor:
        for reason, condition, params in steps:
            cursor.execute(
                f"UPDATE {delivery} SET status = %s, skip_reason = %s WHERE {base} AND {condition}",
                [Delivery.Status.SKIPPED, reason, *base_params, *params],
            )
            total += cursor.rowcount
    return total


def mark_sent(rows: list[tuple[int, str, datetime, str]]) -> int:
    """
    Rows sent on one claim, marked in one UPDATE rather than one per message (a round trip
    each was a fifth of a worker's time): (id, Message-ID, sent at, subject) per row, only rows
    still "sending". A worker that dies before this leaves them "sending", later "unknown", as
    it would any claimed row: never re-sent.
    """
    if not rows:
        return 0
    delivery = table(Delivery)
    cases = " ".join("WHEN %s THEN %s" for _ in rows)
    sql = (
        f"UPDATE {delivery} SET status = %s, last_error = '', "
        f"message_id = CASE id {cases} END, sent_at = CASE id {cases} END, subject = CASE id {cases} END "
        f"WHERE id IN ({', '.join('%s' for _ in rows)}) AND status = %s"
    )
    params: list = [Delivery.Status.SENT]
    params += [value for pk, message_id, _, _ in rows for value in (pk, message_id)]
    params += [value for pk, _, at, _ in rows for value in (pk, at)]
    params += [value for pk, _, _, subject in rows for value in (pk, subject)]
    params += [pk for pk, _, _, _ in rows]
    params.append(Delivery.Status.SENDING)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


def lock_consents(*, campaign: Campaign, ids: list[int]) -> set[int]:
    """
    Of the claimed rows, those whose customer still consents, with each consent row locked
    FOR SHARE until the caller's transaction ends. A withdrawal (which locks the consent row
    FOR UPDATE) that commits before this is seen here; one that comes later waits until the
    messages of this claim have been handed to the server, so no message of this claim can
    arrive after a withdrawal has committed. SQLite has no row locks: the check alone.
    """
    if not ids:
        return set()
    delivery = table(Delivery)
    placeholders = ", ".join("%s" for _ in ids)
    sql = (
        f"SELECT d.id FROM {delivery} d JOIN {table(Consent)} k ON k.customer_id = d.customer_id "
        f"AND k.purpose_id = %s WHERE d.id IN ({placeholders}) AND k.granted = %s ORDER BY k.id"
    )
    if connection.vendor == "postgresql":
        sql += " FOR SHARE OF k"
    with connection.cursor() as cursor:
        cursor.execute(sql, [campaign.purpose_id, *ids, True])
        return {row[0] for row in cursor.fetchall()}


def skip_withdrawn(ids: list[int]) -> int:
    """Claimed rows whose consent was withdrawn between the claim and the lock: skipped, never sent."""
    if not ids:
        return 0
    delivery = table(Delivery)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {delivery} SET status = %s, skip_reason = %s "
            f"WHERE id IN ({', '.join('%s' for _ in ids)}) AND status = %s",
            [Delivery.Status.SKIPPED, Delivery.SkipReason.CONSENT_WITHDRAWN, *ids, Delivery.Status.SENDING],
        )
        return cursor.rowcount
