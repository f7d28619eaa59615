"""What the API serves of each table, and the query layer that reads it under the access rules.

A :class:`Resource` names a table, the public model that describes its objects (the contract)
and the immutable sort key used for keyset paging. :class:`Reader` is the only code that
queries the store for the API: every list, single read, export and feed page goes through it,
and it ANDs the principal's row rule with the caller's filters.

Objects are rendered as JSON by the database itself (see ``_json_sql``): a reader returns
JSON texts, ready to be joined into a response; the conformance kit and the tests check
those bytes against the public models.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Select,
    Table,
    and_,
    literal_column,
    select,
    tuple_,
)
from sqlmodel import SQLModel

from annuaire.auth import AccessRules, Principal, Visibility
from annuaire.schema import (
    ChangeEntry,
    Enrollment,
    EnrollmentPublic,
    EntityKind,
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

from ._json_sql import document_sql, feed_document_sql

__all__ = ["RESOURCES", "Page", "Reader", "Resource"]


def _table(model: type[SQLModel]) -> Table:
    return model.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Resource:
    name: str
    table: Table
    public: type[BaseModel]
    entity_type: str | None
    #: Sort key, ascending unless ``descending``; the last column must be unique.
    order: tuple[str, ...] = ("id",)
    descending: bool = False

    @property
    def fields(self) -> tuple[str, ...]:
        """Every field of the public representation, in output order."""
        return tuple(self.public.model_fields)

    def sort_key(self, row: Sequence[Any]) -> list[str]:
        """The JSON-safe cursor key of a row whose first columns are the sort columns."""
        return [v.isoformat() if hasattr(v, "isoformat") else str(v) for v in row]

    def parse_key(self, key: list[Any]) -> list[Any]:
        """The typed sort key of a decoded cursor; ValueError when it is not one."""
        if len(key) != len(self.order) or not all(isinstance(v, str) for v in key):
            raise ValueError("wrong key shape")
        return [_coerce(self.table.c[c], v) for c, v in zip(self.order, key, strict=True)]


@dataclass(frozen=True)
class Page:
    #: One JSON object per row, as UTF-8 text.
    documents: list[bytes]
    #: Sort key to continue from, or None when this was the last page.
    last: list[str] | None


RESOURCES: dict[str, Resource] = {
    r.name: r
    for r in (
        Resource("structures", _table(Structure), StructurePublic, EntityKind.STRUCTURE.value),
        Resource("persons", _table(Person), PersonPublic, EntityKind.PERSON.value),
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

_CHANGE_LOG: Table = _table(ChangeEntry)
#: Feed entity type -> the resource that serves that kind of entity, and its table.
_FEED_TABLES: dict[str, tuple[str, Table]] = {
    r.entity_type: (r.name, r.table) for r in RESOURCES.values() if r.entity_type is not None
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
        """A connection for the block; the principal is resolved in it first (or 401)."""
        with self.engine.connect() as connection:
            self.principal = self.rules.resolve(connection, self.principal)
            self._connection = connection
            try:
                yield connection
            finally:
                self._connection = None

    def bound(self, connection: Connection) -> Reader:
        """The same reader on a connection the caller manages (a streaming export)."""
        other = Reader(self.engine, self.rules.resolve(connection, self.principal), self.rules)
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
        after: list[Any] | None,
    ) -> Select[Any]:
        table = resource.table
        keys = [table.c[c] for c in resource.order]
        document = document_sql(self.engine.dialect.name, table, fields, resource.entity_type)
        query = select(literal_column(document).label("document"), *keys)
        rule = self.visibility(resource).rows
        conditions = [*predicates] if rule is None else [rule, *predicates]
        if after is not None:
            key = tuple_(*keys) if len(keys) > 1 else keys[0]
            value = tuple_(*after) if len(keys) > 1 else after[0]
            conditions.append(key < value if resource.descending else key > value)
        if conditions:
            query = query.where(and_(*conditions))
        return query.order_by(*[k.desc() if resource.descending else k for k in keys])

    def page(
        self,
        resource: Resource,
        predicates: Sequence[ColumnElement[bool]],
        *,
        fields: Sequence[str],
        limit: int,
        after: list[Any] | None,
    ) -> Page:
        """Up to ``limit`` objects after the key ``after``, in the resource's order."""
        query = self._select(resource, fields, predicates, after).limit(limit + 1)
        rows = self.connection.execute(query).all()
        more = len(rows) > limit
        rows = rows[:limit]
        last = resource.sort_key(rows[-1][1:]) if more else None
        return Page([row[0].encode() for row in rows], last)

    def stream(
        self,
        resource: Resource,
        predicates: Sequence[ColumnElement[bool]],
        *,
        fields: Sequence[str],
        after: list[Any] | None,
        batch: int = 1000,
    ) -> Iterator[list[bytes]]:
        """Every matching object, in batches read from a server-side cursor (flat memory)."""
        query = self._select(resource, fields, predicates, after)
        options = {"stream_results": True, "yield_per": batch}
        result = self.connection.execution_options(**options).execute(query)
        for chunk in result.partitions(batch):
            yield [row[0].encode() for row in chunk]

    def one(self, resource: Resource, entity_id: uuid.UUID, fields: Sequence[str]) -> bytes | None:
        predicate = resource.table.c.id == entity_id
        row = self.connection.execute(self._select(resource, fields, [predicate], None)).first()
        return row[0].encode() if row else None

    def changes(
        self, after: int, limit: int, predicates: Sequence[ColumnElement[bool]]
    ) -> tuple[list[bytes], int]:
        """Feed entries after sequence ``after``, oldest first, and the last sequence served."""
        table = _CHANGE_LOG
        rule = self.rules.feed_visibility(self.principal, _FEED_TABLES).rows
        conditions = [table.c.seq > after, *predicates, *([rule] if rule is not None else [])]
        document = feed_document_sql(self.engine.dialect.name)
        query = (
            select(literal_column(document).label("document"), table.c.seq)
            .where(and_(*conditions))
            .order_by(table.c.seq)
            .limit(limit)
        )
        rows = self.connection.execute(query).all()
        return [row[0].encode() for row in rows], (rows[-1][1] if rows else after)


def _coerce(column: Any, value: str) -> Any:
    python_type = column.type.python_type
    if python_type is uuid.UUID:
        return uuid.UUID(value)
    if python_type is dt.datetime:
        parsed = dt.datetime.fromisoformat(value)
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
    raise ValueError(f"no cursor key of type {python_type}")
