"""The flow log is append-only in the database itself: through an ordinary connection, the
migration's triggers refuse to change or delete what was written (entries, the persons they
list, checkpoints, purge records), on both backends."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest
from sqlalchemy import Connection, delete, insert, select, text, update
from sqlalchemy.exc import DBAPIError

from annuaire.registre.flowlog import CHAIN, CHECKPOINT, ENTRY, SUBJECT_SET, FlowLog, FlowRecord
from annuaire.registre.runtime import open_registre
from annuaire.registre.verify import verify_log
from annuaire.registre.vocabulary import FlowKind, Operation, RecipientKind
from annuaire.store.engine import write_transaction
from tests.conftest import Store

from .flowlog_support import PURGE, count, entries, reset_log, subjects_of

BASE = dt.datetime(2026, 5, 4, 10, 0, tzinfo=dt.UTC)


@pytest.fixture
def log(store: Store) -> FlowLog:
    """Four entries, each about two persons, sealed by checkpoints after entries 2 and 4."""
    registre = open_registre(store.settings, store.engine)
    reset_log(store.engine, BASE)
    flow_log = FlowLog(registre.keys, registre.log.versions, checkpoint_every=2)
    for n in range(4):
        record = FlowRecord(
            flow=FlowKind.API_OPERATOR,
            operation=Operation.READ,
            activity=registre.activity_id(FlowKind.API_OPERATOR),
            actor_kind=RecipientKind.OPERATOR,
            target="GET /v1/persons",
            subjects=[uuid.uuid4(), uuid.uuid4()],
        )
        with write_transaction(store.engine) as connection:
            flow_log.append(connection, record, now=BASE + dt.timedelta(minutes=n))
    return flow_log


def rejected(store: Store, statement: object) -> str:
    """Run ``statement`` in a transaction of its own; the database's refusal."""
    with pytest.raises(DBAPIError) as caught, store.engine.begin() as connection:
        connection.execute(statement)  # type: ignore[call-overload]
    if store.backend == "postgres":  # the trigger's refusal, not some other error on the way
        assert caught.value.orig.sqlstate == "42501", caught.value.orig  # type: ignore[union-attr]
    return str(caught.value.orig)


def refused(store: Store, statement: object) -> str:
    """``statement`` is rejected, and the database says why: the log is append-only."""
    message = rejected(store, statement)
    assert "append-only" in message, message
    return message


def sizes(connection: Connection) -> tuple[int, int, int, int]:
    """Entries, pseudonyms they list, checkpoints, purge records."""
    listed = sum(len(e["subjects"]) for e in entries(connection))
    return count(connection, ENTRY), listed, count(connection, CHECKPOINT), count(connection, PURGE)


def record_purge(connection: Connection) -> None:
    """What a purge of entries 1..2 leaves: its record (checkpoint 1 ends at entry 2)."""
    connection.execute(
        insert(PURGE),
        [
            {
                "up_to_seq": 2,
                "checkpoint_id": 1,
                "entries": 2,
                "subjects": 4,
                "cutoff": BASE,
                "purged_at": BASE,
                "operator": "test",
            }
        ],
    )


@pytest.mark.parametrize(
    "statement",
    [
        update(ENTRY).where(ENTRY.c.seq == 2).values(persons=0),
        update(ENTRY).values(outcome="success"),
        update(ENTRY).where(ENTRY.c.seq == 1).values(subject_set=None),
        update(ENTRY).where(ENTRY.c.seq == 3).values(subject_set="0" * 64),
        update(SUBJECT_SET).values(subjects=["0" * 32]),
        update(CHECKPOINT).where(CHECKPOINT.c.id == 1).values(head_hash="0" * 64),
        delete(ENTRY).where(ENTRY.c.seq == 4),
        delete(ENTRY),
        delete(CHECKPOINT).where(CHECKPOINT.c.id == 2),
    ],
    ids=[
        "update-entry",
        "update-every-entry",
        "update-entry-subjects-emptied",
        "update-entry-subjects-replaced",
        "update-list-of-persons",
        "update-checkpoint",
        "delete-entry",
        "delete-every-entry",
        "delete-checkpoint",
    ],
)
def test_changing_or_deleting_what_was_logged_is_refused(
    store: Store, log: FlowLog, statement: Any
) -> None:
    with store.engine.connect() as connection:
        before = sizes(connection), [subjects_of(connection, seq) for seq in range(1, 5)]
    message = rejected(store, statement)
    with store.engine.connect() as connection:
        assert (sizes(connection), [subjects_of(connection, seq) for seq in range(1, 5)]) == before
        assert verify_log(connection, log.keys).ok
    table = statement.table.name
    assert "append-only" in message, message
    assert table in message


