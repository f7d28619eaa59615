"""The change log: every write to a neutral entity appends one entry, in commit order.

Why commit order matters: a consumer pages with ``seq > cursor``. If a transaction that drew
sequence 100 committed after one that drew 101 and the consumer had already read 101, entry
100 would be skipped for ever. So on PostgreSQL writers never insert into ``change_log``
directly: they stage entries in a temporary table during their (possibly long) transaction, and
move them into ``change_log`` at the very end, holding a transaction-scoped advisory lock until
the commit. Sequences are therefore drawn in commit order.

SQLite has a single writer at a time: a write transaction holds the database's only write lock
from its first write (from its ``BEGIN IMMEDIATE``, see annuaire.store.engine) to its commit,
so no other transaction can draw a sequence in between, and entries go straight into
``change_log`` (staging them would copy every entry of a run once more: 0.9 s of a first
import of 900,000 entities). The recorder's ``table`` and ``key`` name where this run's entries
are and their order column, for the statements that read them back before the commit.
"""

from __future__ import annotations

import bisect
import datetime as dt
import heapq
import itertools
import uuid
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import overload

from sqlalchemy import (
    Column,
    Connection,
    Integer,
    MetaData,
    Table,
    bindparam,
    insert,
    select,
    text,
    update,
)

from annuaire.schema import PERSON_COLUMNS, TABLES, ChangeEntry
from annuaire.store.bulk import bulk_insert

__all__ = [
    "ChangePage",
    "ChangeRecorder",
    "PackedIds",
    "changes_after",
    "pack_sorted",
    "structures_list",
    "structures_text",
    "structures_union",
]

#: Ids per IN (...) list: well under every backend's parameter limit.
_IN_CHUNK = 900
#: Arbitrary, fixed key of the advisory lock that orders change-log commits on PostgreSQL.
_FEED_LOCK_KEY = 0x41494755  # "AIGU"

_CHANGE_LOG: Table = ChangeEntry.__table__  # type: ignore[attr-defined]
_COPIED = ["entity_type", "entity_id", "op", "at", "scope", "run_id", "structures"]
_pending = Table(
    "pending_change",
    MetaData(),
    Column("n", Integer, primary_key=True, autoincrement=True),
    *[
        Column(name, _CHANGE_LOG.c[name].type, nullable=_CHANGE_LOG.c[name].nullable)
        for name in _COPIED
    ],
    prefixes=["TEMPORARY"],
)


def structures_text(uais: Iterable[str]) -> str:
    """``|A|B|`` form, searchable with ``LIKE '%|A|%'`` on both backends."""
    ordered = sorted({u for u in uais if u})
    return "|" + "|".join(ordered) + "|" if ordered else ""


def structures_list(structures: str | None) -> list[str]:
    """The UAIs of the ``|A|B|`` form (``structures_text`` read back), in its order."""
    return [uai for uai in (structures or "").split("|") if uai]


@overload
def structures_union(after: str, before: str | None) -> str: ...
@overload
def structures_union(after: None, before: str | None) -> None: ...
def structures_union(after: str | None, before: str | None) -> str | None:
    """The UAIs of an entity's change entry when it is written again: those it ends with and
    those it had (``|A|B|`` forms), so that the feed of a structure it leaves tells of it.
    None when ``after`` is (the source could not tell: the stored ones are kept)."""
    if after is None or not before or before == after:
        return after
    return structures_text([*structures_list(after), *structures_list(before)])


