"""
Querysets compiled to SQL once, for the few hot paths where Django's compilation of a query
costs more than running it.

Django turns a queryset into SQL on every evaluation. For the preference page's customer
query (the customer and two subqueries) that was about 0.9 ms of CPU per view against 0.3 ms
to run it and build the model: a fifth of the page. A `PreparedQuery` compiles its queryset
once per database alias and afterwards only swaps in the one value that changes.

On PostgreSQL it is also a prepared statement of the server (`PREPARE`, once per database
connection; then `EXECUTE name(value)`): planning the page's two queries took 0.28 and 0.21 ms
of the database's CPU against 0.10 and 0.08 ms to run them, on the same cores as the web
workers. A connection pooler in transaction mode (PgBouncer) hands each transaction another
server connection, where the statement does not exist: `DATABASE_PREPARED_STATEMENTS=false`
turns this off and the query is sent as SQL each time.
"""

from __future__ import annotations

import hashlib
import re
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connections, router
from django.db.models import Field, Model, QuerySet

M = TypeVar("M", bound=Model)
R = TypeVar("R", bound=Model)


class PreparedQuery(Generic[M]):
    """
    `build(value)` returns the queryset for one value of its single parameter, which is
    compared with `field` (so the value is prepared for the database as the ORM would). The
    queryset is built for two different `samples`; the one parameter that differs between
    the two compilations is the slot later values go into. Rows come back as model instances,
    annotations as attributes, converted as the ORM converts them (a datetime from SQLite's
    text, say): what Django's ModelIterable does, with what it reads from the compiler read
    once (one model, no select_related).
    """

    def __init__(
        self, build: Callable[[Any], QuerySet[M]], *, field: Field[Any, Any], samples: tuple[Any, Any]
    ) -> None:
        self.build = build
        self.field = field
        self.samples = samples
        self.model: type[M] = build(samples[0]).model
        self._compiled: dict[str, _Compiled] = {}
        self._lock = threading.Lock()

    def _compile(self, alias: str) -> _Compiled:
        compilers = [self.build(sample).query.get_compiler(using=alias) for sample in self.samples]
        (sql, params), (other_sql, other_params) = (compiler.as_sql() for compiler in compilers)
        slots = [i for i, (a, b) in enumerate(zip(params, other_params, strict=False)) if a != b]
        if sql != other_sql or len(params) != len(other_params) or len(slots) != 1:
            raise ImproperlyConfigured(
                f"A prepared {self.model.__name__} query must differ between its samples in exactly one parameter."
            )
        # What Django's ModelIterable reads from the compiler, read once: where the model's columns
        # are in the row, their attribute names, each column's converters, the annotations.
        compiler = compilers[0]
        info = compiler.klass_info
        if info is None or info.get("related_klass_infos"):
            raise ImproperlyConfigured(
                f"A prepared {self.model.__name__} query loads one model, without select_related."
            )
        start, end = info["select_fields"][0], info["select_fields"][-1] + 1
        return _Compiled(
            sql=sql,
            width=len(compiler.select),
            params=tuple(params),
            slot=slots[0],
            model_columns=(start, end),
            attnames=[column[0].target.attname for column in compiler.select[start:end]],
            converters=list(compiler.get_converters([column[0] for column in compiler.select]).items()),
            annotations=dict(compiler.annotation_col_map),
            statement=self._statement(sql, params, slots[0], alias),
        )

    def _statement(self, sql: str, params: list[Any], slot: int, alias: str) -> _Statement | None:
        """The PREPARE of the query on PostgreSQL: the fixed parameters written in as literals, the slot as $1."""
        connection = connections[alias]
        if connection.vendor != "postgresql":
            return None
        return _Statement.of(self.model._meta.db_table, _with_slot(sql, params, slot, "$1", connection))

    def compiled(self, alias: str) -> _Compiled:
        compiled = self._compiled.get(alias)
        if compiled is None:
            with self._lock:
                compiled = self._compiled.setdefault(alias, self._compile(alias))
        return compiled

    def fetch(self, value: Any) -> list[M]:
        alias = router.db_for_read(self.model)
        compiled = self.compiled(alias)
        connection = connections[alias]
        prepped = self.field.get_db_prep_value(value, connection, prepared=False)
        params = list(compiled.params)
        params[compiled.slot] = prepped
        rows = _run(connection, compiled.statement, prepped, sql=compiled.sql, params=params)
        return [self.instance(compiled, row, alias) for row in rows]

    def instance(self, compiled: _Compiled, fetched: tuple | list, alias: str, offset: int = 0) -> M:
        """The model instance of one row (its columns from `offset` on), as Django's ModelIterable builds it."""
        connection = connections[alias]
        row = list(fetched[offset : offset + compiled.width])
        for position, (converters, expression) in compiled.converters:
            converted = row[position]
            for converter in converters:
                converted = converter(converted, expression, connection)
            row[position] = converted
        start, end = compiled.model_columns
        instance = self.model.from_db(alias, compiled.attnames, row[start:end])
        for name, position in compiled.annotations.items():
            setattr(instance, name, row[position])
        return instance


# Django's SQL names a parameter %s and writes a literal percent sign as %%.
_PLACEHOLDER = re.compile(r"%[%s]")


