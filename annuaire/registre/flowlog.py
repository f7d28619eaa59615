"""Append flow entries to the hash-chained log, in the caller's transaction; seal checkpoints.

Contract
    :meth:`FlowLog.append` writes one entry in the transaction of the connection it is given:
    the entry commits with the work it describes, or neither does. It takes the chain head's
    row lock (``UPDATE flow_chain ... RETURNING``), so entries get contiguous sequence numbers
    in commit order; a caller appends last, just before it commits, to hold that lock briefly.

Chain
    ``entry_hash = HMAC-SHA-256(chain key, canonical(entry without entry_hash))`` where the
    canonical form is the entry's columns as JSON with sorted keys, no spaces, UTC times with a
    ``Z`` (:func:`entry_message`); ``prev_hash`` is part of it, so each hash covers the whole
    history before it. The first entry's ``prev_hash`` is 64 zeros.

Checkpoints
    Every ``checkpoint_every`` entries (and on demand: ``aiguillage registre checkpoint``, before
    a purge or an export) an Ed25519 signature over ``{id, first_seq, last_seq, head_hash,
    previous_signature, key_id, signed_at}`` seals the entries since the previous checkpoint;
    checkpoints chain by signature and are never deleted.

Subjects
    Persons are given as hub ids and written as pseudonyms (annuaire.registre.keys), sorted,
    without repeats: the HMAC covers that list like every other column. The list is stored once
    in ``flow_subject_set`` under its digest (:func:`subject_set_digest`), which the entry names
    in ``subject_set``; :func:`entries_query` joins it back, so an entry reads (and verifies)
    with its ``subjects``. A list is inserted with the entries that name it when it is new;
    lists come back (the same page, a class, a parent's children), and a known one costs one
    look-up instead of a hundred index keys.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import secrets
import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import psycopg
from psycopg import pq
from sqlalchemy import Connection, Select, Table, insert, select, update

from annuaire.errors import ConfigurationError
from annuaire.schema import FlowChain, FlowCheckpoint, FlowEntry, FlowSubjectSet
from annuaire.store.changes import pack_sorted

from .keys import RegistreKeys
from .vocabulary import DataCategory, FlowKind, Operation, RecipientKind

__all__ = [
    "GENESIS",
    "ChainHead",
    "FlowLog",
    "FlowRecord",
    "checkpoint_message",
    "entries_query",
    "entry_message",
    "entry_message_parts",
    "subject_set_digest",
]

GENESIS = "0" * 64

ENTRY: Table = FlowEntry.__table__  # type: ignore[attr-defined]
CHAIN: Table = FlowChain.__table__  # type: ignore[attr-defined]
CHECKPOINT: Table = FlowCheckpoint.__table__  # type: ignore[attr-defined]
SUBJECT_SET: Table = FlowSubjectSet.__table__  # type: ignore[attr-defined]

# New lists of persons first (a known one is skipped on its primary key), then the entries.
_PG_WRITE = """
WITH lists AS (
    INSERT INTO flow_subject_set
    SELECT * FROM json_populate_recordset(NULL::flow_subject_set, %(lists)s::json)
    ON CONFLICT DO NOTHING
), written AS (
    INSERT INTO flow_entry
    SELECT * FROM json_populate_recordset(NULL::flow_entry, %(rows)s::json)
)
UPDATE flow_chain SET last_hash = %(hash)s WHERE id = 1
"""
# The entries travel as ONE JSON parameter that the server turns into rows: the Python cost of a
# batch does not grow with its columns and its hundreds of pseudonyms.
# Prepared once per connection, run through libpq directly (psycopg's cursor layer cost a page
# read more than its statement's round trip). $1, $2: the new head's seq and hash; $3, $4: the
# head expected; $5: the lists of persons the writer does not know to be stored; $6: the
# entries. Nothing is written, the head included, unless every list the entries name is stored
# or comes with them: a list the writer believed stored may have gone with a purge.
_PG_WRITE_AFTER_NAME = b"aiguillage_flow_write_after_3"
_PG_WRITE_AFTER = b"""
WITH incoming AS (
    SELECT * FROM json_populate_recordset(NULL::flow_entry, $6::json)
), new_lists AS (
    SELECT * FROM json_populate_recordset(NULL::flow_subject_set, $5::json)
), missing AS (
    SELECT count(*) AS lists FROM incoming e
    WHERE e.subject_set IS NOT NULL
    AND NOT EXISTS (SELECT 1 FROM flow_subject_set s WHERE s.digest = e.subject_set)
    AND NOT EXISTS (SELECT 1 FROM new_lists n WHERE n.digest = e.subject_set)
), head AS (
    UPDATE flow_chain SET last_seq = $1::bigint, last_hash = $2::text
    WHERE id = 1 AND last_seq = $3::bigint AND last_hash = $4::text
    AND (SELECT lists FROM missing) = 0
    RETURNING last_seq
), lists AS (
    INSERT INTO flow_subject_set
    SELECT * FROM new_lists WHERE EXISTS (SELECT 1 FROM head)
    ON CONFLICT DO NOTHING
), written AS (
    INSERT INTO flow_entry
    SELECT * FROM incoming WHERE EXISTS (SELECT 1 FROM head)
    RETURNING seq
)
SELECT (SELECT count(*) FROM written), (SELECT lists FROM missing)
"""
_UNDEFINED_STATEMENT = "26000"
#: Digests of stored lists a process remembers (~8 MB at most).
KNOWN_LISTS = 65_536
#: Hub ids, over all the lists whose pseudonyms a process remembers (~9 MB at most): some 600
#: pages of 100 persons come back again and again; an export's parts of 1,000 persons do not,
#: and must not grow the worker.
KNOWN_IDS_IN_LISTS = 65_536
_CANONICAL = orjson.OPT_SORT_KEYS | orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC


@dataclass(frozen=True)
class ChainHead:
    """The last entry of the chain (sequence, hash) and the last checkpoint (sequence, time)."""

    seq: int
    hash: str
    sealed_seq: int
    sealed_at: dt.datetime


def _rows_json(rows: Sequence[Mapping[str, Any]]) -> str:
    return orjson.dumps(rows, option=_CANONICAL).decode()


#: Not covered by an entry's HMAC: the hash itself, and the digest that stands for ``subjects``.
_UNSIGNED = frozenset({"entry_hash", "subject_set"})


def entry_message(row: Mapping[str, Any]) -> bytes:
    """The bytes an entry's HMAC covers: every column but ``entry_hash`` (the persons as the
    list ``subjects``, not as the digest naming it), canonically."""
    return b"".join(entry_message_parts(row))


def entry_message_parts(row: Mapping[str, Any]) -> tuple[bytes, ...]:
    """:func:`entry_message` in pieces whose concatenation it is: an import's list of persons
    (a :class:`PseudonymList`, every person of an académie for a first import) is one of them
    as it is, not copied into a message as large again (the HMAC reads the pieces in turn)."""
    signed = {k: v for k, v in row.items() if k not in _UNSIGNED}
    subjects = signed.get("subjects")
    if not isinstance(subjects, PseudonymList):
        return (orjson.dumps(signed, option=_CANONICAL),)
    marker = b'"' + secrets.token_hex(16).encode("ascii") + b'"'  # in no other column
    signed["subjects"] = orjson.Fragment(marker)
    head, tail = orjson.dumps(signed, option=_CANONICAL).split(marker)
    return head, subjects.json, tail


def subject_set_digest(subjects: Sequence[str]) -> str | None:
    """The key of a list of pseudonyms in ``flow_subject_set`` (None for nobody)."""
    if not subjects:
        return None
    return hashlib.sha256(
        orjson.dumps(subjects if type(subjects) is list else list(subjects))
    ).hexdigest()


class PseudonymList:
    """The sorted pseudonyms of many persons (an import's), without repeats, kept as the JSON
    list the log stores and the entry's HMAC covers (the bytes ``orjson`` gives the list of
    strings): about 35 bytes a person, where a list of strings takes about 90, and the list of
    a first import names every person of an académie."""

    __slots__ = ("count", "json")

    #: Pseudonyms spelt out at once.
    _BLOCK = 65_536

    def __init__(self, packed: bytes) -> None:
        """``packed``: the pseudonyms' 16 bytes each, sorted, without repeats."""
        self.count = len(packed) // 16
        text = io.BytesIO()
        text.write(b"[")
        step = self._BLOCK * 16
        for start in range(0, len(packed), step):
            digits = packed[start : start + step].hex(",", 16)  # a comma between pseudonyms
            text.write(b',"' if start else b'"')
            text.write(digits.replace(",", '","').encode("ascii"))
            text.write(b'"')
        text.write(b"]")
        self.json = text.getvalue()

    def __len__(self) -> int:
        return self.count

    @property
    def digest(self) -> str:
        """Its key in ``flow_subject_set`` (as :func:`subject_set_digest` gives the list's)."""
        return hashlib.sha256(self.json).hexdigest()


