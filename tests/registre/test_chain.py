"""The flow log's chain, property by property: intact it verifies, tampered it breaks where it was
tampered with, on both backends.

Each example writes a fresh chain of 1 to 30 random entries (one transaction per entry, as the
hub writes them, checkpoints every ``every`` entries), checks that it verifies, then tampers
with it as an attacker who owns the database would (triggers off), each tampering in a
transaction of its own that is verified in place and rolled back.

Limit (documented by ``test_an_unsealed_tail_cut_cleanly_is_not_detectable``): entries written
after the last checkpoint are protected by the chain head only. An attacker who deletes them
and sets the head back to the new last entry leaves a log that verifies; what the verifier can
do, and does, is to say how many entries are in that unprotected tail. Likewise an attacker who
also deletes the last checkpoint and sets the whole head back goes unnoticed
(``test_the_last_checkpoint_and_its_entries_erased_with_the_head_set_back_go_unnoticed``): only a
checkpoint kept outside the database can tell.
"""

from __future__ import annotations

import datetime as dt
import hmac
import re
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, delete, insert, text, update

from annuaire.registre.flowlog import (
    CHAIN,
    CHECKPOINT,
    ENTRY,
    GENESIS,
    SUBJECT_SET,
    FlowLog,
    FlowRecord,
    checkpoint_message,
    entry_message,
)
from annuaire.registre.keys import RegistreKeys, generate_key_file, load_keys
from annuaire.registre.runtime import Registre, observed_flows, open_registre
from annuaire.registre.verify import Verification, verify_log
from annuaire.registre.vocabulary import FlowKind, Operation, RecipientKind
from annuaire.store.engine import read_snapshot, write_transaction
from tests.conftest import REGISTER, Store

from .flowlog_support import (
    assert_breaks_at,
    checkpoints,
    count,
    entries,
    flow_records,
    names,
    random_hex,
    reset_log,
    set_subjects,
    subjects_of,
    tampered,
)

BASE = dt.datetime(2026, 3, 1, 8, 0, tzinfo=dt.UTC)
PROPERTY = settings(
    database=None,  # nothing written outside the test run; a failure prints its example
    max_examples=25,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)


@dataclass(frozen=True)
class Plan:
    records: list[FlowRecord]
    every: int
    #: When each entry is written: increasing, in assorted UTC offsets, all within the hour
    #: after BASE (so that checkpoints come by count only, never by the hourly interval).
    times: list[dt.datetime]

    @property
    def size(self) -> int:
        return len(self.records)

    @property
    def sealed(self) -> int:
        return self.size // self.every * self.every


@st.composite
def plans(draw: st.DrawFn, *, min_size: int = 1, sealed: bool = False) -> Plan:
    activities = [a.id for a in REGISTER.activities]
    records = draw(st.lists(flow_records(activities), min_size=min_size, max_size=30))
    every = draw(st.integers(1, min(6, len(records)) if sealed else 6))
    steps = draw(
        st.lists(
            st.tuples(st.integers(1, 60), st.integers(0, 999_999), st.integers(-14 * 4, 14 * 4)),
            min_size=len(records),
            max_size=len(records),
        )
    )
    times, at = [], BASE
    for seconds, micros, quarters in steps:
        at += dt.timedelta(seconds=seconds, microseconds=micros)
        times.append(at.astimezone(dt.timezone(dt.timedelta(minutes=15 * quarters))))
    return Plan(records, every, times)


@pytest.fixture
def registre(store: Store) -> Registre:
    return open_registre(store.settings, store.engine)


def write_chain(store: Store, registre: Registre, plan: Plan) -> FlowLog:
    """A fresh log holding ``plan``'s entries, each appended in its own transaction."""
    reset_log(store.engine, BASE)
    log = FlowLog(registre.keys, registre.log.versions, checkpoint_every=plan.every)
    for seq, (record, at) in enumerate(zip(plan.records, plan.times, strict=True), start=1):
        with write_transaction(store.engine) as connection:
            assert log.append(connection, record, now=at) == seq
    return log


