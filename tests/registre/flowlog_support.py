"""Flow-log test support: a fresh chain, random records, and writes past the append-only triggers.

The tests play an attacker who owns the database: :func:`unguarded` opens a transaction in which
the append-only triggers of the migration (on ``flow_entry``, ``flow_checkpoint`` and
``flow_purge``) do not fire (PostgreSQL: ``SET LOCAL session_replication_role = replica``, which
the tests' superuser may set; SQLite: the triggers are dropped inside the transaction, and
SQLite's DDL is transactional). By default the transaction is rolled back at the end, so a
tampering can be verified in the same connection and leaves the chain as it was; with
``commit`` the triggers are re-created before the commit.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import secrets
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from hypothesis import strategies as st
from sqlalchemy import Connection, Engine, delete, insert, select, text, update

from annuaire.registre.flowlog import (
    CHAIN,
    CHECKPOINT,
    ENTRY,
    GENESIS,
    SUBJECT_SET,
    FlowRecord,
    entries_query,
    entry_row,
    subject_set_digest,
)
from annuaire.registre.keys import RegistreKeys
from annuaire.registre.verify import Verification, verify_log
from annuaire.registre.vocabulary import DataCategory, FlowKind, Operation, RecipientKind
from annuaire.schema import FlowPurge

PURGE = FlowPurge.__table__  # type: ignore[attr-defined]
APPEND_ONLY = ("flow_entry", "flow_checkpoint", "flow_purge")
#: The SQLite triggers of the migrations (PostgreSQL: ``<table>_append_only``, ``_no_truncate``).
SQLITE_TRIGGERS = frozenset(
    {f"{t}_{w}" for t in APPEND_ONLY for w in ("no_update", "no_delete")}
    | {"flow_subject_set_no_update"}
)
_GUARDED = (*APPEND_ONLY, "flow_subject_set")
UTC = dt.UTC


@contextlib.contextmanager
def unguarded(engine: Engine, *, commit: bool = False) -> Iterator[Connection]:
    """A transaction where the append-only triggers are off; rolled back unless ``commit``."""
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            connection = connection.execution_options(sqlite_immediate=True)
        with connection.begin() as transaction:
            restore = _disarm(connection)
            yield connection
            if not commit:
                transaction.rollback()
                return
            for statement in restore:
                connection.exec_driver_sql(statement)


def _disarm(connection: Connection) -> list[str]:
    """Switch the triggers off for this transaction; the statements that recreate them."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("SET LOCAL session_replication_role = replica"))
        return []
    triggers = connection.execute(
        text(
            "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' "
            f"AND tbl_name IN ({', '.join(repr(t) for t in _GUARDED)})"
        )
    ).all()
    found = {name for name, _sql in triggers}
    assert found == SQLITE_TRIGGERS, f"append-only triggers: {sorted(found)}"
    for name, _sql in triggers:
        connection.exec_driver_sql(f'DROP TRIGGER "{name}"')
    return [sql for _name, sql in triggers]


def reset_log(engine: Engine, at: dt.datetime) -> None:
    """Empty the flow log and put the chain head back at the genesis, last sealed ``at``."""
    with unguarded(engine, commit=True) as connection:
        for table in (ENTRY, SUBJECT_SET, CHECKPOINT, PURGE):
            connection.execute(delete(table))
        connection.execute(
            update(CHAIN)
            .where(CHAIN.c.id == 1)
            .values(last_seq=0, last_hash=GENESIS, last_checkpoint_seq=0, last_checkpoint_at=at)
        )


def tampered(
    engine: Engine, keys: RegistreKeys, tamper: Callable[[Connection], object]
) -> Verification:
    """Verify the log as ``tamper`` leaves it, in its transaction, then roll it back."""
    with unguarded(engine) as connection:
        tamper(connection)
        return verify_log(connection, keys)


def names(message: str, number: int) -> bool:
    return re.search(rf"(?<!\d){number}(?!\d)", message) is not None


def assert_breaks_at(report: Verification, seq: int, *kinds: str) -> None:
    """The first break is at entry ``seq`` (of one of ``kinds``) and its message says where."""
    assert not report.ok, "the tampering went unnoticed"
    first = report.breaks[0]
    assert first.seq == seq, f"first break at {first.seq}, expected {seq}: {report.breaks}"
    if kinds:
        assert first.kind in kinds, report.breaks
    # A head that lags is told by where the log now ends (the entry before ``seq``).
    named = seq - 1 if first.kind == "head" else seq
    assert names(str(first), named), f"{first} does not name entry {named}"
    assert f"BROKEN at entry {seq}: {first}" in report.summary()


