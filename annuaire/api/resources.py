"""What the API serves of each table, and the query layer that reads it under the access rules.

A :class:`Resource` names the columns of a table that its public model exposes, the embedded
lists (a person's external ids and roles) and the immutable sort key used for keyset paging.
:class:`Reader` is the only code that queries the store for the API: every list, single read
and export goes through it, and it ANDs the principal's row rule with the caller's filters.

Rows are turned into JSON with orjson straight from the database tuples: the public models
describe the contract (OpenAPI, JSON Schemas), and the conformance kit checks the bytes
against them.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel
from sqlalchemy import ColumnElement, Connection, Engine, Select, Table, and_, select, tuple_
from sqlmodel import SQLModel

from annuaire.auth import AccessRules, Principal, Visibility
from annuaire.schema import (
    ChangeEntry,
    Enrollment,
    EnrollmentPublic,
    EntityKind,
    ExternalId,
    Group,
    GroupPublic,
    Guardianship,
    GuardianshipPublic,
    ImportRun,
    ImportRunPublic,
    Level,
    LevelPublic,
    Person,
    PersonPublic,
    Role,
    RolePublic,
    SchoolClass,
    SchoolClassPublic,
    Structure,
    StructurePublic,
    Subject,
    SubjectPublic,
)

__all__ = ["RESOURCES", "Reader", "Resource", "change_rows"]

Row = dict[str, Any]
#: Loads an embedded list for a page of ids: id -> list of JSON-ready dicts.
Loader = Callable[[Connection, Sequence[uuid.UUID]], dict[uuid.UUID, list[Row]]]


def _table(model: type[SQLModel]) -> Table:
    return model.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Resource:
    name: str
    table: Table
    public: type[BaseModel]
    entity_type: str | None
    embeds: Mapping[str, Loader] = field(default_factory=dict)
    #: Sort key, ascending unless ``descending``; the last column must be unique.
    order: tuple[str, ...] = ("id",)
    descending: bool = False

    @property
    def fields(self) -> tuple[str, ...]:
        """Every field of the public representation, in output order."""
        return tuple(self.public.model_fields)

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(f for f in self.fields if f not in self.embeds)

    def sort_key(self, row: Row) -> list[Any]:
        return [_jsonable(row[c]) for c in self.order]

    def parse_key(self, key: list[Any]) -> list[Any]:
        """The typed sort key of a decoded cursor; ValueError when it is not one."""
        if len(key) != len(self.order) or not all(isinstance(v, str) for v in key):
            raise ValueError("wrong key shape")
        return [_coerce(self.table.c[c], v) for c, v in zip(self.order, key, strict=True)]


def _jsonable(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def _external_ids(entity_type: str) -> Loader:
    table = _table(ExternalId)
    columns = (table.c.entity_id, table.c.type, table.c.value)

    def load(connection: Connection, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[Row]]:
        found: dict[uuid.UUID, list[Row]] = {}
        query = (
            select(*columns)
            .where(table.c.entity_id.in_(ids), table.c.entity_type == entity_type)
            .order_by(table.c.entity_id, table.c.type, table.c.value)
        )
        for entity_id, id_type, value in connection.execute(query):
            found.setdefault(entity_id, []).append({"type": id_type, "value": value})
        return found

    return load


def _roles(connection: Connection, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[Row]]:
    role, structure = _table(Role), _table(Structure)
    names = (
        "role",
        "function_code",
        "function_label",
        "discipline_code",
        "discipline_label",
        "start_date",
        "end_date",
        "status",
    )
    query = (
        select(
            role.c.person_id,
            role.c.structure_id,
            structure.c.uai,
            *[role.c[n] for n in names],
        )
        .join_from(role, structure, structure.c.id == role.c.structure_id, isouter=True)
        .where(role.c.person_id.in_(ids))
        .order_by(role.c.person_id, structure.c.uai, role.c.role, role.c.id)
    )
    found: dict[uuid.UUID, list[Row]] = {}
    for person_id, structure_id, uai, *values in connection.execute(query):
        item = {"structure_id": structure_id, "structure_uai": uai}
        item.update(zip(names, values, strict=True))
        found.setdefault(person_id, []).append(item)
    return found


RESOURCES: dict[str, Resource] = {
    r.name: r
    for r in (
        Resource(
            "structures",
            _table(Structure),
            StructurePublic,
            EntityKind.STRUCTURE.value,
            {"external_ids": _external_ids(EntityKind.STRUCTURE.value)},
        ),
        Resource(
            "persons",
            _table(Person),
            PersonPublic,
            EntityKind.PERSON.value,
            {"external_ids": _external_ids(EntityKind.PERSON.value), "roles": _roles},
        ),
        Resource("roles", _table(Role), RolePublic, EntityKind.ROLE.value),
        Resource("classes", _table(SchoolClass), SchoolClassPublic, EntityKind.CLASS.value),
        Resource("groups", _table(Group), GroupPublic, EntityKind.GROUP.value),
        Resource("enrollments", _table(Enrollment), EnrollmentPublic, EntityKind.ENROLLMENT.value),
        Resource(
            "guardianships", _table(Guardianship), GuardianshipPublic, EntityKind.GUARDIANSHIP.value
        ),
        Resource("subjects", _table(Subject), SubjectPublic, EntityKind.SUBJECT.value),
        Resource("levels", _table(Level), LevelPublic, EntityKind.LEVEL.value),
        Resource(
            "import-runs",
            _table(ImportRun),
            ImportRunPublic,
            None,
            order=("started_at", "id"),
            descending=True,
        ),
    )
}


class Reader:
    """Reads resources for one principal; every query carries the principal's row rule.

    A reader holds no connection until :meth:`connected` (or :meth:`bound`) gives it one, so
    routes can receive it from an async dependency and do their database work in one block.
    """

    def __init__(self, engine: Engine, principal: Principal, rules: AccessRules) -> None:
        self.engine = engine
        self.principal = principal
        self.rules = rules
        self._connection: Connection | None = None

    @property
    def connection(self) -> Connection:
        if self._connection is None:
            raise RuntimeError("Reader used outside `with reader.connected()`")
        return self._connection

    @contextlib.contextmanager
    def connected(self) -> Iterator[Connection]:
        with self.engine.connect() as connection:
            self._connection = connection
            try:
                yield connection
            finally:
                self._connection = None

    def bound(self, connection: Connection) -> Reader:
        """The same reader on a connection the caller manages (a streaming export)."""
        other = Reader(self.engine, self.principal, self.rules)
        other._connection = connection
        return other

    def visibility(self, resource: Resource) -> Visibility:
        return self.rules.visibility(self.principal, resource.name, resource.table)

    def readable_fields(self, resource: Resource) -> tuple[str, ...]:
        allowed = self.visibility(resource).fields
        return tuple(f for f in resource.fields if allowed is None or f in allowed)

    def _select(
        self,
        resource: Resource,
        fields: Sequence[str],
        predicates: Sequence[ColumnElement[bool]],
    ) -> Select[Any]:
        table = resource.table
        wanted = [c for c in resource.columns if c in fields or c in resource.order]
        query = select(*[table.c[c] for c in wanted])
        rule = self.visibility(resource).rows
        conditions = [*predicates] if rule is None else [rule, *predicates]
        if conditions:
            query = query.where(and_(*conditions))
        return query

    def _ordered(self, resource: Resource, query: Select[Any], after: list[Any] | None) -> Select:
        table = resource.table
        keys = [table.c[c] for c in resource.order]
        if after is not None:
            key = tuple_(*keys) if len(keys) > 1 else keys[0]
            value = tuple_(*after) if len(keys) > 1 else after[0]
            query = query.where(key < value if resource.descending else key > value)
        return query.order_by(*[k.desc() if resource.descending else k for k in keys])

    def _finish(self, resource: Resource, rows: list[Row], fields: Sequence[str]) -> list[Row]:
        embeds = [name for name in resource.embeds if name in fields]
        if embeds and rows:
            ids = [row["id"] for row in rows]
            for name in embeds:
                loaded = resource.embeds[name](self.connection, ids)
                for row in rows:
                    row[name] = loaded.get(row["id"], [])
        order = [f for f in resource.fields if f in fields]
        return [{f: row[f] for f in order} for row in rows]

    def page(
        self,
        resource: Resource,
        predicates: Sequence[ColumnElement[bool]],
        *,
        fields: Sequence[str],
        limit: int,
        after: list[Any] | None,
    ) -> tuple[list[Row], list[Any] | None]:
        """Up to ``limit`` rows after ``after``, and the key to continue from (None at the end)."""
        query = self._ordered(resource, self._select(resource, fields, predicates), after)
        result = self.connection.execute(query.limit(limit + 1))
        names = list(result.keys())
        rows = [dict(zip(names, r, strict=True)) for r in result]
        more = len(rows) > limit
        rows = rows[:limit]
        last = resource.sort_key(rows[-1]) if more else None
        return self._finish(resource, rows, fields), last

    def stream(
        self,
        resource: Resource,
        predicates: Sequence[ColumnElement[bool]],
        *,
        fields: Sequence[str],
        after: list[Any] | None,
        batch: int = 1000,
    ) -> Iterator[Row]:
        """Every matching row, in batches read from a server-side cursor (flat memory)."""
        query = self._ordered(resource, self._select(resource, fields, predicates), after)
        result = self.connection.execution_options(stream_results=True, yield_per=batch).execute(
            query
        )
        names = list(result.keys())
        for chunk in result.partitions(batch):
            rows = [dict(zip(names, r, strict=True)) for r in chunk]
            yield from self._finish(resource, rows, fields)

    def one(self, resource: Resource, entity_id: uuid.UUID, fields: Sequence[str]) -> Row | None:
        predicate = resource.table.c.id == entity_id
        rows = self.connection.execute(self._select(resource, fields, [predicate])).all()
        if not rows:
            return None
        names = [c for c in resource.columns if c in fields or c in resource.order]
        return self._finish(resource, [dict(zip(names, rows[0], strict=True))], fields)[0]


def _coerce(column: Any, value: str) -> Any:
    python_type = column.type.python_type
    if python_type is uuid.UUID:
        return uuid.UUID(value)
    if python_type is dt.datetime:
        parsed = dt.datetime.fromisoformat(value)
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
    raise ValueError(f"no cursor key of type {python_type}")


_CHANGE_LOG: Table = _table(ChangeEntry)


def change_rows(
    reader: Reader,
    after: int,
    limit: int,
    predicates: Sequence[ColumnElement[bool]],
) -> list[Row]:
    """Feed entries after sequence ``after``, oldest first, under the principal's rule."""
    table = _CHANGE_LOG
    rule = reader.rules.visibility(reader.principal, "changes", table).rows
    conditions = [table.c.seq > after, *predicates, *([rule] if rule is not None else [])]
    query = (
        select(
            table.c.seq,
            table.c.entity_type,
            table.c.entity_id,
            table.c.op,
            table.c.at,
            table.c.structures,
        )
        .where(and_(*conditions))
        .order_by(table.c.seq)
        .limit(limit)
    )
    return [
        {
            "seq": seq,
            "entity_type": entity_type,
            "entity_id": entity_id,
            "op": op,
            "at": at,
            "structures": [u for u in structures.split("|") if u],
        }
        for seq, entity_type, entity_id, op, at, structures in reader.connection.execute(query)
    ]