def verify(store: Store, registre: Registre) -> Verification:
    with store.engine.connect() as connection:
        return verify_log(connection, registre.keys)


def write_intact_chain(
    store: Store, registre: Registre, plan: Plan, *, check_rows: bool = False
) -> Verification:
    """Write ``plan``'s chain and check that it verifies, with the checkpoints it should have."""
    write_chain(store, registre, plan)
    report = verify(store, registre)
    assert report.ok, report.summary()
    assert report.summary().endswith(": intact")
    assert (report.entries, report.first_seq, report.last_seq) == (plan.size, 1, plan.size)
    assert report.checkpoints == plan.size // plan.every
    assert report.sealed_up_to == plan.sealed
    assert report.unsealed == plan.size - plan.sealed
    if check_rows:
        with store.engine.connect() as connection:
            rows = entries(connection)
            for row, record in zip(rows, plan.records, strict=True):
                pseudonyms = sorted({registre.keys.pseudonym(s) for s in record.subjects})
                assert subjects_of(connection, row["seq"]) == pseudonyms
                persons = len(pseudonyms) if record.persons is None else record.persons
                assert row["persons"] == persons
                assert row["event_id"] == record.event_id
    if store.backend == "postgres":
        # What is hashed is UTC whatever the session's time zone.
        with store.engine.connect() as connection:
            connection.execute(text("SET TIME ZONE 'America/St_Johns'"))
            assert verify_log(connection, registre.keys).ok
    return report


# -- (a) a modified column ----------------------------------------------------------------------


def _other(value: str | None) -> str:
    """A different text of at most the same length (or "x")."""
    if not value:
        return "x"
    return value[:-1] + ("y" if value.endswith("x") else "x")


def _other_list(values: list[str]) -> list[str]:
    return values[:-1] if values else ["0750001A"]


def _other_source(source: dict[str, Any] | None) -> dict[str, Any]:
    if source is None:
        return {"purged_up_to": 1}
    return {**source, "tampered": "no" if source.get("tampered") == "yes" else "yes"}


def _other_subjects(subjects: list[str]) -> list[str]:
    """One pseudonym fewer, or one if there were none."""
    return subjects[1:] if subjects else [random_hex(32)]


def _rehashed_with_a_wrong_key(row: dict[str, Any]) -> dict[str, Any]:
    changed = {**row, "persons": row["persons"] + 1}
    digest = hmac.digest(secrets.token_bytes(32), entry_message(changed), "sha256").hex()
    return {"persons": changed["persons"], "entry_hash": digest}


#: Column (and its type) -> the new values of a row, given the row.
MODIFICATIONS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "target (text)": lambda r: {"target": _other(r["target"])},
    "actor (nullable text)": lambda r: {"actor": _other(r["actor"])},
    "outcome (text)": lambda r: {"outcome": "failed" if r["outcome"] == "success" else "success"},
    "persons (int)": lambda r: {"persons": r["persons"] + 1},
    "activity_version (int)": lambda r: {"activity_version": r["activity_version"] + 1},
    "categories (JSON list)": lambda r: {"categories": _other_list(r["categories"])},
    "structures (JSON list)": lambda r: {"structures": _other_list(r["structures"])},
    "scopes (JSON list)": lambda r: {"scopes": _other_list(r["scopes"])},
    "source (JSON dict)": lambda r: {"source": _other_source(r["source"])},
    "occurred_at (datetime)": lambda r: {
        "occurred_at": r["occurred_at"] + dt.timedelta(microseconds=1)
    },
    "event_id (uuid)": lambda r: {"event_id": uuid.uuid4()},
    "prev_hash": lambda r: {"prev_hash": random_hex()},
    "subjects (text[] / JSON list)": lambda r: {"subjects": _other_subjects(r["subjects"])},
    "key_id": lambda r: {"key_id": "c-forged"},
    "entry_hash": lambda r: {"entry_hash": random_hex()},
    "entry_hash recomputed with a wrong key": _rehashed_with_a_wrong_key,
}


