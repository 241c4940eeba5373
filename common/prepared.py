"""
Querysets compiled to SQL once, for the few hot paths where Django's compilation of a query
costs more than running it.

Django turns a queryset into SQL on every evaluation. For the preference page's customer
query (the customer and two subqueries) that was about 0.9 ms of CPU per view against 0.3 ms
to run it and build the model: a fifth of the page. A `PreparedQuery` compiles its queryset
once per database alias and afterwards only swaps in the one value that changes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from django.core.exceptions import ImproperlyConfigured
from django.db import connections, router
from django.db.models import Field, Model, QuerySet

M = TypeVar("M", bound=Model)


class PreparedQuery(Generic[M]):
    """
    `build(value)` returns the queryset for one value of its single parameter, which is
    compared with `field` (so the value is prepared for the database as the ORM would). The
    queryset is built for two different `samples`; the one parameter that differs between
    the two compilations is the slot later values go into. Rows come back as model instances,
    annotations as attributes converted as the ORM converts them (a datetime from SQLite's
    text, say).
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
        compiler = compilers[0]
        annotations = {alias: compiler.select[index][0] for alias, index in compiler.annotation_col_map.items()}
        converters = {
            name: (converters, expression)
            for name, expression in annotations.items()
            for converters, expression in compiler.get_converters([expression]).values()
        }
        return _Compiled(sql, tuple(params), slots[0], converters)

    def fetch(self, value: Any) -> list[M]:
        alias = router.db_for_read(self.model)
        compiled = self._compiled.get(alias)
        if compiled is None:
            with self._lock:
                compiled = self._compiled.setdefault(alias, self._compile(alias))
        connection = connections[alias]
        params = list(compiled.params)
        params[compiled.slot] = self.field.get_db_prep_value(value, connection, prepared=False)
        rows = list(self.model._default_manager.raw(compiled.sql, params).using(alias))
        for row in rows:
            for name, (converters, expression) in compiled.converters.items():
                converted = getattr(row, name)
                for converter in converters:
                    converted = converter(converted, expression, connection)
                setattr(row, name, converted)
        return rows


@dataclass(frozen=True)
class _Compiled:
    sql: str
    params: tuple
    slot: int  # the position in params of the value that changes
    converters: dict[str, tuple[list, Any]]  # annotation -> (its converters, its expression)
