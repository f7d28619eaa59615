"""Bulk inserts that keep up with a streaming import.

SQLAlchemy's executemany path builds and processes a parameter dictionary per row; for the
hundreds of thousands of rows of an académie that overhead dominates the import. Here the
statement and the per-column bind processors (the same ones SQLAlchemy would apply: UUIDs,
JSON, timezone-aware datetimes) are prepared once per table and column set, then rows go to the
driver as plain tuples: ``COPY ... FROM STDIN`` on PostgreSQL; on SQLite ``executemany`` of
an INSERT of many rows at once (as many as 999 parameters allow, the oldest SQLite's bound):
SQLite then steps and resets its statement once per 60-odd rows instead of once per row, and
the driver loops that much less (inserting an import's 900,000 staged rows: 3.9 → 3.4 s,
measured). Everything runs on the caller's connection, inside its transaction.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Connection, Table, insert

__all__ = ["bulk_insert", "insert_tuples"]

_Processor = Callable[[Any], Any] | None
_Plan = tuple[str, tuple[str, ...], list[_Processor]]
_plans: dict[tuple[str, str, tuple[str, ...]], _Plan] = {}
#: Bound parameters per statement on SQLite (SQLITE_MAX_VARIABLE_NUMBER before 3.32).
_SQLITE_PARAMETERS = 999
_many_rows: dict[tuple[str, int], str] = {}


def _plan(connection: Connection, table: Table, columns: tuple[str, ...]) -> _Plan:
    """The statement, the column order it expects, and a bind processor per column."""
    dialect = connection.dialect
    key = (dialect.name, table.name, columns)
    plan = _plans.get(key)
    if plan is None:
        if dialect.name == "postgresql":
            quoted = ", ".join(dialect.identifier_preparer.quote(c) for c in columns)
            sql = f"COPY {dialect.identifier_preparer.quote(table.name)} ({quoted}) FROM STDIN"
        else:
            compiled = insert(table).compile(dialect=dialect, column_keys=list(columns))
            columns = tuple(compiled.positiontup or ())
            sql = str(compiled)
        processors: list[_Processor] = [
            table.c[name].type._cached_bind_processor(dialect) for name in columns
        ]
        plan = _plans[key] = (sql, columns, processors)
    return plan


def bulk_insert(connection: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert ``rows`` (dicts with the same keys) into ``table`` in one driver call."""
    if not rows:
        return
    sql, columns, processors = _plan(connection, table, tuple(rows[0]))
    pairs = list(zip(columns, processors, strict=True))
    tuples = [
        tuple(process(row[name]) if process else row[name] for name, process in pairs)
        for row in rows
    ]
    _send(connection, sql, tuples)


def insert_tuples(
    connection: Connection, table: Table, columns: tuple[str, ...], rows: Sequence[tuple[Any, ...]]
) -> None:
    """Insert rows given as tuples of driver-ready values, in the order of ``columns``.

    The caller vouches that no value needs a bind processor (strings, numbers, None).
    """
    if not rows:
        return
    sql, order, _ = _plan(connection, table, columns)
    if order != columns:
        raise ValueError(f"{table.name}: columns must be given in table order {order}")
    _send(connection, sql, rows)


def _send(connection: Connection, sql: str, tuples: Sequence[tuple[Any, ...]]) -> None:
    if connection.dialect.name == "postgresql":
        cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
        with cursor.copy(sql) as copy:
            for values in tuples:
                copy.write_row(values)
    else:
        _send_sqlite(connection, sql, tuples)


def _send_sqlite(connection: Connection, sql: str, tuples: Sequence[tuple[Any, ...]]) -> None:
    """``sql`` inserts one row (``... VALUES (?, ...)``): send whole groups of rows through its
    many-row form, the rest one row at a time, in order."""
    per = _SQLITE_PARAMETERS // len(tuples[0])
    grouped = len(tuples) - len(tuples) % per if per > 1 else 0
    if grouped:
        many = _many_rows.get((sql, per))
        if many is None:
            row = sql[sql.rindex(" VALUES ") + 8 :]
            many = _many_rows[(sql, per)] = sql + f", {row}" * (per - 1)
        chain = itertools.chain.from_iterable
        groups = [tuple(chain(tuples[i : i + per])) for i in range(0, grouped, per)]
        connection.exec_driver_sql(many, groups)
    if grouped < len(tuples):
        connection.exec_driver_sql(sql, list(tuples[grouped:]))