@PROPERTY
@given(plan=plans(), data=st.data())
def test_a_modified_column_breaks_the_chain_at_its_entry(
    store: Store, registre: Registre, plan: Plan, data: st.DataObject
) -> None:
    write_intact_chain(store, registre, plan, check_rows=True)
    for column, change in MODIFICATIONS.items():
        seq = data.draw(st.integers(1, plan.size), label=column)

        def modify(connection: Connection, seq: int = seq, change: Any = change) -> None:
            (row,) = [r for r in entries(connection) if r["seq"] == seq]
            values = change(row)
            if "subjects" in values:
                set_subjects(connection, seq, values.pop("subjects"))
            if values:
                connection.execute(update(ENTRY).where(ENTRY.c.seq == seq).values(**values))

        assert_breaks_at(tampered(store.engine, registre.keys, modify), seq)


# -- (b, c, d) deleted, inserted, reordered entries ---------------------------------------------


def _move(connection: Connection, seq: int, to: int) -> None:
    """Give entry ``seq`` (its subjects travel with it) the sequence number ``to``."""
    connection.execute(update(ENTRY).where(ENTRY.c.seq == seq).values(seq=to))


def _delete(connection: Connection, seq: int) -> None:
    connection.execute(delete(ENTRY).where(ENTRY.c.seq == seq))


def _insert_forged(connection: Connection, seq: int) -> None:
    """Make room at ``seq`` and put there a plausible entry that links onto the one before."""
    rows = entries(connection)
    for row in reversed(rows[seq - 1 :]):
        _move(connection, row["seq"], row["seq"] + 1)
    model = rows[seq - 1]
    forged = {
        **model,
        "seq": seq,
        "event_id": uuid.uuid4(),
        "prev_hash": rows[seq - 2]["entry_hash"] if seq > 1 else GENESIS,
        "target": "GET /v1/persons",
        "persons": 0,
        "subjects": [],
        "subject_set": None,
    }
    key = secrets.token_bytes(32)  # the attacker has no chain key
    forged["entry_hash"] = hmac.digest(key, entry_message(forged), "sha256").hex()
    del forged["subjects"]
    connection.execute(insert(ENTRY), [forged])
    connection.execute(update(CHAIN).where(CHAIN.c.id == 1).values(last_seq=len(rows) + 1))


@PROPERTY
@given(plan=plans(min_size=2), data=st.data())
def test_deleted_inserted_or_reordered_entries_break_the_chain_where_they_were(
    store: Store, registre: Registre, plan: Plan, data: st.DataObject
) -> None:
    write_intact_chain(store, registre, plan)
    size = plan.size

    gone = data.draw(st.integers(1, size - 1), label="deleted")
    report = tampered(store.engine, registre.keys, lambda c: _delete(c, gone))
    assert_breaks_at(report, gone, "missing")

    forged = data.draw(st.integers(1, size), label="inserted")
    report = tampered(store.engine, registre.keys, lambda c: _insert_forged(c, forged))
    assert_breaks_at(report, forged)

    first = data.draw(st.integers(1, size - 1), label="swapped")
    second = data.draw(st.integers(first + 1, size), label="with")

    def swap(connection: Connection) -> None:
        _move(connection, first, -1)
        _move(connection, second, first)
        _move(connection, -1, second)

    assert_breaks_at(tampered(store.engine, registre.keys, swap), first, "link")


# -- (e) subjects -------------------------------------------------------------------------------