class ChangeRecorder:
    """Records change entries inside one transaction; they are published by the commit.

    On PostgreSQL they are staged and moved into the change log by :meth:`publish`, right
    before the commit; on SQLite they are written to it at once (see the module's docstring).
    """

    def __init__(self, connection: Connection, *, scope: str, run_id: uuid.UUID | None) -> None:
        self.connection = connection
        self.scope = scope
        self.run_id = run_id
        self.staged = 0
        self.direct = connection.dialect.name == "sqlite"
        #: Where this transaction's entries are, and their order column.
        self.table, self.key = ("change_log", "seq") if self.direct else ("pending_change", "n")
        #: SQL that inserts entries: ``{insert} SELECT entity_type, entity_id, op, at, scope,
        #: run_id, structures ...``.
        self.insert = f"INSERT INTO {self.table} ({', '.join(_COPIED)})"
        if self.direct:
            # The change log's last entry before this transaction's: read under its write lock.
            self._before = self.last()
        else:
            self._before = 0
            _pending.create(connection, checkfirst=True)
            self._empty()

    def last(self) -> int:
        """The order key of the last entry recorded (0 when none)."""
        found = self.connection.exec_driver_sql(f"SELECT max({self.key}) FROM {self.table}")
        return int(found.scalar() or 0)

    def stage(self, rows: Sequence[tuple[str, uuid.UUID, str, str]], at: dt.datetime) -> None:
        """Record (entity_type, entity_id, op, structures) rows."""
        if not rows:
            return
        bulk_insert(
            self.connection,
            _CHANGE_LOG if self.direct else _pending,
            [
                {
                    "entity_type": entity_type,
                    "entity_id": entity_id,
                    "op": op,
                    "at": at,
                    "scope": self.scope,
                    "run_id": self.run_id,
                    "structures": structures,
                }
                for entity_type, entity_id, op, structures in rows
            ],
        )
        self.staged += len(rows)

    def structures_of(self, entity_type: str, ids: Collection[uuid.UUID]) -> dict[uuid.UUID, str]:
        """The structures of this transaction's entries of these entities (before publish)."""
        table = _CHANGE_LOG if self.direct else _pending
        listed = list(ids)
        found: dict[uuid.UUID, str] = {}
        for start in range(0, len(listed), _IN_CHUNK):
            rows = self.connection.execute(
                select(table.c.entity_id, table.c.structures).where(
                    table.c.entity_type == entity_type,
                    table.c[self.key] > self._before,
                    table.c.entity_id.in_(listed[start : start + _IN_CHUNK]),
                )
            )
            found.update((entity_id, structures or "") for entity_id, structures in rows)
        return found

    def restate(self, entity_type: str, rows: Sequence[tuple[uuid.UUID, str]]) -> None:
        """Give this transaction's entries of these (entity id, structures) the structures an
        entity ends with, when it is written again after its entry was recorded: one entry per
        entity and run."""
        if not rows:
            return
        table = _CHANGE_LOG if self.direct else _pending
        self.connection.execute(
            update(table)
            .where(
                table.c.entity_type == entity_type,
                table.c.entity_id == bindparam("entity"),
                table.c[self.key] > self._before,
            )
            .values(structures=bindparam("uais")),
            [{"entity": entity_id, "uais": structures} for entity_id, structures in rows],
        )

    def entities(self, entity_type: str) -> str:
        """SQL selecting the ids of the ``entity_type`` entities this transaction's entries name
        (before publish)."""
        return (
            f"SELECT entity_id FROM {self.table} "
            f"WHERE entity_type = '{entity_type}' AND {self.key} > {self._before:d}"
        )

    def concerned(self, *, linked: bool = True) -> tuple[PackedIds, set[str], set[str]]:
        """What the staged entries touch: person ids, UAIs and entity kinds (before publish).

        The persons are those of the person entries and, with ``linked``, those that the
        role, enrollment and guardianship entries are about (a pupil moved to another class is
        concerned, their person row unchanged). A run that created every person it names (a
        first import) passes ``linked=False``: the linked rows name those persons again."""
        # No DISTINCT: PackedIds drops repeats itself, for a third of what SQLite's temporary
        # B-tree costs (a first import names every person of the académie).
        mine = f"{self.key} > {self._before:d}"
        queries = [self.entities("person")]
        if linked:
            queries += [
                f"SELECT {', '.join(columns)} FROM {TABLES[kind].__tablename__} "
                f"WHERE id IN ({self.entities(kind.value)})"
                for kind, columns in PERSON_COLUMNS.items()
            ]
        persons = PackedIds(
            value.bytes if isinstance(value, uuid.UUID) else bytes.fromhex(value)
            for query in queries
            for row in self.connection.exec_driver_sql(query)
            for value in row
            if value is not None
        )
        kinds: set[str] = set()
        uais: set[str] = set()
        for entity_type, structures in self.connection.exec_driver_sql(
            f"SELECT DISTINCT entity_type, structures FROM {self.table} WHERE {mine}"
        ):
            kinds.add(entity_type)
            uais.update(structures_list(structures))
        return persons, uais, kinds

    def publish(self) -> None:
        """Move staged entries into the change log. Call last, right before commit."""
        if self.staged == 0 or self.direct:
            self.staged = 0
            return
        # Staged entries are PostgreSQL's only (see the module's docstring).
        self.connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _FEED_LOCK_KEY})
        source = select(*[_pending.c[name] for name in _COPIED]).order_by(_pending.c.n)
        self.connection.execute(insert(_CHANGE_LOG).from_select(_COPIED, source))
        self._empty()
        self.staged = 0

    def _empty(self) -> None:
        self.connection.exec_driver_sql("TRUNCATE pending_change")  # leaves no dead rows