def entries_query() -> Select[Any]:
    """Entries with the ``subjects`` of the list they name, joined (NULL when they name none and
    when their list is missing: :func:`entry_row` tells the two apart)."""
    columns = [c for c in ENTRY.c if c.name != "subject_set"]
    return select(*columns, ENTRY.c.subject_set, SUBJECT_SET.c.subjects).select_from(
        ENTRY.outerjoin(SUBJECT_SET, SUBJECT_SET.c.digest == ENTRY.c.subject_set)
    )


def entry_row(row: Any) -> dict[str, Any]:
    """A row of :func:`entries_query` as the entry its HMAC covers: ``subjects`` is ``[]`` when
    it names no list, None when the list it names is missing."""
    entry = dict(row._mapping)
    if entry["subject_set"] is None:
        entry["subjects"] = []
    elif entry["subjects"] is not None:
        entry["subjects"] = list(entry["subjects"])
    return entry


@dataclass(frozen=True)
class _Written:
    """Entries ready to store: their rows (``subject_set`` instead of ``subjects``) and the
    lists of persons they name."""

    rows: list[dict[str, Any]]
    lists: dict[str, list[str] | PseudonymList]


def _lists_json(lists: Mapping[str, list[str] | PseudonymList]) -> bytes:
    return orjson.dumps([{"digest": d, "subjects": _subjects_json(s)} for d, s in lists.items()])