@PROPERTY
@given(plan=plans(), data=st.data())
def test_a_removed_added_replaced_or_reordered_subject_breaks_the_chain_at_its_entry(
    store: Store, registre: Registre, plan: Plan, data: st.DataObject
) -> None:
    """The persons of an entry are in its ``subjects``, which its HMAC covers: whoever changes
    them, the entry's ``persons`` left alone, breaks the chain there ("content")."""
    write_intact_chain(store, registre, plan)
    with store.engine.connect() as connection:
        listed = {seq: subjects_of(connection, seq) for seq in range(1, plan.size + 1)}
    extra = registre.keys.pseudonym(uuid.uuid4())
    changes: dict[str, tuple[int, list[str]]] = {}

    concerned = sorted(seq for seq, subjects in listed.items() if subjects)
    if concerned:
        seq = data.draw(st.sampled_from(concerned), label="subject removed from")
        subject = data.draw(st.sampled_from(listed[seq]), label="subject")
        changes["removed"] = (seq, [s for s in listed[seq] if s != subject])
        seq = data.draw(st.sampled_from(concerned), label="subject replaced in")
        index = data.draw(st.integers(0, len(listed[seq]) - 1), label="subject")
        replaced = sorted([*listed[seq][:index], extra, *listed[seq][index + 1 :]])
        changes["replaced"] = (seq, replaced)
    several = sorted(seq for seq, subjects in listed.items() if len(subjects) > 1)
    if several:
        seq = data.draw(st.sampled_from(several), label="subjects reordered in")
        changes["reordered"] = (seq, listed[seq][::-1])
    seq = data.draw(st.integers(1, plan.size), label="subject added to")
    changes["added"] = (seq, sorted([*listed[seq], extra]))

    for how, (seq, subjects) in changes.items():
        assert subjects != listed[seq], how
        report = tampered(
            store.engine,
            registre.keys,
            lambda c, seq=seq, subjects=subjects: set_subjects(c, seq, subjects),
        )
        assert_breaks_at(report, seq, "content")
        assert [b.kind for b in report.breaks] == ["content"], (how, report.breaks)


@PROPERTY
@given(plan=plans(), data=st.data())
def test_a_stored_list_of_persons_changed_or_deleted_breaks_every_entry_naming_it(
    store: Store, registre: Registre, plan: Plan, data: st.DataObject
) -> None:
    """A list is stored once for all the entries naming it: editing it in place breaks each of
    them ("content"); deleting it is reported as such ("subjects")."""
    write_intact_chain(store, registre, plan)
    with store.engine.connect() as connection:
        rows = entries(connection)
    named = [r for r in rows if r["subject_set"] is not None]
    if not named:
        return
    chosen = data.draw(st.sampled_from(named), label="entry whose list is changed")
    digest, subjects = chosen["subject_set"], chosen["subjects"]
    naming = [r["seq"] for r in rows if r["subject_set"] == digest]
    edited = subjects[1:] if len(subjects) > 1 else [registre.keys.pseudonym(uuid.uuid4())]
    where = SUBJECT_SET.c.digest == digest

    report = tampered(
        store.engine,
        registre.keys,
        lambda c: c.execute(update(SUBJECT_SET).where(where).values(subjects=edited)),
    )
    assert_breaks_at(report, naming[0], "content")
    assert [(b.seq, b.kind) for b in report.breaks] == [(seq, "content") for seq in naming]

    report = tampered(
        store.engine, registre.keys, lambda c: c.execute(delete(SUBJECT_SET).where(where))
    )
    assert_breaks_at(report, naming[0], "subjects")
    assert [(b.seq, b.kind) for b in report.breaks] == [(seq, "subjects") for seq in naming]
    assert digest in str(report.breaks[0])


# -- (f) a cut tail -----------------------------------------------------------------------------


def _cut_tail(connection: Connection, last: int, *, mend_head: bool = True) -> None:
    """Delete the entries after ``last``; a careful attacker also sets the head back."""
    rows = entries(connection)
    connection.execute(delete(ENTRY).where(ENTRY.c.seq > last))
    if mend_head:
        head = rows[last - 1]["entry_hash"] if last else GENESIS
        connection.execute(
            update(CHAIN).where(CHAIN.c.id == 1).values(last_seq=last, last_hash=head)
        )


def test_the_message_of_a_cut_tail_names_the_first_missing_entry(
    store: Store, registre: Registre
) -> None:
    """Not only where the log now ends: the operator is told which entries are gone."""
    plan = Plan(
        [_record(n) for n in range(4)],
        every=4,
        times=[BASE + dt.timedelta(minutes=n) for n in range(1, 5)],
    )
    write_intact_chain(store, registre, plan)
    report = tampered(store.engine, registre.keys, lambda c: _cut_tail(c, 1))
    assert report.breaks[0].seq == 2
    assert names(str(report.breaks[0]), 2), str(report.breaks[0])


