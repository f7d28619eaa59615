"""What the API serves of each table, and the query layer that reads it under the access rules.

A :class:`Resource` names a table, the public model that describes its objects (the contract)
and the immutable sort key used for keyset paging. :class:`Reader` is the only code that
queries the store for the API: every list, single read, export and feed page goes through it,
and it ANDs the principal's row rule with the caller's filters; a filter through another
resource (:class:`Related`) carries the principal's rule on that resource too.

Objects are rendered as JSON by the database itself (see ``_json_sql``): a reader returns
JSON texts in one representation whatever the backend, ready to be joined into a response; the
conformance kit and the tests check those bytes against the public models.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import uuid
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel
from sqlalchemy import (
    ColumnElement,
    Connection,
    DateTime,
    Engine,
    Select,
    Table,
    Uuid,
    and_,
    exists,
    literal_column,
    select,
    tuple_,
)
from sqlmodel import SQLModel

from annuaire.auth import AccessRules, Principal, PrincipalKind, Visibility
from annuaire.auth.access import DEMOGRAPHICS
from annuaire.registre.vocabulary import DataCategory, FlowKind, Operation
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
from annuaire.store.changes import structures_list

from ._json_sql import canonical, document_sql, feed_document_sql, stored_type
from .journal import Journal

__all__ = ["RESOURCES", "Filter", "Page", "Reader", "Related", "Resource"]


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
    #: The data category (or categories) of every field that carries personal data (none: not
    #: personal data).
    categories: Mapping[str, DataCategory | frozenset[DataCategory]] = field(
        default_factory=dict, hash=False
    )
    #: Columns holding the hub ids of the persons an object concerns.
    subjects: tuple[str, ...] = ()

    @property
    def personal(self) -> bool:
        return bool(self.categories)

    def categories_of(self, fields: Sequence[str], *, family: bool = False) -> set[DataCategory]:
        """The data categories an object narrowed to ``fields`` carries.

        A field's categories cover every person it may describe: a role is a staff member's
        function (professional) or a pupil's schooling. Read by a ``family`` (a guardian or a
        pupil, who see themselves and their pupils only: see annuaire.auth.access), it
        describes a pupil: schooling only.
        """
        found: set[DataCategory] = set()
        for name in fields:
            category = self.categories.get(name)
            if isinstance(category, DataCategory):
                found.add(category)
            elif category is not None:
                found.update(category)
        if family and DataCategory.PROFESSIONAL in found:
            found.discard(DataCategory.PROFESSIONAL)
            found.add(DataCategory.SCHOOLING)
        return found

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
class Related:
    """A filter through the rows of another resource: an object passes when a row of
    ``resource`` that the reader may read meets ``conditions`` (which tie that row to it).

    The reader ANDs its rule on ``resource`` into the subquery, so a filter never tells what
    the caller may not read: an ENT client does not learn, by asking for the persons with a
    role at a school outside its contract, who has one there.
    """

    resource: Resource
    conditions: tuple[ColumnElement[bool], ...]


#: What a route adds to the row rule: a predicate on the resource's own table, or a filter
#: through another resource.
Filter = ColumnElement[bool] | Related


@dataclass(frozen=True)
class Page:
    #: One JSON object per row, as UTF-8 text.
    documents: list[bytes]
    #: Sort key to continue from, or None when this was the last page.
    last: list[str] | None
    #: Who and where the objects concern: hub ids of persons (repeats allowed: a list, as
    #: hashing UUIDs costs more than the flow log's pseudonyms dedupe), UAIs (for the flow log).
    persons: list[uuid.UUID] = field(default_factory=list)
    structures: set[str] = field(default_factory=set)


def _fields_of(categories: DataCategory, *names: str) -> dict[str, DataCategory]:
    return dict.fromkeys(names, categories)


_ROLE_FIELDS = ("role", "function_code", "function_label", "discipline_code", "discipline_label")
PERSON_CATEGORIES: dict[str, DataCategory | frozenset[DataCategory]] = {
    **_fields_of(DataCategory.IDENTIFIERS, "id", "external_ids"),
    **_fields_of(
        DataCategory.IDENTITY_NAME,
        "usage_name",
        "birth_name",
        "first_name",
        "other_first_names",
        "civility",
    ),
    "birth_date": DataCategory.IDENTITY_BIRTH_DATE,
    # The demographics scope's fields: the birth date and the contact details.
    **_fields_of(DataCategory.CONTACT, *sorted(DEMOGRAPHICS - {"birth_date"})),
    # What a person is where: staff functions, and a pupil's MEF or level and options.
    "roles": frozenset((DataCategory.PROFESSIONAL, DataCategory.SCHOOLING)),
}
ROLE_CATEGORIES = {
    "person_id": DataCategory.IDENTIFIERS,
    **_fields_of(DataCategory.PROFESSIONAL, *_ROLE_FIELDS, "start_date", "end_date"),
    # A pupil's MEF or level, and their options.
    **_fields_of(DataCategory.SCHOOLING, "level_code", "subject_codes"),
}
ENROLLMENT_CATEGORIES = {
    "person_id": DataCategory.IDENTIFIERS,
    **_fields_of(
        DataCategory.SCHOOLING,
        "class_id",
        "group_id",
        "role",
        "subject_code",
        "start_date",
        "end_date",
    ),
}
GUARDIANSHIP_CATEGORIES = {
    **_fields_of(DataCategory.IDENTIFIERS, "guardian_id", "pupil_id"),
    **_fields_of(
        DataCategory.RELATIONS,
        "relation",
        "relation_code",
        "legal",
        "financial",
        "contact",
        "payment",
        "residence",
    ),
}
#: Warnings of an import run name source records (AAF ids of persons, say).
IMPORT_RUN_CATEGORIES = {"warnings": DataCategory.IDENTIFIERS}


RESOURCES: dict[str, Resource] = {
    r.name: r
    for r in (
        Resource("structures", _table(Structure), StructurePublic, EntityKind.STRUCTURE.value),
        Resource(
            "persons",
            _table(Person),
            PersonPublic,
            EntityKind.PERSON.value,
            categories=PERSON_CATEGORIES,
            subjects=("id",),
        ),
        Resource(
            "roles",
            _table(Role),
            RolePublic,
            EntityKind.ROLE.value,
            categories=ROLE_CATEGORIES,
            subjects=("person_id",),
        ),
        Resource("classes", _table(SchoolClass), SchoolClassPublic, EntityKind.CLASS.value),
        Resource("groups", _table(Group), GroupPublic, EntityKind.GROUP.value),
        Resource(
            "enrollments",
            _table(Enrollment),
            EnrollmentPublic,
            EntityKind.ENROLLMENT.value,
            categories=ENROLLMENT_CATEGORIES,
            subjects=("person_id",),
        ),
        Resource(
            "guardianships",
            _table(Guardianship),
            GuardianshipPublic,
            EntityKind.GUARDIANSHIP.value,
            categories=GUARDIANSHIP_CATEGORIES,
            subjects=("guardian_id", "pupil_id"),
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
            categories=IMPORT_RUN_CATEGORIES,
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
    With a :class:`~annuaire.api.journal.Journal`, :meth:`record` has the request's flow entry
    committed: a route calls it after reading and before answering, so nothing is served
    without its entry (a failed write fails the request).
    """

    def __init__(
        self,
        engine: Engine,
        principal: Principal,
        rules: AccessRules,
        journal: Journal | None = None,
    ) -> None:
        self.engine = engine
        self.principal = principal
        self.rules = rules
        self.journal = journal
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
            self.principal = self._resolved(connection)
            self._connection = connection
            try:
                yield connection
            finally:
                self._connection = None

    def bound(self, connection: Connection) -> Reader:
        """The same reader on a connection the caller manages (a streaming export)."""
        other = Reader(self.engine, self._resolved(connection), self.rules, self.journal)
        other._connection = connection
        return other

    def _resolved(self, connection: Connection) -> Principal:
        """The principal resolved in ``connection`` (or 401); a client whose contract runs
        under no activity of the register for ENT clients is refused (403) on every route,
        whether or not it serves personal data."""
        principal = self.rules.resolve(connection, self.principal)
        if principal.kind is PrincipalKind.CLIENT and self.journal is not None:
            self.journal.activity(principal, FlowKind.API_CLIENT)
        return principal

    def record(
        self,
        operation: Operation,
        categories: Collection[DataCategory],
        page: Page,
        *,
        payload: bytes | None = None,
        as_dpo: bool = False,
    ) -> None:
        """Have the flow entry of what is about to be served committed (or raise)."""
        if self.journal is None:
            return
        digest = hashlib.sha256(payload).hexdigest() if payload is not None else None
        self.journal.record(
            self.principal,
            operation=operation,
            categories=categories,
            persons=page.persons,
            structures=page.structures,
            payload_digest=digest,
            as_dpo=as_dpo,
        )

    def visibility(self, resource: Resource) -> Visibility:
        return self.rules.visibility(self.principal, resource.name, resource.table)

    def categories_of(self, resource: Resource, fields: Sequence[str]) -> set[DataCategory]:
        """The categories of ``fields`` of ``resource`` as this principal reads them."""
        return resource.categories_of(fields, family=self.visibility(resource).family)

    def readable_fields(self, resource: Resource) -> tuple[str, ...]:
        allowed = self.visibility(resource).fields
        return tuple(f for f in resource.fields if allowed is None or f in allowed)

    def _where(
        self,
        resource: Resource,
        predicates: Sequence[Filter],
        after: list[Any] | None,
    ) -> list[ColumnElement[bool]]:
        keys = [resource.table.c[c] for c in resource.order]
        rule = self.visibility(resource).rows
        conditions = [self._predicate(p) for p in predicates]
        if rule is not None:
            conditions.insert(0, rule)
        if after is not None:
            key = tuple_(*keys) if len(keys) > 1 else keys[0]
            value = tuple_(*after) if len(keys) > 1 else after[0]
            conditions.append(key < value if resource.descending else key > value)
        return conditions

    def _predicate(self, predicate: Filter) -> ColumnElement[bool]:
        if not isinstance(predicate, Related):
            return predicate
        rule = self.visibility(predicate.resource).rows
        return exists().where(*predicate.conditions, *([] if rule is None else [rule]))

    def _select(
        self,
        resource: Resource,
        fields: Sequence[str],
        predicates: Sequence[Filter],
        after: list[Any] | None,
    ) -> Select[Any]:
        """Rows of (document, *sort key, *person ids, structures)."""
        table = resource.table
        keys = [table.c[c] for c in resource.order]
        roles_rule = self._roles_rule() if "roles" in fields else None
        document = document_sql(
            self.engine.dialect.name, table, fields, resource.entity_type, roles_rule
        )
        query = select(literal_column(document).label("document"), *keys, *_concerned(resource))
        conditions = self._where(resource, predicates, after)
        if conditions:
            query = query.where(and_(*conditions))
        return query.order_by(*[k.desc() if resource.descending else k for k in keys])

    def _roles_rule(self) -> str | None:
        """The principal's rule on roles, as SQL on table ``role`` (None: every role), for the
        roles a person document embeds."""
        roles = RESOURCES["roles"]
        return self.rules.rows_sql(self.principal, roles.name, roles.table, self.engine.dialect)

    def page(
        self,
        resource: Resource,
        predicates: Sequence[Filter],
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
        width = len(resource.order)
        last = resource.sort_key(rows[-1][1 : 1 + width]) if more else None
        page = Page([canonical(row[0]) for row in rows], last)
        _collect(page, resource, rows, 1 + width)
        return page

    def stream(
        self,
        resource: Resource,
        predicates: Sequence[Filter],
        *,
        fields: Sequence[str],
        after: list[Any] | None,
        limit: int | None = None,
        batch: int = 1000,
    ) -> Iterator[Page]:
        """Every matching object (at most ``limit``), in pages read from a server-side cursor
        (flat memory), each with the persons and structures it concerns."""
        query = self._select(resource, fields, predicates, after)
        if limit is not None:
            query = query.limit(limit)
        options = {"stream_results": True, "yield_per": batch}
        result = self.connection.execute(query.execution_options(**options))
        for rows in result.partitions(batch):
            page = Page([canonical(row[0]) for row in rows], None)
            _collect(page, resource, rows, 1 + len(resource.order))
            yield page

    def one(self, resource: Resource, entity_id: uuid.UUID, fields: Sequence[str]) -> Page:
        """The object (a page of one, or of none)."""
        predicate = resource.table.c.id == entity_id
        rows = self.connection.execute(self._select(resource, fields, [predicate], None)).all()
        page = Page([canonical(row[0]) for row in rows], None)
        _collect(page, resource, rows, 1 + len(resource.order))
        return page

    def changes(
        self, after: int, limit: int, predicates: Sequence[ColumnElement[bool]]
    ) -> tuple[Page, int]:
        """Feed entries after sequence ``after``, oldest first, and the last sequence served."""
        table = _CHANGE_LOG
        rule = self.rules.feed_visibility(self.principal, _FEED_TABLES).rows
        conditions = [table.c.seq > after, *predicates, *([rule] if rule is not None else [])]
        document = feed_document_sql(self.engine.dialect.name)
        query = (
            select(
                literal_column(document).label("document"),
                table.c.seq,
                table.c.entity_type,
                table.c.entity_id,
                table.c.structures,
            )
            .where(and_(*conditions))
            .order_by(table.c.seq)
            .limit(limit)
        )
        rows = self.connection.execute(query).all()
        page = Page([canonical(row[0]) for row in rows], None)
        for row in rows:
            if row[2] == EntityKind.PERSON.value:
                page.persons.append(row[3])
            page.structures.update(structures_list(row[4]))
        return page, (rows[-1][1] if rows else after)


def _concerned(resource: Resource) -> list[Any]:
    table = resource.table
    columns = [table.c[c] for c in resource.subjects]
    if "structures" in table.c:
        columns.append(table.c.structures)
    return columns


def _collect(page: Page, resource: Resource, rows: Sequence[Any], start: int) -> None:
    """Add the person ids and UAIs found from column ``start`` of ``rows`` to ``page``."""
    if not resource.personal:
        return
    persons = len(resource.subjects)
    structured = "structures" in resource.table.c
    for row in rows:
        page.persons.extend(v for v in row[start : start + persons] if v is not None)
        if structured:
            page.structures.update(structures_list(row[start + persons]))


def _coerce(column: Any, value: str) -> Any:
    kind = stored_type(column)
    if isinstance(kind, Uuid):
        return uuid.UUID(value)
    if isinstance(kind, DateTime):
        parsed = dt.datetime.fromisoformat(value)
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
    raise ValueError(f"no cursor key of type {kind}")