def _subjects_json(subjects: list[str] | PseudonymList) -> list[str] | orjson.Fragment:
    """A list of pseudonyms as ``orjson`` writes it: a packed one is its JSON already."""
    return orjson.Fragment(subjects.json) if isinstance(subjects, PseudonymList) else subjects


def _run_prepared(
    pgconn: Any, name: bytes, query: bytes, params: list[bytes | None]
) -> tuple[int, ...]:
    """Run the named statement (preparing it on this connection the first time); the integers
    its one row holds. libpq's call releases the GIL while it waits for the server."""
    result = pgconn.exec_prepared(name, params)
    if result.error_field(pq.DiagnosticField.SQLSTATE) == _UNDEFINED_STATEMENT.encode():
        _check(pgconn.prepare(name, query), pq.ExecStatus.COMMAND_OK)
        result = pgconn.exec_prepared(name, params)
    _check(result, pq.ExecStatus.TUPLES_OK)
    return tuple(int(result.get_value(0, column)) for column in range(result.nfields))


def _check(result: Any, expected: pq.ExecStatus) -> None:
    if result.status != expected:
        message = (result.error_message or b"no answer").decode("utf-8", "replace").strip()
        raise psycopg.DatabaseError(f"flow log: the database refused the entries: {message}")


def checkpoint_message(row: Mapping[str, Any]) -> bytes:
    """The bytes a checkpoint's signature covers."""
    return orjson.dumps({k: v for k, v in row.items() if k != "signature"}, option=_CANONICAL)