#: Items sorted at once by :func:`pack_sorted`: a set of them takes about 5 MB.
_SORTED_AT_ONCE = 65_536


def pack_sorted(items: Iterable[bytes], width: int = 16) -> bytes:
    """``items`` (each ``width`` bytes) sorted, without repeats, as one bytes object.

    Sorted by runs of :data:`_SORTED_AT_ONCE`, then merged: a set and a sorted list of every
    item at once (what a first import's million persons would be) take about 90 bytes an item,
    where the runs take their packed bytes and one run's set.
    """
    runs: list[bytes] = []
    iterator = iter(items)
    while run := set(itertools.islice(iterator, _SORTED_AT_ONCE)):
        runs.append(b"".join(sorted(run)))
    if len(runs) <= 1:
        return runs[0] if runs else b""
    packed = bytearray()
    last = b""
    for item in heapq.merge(*[_items(run, width) for run in runs]):
        if item != last:
            packed += item
            last = item
    del runs
    return bytes(packed)


def _items(packed: bytes, width: int) -> Iterator[bytes]:
    return (packed[i : i + width] for i in range(0, len(packed), width))


class PackedIds(Collection[uuid.UUID]):
    """A set of hub ids kept as one bytes object, 16 bytes per id, sorted.

    A run's concerned persons are every person of an académie on its first import: a set of
    UUID objects would cost about 130 bytes per person, this 16. Iterating gives UUIDs, in
    order; membership is a binary search.
    """

    __slots__ = ("_packed",)

    def __init__(self, ids: Iterable[bytes]) -> None:
        self._packed = pack_sorted(ids)

    def __len__(self) -> int:
        return len(self._packed) // 16

    def __iter__(self) -> Iterator[uuid.UUID]:
        return (uuid.UUID(bytes=raw) for raw in self.raw())

    def __getitem__(self, index: int) -> bytes:
        """The 16 bytes of the ``index``-th id (what the binary search compares)."""
        if not 0 <= index < len(self):
            raise IndexError(index)
        return self._packed[index * 16 : index * 16 + 16]

    def __contains__(self, item: object) -> bool:
        if not isinstance(item, uuid.UUID):
            return False
        index = bisect.bisect_left(self, item.bytes)
        return index < len(self) and self[index] == item.bytes

    def raw(self) -> Iterator[bytes]:
        """The 16 bytes of each id, in order (no UUID object built)."""
        packed = self._packed
        return (packed[i : i + 16] for i in range(0, len(packed), 16))

    def __repr__(self) -> str:
        return f"PackedIds({len(self)} ids)"


@dataclass(frozen=True)
class ChangePage:
    entries: list[ChangeEntry]
    next_cursor: int


def changes_after(
    connection: Connection,
    cursor: int,
    limit: int,
    *,
    scope: str | None = None,
    structure: str | None = None,
) -> ChangePage:
    """The entries after ``cursor`` (a sequence number; 0 = from the start), oldest first.

    ``next_cursor`` is the sequence of the last entry returned, or ``cursor`` when the page is
    empty: a consumer stores it and asks again later.
    """
    table = _CHANGE_LOG
    query = select(table).where(table.c.seq > cursor).order_by(table.c.seq).limit(limit)
    if scope is not None:
        query = query.where(table.c.scope == scope)
    if structure is not None:
        # Escaped: a ``%`` or ``_`` given as a UAI matches itself, not every entry.
        query = query.where(table.c.structures.contains(f"|{structure}|", autoescape=True))
    entries = [ChangeEntry.model_validate(dict(row._mapping)) for row in connection.execute(query)]
    return ChangePage(entries, entries[-1].seq if entries and entries[-1].seq else cursor)