@PROPERTY
@given(plan=plans(), data=st.data())
def test_a_cut_tail_is_detected_where_a_checkpoint_sealed_it(
    store: Store, registre: Registre, plan: Plan, data: st.DataObject
) -> None:
    """Cutting sealed entries is detected; cutting only the unsealed tail cleanly is not.

    Entries after the last checkpoint are protected by the chain head alone, which an attacker
    who deletes them can set back to the new last entry: the log then verifies. This is the
    documented limit of the design; the report before the cut counts those entries as
    "after the last checkpoint", which is what an operator can see of the exposure.
    """
    before = write_intact_chain(store, registre, plan)
    if plan.sealed:
        last = data.draw(st.integers(0, plan.sealed - 1), label="sealed cut keeps")
        report = tampered(store.engine, registre.keys, lambda c: _cut_tail(c, last))
        assert_breaks_at(report, last + 1, "truncated")
    if plan.size > plan.sealed:
        last = data.draw(st.integers(plan.sealed, plan.size - 1), label="unsealed cut keeps")
        report = tampered(store.engine, registre.keys, lambda c: _cut_tail(c, last))
        assert report.ok, report.summary()  # the limit: not detectable
        assert plan.size - last <= before.unsealed
        assert report.unsealed == last - plan.sealed
    # Without setting the head back, any cut shows.
    last = data.draw(st.integers(0, plan.size - 1), label="careless cut keeps")
    report = tampered(store.engine, registre.keys, lambda c: _cut_tail(c, last, mend_head=False))
    assert_breaks_at(report, last + 1, "truncated", "head")


def test_an_unsealed_tail_cut_cleanly_is_not_detectable(store: Store, registre: Registre) -> None:
    """The limit, pinned: 5 entries, a checkpoint after 3; cutting entries 4 and 5 and setting
    the head back to entry 3 leaves a log that verifies. The report before the cut said that
    2 entries were after the last checkpoint."""
    plan = Plan(
        [_record(n) for n in range(5)],
        every=3,
        times=[BASE + dt.timedelta(minutes=n) for n in range(1, 6)],
    )
    before = write_intact_chain(store, registre, plan)
    assert before.unsealed == 2
    assert "2 entries after the last one" in before.summary()
    report = tampered(store.engine, registre.keys, lambda c: _cut_tail(c, 3))
    assert report.ok and report.last_seq == 3 and report.unsealed == 0
    report = tampered(store.engine, registre.keys, lambda c: _cut_tail(c, 2))
    assert_breaks_at(report, 3, "truncated")
    assert "its tail was cut" in str(report.breaks[0])


def _record(n: int) -> FlowRecord:
    activities = [a.id for a in REGISTER.activities]
    return FlowRecord(
        flow=FlowKind.API_OPERATOR,
        operation=Operation.READ,
        activity=activities[n % len(activities)],
        actor_kind=RecipientKind.OPERATOR,
        target="GET /v1/persons",
        subjects=[uuid.uuid4() for _ in range(n % 3)],
        structures=["0750001A"],
    )


# -- (g) checkpoints ----------------------------------------------------------------------------


def _other_signature(value: str) -> str:
    forged = secrets.token_urlsafe(64)[:86]
    return forged if forged != value else forged[::-1]


#: Checkpoint field -> its new value, given the checkpoint.
CHECKPOINT_CHANGES: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "head_hash": lambda c: {"head_hash": random_hex()},
    "signature": lambda c: {"signature": _other_signature(c["signature"])},
    "previous_signature": lambda c: {
        "previous_signature": _other_signature(c["previous_signature"])
    },
    "last_seq": lambda c: {"last_seq": c["last_seq"] - 1},
}


def _checkpoint_named(message: str, number: int) -> bool:
    return re.search(rf"\bcheckpoint {number}(?!\d)", message) is not None


