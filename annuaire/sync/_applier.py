"""The set-based core of an import run: stage the stream, then apply it with a few statements.

Why set-based: an académie is millions of rows. Python touches each record once (resolve its
references, serialise its content to JSON, hash it) and sends it to a temporary staging table
in batches; everything else — finding what is new, changed, unchanged or missing, writing the
rows, the external ids and the change entries — is one SQL statement per entity kind (per
batch, for the compare), run by the database. Nothing grows in Python memory with the size of
the scope.

Staging (``sync_stage``, temporary): one row per record with its op, hub id, owner, content
hash, the JSON of its column values (references already resolved to hub ids) and of its
external ids. Each batch, once staged, is compared with the store: every row gets the action
it calls for: create, update, return (came back, changed), restore (came back, unchanged) or
delete; an unchanged row keeps a NULL action (it is not rewritten). A row to compare is
staged with what the compare and the removal passes read (key, owner, op, hash, structures);
its hub id, provenance and two JSON documents, which only a row with an action needs, are
added once the compare has given it one: most rows of a nightly complet are unchanged, and
these details are most of the stage's bytes and a hash per row. A kind the scope holds no row
of (a first import) is staged whole with its actions already set: there is nothing to compare.
Applying then indexes the stage by key, unique unless a key is given twice: only then are the
rows whose key a later row repeats marked superseded (the last one wins), with the rows that
an earlier record of an owner given twice carried. Rows given as carried by an owner that the
run deletes are marked superseded too (a delete carries nothing). The actions of every kind are
counted as rows are staged and compared (by one scan of the stage when rows were superseded);
then each kind is written.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import operator
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import orjson
from pydantic_core import PydanticUndefined
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Connection,
    Date,
    DateTime,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    Uuid,
    bindparam,
    select,
    text,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.elements import TextClause

from annuaire.errors import BadInput
from annuaire.schema import (
    NOT_ACTIVE,
    REFERENCES,
    TABLES,
    ChangeOp,
    EntityKind,
    NeutralRecord,
    Provenance,
    Ref,
    SourceWarning,
    StreamItem,
    Structure,
    Tracked,
)
from annuaire.settings import Settings
from annuaire.store.bulk import insert_tuples
from annuaire.store.changes import ChangeRecorder, structures_text, structures_union
from annuaire.store.engine import placeholder

from ._ids import ScopeIds
from ._report import RunReport
from ._stop import Stop

__all__ = ["REFERRED_BY", "Applier"]

_STAGE = Table(
    "sync_stage",
    MetaData(),
    Column("n", Integer, primary_key=True),
    Column("kind", String(16)),
    Column("action", String(16)),
    Column("key", String(255)),
    Column("id", String(32)),
    Column("owner_key", String(255)),
    Column("op", String(8)),
    Column("is_owner", Integer),
    Column("hash", String(32)),
    Column("structures", String(4000)),
    Column("file", String(255)),
    Column("record", String(255)),
    Column("line", Integer),
    Column("ext", Text),
    Column("payload", Text),
)
# The columns that scans filter on come first (a row is decoded up to the last column read),
# the payload last.
_STAGE_COLUMNS = tuple(column.name for column in _STAGE.c)
#: What a row to compare is staged with (see ``_flush``); its details are added to the rows
#: that the compare gives an action (unchanged rows, most of a nightly complet, need none).
_DETAILS = ("id", "file", "record", "line", "ext", "payload")
_COMPARED_COLUMNS = tuple(name for name in _STAGE_COLUMNS if name not in _DETAILS)
_COMPARED = len(_COMPARED_COLUMNS)
_STRUCTURES = _COMPARED_COLUMNS.index("structures")  # in a row to compare (floors only)
_STAGE_DDL = {
    "sqlite": """CREATE TEMP TABLE IF NOT EXISTS sync_stage (
        n INTEGER PRIMARY KEY, kind TEXT, action TEXT, key TEXT, id CHAR(32), owner_key TEXT,
        op TEXT, is_owner INTEGER, hash TEXT, structures TEXT, file TEXT, record TEXT,
        line INTEGER, ext TEXT, payload TEXT)""",
    "postgresql": """CREATE TEMP TABLE IF NOT EXISTS sync_stage (
        n BIGINT PRIMARY KEY, kind TEXT, action TEXT, key TEXT, id UUID, owner_key TEXT,
        op TEXT, is_owner INTEGER, hash TEXT, structures TEXT, file TEXT, record TEXT,
        line INTEGER, ext JSONB, payload JSONB)""",
}
_TRACKED_COLUMNS = frozenset(Tracked.model_fields)
# Parameters used both as a value and in a comparison need one type on PostgreSQL.
_TEXT_KIND = "CAST(:kind AS VARCHAR)"
_TEXT_SCOPE = "CAST(:scope AS VARCHAR)"
#: Parameters that need their column's bind processing (timezone-aware time, UUID).
_BIND_TYPES: dict[str, Any] = {
    "now": Structure.__table__.c.modified_at.type,  # type: ignore[attr-defined]
    "run": Structure.__table__.c.import_run_id.type,  # type: ignore[attr-defined]
}
#: Marks staged UAIs that are a floor (``NeutralRecord.structures_floor``): merged with the
#: stored ones before anything is written (``Applier._merge_floors``).
_FLOOR = "+"
#: The condition on a stored row ``t`` of kind ``:kind`` that the run does not yield: no
#: staged row has its key, superseded rows aside (an earlier version's, see ``_supersede``).
_NOT_STAGED = (
    "NOT EXISTS (SELECT 1 FROM sync_stage s WHERE s.kind = :kind AND s.key = t.source_key "
    "AND (s.action IS NULL OR s.action != 'superseded'))"
)
#: The same, for a stage where no key is given twice (no row is superseded): read from the
#: stage's unique index alone.
_NOT_STAGED_UNIQUE = (
    "NOT EXISTS (SELECT 1 FROM sync_stage s WHERE s.kind = :kind AND s.key = t.source_key)"
)
#: The (kind, column) pairs that point to each kind (``REFERENCES`` read the other way).
REFERRED_BY: dict[EntityKind, list[tuple[EntityKind, str]]] = {}
for _source, _columns in REFERENCES.items():
    for _column, _target in _columns.items():
        REFERRED_BY.setdefault(_target, []).append((_source, _column))
#: Rows held back (mapped, not yet staged) while the count runs, at most: ~25 MB.
_HELD_ROWS = 50_000


def _blank_row(kind: EntityKind) -> dict[str, Any]:
    """Every content column of ``kind`` at its default: a record replaces the whole row."""
    blank: dict[str, Any] = {}
    for name, info in TABLES[kind].model_fields.items():
        if name in _TRACKED_COLUMNS:
            continue
        default = info.default_factory() if info.default_factory else info.default  # type: ignore[call-arg]
        blank[name] = None if default is PydanticUndefined else default
    return blank


_BLANKS_BY_VALUE = {kind.value: _blank_row(kind) for kind in EntityKind}
#: Keys are stored in columns of 255 characters (``source_key``, ``owner_key``).
_KEY_LENGTH = 255


_Limited = tuple[Callable[[dict[str, Any]], tuple[Any, ...]], tuple[str, ...], tuple[int, ...]]


def _limited(kind: EntityKind) -> _Limited | None:
    """A getter of ``kind``'s text columns of bounded length (from a row's values), their names
    and their lengths; None if it has none."""
    columns = [
        column
        for column in TABLES[kind].__table__.c  # type: ignore[attr-defined]
        if getattr(column.type, "length", None) and column.name not in _TRACKED_COLUMNS
    ]
    if not columns:
        return None
    names = tuple(column.name for column in columns)
    getter = operator.itemgetter(*names, names[0])  # a tuple, even of one column
    return getter, names, tuple(column.type.length for column in columns)


#: Checked on every row written (``Applier._fitted``): PostgreSQL refuses a longer value (the
#: whole run would fail), SQLite stores it (and the API would serve what its contract forbids).
_LIMITED_BY_VALUE = {kind.value: _limited(kind) for kind in EntityKind}
# Each kind numbers its staged rows in a block of its own (``n`` = its base + the row's rank in
# the stream): a kind's rows are then a range of the stage's primary key, read in order.
_KIND_BITS = 40
_KIND_BASE = {kind.value: index << _KIND_BITS for index, kind in enumerate(EntityKind)}
_KIND = operator.itemgetter(1)  # of a staged row
_KIND_AND_ACTION = operator.itemgetter(1, 2)


def _dashed(hex_id: str) -> str:
    """``str(uuid.UUID(hex=hex_id))`` for 32 lowercase hex digits, without the UUID object."""
    h = hex_id
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class _Dialect:
    """The few SQL spellings that differ between SQLite and PostgreSQL."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.postgres = name == "postgresql"

    def extract(self, column: Column[Any]) -> str:
        """An expression reading ``column`` from the staged JSON payload of row ``c``."""
        name = column.name
        if not self.postgres:
            return f"json_extract(c.payload, '$.{name}')"
        kind = column.type
        if isinstance(kind, JSON):
            return f"(c.payload -> '{name}')::json"
        cast = "text"
        if isinstance(kind, Uuid):
            cast = "uuid"
        elif isinstance(kind, Date) and not isinstance(kind, DateTime):
            cast = "date"
        elif isinstance(kind, Boolean):
            cast = "boolean"
        elif isinstance(kind, Integer):
            cast = "bigint"
        elif isinstance(kind, Float):
            cast = "double precision"
        return f"(c.payload ->> '{name}')::{cast}"

    def bound(self, parameter: str, postgres_type: str) -> str:
        """A bound text parameter as a stage column of ``postgres_type`` takes it (SQLite's
        columns take the text as it is)."""
        return f"CAST({parameter} AS {postgres_type})" if self.postgres else parameter

    def leaving(self, table: str, log: str, key: str) -> str:
        """The condition on ``table`` of the rows whose change entries follow ``:last`` in
        ``log``. SQLite: found by id, then updated in rowid order, where the ids (random) would
        visit the table's pages and its time index at random: 15 % less time for the rows of
        a nightly delta that leave (bench/aaf_import.py)."""
        entries = f"SELECT entity_id FROM {log} WHERE {key} > :last"
        if self.postgres:
            return f"id IN ({entries})"
        return f"rowid IN (SELECT rowid FROM {table} WHERE id IN ({entries}))"

    def scanned(self, table: str, alias: str = "t") -> str:
        """``table`` as ``alias``, read in its own order (SQLite would otherwise walk an index
        on a column of the condition and fetch every row at random)."""
        return f"{table} AS {alias}" if self.postgres else f"{table} AS {alias} NOT INDEXED"

    def same_structures(self) -> str:
        """The condition that the staged UAIs of ``c`` leave the stored ones of ``t`` as they are:
        none given (the source cannot tell), the same, or a floor (``_FLOOR``) they contain."""
        if self.postgres:
            contained = (
                "string_to_array(btrim(substr(c.structures, 2), '|'), '|') "
                "<@ string_to_array(btrim(t.structures, '|'), '|')"
            )
        else:  # UAIs are letters and digits: the floor's list spelt as a JSON array
            contained = (
                """NOT EXISTS (SELECT 1 FROM json_each('["' || replace(trim(substr(c.structures, """
                """2), '|'), '|', '","') || '"]') AS u """
                "WHERE instr(t.structures, '|' || u.value || '|') = 0)"
            )
        return (
            "(c.structures IS NULL OR c.structures = t.structures OR "
            f"(substr(c.structures, 1, 1) = '{_FLOOR}' AND {contained}))"
        )

    def union(self, after: str, before: str) -> str:
        """``structures_union(after, before)`` (annuaire.store.changes) in SQL: ``after``, or
        when ``before`` names other UAIs, the sorted union of both (``|A|B|`` forms)."""
        if not self.postgres:
            return f"structures_union({after}, {before})"  # the connection's Python function
        merged = (
            "(SELECT '|' || string_agg(DISTINCT u COLLATE \"C\", '|' "
            "ORDER BY u COLLATE \"C\") || '|' "
            f"FROM unnest(string_to_array(btrim({after} || {before}, '|'), '|')) AS u "
            "WHERE u <> '')"
        )
        return (
            f"CASE WHEN {after} IS NULL OR coalesce({before}, '') IN ('', {after}) "
            f"THEN {after} ELSE {merged} END"
        )

    def external_ids(self) -> tuple[str, str, str]:
        """A FROM item over the staged external ids of ``c``, and its type and value."""
        if self.postgres:
            return "jsonb_array_elements(c.ext) AS e", "e ->> 0", "e ->> 1"
        first, second = "json_extract(e.value, '$[0]')", "json_extract(e.value, '$[1]')"
        return "json_each(c.ext) AS e", first, second