def _with_slot(
    sql: str, params: list[Any] | tuple, slot: int, text: str, connection: Any, *, literals: bool = True
) -> str:
    """
    `sql` with `text` in place of the slot's placeholder; the other parameters written in as
    literals (`literals`), or left as placeholders for the driver.
    """
    pieces = iter(range(len(params)))

    def placeholder(found: re.Match[str]) -> str:
        if found.group(0) == "%%":
            return "%" if literals else "%%"
        index = next(pieces)
        if index == slot:
            return text
        return connection.ops.compose_sql("%s", [params[index]]) if literals else "%s"

    return _PLACEHOLDER.sub(placeholder, sql)


@dataclass(frozen=True)
class _Statement:
    name: str
    prepare: str

    @classmethod
    def of(cls, prefix: str, body: str) -> _Statement:
        name = f"cd_{prefix}_{hashlib.sha256(body.encode()).hexdigest()[:16]}"
        return cls(name=name, prepare=f"PREPARE {name} AS {body}")


@dataclass(frozen=True)
class _Compiled:
    sql: str
    width: int  # the number of columns it selects
    params: tuple
    slot: int  # the position in params of the value that changes
    model_columns: tuple[int, int]  # the model's columns are row[start:end]
    attnames: list[str]  # their attribute names, in that order
    converters: list[tuple[int, tuple[list, Any]]]  # (column, (its converters, its expression))
    annotations: dict[str, int]  # annotation -> its column
    statement: _Statement | None  # PostgreSQL's prepared statement of the query


# The statements each open database connection has prepared (a statement lives as long as its
# connection: a new connection after a reconnect prepares again). PREPARE is not undone by a
# rollback.
_PREPARED: weakref.WeakKeyDictionary[Any, set[str]] = weakref.WeakKeyDictionary()


def _run(connection: Any, statement: _Statement | None, value: Any, *, sql: str, params: list[Any]) -> list[tuple]:
    """The rows of the prepared statement for `value` when there is one and preparing is on, else of `sql`."""
    if statement is not None and settings.DATABASE_PREPARED_STATEMENTS:
        _prepare_on(connection, statement)
        sql, params = f"EXECUTE {statement.name}(%s)", [value]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _prepare_on(connection: Any, statement: _Statement) -> None:
    connection.ensure_connection()
    done = _PREPARED.setdefault(connection.connection, set())
    if statement.name not in done:
        with connection.cursor() as cursor:
            cursor.execute(statement.prepare)
        done.add(statement.name)


class PreparedWithRows(Generic[M, R]):
    """
    One statement for a row and its rows: the row `first` finds for a value, and every row of
    `rows` for it (the slot of `rows` takes the first row's primary key), in `rows`' order.
    On PostgreSQL a LATERAL join (prepared like a PreparedQuery): one round trip to the
    database instead of two. Elsewhere the two queries, one after the other.
    """

    def __init__(self, first: PreparedQuery[M], rows: PreparedQuery[R]) -> None:
        self.first = first
        self.rows = rows
        self._joined: dict[str, _Joined] = {}

    def _join(self, alias: str) -> _Joined:
        joined = self._joined.get(alias)
        if joined is None:
            connection = connections[alias]
            first, rows = self.first.compiled(alias), self.rows.compiled(alias)
            pk = connection.ops.quote_name(self.first.model._meta.pk.column)  # type: ignore[arg-type]

            def body(literals: bool) -> str:
                inner = _with_slot(rows.sql, rows.params, rows.slot, f"first_row.{pk}", connection, literals=literals)
                outer = _with_slot(
                    first.sql, first.params, first.slot, "$1" if literals else "%s", connection, literals=literals
                )
                # The rows keep their query's ORDER BY: numbered as the subquery gives them, and
                # the join sorted by that number.
                return (
                    f"SELECT first_row.*, joined_rows.* FROM ({outer}) first_row LEFT JOIN LATERAL "
                    f"(SELECT inner_rows.*, row_number() OVER () AS row_order FROM ({inner}) inner_rows) joined_rows "
                    "ON true ORDER BY joined_rows.row_order"
                )

            joined = _Joined(
                sql=body(literals=False),
                statement=_Statement.of(self.first.model._meta.db_table + "_rows", body(literals=True)),
            )
            self._joined[alias] = joined
        return joined

    def fetch(self, value: Any) -> tuple[M, list[R]] | None:
        alias = router.db_for_read(self.first.model)
        connection = connections[alias]
        if connection.vendor != "postgresql":
            firsts = self.first.fetch(value)
            return (firsts[0], self.rows.fetch(firsts[0].pk)) if firsts else None
        joined = self._join(alias)
        first, rows = self.first.compiled(alias), self.rows.compiled(alias)
        prepped = self.first.field.get_db_prep_value(value, connection, prepared=False)
        fetched = _run(connection, joined.statement, prepped, sql=joined.sql, params=self._params(first, rows, prepped))
        if not fetched:
            return None
        found = self.first.instance(first, fetched[0], alias)
        rows_pk = first.width + rows.model_columns[0] + rows.attnames.index(self.rows.model._meta.pk.attname)
        return found, [
            self.rows.instance(rows, row, alias, offset=first.width) for row in fetched if row[rows_pk] is not None
        ]

    @staticmethod
    def _params(first: _Compiled, rows: _Compiled, prepped: Any) -> list[Any]:
        """The joined SQL's parameters: the first query's (the value in its slot), then the rows' fixed ones."""
        outer = list(first.params)
        outer[first.slot] = prepped
        return [*outer, *(p for i, p in enumerate(rows.params) if i != rows.slot)]


@dataclass(frozen=True)
class _Joined:
    sql: str  # with placeholders, for the driver (prepared statements off)
    statement: _Statement