def test_only_entries_covered_by_a_recorded_purge_may_be_deleted(
    store: Store, log: FlowLog
) -> None:
    with write_transaction(store.engine) as connection:
        record_purge(connection)
        connection.execute(delete(ENTRY).where(ENTRY.c.seq <= 2))
    with store.engine.connect() as connection:
        assert sizes(connection) == (2, 4, 2, 1)
    refused(store, delete(ENTRY).where(ENTRY.c.seq == 3))
    refused(store, update(ENTRY).where(ENTRY.c.seq == 3).values(persons=0))
    refused(store, update(ENTRY).where(ENTRY.c.seq == 3).values(subject_set=None))
    # Checkpoints stay, even the one ending the purged range.
    message = rejected(store, delete(CHECKPOINT).where(CHECKPOINT.c.id == 1))
    with store.engine.connect() as connection:
        assert sizes(connection) == (2, 4, 2, 1)
    assert "append-only" in message, message


@pytest.mark.parametrize(
    "statement",
    [
        update(PURGE).values(up_to_seq=4),
        update(PURGE).values(up_to_seq=0),
        update(PURGE).values(subjects=0),
        update(PURGE).values(operator="someone else"),
        delete(PURGE),
    ],
    ids=["raise-up-to", "lower-up-to", "update-subjects", "update-operator", "delete"],
)
def test_a_purge_record_can_be_neither_changed_nor_deleted(
    store: Store, log: FlowLog, statement: Any
) -> None:
    """The evidence that retention was applied stays as written: raising it would let the
    triggers pass the deletion of more entries, deleting it would hide that entries went."""
    with write_transaction(store.engine) as connection:
        record_purge(connection)
    with store.engine.connect() as connection:
        before = [dict(r._mapping) for r in connection.execute(select(PURGE))]
    message = refused(store, statement)
    assert "flow_purge" in message, message
    with store.engine.connect() as connection:
        assert [dict(r._mapping) for r in connection.execute(select(PURGE))] == before
        assert sizes(connection) == (4, 8, 2, 1)


def test_the_chain_head_is_not_append_only(store: Store, log: FlowLog) -> None:
    """The head is the writers' lock and moves with every entry (verify checks it instead)."""
    with write_transaction(store.engine) as connection:
        connection.execute(update(CHAIN).where(CHAIN.c.id == 1).values(last_seq=3))
    with store.engine.connect() as connection:
        report = verify_log(connection, log.keys)
    assert [b.kind for b in report.breaks] == ["head"]


@pytest.mark.parametrize("table", ["flow_entry", "flow_checkpoint", "flow_purge"])
def test_truncate_is_refused_on_postgresql(store: Store, log: FlowLog, table: str) -> None:
    if store.backend != "postgres":
        pytest.skip("SQLite has no TRUNCATE (DELETE without WHERE is tested above)")
    with write_transaction(store.engine) as connection:
        record_purge(connection)  # flow_purge has a row to lose too
    message = rejected(store, text(f"TRUNCATE {table} CASCADE"))
    with store.engine.connect() as connection:
        assert sizes(connection) == (4, 8, 2, 1)
    assert "append-only" in message, message