class Applier:
    """Stages one run's stream and applies it inside the caller's transaction."""

    def __init__(
        self,
        connection: Connection,
        report: RunReport,
        settings: Settings,
        now: dt.datetime,
        stop: Stop | None = None,
    ) -> None:
        #: Checked before each batch staged and each statement applied (see ``_stop``).
        self.stop = stop
        self.connection = connection
        self.report = report
        self.scope = report.scope
        self.scope_key = report.scope.key
        self.settings = settings
        self.now = now
        self.sql = _Dialect(connection.dialect.name)
        self.recorder = ChangeRecorder(connection, scope=self.scope_key, run_id=report.run_id)
        self.staged = 0
        #: ``staged`` when the last batch was compared (see ``_flush``).
        self._compared = 0
        #: Kinds (values) whose columns were checked. Kinds are handled by their value in the
        #: staging hot path: an enum member's hash and ``.value`` are Python-level calls.
        self.checked: set[str] = set()
        self.ids = ScopeIds(self.scope_key)
        #: Staged rows per action, per kind (filled by ``apply``).
        self.actions: dict[EntityKind, dict[str, int]] = {}
        self._structures: dict[tuple[str, ...], str] = {}
        #: Active rows of the scope per kind (value) before the run, counted by a helper thread.
        self.active: dict[str, int] = {}
        #: Kinds (values) of which the scope holds no row yet (its first import): their rows
        #: are staged with their action (create, or delete), with nothing to compare.
        self.fresh = {kind.value for kind in EntityKind if not self._holds(kind)}
        connection.exec_driver_sql(_STAGE_DDL[self.sql.name])
        # The stage's key index is built once the stage is full (one sort instead of an insert
        # per row at a random place); the previous run's is dropped with its rows.
        self._stage_index = "sync_stage_key" if self.sql.postgres else "temp.sync_stage_key"
        connection.exec_driver_sql(f"DROP INDEX IF EXISTS {self._stage_index}")
        # TRUNCATE on PostgreSQL: a DELETE would leave the previous run's dead rows for every
        # later scan of the stage to step over.
        connection.exec_driver_sql(
            "TRUNCATE sync_stage" if self.sql.postgres else "DELETE FROM sync_stage"
        )
        # Counted by a helper thread while the caller starts reading its stream (the count is
        # one statement per table, run with the GIL released); the connection is used by one
        # thread at a time: the batches mapped meanwhile are held and staged once it is done,
        # ``apply`` and ``close`` wait for it.
        # (Inserting the batches from that thread measured slower: a GIL hand-off per row.)
        self._helper = ThreadPoolExecutor(1, thread_name_prefix="sync-count")
        self._counting: Future[None] | None = self._helper.submit(self._count_active_before)
        #: Rows mapped while the count ran, staged once it is done.
        self._held: list[tuple[Any, ...]] = []
        #: Staged rows per (kind value, action): None while unchanged (see ``_flush``).
        self._tally: Counter[tuple[str, str | None]] = Counter()
        #: The removal passes' condition that a stored row is not staged (see ``_index_stage``).
        self._not_staged = _NOT_STAGED

    # -- helpers -----------------------------------------------------------------------------

    def table(self, kind: EntityKind) -> Table:
        return TABLES[kind].__table__  # type: ignore[attr-defined]

    def warn(
        self,
        code: str,
        message: str,
        where: tuple[str | None, int | None, str | None] | None = None,
    ) -> None:
        provenance = Provenance(where[0], where[1], where[2]) if where and where[0] else None
        self.report.warn(SourceWarning(code, message, provenance), self.settings.warnings_kept)

    def _holds(self, kind: EntityKind) -> bool:
        table = self.table(kind)
        probe = select(1).select_from(table).where(table.c.scope == self.scope_key).limit(1)
        return self.connection.execute(probe).first() is not None

    def _count_active_before(self) -> None:
        # All the scope's rows (the owner index holds them, and is read alone) less those that
        # are not active (a partial index holds them): two index reads, where a condition on
        # the status read every row of the table.
        for kind in self._held_kinds():
            name = self.table(kind).name
            self.active[kind.value] = self.connection.execute(
                text(
                    f"SELECT (SELECT count(*) FROM {name} WHERE scope = :scope) - "
                    f"(SELECT count(*) FROM {name} WHERE scope = :scope AND {NOT_ACTIVE})"
                ),
                {"scope": self.scope_key},
            ).scalar_one()
        self.report.active_before = sum(self.active.values())

    def _check_columns(self, record: NeutralRecord) -> None:
        table = self.table(record.kind)
        unknown = (set(record.data) | set(record.refs)) - set(table.c.keys())
        if unknown:
            raise ValueError(
                f"{record.kind.value} records carry unknown columns: {sorted(unknown)}"
            )
        self.checked.add(record.kind._value_)

    def _resolve(self, value: Ref | list[Ref] | None) -> Any:
        if value is None:
            return None
        reference = self.ids.reference
        if isinstance(value, list):  # a JSON list of ids: in their canonical (dashed) form
            return [_dashed(reference(r.kind._value_, r.key)) for r in value]
        return reference(value.kind._value_, value.key)

    def _execute(self, sql: str, **params: Any) -> Any:
        if self.stop is not None:
            self.stop.check()
        statement: TextClause = text(sql).bindparams(
            *[bindparam(name, type_=_BIND_TYPES[name]) for name in params if name in _BIND_TYPES]
        )
        return self.connection.execute(statement, params)

    # -- staging -----------------------------------------------------------------------------

    def stage(self, batch: Sequence[StreamItem]) -> None:
        if self.stop is not None:
            self.stop.check()
        rows: list[tuple[Any, ...]] = []
        for item in batch:
            if isinstance(item, SourceWarning):
                self.report.warn(item, self.settings.warnings_kept)
                continue
            rows.append(self._stage_row(item))
        counting = self._counting
        if counting is not None and not counting.done() and len(self._held) < _HELD_ROWS:
            self._held.extend(rows)  # the count still has the connection: map on meanwhile
            return
        self._flush(rows)

    def _flush(self, rows: list[tuple[Any, ...]]) -> None:
        """Stage ``rows`` after those held while the count ran, and compare them."""
        self._wait_for_count()
        if self._held:
            rows, self._held = self._held + rows, []
        if not rows:
            return
        fresh = self.fresh
        whole = [row for row in rows if row[1] in fresh] if fresh else []
        tally = self._tally
        if whole:
            insert_tuples(self.connection, _STAGE, _STAGE_COLUMNS, whole)
            tally.update(map(_KIND_AND_ACTION, whole))  # staged with their action
        if len(whole) == len(rows):
            return
        compared = [row for row in rows if row[1] not in fresh] if whole else rows
        insert_tuples(
            self.connection, _STAGE, _COMPARED_COLUMNS, [row[:_COMPARED] for row in compared]
        )
        # Each batch is compared as soon as it is staged: while the parsing worker is the
        # slower side (an unchanged re-import), these statements fill this process's wait for
        # the next batch instead of running after the stream. The rows of a kind staged since
        # the last flush are the range of its block between the two counts.
        since, self._compared = self._compared, self.staged
        ranges = []
        for kind_value, count in Counter(map(_KIND, compared)).items():
            tally[(kind_value, None)] += count  # unchanged, until the compare says otherwise
            base = _KIND_BASE[kind_value]
            after, last = base + since, base + self.staged
            ranges.append((kind_value, after, last))
            self._compare(EntityKind(kind_value), after, last)
        self._add_details(compared, ranges)

    def _add_details(self, rows: list[tuple[Any, ...]], ranges: list[tuple[str, int, int]]) -> None:
        """Complete the staged rows among ``rows`` (the compared ones, their ``n`` in one of
        ``ranges``, with their kind) that the compare gave an action: their hub id, provenance
        and documents. They are counted under that action instead of as unchanged."""
        acting: list[int] = []
        tally = self._tally
        for kind_value, after, last in ranges:
            found = self._execute(
                "SELECT n, action FROM sync_stage "
                "WHERE n > :after AND n <= :last AND action IS NOT NULL",
                after=after,
                last=last,
            ).all()
            acting.extend(n for n, _ in found)
            tally[(kind_value, None)] -= len(found)
            tally.update((kind_value, action) for _, action in found)
        if not acting:
            return
        by_n = {row[0]: row for row in rows}
        floors = [by_n[n] for n in acting if (by_n[n][_STRUCTURES] or "")[:1] == _FLOOR]
        if floors:
            self._merge_floors(floors)
        hex_id = self.ids.hex
        details = []
        for n in acting:
            _, kind, _, key, *_, file, record_id, line, ext, payload = by_n[n]
            if payload is not None:
                where = (file, record_id, line)
                payload = self._fitted(kind, key, orjson.loads(payload), where) or payload
            details.append(
                (
                    hex_id(kind, key),
                    file,
                    record_id,
                    line,
                    None if ext is None else ext.decode(),
                    None if payload is None else payload.decode(),
                    n,
                )
            )
        # Positional parameters, straight to the driver: a delta completes most of its rows.
        mark, bound = placeholder(self.connection), self.sql.bound
        self.connection.exec_driver_sql(
            f"UPDATE sync_stage SET id = {bound(mark, 'UUID')}, file = {mark}, "
            f"record = {mark}, line = {mark}, ext = {bound(mark, 'JSONB')}, "
            f"payload = {bound(mark, 'JSONB')} WHERE n = {mark}",
            details,
        )

    def _merge_floors(self, rows: list[tuple[Any, ...]]) -> None:
        """Give the staged ``rows`` whose UAIs are a floor, and that the compare gave an action,
        the union of the floor and the stored UAIs (a created row: the floor alone), so that
        the statements that write them, and their change entries, see plain UAIs. One look-up
        per kind: the kind's floors are the marked rows with an action in their range of ``n``
        (a floor merged by an earlier batch is no longer marked)."""
        mark = placeholder(self.connection)
        merged = []
        for kind in {row[1] for row in rows}:
            numbers = [row[0] for row in rows if row[1] == kind]
            found = self.connection.exec_driver_sql(
                f"SELECT c.n, c.structures, t.structures FROM sync_stage c "
                f"LEFT JOIN {self.table(EntityKind(kind)).name} t "
                f"ON t.scope = {mark} AND t.source_key = c.key "
                f"WHERE c.n >= {mark} AND c.n <= {mark} AND c.action IS NOT NULL "
                f"AND substr(c.structures, 1, 1) = '{_FLOOR}'",
                (self.scope_key, min(numbers), max(numbers)),
            )
            for n, floor, stored in found:
                uais = set(floor[len(_FLOOR) :].split("|")) | set((stored or "").split("|"))
                merged.append((structures_text(uais), n))
        self.connection.exec_driver_sql(
            f"UPDATE sync_stage SET structures = {mark} WHERE n = {mark}", merged
        )

    def _wait_for_count(self) -> None:
        counting, self._counting = self._counting, None
        if counting is not None:
            counting.result()  # re-raises what the count raised

    def close(self) -> None:
        """Wait for the count if it still runs (its error, if any, is the caller's no more:
        the caller is failing already). Call before the transaction ends."""
        with contextlib.suppress(Exception):
            self._wait_for_count()
        self._helper.shutdown()

    def _stage_row(self, record: NeutralRecord) -> tuple[Any, ...]:
        """The staging tuple of a record; the hot path.

        A row of a fresh kind is whole (the columns of ``_STAGE_COLUMNS``). A row to compare is
        its columns of ``_COMPARED_COLUMNS``, then its details (``_DETAILS``, the documents as
        bytes), which ``_add_details`` adds to the stage for the rows to write only.
        """
        # ``_value_``, not ``.value`` (a property, slow in Python 3.11) nor the member itself
        # (an Enum hashes by name, so it would miss the keys, which are values).
        kind = record.kind._value_
        if kind not in self.checked:
            self._check_columns(record)
        self.staged += 1
        n = _KIND_BASE[kind] + self.staged
        provenance = record.provenance
        owner = record.owner
        key = record.key
        self_key = f"{kind}:{key}"
        if owner is None:
            owner_key, is_owner = self_key, 1
        else:
            owner_kind = owner.kind._value_
            owner_key = f"{owner_kind}:{owner.key}"
            is_owner = 1 if owner_kind == kind and owner.key == key else 0
        if provenance is None:
            where: tuple[Any, ...] = (None, None, None)
        else:
            where = (provenance.file[-255:], provenance.record_id, provenance.line)
        fresh = kind in self.fresh
        if record.op == "delete":
            # A delete names the owner that leaves, with everything it carries.
            head = (n, kind, "delete" if fresh else None, key)
            tail = (self_key, "delete", 1, None, "", *where, None, None)
            return (*head, self.ids.hex(kind, key), *tail) if fresh else (*head, *tail)
        # Blank first: its key order is the table's, so the JSON needs no sorting to be stable.
        values = _BLANKS_BY_VALUE[kind].copy()
        values.update(record.data)
        if record.refs:
            reference = self.ids.reference
            for column, ref in record.refs.items():
                if type(ref) is Ref:
                    values[column] = reference(ref.kind._value_, ref.key)
                else:
                    values[column] = self._resolve(ref)
        if len(owner_key) > _KEY_LENGTH or len(self_key) > _KEY_LENGTH:
            raise BadInput(
                f"a {kind} key of {len(key)} characters: keys are at most "
                f"{_KEY_LENGTH - len(kind) - 1} long",
                file=provenance.file if provenance else None,
                line=provenance.line if provenance else None,
                record_id=key[:64],
            )
        payload = orjson.dumps(values)
        external = record.external_ids
        if not external:
            ext = b"[]"
        elif len(external) == 1:
            ext = orjson.dumps(external)  # the sorted list of one pair, spelt the same
        else:
            ext = orjson.dumps(sorted(set(external)))
        # ``None``: the source cannot tell in this run (kept as stored). Structures are compared
        # on their own, so that an unknown value does not make the record look changed.
        uais = record.structures
        if uais is None:
            structures = None
        else:
            structures = self._structures.get(uais)
            if structures is None:
                if len(self._structures) > 4096:
                    self._structures.clear()
                structures = self._structures[uais] = structures_text(uais)
            if record.structures_floor and structures and kind not in self.fresh:
                structures = _FLOOR + structures  # merged with the stored UAIs (``_merge_floors``)
        digest = hashlib.blake2b(
            b"\x1f".join((payload, ext, owner_key.encode())), digest_size=16
        ).hexdigest()
        head = (n, kind, "create" if fresh else None, key)
        tail = (owner_key, record.op, is_owner, digest, structures, *where)
        if fresh:
            # The hash is the record's as sent (a re-import compares it), what is written fits
            # the columns; a compared row is cut once it has an action (``_add_details``).
            written = self._fitted(kind, key, values, where)
            if written is not None:
                payload = written
            return (*head, self.ids.hex(kind, key), *tail, ext.decode(), payload.decode())
        # Compared first: no hub id yet, and the documents stay bytes (see ``_add_details``).
        return (*head, *tail, ext, payload)

    def _fitted(
        self, kind: str, key: str, values: dict[str, Any], where: tuple[Any, ...]
    ) -> bytes | None:
        """The payload of ``values`` (a row's, by column) with each text longer than its
        column allows cut to it, with a ``bad-value`` warning naming the record; None when
        everything fits. ``where`` is the row's (file, record id, line)."""
        limited = _LIMITED_BY_VALUE[kind]
        if limited is None:
            return None
        getter, names, lengths = limited
        got = zip(getter(values), lengths, strict=False)  # the getter's last item repeated
        if not any(v is not None and len(v) > n for v, n in got):
            return None
        values = dict(values)
        file, record_id, line = where
        for name, length in zip(names, lengths, strict=False):
            value = values[name]
            if value is not None and len(value) > length:
                values[name] = value[:length]
                self.report.warn(
                    SourceWarning(
                        "bad-value",
                        f"{kind} {key!r}: {name} has {len(value)} characters, more than the "
                        f"{length} the schema allows; cut to {length}",
                        Provenance(file, line, record_id) if file else None,
                    ),
                    self.settings.warnings_kept,
                )
        return orjson.dumps(values)

    # -- applying ----------------------------------------------------------------------------

    def apply(self, *, allow_mass_removal: bool) -> None:
        from annuaire.errors import Refused

        self._flush([])
        unique = self._index_stage()
        if self.sql.postgres:
            # Temporary tables are never auto-analysed: without statistics the planner picks
            # nested loops over the whole stage for every stored row.
            self.connection.exec_driver_sql("ANALYZE sync_stage")
        # Every staged row has its action (compared batch by batch, see ``_flush``) but for
        # keys staged twice, whose earlier rows are superseded; the actions are counted, then
        # each kind is written.
        if not unique:
            self._supersede()
        if any(action == "delete" for _, action in self._tally) and self._supersede_deleted():
            unique = False  # rows were superseded: the actions are counted again
        counted: dict[str, dict[str, int]] = {}
        if unique:  # no row superseded: the actions as staging and the compares counted them
            tallied = ((kind, action, count) for (kind, action), count in self._tally.items())
        else:
            tallied = self._execute(
                "SELECT kind, action, count(*) FROM sync_stage GROUP BY kind, action"
            )
        for kind_value, action, count in tallied:
            if count:
                counted.setdefault(kind_value, {})[action or "unchanged"] = count
        for kind in EntityKind:
            self._apply_kind(kind, counted.get(kind.value, {}))
        mode = self.report.mode
        if self.sql.postgres:
            self.connection.exec_driver_sql("ANALYZE sync_stage")  # now with the actions
        self._apply_deletes()
        if mode in ("delta", "partial"):
            self._replace_owned()
        if mode == "complet":
            self._mark_missing()
        leaving = self.report.leaving
        before = self.report.active_before
        threshold = self.settings.mass_removal_threshold
        if before and leaving > threshold * before and not allow_mass_removal:
            detail = ", ".join(
                f"{c.leaving} {k.value}" for k, c in self.report.counts.items() if c.leaving
            )
            raise Refused(
                f"this run would mark {leaving} of {before} active entities of scope "
                f"{self.scope_key} as leaving ({leaving / before:.1%} > {threshold:.0%}: "
                f"{detail}); nothing was applied. Check the input (a missing file?) or pass "
                "--allow-mass-removal if this is expected."
            )
        if mode in ("delta", "partial"):
            self._derive_guardian_structures()
        self._check_references()

    def _derive_guardian_structures(self) -> None:
        """Delta and partial runs: a guardian (a person without an active role) belongs to the
        structures of their active pupils. A run that writes or removes a pupil or a
        guardianship may change them without the guardian's record in the delivery (a pupil
        moves to another school): they are derived again for the guardians of what the run
        changed, and written, with an update entry, where they differ: it names the UAIs they
        had and those they end with. A guardian that the run wrote already (their record, its
        UAIs a floor) keeps the entry it has, with these UAIs too, and is counted once; one
        whose record it staged unchanged is counted as updated instead. A Complet gives every
        guardian's UAIs itself."""
        recorder = self.recorder
        person, guardianship, role = (
            self.table(kind).name
            for kind in (EntityKind.PERSON, EntityKind.GUARDIANSHIP, EntityKind.ROLE)
        )
        joined = "string_agg" if self.sql.postgres else "group_concat"
        rows = self._execute(
            f"""SELECT p.id, p.structures, (SELECT {joined}(pupil.structures, '')
                  FROM {guardianship} g JOIN {person} pupil ON pupil.id = g.pupil_id
                  WHERE g.guardian_id = p.id AND g.status = 'active'
                    AND pupil.status = 'active'),
                  CASE WHEN p.id IN ({recorder.entities("person")}) THEN 1 ELSE 0 END,
                  CASE WHEN EXISTS (SELECT 1 FROM sync_stage s WHERE s.kind = 'person'
                    AND s.key = p.source_key AND s.action IS NULL) THEN 1 ELSE 0 END
                FROM {person} p
                WHERE p.id IN (SELECT g.guardian_id FROM {guardianship} g
                    WHERE g.scope = :scope AND (g.id IN ({recorder.entities("guardianship")})
                      OR g.pupil_id IN ({recorder.entities("person")})))
                  AND p.status = 'active' AND NOT EXISTS (SELECT 1 FROM {role} r
                    WHERE r.person_id = p.id AND r.status = 'active')""",
            scope=self.scope_key,
        ).all()
        changed = [
            (uuid.UUID(str(person_id)), derived, written, unchanged, stored or "")
            for person_id, stored, pupils, written, unchanged in rows
            if (derived := structures_text((pupils or "").split("|"))) != (stored or "")
        ]
        if not changed:
            return
        table = self.table(EntityKind.PERSON)
        self.connection.execute(
            text(
                f"UPDATE {person} SET structures = :structures, modified_at = :now, "
                "import_run_id = :run WHERE id = :id"
            ).bindparams(
                bindparam("now", type_=_BIND_TYPES["now"]),
                bindparam("run", type_=_BIND_TYPES["run"]),
                bindparam("id", type_=table.c.id.type),
            ),
            [
                {"structures": uais, "now": self.now, "run": self.report.run_id, "id": person_id}
                for person_id, uais, *_ in changed
            ],
        )
        # Each entry names the UAIs the guardian ends with and those they had: a written one's
        # entry has these already (see ``_stage_changes``).
        person_value = EntityKind.PERSON.value
        written = recorder.structures_of(
            person_value, [person_id for person_id, _, was_written, *_ in changed if was_written]
        )
        recorder.restate(
            person_value,
            [(p, structures_union(uais, written[p])) for p, uais, *_ in changed if p in written],
        )
        entries = [
            (person_value, person_id, ChangeOp.UPDATE.value, structures_union(uais, stored))
            for person_id, uais, was_written, _, stored in changed
            if not was_written
        ]
        recorder.stage(entries, self.now)
        counts = self.report.counts[EntityKind.PERSON]
        counts.updated += len(entries)
        # A guardian whose record the run staged unchanged was counted so: now updated.
        counts.unchanged -= sum(
            unchanged for _, _, was_written, unchanged, _ in changed if not was_written
        )

    def _compare(self, kind: EntityKind, after: int, last: int) -> None:
        """Give the staged rows of ``kind`` numbered ``after`` (excluded) to ``last`` their
        action against the store."""
        name = self.table(kind).name
        same = self.sql.same_structures()
        # Unchanged rows keep their NULL action: most rows of a re-import are unchanged, and
        # not rewriting them (a staged row carries its JSON payload) is most of its cost. An
        # ``ensure`` row is unchanged whenever the row is stored and active, whatever it says.
        self._execute(
            f"""UPDATE {self.sql.scanned("sync_stage", "c")} SET action = CASE
                  WHEN op = 'delete' THEN 'delete'
                  WHEN op = 'ensure' THEN coalesce((SELECT 'restore' FROM {name} t
                    WHERE t.scope = :scope AND t.source_key = c.key), 'create')
                  ELSE coalesce((
                    SELECT CASE
                      WHEN t.content_hash = c.hash AND {same} THEN 'restore'
                      ELSE CASE t.status WHEN 'active' THEN 'update' ELSE 'return' END END
                    FROM {name} t WHERE t.scope = :scope AND t.source_key = c.key),
                  'create') END
                WHERE c.n > :after AND c.n <= :last AND (c.op = 'delete' OR NOT EXISTS (
                  SELECT 1 FROM {name} t WHERE t.scope = :scope
                    AND t.source_key = c.key AND t.status = 'active'
                    AND (c.op = 'ensure' OR (t.content_hash = c.hash AND {same}))))""",
            scope=self.scope_key,
            after=after,
            last=last,
        )

    def _index_stage(self) -> bool:
        """Index the stage by (kind, key) once it is full; True when no key is staged twice.

        The index is first built unique: a run that gives every key once (nearly every run)
        learns it from the index build, and needs neither the search for keys given twice nor
        the superseded rows' condition in the removal passes (``_not_staged``). A key given
        twice makes the build fail (in a savepoint: PostgreSQL would abort the transaction);
        the index is then built with the action, which those passes read beside the key.
        """
        try:
            with self.connection.begin_nested():
                self.connection.exec_driver_sql(
                    f"CREATE UNIQUE INDEX {self._stage_index} ON sync_stage (kind, key)"
                )
        except IntegrityError:
            self.connection.exec_driver_sql(
                f"CREATE INDEX {self._stage_index} ON sync_stage (kind, key, action)"
            )
            return False
        self._not_staged = _NOT_STAGED_UNIQUE
        return True

    def _supersede(self) -> None:
        """Warn about keys staged more than once and keep the last row of each; an owner staged
        more than once keeps what its last record carries only (``_supersede_versions``)."""
        duplicates = self._execute(
            "SELECT kind, key, count(*), max(is_owner), max(n) FROM sync_stage "
            "GROUP BY kind, key HAVING count(*) > 1 ORDER BY max(n)"
        ).all()
        if not duplicates:
            return
        kept = self.settings.warnings_kept
        order = {kind.value: index for index, kind in enumerate(EntityKind)}
        duplicates.sort(key=lambda row: order[row[0]])  # warnings kind by kind, as applied
        for kind_value, key, count, *_ in duplicates[:kept]:
            self.warn(
                "duplicate-record",
                f"{kind_value} {key!r} appears {count} times in this run; the last one wins",
            )
        for _ in duplicates[kept:]:
            self.report.warn(SourceWarning("duplicate-record", "(not kept)"), 0)
        self._execute(
            """UPDATE sync_stage SET action = 'superseded' WHERE (kind, key) IN (
                 SELECT kind, key FROM sync_stage GROUP BY kind, key HAVING count(*) > 1)
               AND n < (SELECT max(s.n) FROM sync_stage s
                 WHERE s.kind = sync_stage.kind AND s.key = sync_stage.key)"""
        )
        owners = [
            (f"{kind_value}:{key}", last - _KIND_BASE[kind_value])
            for kind_value, key, _, is_owner, last in duplicates
            if is_owner
        ]
        if owners:
            self._supersede_versions(owners)

    def _supersede_versions(self, owners: list[tuple[str, int]]) -> None:
        """Supersede the rows that an earlier record of an owner given twice carried.

        ``owners``: (owner key, rank in the stream of its last record). A record's carried
        rows follow it in the stream (see ``annuaire.schema.records``): those staged before
        the owner's last record are an earlier version's, and only what the last version
        yields is written; a row that only an earlier version carried then leaves like any
        row the owner no longer yields. The stage numbers rows by kind (``_KIND_BASE``): a
        row's rank in the stream is ``n`` less its kind's base, the low bits of ``n``.
        """
        mark = placeholder(self.connection)
        self.connection.exec_driver_sql("DROP TABLE IF EXISTS sync_version")
        self.connection.exec_driver_sql(
            "CREATE TEMP TABLE sync_version (owner_key TEXT PRIMARY KEY, last BIGINT)"
        )
        self.connection.exec_driver_sql(
            f"INSERT INTO sync_version (owner_key, last) VALUES ({mark}, {mark})", owners
        )
        self._execute(
            "UPDATE sync_stage SET action = 'superseded' WHERE is_owner = 0 "
            "AND owner_key IN (SELECT owner_key FROM sync_version) "
            f"AND n % {1 << _KIND_BITS} < "
            "(SELECT v.last FROM sync_version v WHERE v.owner_key = sync_stage.owner_key)"
        )

    def _supersede_deleted(self) -> bool:
        """Supersede the rows staged as carried by an owner whose last record is a delete; True
        when there were some. A delete carries nothing: the owner and what it carried leave
        (``_apply_deletes``). A row given after it (a pupil's guardianships, given with their
        guardian's record in a later file) would otherwise be written, then leave with its
        owner, in the same run."""
        result = self._execute(
            "UPDATE sync_stage SET action = 'superseded' WHERE is_owner = 0 "
            "AND (action IS NULL OR action != 'superseded') "
            "AND owner_key IN (SELECT owner_key FROM sync_stage WHERE action = 'delete')"
        )
        if not result.rowcount:
            return False
        self._not_staged = _NOT_STAGED
        return True

    def _apply_kind(self, kind: EntityKind, counts: dict[str, int]) -> None:
        table = self.table(kind)
        name = table.name
        scope = self.scope_key
        self.actions[kind] = counts
        figures = self.report.counts[kind]
        figures.created += counts.get("create", 0)
        figures.updated += counts.get("update", 0)
        figures.unchanged += counts.get("unchanged", 0)
        figures.returning += counts.get("return", 0) + counts.get("restore", 0)
        if self.report.mode == "delta" and (counts.get("create") or counts.get("update")):
            self._delta_warnings(kind)
        # Each statement below scans the kind's staged rows: run only those with work to do.
        creates, restores = counts.get("create", 0), counts.get("restore", 0)
        updates = counts.get("update", 0) + counts.get("return", 0)
        content = [c for c in table.c if c.name not in _TRACKED_COLUMNS]
        tracked_insert = (
            "id, scope, source_key, owner_key, source, import_run_id, content_hash, source_file, "
            "source_record, status, leaving_since, created_at, modified_at, structures"
        )
        columns = ", ".join([tracked_insert, *[c.name for c in content]])
        values = ", ".join(
            [
                f"c.id, {_TEXT_SCOPE}, c.key, c.owner_key, CAST(:source AS VARCHAR), :run, "
                "c.hash, c.file, c.record, "
                "'active', NULL, :now, :now, coalesce(c.structures, '')",
                *[self.sql.extract(c) for c in content],
            ]
        )
        if not creates + updates + restores:
            return  # only deletes or superseded rows: handled by the removal passes
        self._stage_changes(kind, "('create', 'update', 'return', 'restore')")
        staged, of_kind = self._stage_of(kind)
        if creates:
            self._execute(
                f"INSERT INTO {name} ({columns}) SELECT {values} FROM {staged} WHERE {of_kind} "
                "AND c.action = 'create' ORDER BY c.n",
                kind=kind.value,
                scope=scope,
                source=self.scope.source,
                run=self.report.run_id,
                now=self.now,
            )
        assignments = ", ".join(
            [
                "owner_key = c.owner_key, import_run_id = :run, content_hash = c.hash, "
                "source_file = c.file, source_record = c.record, status = 'active', "
                "leaving_since = NULL, modified_at = :now, "
                f"structures = coalesce(c.structures, {name}.structures)",
                *[f"{col.name} = {self.sql.extract(col)}" for col in content],
            ]
        )
        if updates:
            self._execute(
                f"UPDATE {name} SET {assignments} FROM sync_stage c "
                f"WHERE c.kind = :kind AND {name}.id = c.id AND c.action IN ('update', 'return')",
                kind=kind.value,
                run=self.report.run_id,
                now=self.now,
            )
        if restores:
            self._execute(
                f"UPDATE {name} SET status = 'active', leaving_since = NULL, modified_at = :now, "
                f"import_run_id = :run FROM sync_stage c "
                f"WHERE c.kind = :kind AND {name}.id = c.id AND c.action = 'restore'",
                kind=kind.value,
                run=self.report.run_id,
                now=self.now,
            )
        source, id_type, id_value = self.sql.external_ids()
        insert_ids = (
            "INSERT INTO external_id (entity_type, entity_id, type, value, scope) "
            f"SELECT {_TEXT_KIND}, c.id, {id_type}, {id_value}, {_TEXT_SCOPE} "
            f"FROM {staged}, {source} WHERE {of_kind} "
        )
        if creates:
            self._execute(
                f"{insert_ids} AND c.action = 'create' ORDER BY c.n", kind=kind.value, scope=scope
            )
        if updates:
            # An updated entity usually keeps its ids: only those it lost are deleted and only
            # those it gained inserted, so that a delta does not rewrite two indexes' pages per
            # updated entity. Only the ids this scope wrote: others (an EduConnect account id
            # learnt at login) belong to other sources and survive the update.
            self._execute(
                "DELETE FROM external_id WHERE id IN (SELECT x.id FROM sync_stage c "
                "JOIN external_id x ON x.entity_id = c.id AND x.scope = :scope "
                "WHERE c.kind = :kind AND c.action IN ('update', 'return') AND NOT EXISTS "
                f"(SELECT 1 FROM {source} WHERE {id_type} = x.type AND {id_value} = x.value))",
                kind=kind.value,
                scope=scope,
            )
            self._execute(
                f"{insert_ids} AND c.action IN ('update', 'return') AND NOT EXISTS (SELECT 1 "
                "FROM external_id x WHERE x.entity_id = c.id AND x.scope = :scope "
                f"AND x.type = {id_type} AND x.value = {id_value}) ORDER BY c.n",
                kind=kind.value,
                scope=scope,
            )

    def _stage_of(self, kind: EntityKind) -> tuple[str, str]:
        """The staged rows ``c`` of ``kind`` as a FROM item and a condition: the range of
        ``n`` of the kind's block. SQLite reads that range in order, where its index on the
        kind would fetch the rows at random, then sort them by ``n``."""
        base = _KIND_BASE[kind.value]
        return self.sql.scanned("sync_stage", "c"), (
            f"c.n > {base} AND c.n < {base + (1 << _KIND_BITS)} AND c.kind = :kind"
        )

    def _stage_changes(self, kind: EntityKind, actions: str) -> None:
        name = self.table(kind).name
        staged, of_kind = self._stage_of(kind)
        stored = f"SELECT t.structures FROM {name} t WHERE t.id = c.id"
        result = self._execute(
            f"{self.recorder.insert} SELECT {_TEXT_KIND}, c.id, "
            f"CASE c.action WHEN 'create' THEN '{ChangeOp.CREATE.value}' "
            f"WHEN 'update' THEN '{ChangeOp.UPDATE.value}' ELSE '{ChangeOp.RETURN.value}' END, "
            # A created row: its UAIs. A row written again: those it ends with and those it had
            # (the feed of a school it leaves tells of it), or the stored ones where the source
            # could not tell. A restored row keeps the stored ones (an ``ensure`` record's UAIs
            # are not written). A created row is never looked up.
            f":now, {_TEXT_SCOPE}, :run, coalesce(CASE c.action "
            "WHEN 'create' THEN c.structures "
            f"WHEN 'restore' THEN ({stored}) "
            f"ELSE coalesce({self.sql.union('c.structures', f'({stored})')}, ({stored})) END, '') "
            f"FROM {staged} WHERE {of_kind} AND c.action IN {actions} "
            "ORDER BY c.n",
            kind=kind.value,
            now=self.now,
            scope=self.scope_key,
            run=self.report.run_id,
        )
        self.recorder.staged += result.rowcount

    def _delta_warnings(self, kind: EntityKind) -> None:
        keep = self.settings.warnings_kept
        for action, op, code, text_ in (
            (
                "create",
                "modify",
                "modify-unknown",
                "modify of unknown {kind} {key!r} applied as an add",
            ),
            (
                "update",
                "add",
                "add-existing",
                "add of existing {kind} {key!r} changes it (applied as a modify)",
            ),
        ):
            rows = self._execute(
                "SELECT key, file, line, record FROM sync_stage "
                # Only the source records themselves: a modify legitimately brings new links.
                "WHERE kind = :kind AND action = :action AND op = :op AND is_owner = 1 "
                "ORDER BY n",
                kind=kind.value,
                action=action,
                op=op,
            ).all()
            for key, file, line, record in rows:
                if len(self.report.warnings) < keep:
                    self.warn(code, text_.format(kind=kind.value, key=key), (file, line, record))
                else:
                    self.report.warn(SourceWarning(code, ""), 0)

    # -- removals ----------------------------------------------------------------------------

    def _select_owners(self, condition: str) -> None:
        """Fill the temporary ``sync_owner`` table with the owner keys of the staged rows ``o``
        that match ``condition``: the owner-driven passes below then join a few hundred keys
        instead of scanning the whole stage (rows with their payload) once per kind."""
        self.connection.exec_driver_sql("DROP TABLE IF EXISTS sync_owner")
        self.connection.exec_driver_sql(
            "CREATE TEMP TABLE sync_owner AS SELECT DISTINCT owner_key FROM sync_stage o "
            f"WHERE {condition}"
        )
        if self.sql.postgres:
            self.connection.exec_driver_sql("ANALYZE sync_owner")

    def _active_rows(self, kind: EntityKind, by_owner: bool, condition: str) -> tuple[str, str]:
        """A FROM item and a condition for the active rows ``t`` of ``kind`` in scope that
        match ``condition``.

        ``by_owner``: the candidates are the rows owned by a key of ``sync_owner`` (see
        :meth:`_select_owners`), reached through the (scope, owner_key) index instead of
        scanning the table.
        """
        source = f"{self.table(kind).name} t"
        where = f"t.scope = :scope AND t.status = 'active' AND {condition}"
        if by_owner and self.sql.postgres:
            source = f"sync_owner o JOIN {source} ON t.scope = :scope AND t.owner_key = o.owner_key"
        elif by_owner:
            # SQLite: the owners as an IN list drive the (scope, owner_key) index. Joined to
            # the owners, the rows were reached the same way, but only after SQLite had built
            # a Bloom filter over that whole index, once per statement: 0.11 s for the persons
            # of 100,000 pupils, where the look-ups take 0.017 s.
            where += " AND t.owner_key IN (SELECT owner_key FROM sync_owner)"
        return source, where

    def _mark_leaving(self, kind: EntityKind, by_owner: bool, condition: str) -> None:
        """Make the active rows ``t`` of ``kind`` in scope that match ``condition`` leave
        (``by_owner``: see :meth:`_active_rows`)."""
        name = self.table(kind).name
        source, where = self._active_rows(kind, by_owner, condition)
        params = {
            "kind": kind.value,
            "now": self.now,
            "scope": self.scope_key,
            "run": self.report.run_id,
        }
        recorder = self.recorder
        last = recorder.last()
        result = self._execute(
            f"{recorder.insert} SELECT {_TEXT_KIND}, t.id, '{ChangeOp.LEAVE.value}', :now, "
            f"{_TEXT_SCOPE}, :run, t.structures FROM {source} WHERE {where} "
            "ORDER BY t.source_key",
            **params,
        )
        if not result.rowcount:
            return
        recorder.staged += result.rowcount
        self.report.counts[kind].leaving += result.rowcount
        # The rows that leave are the change entries just recorded: no second search for them.
        self._execute(
            f"UPDATE {name} SET status = 'tobedeleted', leaving_since = :now, modified_at = :now, "
            f"import_run_id = :run WHERE {self.sql.leaving(name, recorder.table, recorder.key)}",
            now=self.now,
            run=self.report.run_id,
            last=last,
        )

    def _apply_deletes(self) -> None:
        """Deletes whose key has no later add or modify: the owner and what it carries leave."""
        kinds = [kind for kind, counts in self.actions.items() if counts.get("delete")]
        if not kinds:
            return
        for kind in kinds:
            unknown = self._execute(
                "SELECT s.key, s.file, s.line, s.record FROM sync_stage s "
                "WHERE s.kind = :kind AND s.action = 'delete' AND NOT EXISTS (SELECT 1 FROM "
                f"{self.table(kind).name} t WHERE t.scope = :scope AND t.source_key = s.key) "
                "ORDER BY s.n",
                kind=kind.value,
                scope=self.scope_key,
            ).all()
            for key, file, line, record in unknown:
                self.warn(
                    "delete-unknown",
                    f"delete of unknown {kind.value} {key!r} ignored",
                    (file, line, record),
                )
        self._select_owners("o.action = 'delete'")
        for kind in EntityKind:
            self._mark_leaving(kind, True, "1 = 1")

    def _replace_owned(self) -> None:
        """Delta: what an owner carried and its new version no longer yields leaves, unless
        active rows still point to it.

        A structure's new record that no longer lists a class, while pupils that the delivery
        does not give are still enrolled in it: the class stays (a Complet would give it too,
        derived from those pupils' records), with a ``kept-referenced`` warning; it leaves with
        a later run that makes it leave once nothing active points to it. Kinds are visited
        referencing kinds first (a reference points to a kind applied before it): the
        enrollments that leave in this run no longer hold their class back.
        """
        self._select_owners(
            "o.is_owner = 1 AND o.op != 'delete' AND (o.action IS NULL OR o.action != 'superseded')"
        )
        for kind in reversed(self._held_kinds()):
            referenced = self._referenced(kind)
            if referenced:
                self._warn_kept(kind, referenced)
                self._mark_leaving(kind, True, f"{self._not_staged} AND NOT ({referenced})")
            else:
                self._mark_leaving(kind, True, self._not_staged)

    def _referenced(self, kind: EntityKind) -> str:
        """The condition that active rows point to the row ``t`` of ``kind``; "" for a kind that
        nothing references."""
        return " OR ".join(
            f"EXISTS (SELECT 1 FROM {self.table(source).name} r "
            f"WHERE r.{column} = t.id AND r.status = 'active')"
            for source, column in REFERRED_BY.get(kind, ())
        )

    def _warn_kept(self, kind: EntityKind, referenced: str) -> None:
        """Warn about the rows of ``kind`` that owners of ``sync_owner`` no longer yield and
        that ``_replace_owned`` keeps, because active rows point to them."""
        source, where = self._active_rows(kind, True, f"{self._not_staged} AND ({referenced})")
        kept = f"FROM {source} WHERE {where}"
        params = {"scope": self.scope_key, "kind": kind.value}
        count = self._execute(f"SELECT count(*) {kept}", **params).scalar_one()
        if count:
            key, owner = self._execute(
                f"SELECT t.source_key, t.owner_key {kept} ORDER BY t.source_key LIMIT 1", **params
            ).one()
            self.warn(
                "kept-referenced",
                f"{count} {kind.value} row(s) that their owner's new record no longer gives are "
                f"kept: active rows still point to them (e.g. {kind.value} {key!r} of {owner})",
            )

    def _held_kinds(self) -> list[EntityKind]:
        """The kinds the scope held rows of before this run. A kind it held none of has only
        rows that this run staged: none of them is missing from the stream (a first import's
        full scan of every table for absent keys is skipped)."""
        return [kind for kind in EntityKind if kind.value not in self.fresh]

    def _mark_missing(self) -> None:
        """Complet: what the scope holds and the stream did not contain leaves."""
        for kind in self._held_kinds():
            counts = self.actions.get(kind, {})
            if counts.get("unchanged", 0) + counts.get("update", 0) == self.active[kind.value]:
                # Every active row was matched by a staged row (keys are unique on both sides,
                # superseded rows aside): none is missing, and the scan is skipped.
                continue
            self._mark_leaving(
                kind,
                False,
                self._not_staged,
            )

    def _check_references(self) -> None:
        """Warn about rows written by this run that point to entities the store does not hold."""
        for kind, columns in REFERENCES.items():
            counts = self.actions.get(kind, {})
            if not any(counts.get(action) for action in ("create", "update", "return")):
                continue  # this run wrote no row of this kind
            name = self.table(kind).name
            if kind.value in self.fresh:
                # The scope's first rows of this kind: all written by this run, read in the
                # table's order rather than looked up one by one.
                written = f"FROM {self.sql.scanned(name)} WHERE t.scope = :scope"
            else:
                written = (
                    f"FROM sync_stage c JOIN {name} t ON t.id = c.id "
                    "WHERE c.kind = :kind AND c.action IN ('create', 'update', 'return')"
                )
            dangling = {
                column: f"t.{column} IS NOT NULL AND NOT EXISTS "
                f"(SELECT 1 FROM {self.table(target).name} r WHERE r.id = t.{column})"
                for column, target in columns.items()
            }
            # One pass over the written rows for all the kind's references; the example is
            # looked up only for a reference that dangles (rare).
            sums = [f"sum(CASE WHEN {test} THEN 1 ELSE 0 END)" for test in dangling.values()]
            params = {"kind": kind.value, "scope": self.scope_key}
            counts_row = self._execute(f"SELECT {', '.join(sums)} {written}", **params).one()
            for (column, target_kind), count in zip(columns.items(), counts_row, strict=True):
                if not count:
                    continue
                example = self._execute(
                    f"SELECT min(t.source_key) {written} AND {dangling[column]}", **params
                ).scalar()
                self.warn(
                    "dangling-reference",
                    f"{count} {kind.value} row(s) point through {column} to a "
                    f"{target_kind.value} the store does not hold "
                    f"(e.g. {kind.value} {example!r})",
                )
