"""Render served objects as JSON inside the database, one text value per row.

A page of 100 persons with their roles and external ids is ~2,000 values; building them as
Python objects and serialising them cost several times the rest of a request. The database
builds the same JSON in C (``json_build_object`` on PostgreSQL, ``json_object`` on SQLite) and
the API only joins the texts. Both backends give the same values in the same key order:
UUIDs in their dashed form, instants as ``YYYY-MM-DDTHH:MM:SS.ffffffZ``, dates as
``YYYY-MM-DD``, booleans, JSON lists, floats with their fraction (``2.0``, where PostgreSQL
writes ``2``). Only identifiers of our own models are spliced into the SQL, and the caller's
access rule on the roles a person document embeds, as SQLAlchemy renders it (its values as
escaped literals): no value of a request is.

The texts are not the same bytes, though: PostgreSQL writes ``{"id" : "...", "roles" : [...]}``
and keeps stored JSON as it was written (``["A", "B"]``), SQLite writes them compact.
:func:`canonical` makes them one representation, orjson's compact one, so that a body and its
``ETag`` are the same whichever backend serves them (the contract is one). Parsing and writing
again costs about 8 µs for a person of 800 bytes (8 ms for a page of 1,000, some 7 % of it on
PostgreSQL), far less than building the objects in Python.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy import JSON, Boolean, DateTime, Float, Table, TypeDecorator, Uuid

__all__ = ["canonical", "document_sql", "feed_document_sql", "stored_type"]

#: Embedded lists: name -> (dialect -> correlated subquery over ``{t}``, the outer table).
_EMBEDS: dict[str, dict[str, str]] = {
    "external_ids": {
        "postgresql": (
            "coalesce((SELECT json_agg(json_build_object('type', e.type, 'value', e.value) "
            "ORDER BY e.type, e.value) FROM external_id e "
            "WHERE e.entity_id = {t}.id AND e.entity_type = '{kind}'), '[]'::json)"
        ),
        "sqlite": (
            "(SELECT json_group_array(json(x.o)) FROM (SELECT json_object('type', e.type, "
            "'value', e.value) AS o FROM external_id e WHERE e.entity_id = {t}.id "
            "AND e.entity_type = '{kind}' ORDER BY e.type, e.value) x)"
        ),
    },
    "roles": {
        "postgresql": (
            "coalesce((SELECT json_agg(json_build_object('structure_id', role.structure_id, "
            "'structure_uai', s.uai, 'role', role.role, 'function_code', role.function_code, "
            "'function_label', role.function_label, 'discipline_code', role.discipline_code, "
            "'discipline_label', role.discipline_label, 'start_date', role.start_date, "
            "'end_date', role.end_date, 'level_code', role.level_code, "
            "'subject_codes', role.subject_codes, 'status', role.status) "
            "ORDER BY s.uai, role.role, role.id) "
            "FROM role LEFT JOIN structure s ON s.id = role.structure_id "
            "WHERE role.person_id = {t}.id{rule}), '[]'::json)"
        ),
        "sqlite": (
            "(SELECT json_group_array(json(x.o)) FROM (SELECT json_object('structure_id', "
            "{uuid_r}, 'structure_uai', s.uai, 'role', role.role, 'function_code', "
            "role.function_code, 'function_label', role.function_label, 'discipline_code', "
            "role.discipline_code, 'discipline_label', role.discipline_label, 'start_date', "
            "role.start_date, 'end_date', role.end_date, 'level_code', role.level_code, "
            "'subject_codes', json(role.subject_codes), 'status', role.status) AS o "
            "FROM role LEFT JOIN structure s ON s.id = role.structure_id "
            "WHERE role.person_id = {t}.id{rule} ORDER BY s.uai, role.role, role.id) x)"
        ),
    },
}


def _sqlite_uuid(column: str) -> str:
    # SQLite stores UUIDs as 32 hex digits; the API serves the dashed form.
    return (
        f"lower(substr({column}, 1, 8) || '-' || substr({column}, 9, 4) || '-' || "
        f"substr({column}, 13, 4) || '-' || substr({column}, 17, 4) || '-' || "
        f"substr({column}, 21))"
    )


def canonical(document: str) -> bytes:
    """The one representation of a JSON text rendered by either backend: compact, keys in the
    order given, numbers and strings as orjson writes them."""
    return orjson.dumps(orjson.loads(document))


def stored_type(column: Any) -> Any:
    """The type a column is stored as: a decorator's (SQLModel's UTCDateTime) is the type it
    decorates (its own ``python_type`` says ``object``)."""
    kind = column.type
    return kind.impl_instance if isinstance(kind, TypeDecorator) else kind


def _value(dialect: str, table: Table, name: str) -> str:
    column = f"{table.name}.{name}"
    kind = stored_type(table.c[name])
    if dialect == "postgresql":
        if isinstance(kind, DateTime):
            return f"to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
        if isinstance(kind, Float):
            # A whole float is written ``2`` (an integer to a client); SQLite writes ``2.0``.
            return (
                f"CASE WHEN {column} = trunc({column}) THEN to_json(round({column}::numeric, 1)) "
                f"ELSE to_json({column}) END"
            )
        return column
    if isinstance(kind, Uuid):
        return _sqlite_uuid(column)
    if isinstance(kind, DateTime):
        return f"replace({column}, ' ', 'T') || 'Z'"
    if isinstance(kind, Boolean):
        truth = f"CASE WHEN {column} IS NULL THEN NULL WHEN {column} THEN 'true' ELSE 'false' END"
        return f"json({truth})"
    if isinstance(kind, JSON):
        return f"json({column})"
    return column  # text, numbers and dates (stored as YYYY-MM-DD) are served as stored


@functools.lru_cache(maxsize=512)
def _document(
    dialect: str, table: Table, fields: tuple[str, ...], kind: str | None, roles_rule: str | None
) -> str:
    rule = "" if roles_rule is None else f" AND ({roles_rule})"
    pairs = []
    for name in fields:
        if name in _EMBEDS:
            value = _EMBEDS[name][dialect].format(
                t=table.name, kind=kind or "", uuid_r=_sqlite_uuid("role.structure_id"), rule=rule
            )
        else:
            value = _value(dialect, table, name)
        pairs.append(f"'{name}', {value}")
    if dialect == "postgresql":
        # PostgreSQL caps a function at 100 arguments: 50 pairs, far above any model here.
        return f"CAST(json_build_object({', '.join(pairs)}) AS TEXT)"
    return f"json_object({', '.join(pairs)})"


def document_sql(
    dialect: str,
    table: Table,
    fields: Sequence[str],
    kind: str | None,
    roles_rule: str | None = None,
) -> str:
    """SQL for one row's JSON object with ``fields`` in that order (``kind``: external ids).

    ``roles_rule``: the condition on table ``role`` that the embedded roles meet (the caller's
    rule on roles: a person document shows no role that ``/v1/roles`` would not)."""
    if dialect not in ("postgresql", "sqlite"):
        raise ValueError(f"no JSON rendering for the {dialect} dialect")
    return _document(dialect, table, tuple(fields), kind, roles_rule)


def feed_document_sql(dialect: str) -> str:
    """SQL for one change-log entry as served by the feed (``structures`` as a list)."""
    if dialect == "postgresql":
        return (
            "CAST(json_build_object('seq', change_log.seq, 'entity_type', "
            "change_log.entity_type, 'entity_id', change_log.entity_id, 'op', change_log.op, "
            "'at', to_char(change_log.at AT TIME ZONE 'UTC', "
            "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), 'structures', "
            "CASE WHEN change_log.structures = '' THEN '[]'::json ELSE "
            "to_json(string_to_array(btrim(change_log.structures, '|'), '|')) END) AS TEXT)"
        )
    return (
        "json_object('seq', change_log.seq, 'entity_type', change_log.entity_type, "
        f"'entity_id', {_sqlite_uuid('change_log.entity_id')}, 'op', change_log.op, "
        "'at', replace(change_log.at, ' ', 'T') || 'Z', 'structures', "
        "json(CASE WHEN change_log.structures = '' THEN '[]' ELSE '[\"' || "
        "replace(trim(change_log.structures, '|'), '|', '\",\"') || '\"]' END))"
    )