@PROPERTY
@given(plan=plans(sealed=True), data=st.data())
def test_a_modified_or_deleted_checkpoint_breaks_the_chain(
    store: Store, registre: Registre, plan: Plan, data: st.DataObject
) -> None:
    write_intact_chain(store, registre, plan)
    count_ = plan.size // plan.every
    for field, change in CHECKPOINT_CHANGES.items():
        number = data.draw(st.integers(1, count_), label=field)

        def modify(connection: Connection, number: int = number, change: Any = change) -> None:
            (row,) = [c for c in checkpoints(connection) if c["id"] == number]
            connection.execute(
                update(CHECKPOINT).where(CHECKPOINT.c.id == number).values(**change(row))
            )

        report = tampered(store.engine, registre.keys, modify)
        assert not report.ok, f"{field} of checkpoint {number} changed unnoticed"
        first = str(report.breaks[0])
        assert _checkpoint_named(first, number), f"{first} does not name checkpoint {number}"
    if count_ > 1:
        number = data.draw(st.integers(1, count_ - 1), label="deleted checkpoint")
        report = tampered(
            store.engine,
            registre.keys,
            lambda c: c.execute(delete(CHECKPOINT).where(CHECKPOINT.c.id == number)),
        )
        assert not report.ok, f"deleting checkpoint {number} went unnoticed"
        assert _checkpoint_named(str(report.breaks[0]), number), report.breaks


def test_deleting_the_last_checkpoint_is_detected(store: Store, registre: Registre) -> None:
    """No checkpoint follows it to show the gap: the chain head's last checkpoint does."""
    plan = Plan(
        [_record(n) for n in range(6)],
        every=3,
        times=[BASE + dt.timedelta(minutes=n) for n in range(1, 7)],
    )
    write_intact_chain(store, registre, plan)
    report = tampered(
        store.engine,
        registre.keys,
        lambda c: c.execute(delete(CHECKPOINT).where(CHECKPOINT.c.id == 2)),
    )
    assert not report.ok, report.summary()


def test_the_last_checkpoint_and_its_entries_erased_with_the_head_set_back_go_unnoticed(
    store: Store, registre: Registre
) -> None:
    """The limit of a log kept in one database: an attacker who deletes the last checkpoint,
    cuts the entries it sealed, and sets the whole head back (last entry, last hash, last
    checkpoint) leaves a log that verifies. Only a checkpoint kept elsewhere (exported, or
    signed off-host) can tell. Each step alone shows."""
    plan = Plan(
        [_record(n) for n in range(6)],
        every=3,
        times=[BASE + dt.timedelta(minutes=n) for n in range(1, 7)],
    )
    write_intact_chain(store, registre, plan)
    last_checkpoint = delete(CHECKPOINT).where(CHECKPOINT.c.id == 2)

    def erase(connection: Connection, *, head: bool = True) -> None:
        connection.execute(last_checkpoint)
        _cut_tail(connection, 3)
        if head:
            connection.execute(update(CHAIN).where(CHAIN.c.id == 1).values(last_checkpoint_seq=3))

    report = tampered(store.engine, registre.keys, erase)
    assert report.ok and report.last_seq == 3 and report.sealed_up_to == 3
    report = tampered(store.engine, registre.keys, lambda c: erase(c, head=False))
    assert not report.ok
    report = tampered(store.engine, registre.keys, lambda c: _cut_tail(c, 3))
    assert_breaks_at(report, 4, "truncated")


def test_an_entry_inserted_before_the_first_is_detected(store: Store, registre: Registre) -> None:
    """INSERT is allowed through an ordinary connection (the log grows): a forged entry with
    a sequence number below 1 must not pass unseen."""
    plan = Plan([_record(n) for n in range(3)], every=3, times=[BASE] * 3)
    write_intact_chain(store, registre, plan)
    with store.engine.connect() as connection, connection.begin() as transaction:
        (model,) = [r for r in entries(connection) if r["seq"] == 1]
        forged = {**model, "seq": -1, "event_id": uuid.uuid4(), "target": "GET /v1/forged"}
        connection.execute(insert(ENTRY), [forged])  # the triggers are on: INSERT is allowed
        flows = observed_flows(connection)
        report = verify_log(connection, registre.keys)
        transaction.rollback()
    assert sum(f.entries for fl in flows.values() for f in fl) == 4  # the register counts it
    assert not report.ok, report.summary()