def entries(connection: Connection) -> list[dict[str, Any]]:
    """Every entry with its ``subjects`` (and the ``subject_set`` naming them)."""
    query = entries_query().order_by(ENTRY.c.seq)
    return [entry_row(r) for r in connection.execute(query)]


def subjects_of(connection: Connection, seq: int) -> list[str]:
    """The pseudonyms entry ``seq`` lists, as stored (sorted when the log wrote them)."""
    row = connection.execute(entries_query().where(ENTRY.c.seq == seq)).one()
    return list(entry_row(row)["subjects"])


def set_subjects(connection: Connection, seq: int, subjects: list[str]) -> None:
    """Make entry ``seq`` name ``subjects`` as an attacker would: store that list (if it is not
    there yet) and point the entry at it."""
    digest = subject_set_digest(subjects)
    if digest is not None:
        known = select(SUBJECT_SET.c.digest).where(SUBJECT_SET.c.digest == digest)
        if connection.execute(known).first() is None:
            connection.execute(insert(SUBJECT_SET), [{"digest": digest, "subjects": subjects}])
    connection.execute(update(ENTRY).where(ENTRY.c.seq == seq).values(subject_set=digest))


def checkpoints(connection: Connection) -> list[dict[str, Any]]:
    rows = connection.execute(select(CHECKPOINT).order_by(CHECKPOINT.c.id))
    return [dict(r._mapping) for r in rows]


def count(connection: Connection, table: Any) -> int:
    return len(connection.execute(select(table)).all())


def random_hex(length: int = 64) -> str:
    return secrets.token_hex(length // 2)


# -- random records -----------------------------------------------------------------------------

#: Text any backend stores as given (PostgreSQL refuses NUL; surrogates are not text).
_TEXT = st.characters(exclude_categories=["Cs"], exclude_characters="\x00")
UAIS = st.from_regex(r"\A0[0-9]{6}[A-Z]\Z")
_JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(_TEXT, max_size=12)
)
SOURCES = st.none() | st.dictionaries(
    st.text(_TEXT, max_size=10),
    st.recursive(
        _JSON_SCALARS,
        lambda inner: (
            st.lists(inner, max_size=3)
            | st.dictionaries(st.text(_TEXT, max_size=6), inner, max_size=3)
        ),
        max_leaves=6,
    ),
    max_size=4,
)


def flow_records(activities: Sequence[str]) -> st.SearchStrategy[FlowRecord]:
    """Any record the log must take: every flow, operation and recipient, odd text, no limits
    on what the log truncates itself (target, detail), within the columns' sizes elsewhere."""
    return st.builds(
        FlowRecord,
        flow=st.sampled_from(FlowKind),
        operation=st.sampled_from(Operation),
        activity=st.sampled_from(sorted(activities)),
        actor_kind=st.sampled_from(RecipientKind),
        target=st.text(_TEXT, min_size=1, max_size=300),
        actor=st.none() | st.text(_TEXT, max_size=128),
        client_id=st.none() | st.text(_TEXT, max_size=64),
        scopes=st.lists(st.text(_TEXT, max_size=20), max_size=3),
        categories=st.frozensets(st.sampled_from(DataCategory)),
        structures=st.lists(UAIS, max_size=4),
        subjects=st.lists(st.uuids(version=4), max_size=5),
        persons=st.none() | st.integers(0, 10**6),
        payload_digest=st.none() | st.text("0123456789abcdef", min_size=64, max_size=64),
        source=SOURCES,
        outcome=st.sampled_from(["success", "failure", "refused", "failed"]),
        detail=st.none() | st.text(_TEXT, max_size=300),
        request_id=st.none() | st.text("0123456789abcdef-", max_size=64),
        event_id=st.uuids(version=4),
    )


def import_record(n: int, categories: frozenset[DataCategory] = frozenset()) -> FlowRecord:
    """The flow entry of an AAF import numbered ``n``, about one new person."""
    return FlowRecord(
        flow=FlowKind.IMPORT,
        operation=Operation.COLLECT,
        activity="import-annuaire",
        actor_kind=RecipientKind.IMPORT_JOB,
        actor="import aaf",
        target=f"import aaf {n}",
        categories=set(categories),
        subjects=[uuid.uuid4()],
    )