@dataclass(frozen=True)
class FlowRecord:
    """What one flow was: who, under which activity, what data about whom, with what outcome."""

    flow: FlowKind
    operation: Operation
    activity: str
    actor_kind: RecipientKind
    #: Route and method (``GET /v1/persons``) or the import (``import aaf``).
    target: str
    actor: str | None = None
    client_id: str | None = None
    scopes: Collection[str] = ()
    categories: Collection[DataCategory] = ()
    structures: Collection[str] = ()
    #: Hub ids of the persons concerned (pseudonymised when written).
    subjects: Collection[uuid.UUID] = ()
    #: Persons concerned when not all are listed in ``subjects``; defaults to their number
    #: (``subjects`` may repeat a person: they count once).
    persons: int | None = None
    payload_digest: str | None = None
    source: dict[str, Any] | None = None
    outcome: str = "success"
    detail: str | None = None
    request_id: str | None = None
    event_id: uuid.UUID = field(default_factory=uuid.uuid4)


class FlowLog:
    """Writes flow entries with the hub's keys, under the register's current fiche versions."""

    def __init__(
        self,
        keys: RegistreKeys,
        versions: Mapping[str, int],
        *,
        checkpoint_every: int = 1000,
        checkpoint_interval: dt.timedelta = dt.timedelta(hours=1),
    ) -> None:
        self.keys = keys
        self.versions = dict(versions)
        self.checkpoint_every = checkpoint_every
        self.checkpoint_interval = checkpoint_interval
        #: Digests of lists of persons this process committed (:meth:`append_after` sends the
        #: others only); bounded like the pseudonyms' cache.
        self._stored_lists: set[str] = set()
        self._persons_of: dict[tuple[int, ...], tuple[list[str], str | None]] = {}
        self._persons_of_ids = 0  # hub ids in the keys of ``_persons_of``

    def append(
        self, connection: Connection, record: FlowRecord, *, now: dt.datetime | None = None
    ) -> int:
        """Write ``record`` as the next entry in ``connection``'s transaction; its sequence."""
        return self.append_many(connection, [record], now=now)[0]

    def append_many(
        self,
        connection: Connection,
        records: Sequence[FlowRecord],
        *,
        now: dt.datetime | None = None,
    ) -> list[int]:
        """Write ``records`` as the next entries, in order, in ``connection``'s transaction.

        One round trip takes the chain head's lock and reserves their sequence numbers, one
        writes them and moves the head: the cost of the lock is shared by the batch.
        """
        head = self._reserve(connection, len(records))
        if head is None:
            raise ConfigurationError("flow log: the chain head is missing; run registre verify")
        last_seq, prev_hash, sealed, sealed_at = head
        written = self._stored(self.entries(records, last_seq - len(records), prev_hash, now))
        rows = written.rows
        if connection.dialect.name == "postgresql":
            with connection.connection.dbapi_connection.cursor() as cursor:  # type: ignore[union-attr]
                cursor.execute(
                    _PG_WRITE,
                    {
                        "lists": _lists_json(written.lists).decode(),
                        "rows": _rows_json(rows),
                        "hash": rows[-1]["entry_hash"],
                    },
                )
        else:
            if written.lists:
                # Spelt by orjson (as the HMAC covers them), a long list as it is already.
                connection.exec_driver_sql(
                    "INSERT OR IGNORE INTO flow_subject_set (digest, subjects) VALUES (?, ?)",
                    [
                        (d, (s.json if isinstance(s, PseudonymList) else orjson.dumps(s)).decode())
                        for d, s in written.lists.items()
                    ],
                )
            connection.execute(insert(ENTRY), rows)
            update_head = update(CHAIN).where(CHAIN.c.id == 1)
            connection.execute(update_head.values(last_hash=rows[-1]["entry_hash"]))
        head_after = ChainHead(last_seq, rows[-1]["entry_hash"], sealed, sealed_at)
        if self.checkpoint_due(head_after, rows[-1]["occurred_at"]):
            self._seal(connection, sealed, last_seq, head_after.hash, rows[-1]["occurred_at"])
        return [row["seq"] for row in rows]

    def entries(
        self,
        records: Sequence[FlowRecord],
        after_seq: int,
        after_hash: str,
        now: dt.datetime | None = None,
    ) -> list[dict[str, Any]]:
        """The entries of ``records`` chained after entry ``after_seq`` whose hash is
        ``after_hash``: sequence numbers, pseudonyms, ``prev_hash`` and ``entry_hash`` set, the
        persons as the list ``subjects`` (what the HMAC covers) and its digest ``subject_set``
        (what is stored)."""
        rows = []
        prev_hash = after_hash
        for offset, record in enumerate(records, start=1):
            version = self._version(record)
            pseudonyms, digest = self._persons(record.subjects)
            row = self._row(record, after_seq + offset, prev_hash, version, pseudonyms, now)
            row["entry_hash"] = prev_hash = self.keys.chain_hash(
                row["key_id"], *entry_message_parts(row)
            )
            row["subject_set"] = digest
            rows.append(row)
        return rows

    def _persons(
        self, subjects: Collection[uuid.UUID]
    ) -> tuple[list[str] | PseudonymList, str | None]:
        """The sorted pseudonyms of ``subjects`` and the digest of that list, remembered per
        list of hub ids: the same pages, parts and children come back, and a known list costs
        a tuple and a look-up instead of a hundred look-ups and a sort (bounded by the hub ids it
        holds, :data:`KNOWN_IDS_IN_LISTS`)."""
        if len(subjects) > KNOWN_IDS_IN_LISTS:  # an import's: it never comes back
            listed = self._many(subjects)
            return listed, listed.digest
        key = tuple([s.int for s in subjects])
        known = self._persons_of.get(key)
        if known is None:
            pseudonyms = sorted(set(self.keys.pseudonyms(subjects)))
            known = (pseudonyms, subject_set_digest(pseudonyms))
            if self._persons_of_ids + len(key) > KNOWN_IDS_IN_LISTS:
                self._persons_of.clear()
                self._persons_of_ids = 0
            self._persons_of[key] = known
            self._persons_of_ids += len(key)
        return known

    def _many(self, subjects: Collection[uuid.UUID]) -> PseudonymList:
        """The pseudonyms of an import's persons, packed (see :class:`PseudonymList`); nothing
        is remembered."""
        return PseudonymList(pack_sorted(self.keys.pseudonym_digests(subjects)))

    def checkpoint_due(self, head: ChainHead, at: dt.datetime) -> bool:
        return (
            head.seq - head.sealed_seq >= self.checkpoint_every
            or at - head.sealed_at >= self.checkpoint_interval
        )

    @staticmethod
    def _reserve(connection: Connection, count: int) -> Any:
        """Lock the chain head and reserve ``count`` sequence numbers; the head after it."""
        return connection.execute(
            update(CHAIN)
            .where(CHAIN.c.id == 1)
            .values(last_seq=CHAIN.c.last_seq + count)
            .returning(
                CHAIN.c.last_seq,
                CHAIN.c.last_hash,
                CHAIN.c.last_checkpoint_seq,
                CHAIN.c.last_checkpoint_at,
            )
        ).first()

    def append_after(
        self,
        connection: psycopg.Connection[Any],
        records: Sequence[FlowRecord],
        expected: ChainHead,
        *,
        now: dt.datetime | None = None,
    ) -> ChainHead | None:
        """PostgreSQL, on a driver connection in autocommit: write ``records`` after the head
        ``expected`` in ONE statement (its own transaction: one round trip, one commit), if the
        head is still ``expected``; the new head, or None when another writer moved it (nothing
        was written: take the lock with :meth:`append_many`)."""
        written = self._stored(self.entries(records, expected.seq, expected.hash, now))
        rows = written.rows
        last = rows[-1]
        known = self._stored_lists
        new_lists = {d: s for d, s in written.lists.items() if d not in known}
        params: list[bytes | None] = [
            str(last["seq"]).encode(),
            last["entry_hash"].encode(),
            str(expected.seq).encode(),
            expected.hash.encode(),
            _lists_json(new_lists),
            _rows_json(rows).encode(),
        ]
        counted, missing = _run_prepared(
            connection.pgconn, _PG_WRITE_AFTER_NAME, _PG_WRITE_AFTER, params
        )
        if missing:  # gone with a purge: what this process remembers is not to be believed
            known.clear()
        if counted != len(rows):  # the head moved, or a list was missing: nothing was written
            return None
        if len(known) > KNOWN_LISTS:
            known.clear()
        known.update(written.lists)
        return ChainHead(last["seq"], last["entry_hash"], expected.sealed_seq, expected.sealed_at)

    @staticmethod
    def _stored(entries: list[dict[str, Any]]) -> _Written:
        lists: dict[str, list[str] | PseudonymList] = {}
        rows = []
        for entry in entries:
            subjects = entry.pop("subjects")
            digest = entry["subject_set"]
            if digest is not None:
                lists[digest] = subjects
            rows.append(entry)
        return _Written(rows, lists)

    def _version(self, record: FlowRecord) -> int:
        try:
            return self.versions[record.activity]
        except KeyError:
            raise ConfigurationError(
                f"flow log: activity {record.activity!r} is not in the register "
                f"(declared: {', '.join(sorted(self.versions))})"
            ) from None

    def _row(
        self,
        record: FlowRecord,
        seq: int,
        prev_hash: str,
        version: int,
        pseudonyms: list[str] | PseudonymList,
        now: dt.datetime | None,
    ) -> dict[str, Any]:
        return {
            "seq": seq,
            "event_id": record.event_id,
            "occurred_at": (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC),
            "request_id": record.request_id,
            "flow": record.flow.value,
            "operation": record.operation.value,
            "activity": record.activity,
            "activity_version": version,
            "actor_kind": record.actor_kind.value,
            "actor": record.actor,
            "client_id": record.client_id,
            "scopes": sorted(record.scopes),
            "target": record.target[:255],
            "categories": sorted(c.value for c in record.categories),
            "structures": sorted(set(record.structures)),
            "persons": len(pseudonyms) if record.persons is None else record.persons,
            "subjects": (pseudonyms if isinstance(pseudonyms, PseudonymList) else list(pseudonyms)),
            "payload_digest": record.payload_digest,
            "source": record.source,
            "outcome": record.outcome,
            "detail": (record.detail or "")[:255] or None,
            "prev_hash": prev_hash,
            "key_id": self.keys.chain_key_id,
        }

    def checkpoint(self, connection: Connection, *, now: dt.datetime | None = None) -> int | None:
        """Seal the entries written since the last checkpoint; its id, or None if none were."""
        head = connection.execute(
            select(CHAIN.c.last_seq, CHAIN.c.last_hash, CHAIN.c.last_checkpoint_seq)
            .where(CHAIN.c.id == 1)
            .with_for_update()
        ).first()
        if head is None or head.last_seq == head.last_checkpoint_seq:
            return None
        return self._seal(
            connection,
            head.last_checkpoint_seq,
            head.last_seq,
            head.last_hash,
            (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC),
        )

    def _seal(
        self, connection: Connection, sealed: int, last_seq: int, head_hash: str, at: dt.datetime
    ) -> int:
        previous = connection.execute(
            select(CHECKPOINT.c.id, CHECKPOINT.c.signature)
            .order_by(CHECKPOINT.c.id.desc())
            .limit(1)
        ).first()
        row: dict[str, Any] = {
            "id": (previous.id + 1) if previous else 1,
            "first_seq": sealed + 1,
            "last_seq": last_seq,
            "head_hash": head_hash,
            "previous_signature": previous.signature if previous else "",
            "key_id": self.keys.signing_key_id,
            "signed_at": at,
        }
        row["signature"] = self.keys.sign(checkpoint_message(row))
        connection.execute(insert(CHECKPOINT), [row])
        connection.execute(
            update(CHAIN)
            .where(CHAIN.c.id == 1)
            .values(last_checkpoint_seq=last_seq, last_checkpoint_at=at)
        )
        return int(row["id"])