def test_tampering_helpers_leave_the_log_as_it_was(store: Store, registre: Registre) -> None:
    plan = Plan([_record(n) for n in range(4)], every=2, times=[BASE] * 4)
    write_chain(store, registre, plan)
    report = tampered(store.engine, registre.keys, lambda c: _delete(c, 2))
    assert not report.ok
    assert verify(store, registre).ok
    with store.engine.connect() as connection:
        assert count(connection, ENTRY) == 4


def test_verify_reads_the_log_as_of_one_instant(
    store: Store, registre: Registre, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``registre verify`` (and the DPO's ``verify=true``) read checkpoints, entries and the
    head with several statements while requests keep appending: in one snapshot, entries that
    another transaction appends and seals meanwhile are not half seen (a broken chain)."""
    from annuaire.registre import verify as verify_module

    activity = registre.activity_id(FlowKind.API_OPERATOR)

    def record(n: int) -> FlowRecord:
        return FlowRecord(
            flow=FlowKind.API_OPERATOR,
            operation=Operation.READ,
            activity=activity,
            actor_kind=RecipientKind.OPERATOR,
            actor="operator",
            target=f"GET /v1/persons {n}",
            subjects=[uuid.uuid4()],
        )

    plan = Plan(
        [record(n) for n in range(6)], 3, [BASE + dt.timedelta(seconds=n) for n in range(6)]
    )
    log = write_chain(store, registre, plan)
    entries_of = verify_module._entries

    def appended_meanwhile(connection: Connection) -> Any:
        # Once the checkpoints are read, another writer appends three entries and a checkpoint.
        for n in range(3):
            with write_transaction(store.engine) as other:
                log.append(other, record(10 + n), now=BASE + dt.timedelta(minutes=1, seconds=n))
        return entries_of(connection)

    monkeypatch.setattr(verify_module, "_entries", appended_meanwhile)
    with read_snapshot(store.engine) as connection:
        report = verify_log(connection, registre.keys)
    assert report.ok, report.summary()
    assert (report.entries, report.checkpoints) == (6, 2)
    monkeypatch.undo()
    assert verify(store, registre).entries == 9


# -- (h) key rotation ---------------------------------------------------------------------------

ROTATED_AT = BASE + dt.timedelta(days=30)


@dataclass
class Rotation:
    """A log of 6 entries chained and sealed (every 2) with the keys of a first file, then 6 with
    the keys a rotation put first; ``retired`` is that first file, as a copy kept from before
    the rotation would hold it."""

    keys: RegistreKeys
    retired: RegistreKeys


def write_rotated_log(store: Store, registre: Registre, tmp_path: Path) -> Rotation:
    path = tmp_path / "keys.json"
    generate_key_file(path, now=BASE - dt.timedelta(days=1))
    settings_of_file = store.settings.model_copy(update={"registre_key_file": path})
    retired = load_keys(settings_of_file)
    generate_key_file(path, rotate=True, now=ROTATED_AT)
    keys = load_keys(settings_of_file)
    reset_log(store.engine, BASE)
    for these, start in ((retired, BASE), (keys, ROTATED_AT)):
        log = FlowLog(these, registre.log.versions, checkpoint_every=2)
        for n in range(6):
            with write_transaction(store.engine) as connection:
                log.append(connection, _record(n), now=start + dt.timedelta(minutes=n))
    return Rotation(keys, retired)


def _rewrite_with(
    connection: Connection, keys: RegistreKeys, from_seq: int, *, target: str = "FORGED"
) -> None:
    """What someone holding ``keys`` and the database does to change entry ``from_seq``:
    rewrite it and every entry after it, re-sign the checkpoints from there, mend the head."""
    rows = entries(connection)
    prev = next((r["entry_hash"] for r in rows if r["seq"] == from_seq - 1), GENESIS)
    for row in rows:
        if row["seq"] < from_seq:
            continue
        if row["seq"] == from_seq:
            row["target"] = target
        row["prev_hash"] = prev
        row["key_id"] = keys.chain_key_id
        row["entry_hash"] = prev = keys.chain_hash(keys.chain_key_id, entry_message(row))
        connection.execute(
            update(ENTRY)
            .where(ENTRY.c.seq == row["seq"])
            .values(
                target=row["target"],
                prev_hash=row["prev_hash"],
                key_id=row["key_id"],
                entry_hash=row["entry_hash"],
            )
        )
    hashes = {r["seq"]: r["entry_hash"] for r in entries(connection)}
    signature = ""
    for checkpoint in checkpoints(connection):
        if checkpoint["last_seq"] >= from_seq:
            checkpoint.update(
                head_hash=hashes[checkpoint["last_seq"]],
                previous_signature=signature,
                key_id=keys.signing_key_id,
            )
            checkpoint.pop("signature")
            checkpoint["signature"] = keys.sign(checkpoint_message(checkpoint))
            connection.execute(
                update(CHECKPOINT)
                .where(CHECKPOINT.c.id == checkpoint["id"])
                .values(**{k: v for k, v in checkpoint.items() if k != "id"})
            )
        signature = checkpoint["signature"]
    connection.execute(update(CHAIN).where(CHAIN.c.id == 1).values(last_hash=prev))


def test_a_log_spanning_a_key_rotation_verifies(
    store: Store, registre: Registre, tmp_path: Path
) -> None:
    rotation = write_rotated_log(store, registre, tmp_path)
    with store.engine.connect() as connection:
        used = [(e["seq"], e["key_id"]) for e in entries(connection)]
        signers = [c["key_id"] for c in checkpoints(connection)]
        report = verify_log(connection, rotation.keys)
    assert report.ok, report.summary()
    assert {key for seq, key in used if seq <= 6} == {rotation.retired.chain_key_id}
    assert {key for seq, key in used if seq > 6} == {rotation.keys.chain_key_id}
    assert signers == [rotation.retired.signing_key_id] * 3 + [rotation.keys.signing_key_id] * 3


def test_a_retired_key_cannot_change_an_entry_written_after_newer_keys_were_used(
    store: Store, registre: Registre, tmp_path: Path
) -> None:
    rotation = write_rotated_log(store, registre, tmp_path)
    # Entry 9 changed with the retired keys: 7 and 8 were chained with the new key before it.
    report = tampered(store.engine, rotation.keys, lambda c: _rewrite_with(c, rotation.retired, 9))
    assert not report.ok and "BROKEN" in report.summary()
    entry_breaks = [b for b in report.breaks if b.kind == "key"]
    assert [b.seq for b in entry_breaks] == list(range(9, 13))
    assert f"entry 9 was chained with key {rotation.retired.chain_key_id!r}, older than" in str(
        entry_breaks[0]
    )
    resigned = [b for b in report.breaks if b.kind == "checkpoint"]
    assert resigned and all("signed with key" in str(b) for b in resigned)


def test_a_retired_key_cannot_rewrite_everything_written_after_the_rotation(
    store: Store, registre: Registre, tmp_path: Path
) -> None:
    rotation = write_rotated_log(store, registre, tmp_path)
    # Every entry and checkpoint since the rotation rewritten with the retired keys, at the
    # times they were written: no newer key is named any more, but the key file says when the
    # retired ones were replaced.
    report = tampered(store.engine, rotation.keys, lambda c: _rewrite_with(c, rotation.retired, 7))
    assert not report.ok and "BROKEN" in report.summary()
    entry_breaks = [b for b in report.breaks if b.kind == "key"]
    assert [b.seq for b in entry_breaks] == list(range(7, 13))
    assert "after a newer key replaced it" in str(entry_breaks[0])
    resigned = [b for b in report.breaks if b.kind == "checkpoint"]
    with store.engine.connect() as connection:
        sealed_since = [c for c in checkpoints(connection) if c["last_seq"] >= 7]
    assert len(resigned) == len(sealed_since) >= 2
    assert all("after a newer key replaced it" in str(b) for b in resigned)
