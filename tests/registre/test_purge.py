"""Retention of the flow log: a purge deletes whole expired checkpoint windows, records itself,
and leaves a log that still verifies (and still catches tampering), on both backends."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Connection, delete, insert, select, update
from sqlalchemy.exc import DBAPIError

from annuaire.registre.flowlog import ENTRY, SUBJECT_SET, FlowLog, FlowRecord
from annuaire.registre.purge import PURGE_TARGET, PurgeResult, months_before, purge_log
from annuaire.registre.runtime import Registre, open_registre
from annuaire.registre.verify import Verification, verify_log
from annuaire.registre.vocabulary import FlowKind, Operation, RecipientKind
from annuaire.store.engine import write_transaction
from tests.conftest import Store

from .flowlog_support import (
    PURGE,
    assert_breaks_at,
    entries,
    reset_log,
    set_subjects,
    tampered,
    unguarded,
)

UTC = dt.UTC
NOW = dt.datetime(2027, 11, 15, 12, 0, tzinfo=UTC)
START = months_before(NOW, 20)
CUTOFF = months_before(NOW, 12)
#: One entry every 15 days over 20 months, and one exactly at the cutoff (it is not expired).
TIMES = sorted({START + dt.timedelta(days=15 * n) for n in range(41)} | {CUTOFF})
EXPIRED = sum(1 for t in TIMES if t < CUTOFF)


@dataclass
class Log:
    store: Store
    registre: Registre
    flow_log: FlowLog
    every: int
    #: Pseudonyms each entry lists (seq -> sorted pseudonyms).
    subjects: dict[int, list[str]]
    #: Persons each entry counts (seq -> ``persons``, not always the number listed).
    persons: dict[int, int]

    def purge(self, now: dt.datetime = NOW) -> PurgeResult:
        with write_transaction(self.store.engine) as connection:
            return purge_log(
                connection,
                self.flow_log,
                activity=self.registre.activity_id(FlowKind.REGISTRE),
                retention_months=12,
                operator="test",
                now=now,
            )

    def verify(self) -> Verification:
        with self.store.engine.connect() as connection:
            return verify_log(connection, self.registre.keys)


def write_log(store: Store, every: int) -> Log:
    registre = open_registre(store.settings, store.engine)
    reset_log(store.engine, START)
    # Windows by count only: entries 15 days apart would each end an hourly window.
    flow_log = FlowLog(
        registre.keys,
        registre.log.versions,
        checkpoint_every=every,
        checkpoint_interval=dt.timedelta(days=3650),
    )
    subjects: dict[int, list[str]] = {}
    persons: dict[int, int] = {}
    for seq, at in enumerate(TIMES, start=1):
        ids = [uuid.uuid4() for _ in range(seq % 3)]
        subjects[seq] = sorted(registre.keys.pseudonym(i) for i in ids)
        # A page lists its persons; some flows count more persons than they list.
        persons[seq] = len(ids) if seq % 2 else len(ids) + 10
        record = FlowRecord(
            flow=FlowKind.API_CLIENT,
            operation=Operation.READ,
            activity=registre.activity_id(FlowKind.IMPORT),
            actor_kind=RecipientKind.CLIENT,
            client_id="ent-test",
            target="GET /v1/persons",
            subjects=ids,
            persons=None if seq % 2 else persons[seq],
        )
        with write_transaction(store.engine) as connection:
            assert flow_log.append(connection, record, now=at) == seq
    return Log(store, registre, flow_log, every, subjects, persons)


def purges(connection: Connection) -> list[dict[str, Any]]:
    return [dict(r._mapping) for r in connection.execute(select(PURGE).order_by(PURGE.c.id))]


@pytest.mark.parametrize("every", [1, 3, 5])
def test_a_purge_deletes_the_expired_windows_and_the_log_still_verifies(
    store: Store, every: int
) -> None:
    log = write_log(store, every)
    total = len(TIMES)
    assert log.verify().ok
    result = log.purge()

    # Whole windows of expired entries, and no more: the first one left is recent, or shares
    # its window with one that is.
    up_to = EXPIRED // every * every
    persons = sum(log.persons[s] for s in range(1, up_to + 1))
    assert persons != sum(len(log.subjects[s]) for s in range(1, up_to + 1)) or not up_to
    assert result == PurgeResult(CUTOFF, up_to, up_to, persons)
    with store.engine.connect() as connection:
        rows = entries(connection)
        assert [r["seq"] for r in rows] == list(range(up_to + 1, total + 2))
        kept = rows[:-1]
        assert all(r["occurred_at"] >= CUTOFF for r in kept if r["seq"] > EXPIRED)
        assert [r["occurred_at"] for r in kept] == TIMES[up_to:]
        assert EXPIRED - up_to < every
        # The purged entries are gone with the pseudonyms they listed; the rest keep theirs.
        assert [(r["seq"], r["subjects"], r["persons"]) for r in kept] == [
            (s, log.subjects[s], log.persons[s]) for s in range(up_to + 1, total + 1)
        ]
        purged = {p for s in range(1, up_to + 1) for p in log.subjects[s]}
        assert not purged & {p for r in rows for p in r["subjects"]}
        # Lists of persons only purged entries named went with them.
        stored = connection.execute(select(SUBJECT_SET.c.subjects)).scalars().all()
        assert sorted(map(list, stored)) == sorted(
            map(list, {tuple(r["subjects"]) for r in rows if r["subjects"]})
        )
        (recorded,) = purges(connection)
        assert recorded["up_to_seq"] == up_to
        assert recorded["checkpoint_id"] == up_to // every
        assert recorded["entries"] == result.entries
        assert recorded["subjects"] == result.subjects == persons
        assert recorded["cutoff"] == CUTOFF and recorded["purged_at"] == NOW
        assert recorded["operator"] == "test"
        purge_entry = rows[-1]
    assert purge_entry["operation"] == Operation.PURGE.value
    assert purge_entry["flow"] == FlowKind.REGISTRE.value
    assert purge_entry["activity"] == log.registre.activity_id(FlowKind.REGISTRE)
    assert purge_entry["target"] == PURGE_TARGET
    assert purge_entry["actor"] == "test"
    assert purge_entry["source"]["purged_up_to"] == up_to
    assert purge_entry["source"]["entries"] == up_to
    assert purge_entry["source"]["subjects"] == persons
    assert (purge_entry["subjects"], purge_entry["persons"]) == ([], 0)
    assert purge_entry["occurred_at"] == NOW

    report = log.verify()
    assert report.ok, report.summary()
    assert report.purged_up_to == up_to
    assert f"purged up to {up_to}" in report.summary()
    assert (report.first_seq, report.last_seq) == (up_to + 1, total + 1)

    # What remains is still protected: the first entry left chains onto the signed checkpoint.
    first = up_to + 1
    changes: list[dict[str, Any]] = [
        {"persons": 7},
        {"subjects": [*log.subjects[first], "f" * 32]},
        {"prev_hash": "f" * 64},
    ]
    for values in changes:

        def modify(connection: Connection, values: dict[str, Any] = values) -> None:
            if "subjects" in values:
                set_subjects(connection, first, values["subjects"])
            else:
                connection.execute(update(ENTRY).where(ENTRY.c.seq == first).values(**values))

        modified = tampered(store.engine, log.registre.keys, modify)
        assert_breaks_at(modified, first)
    later = total - 2
    modified = tampered(
        store.engine,
        log.registre.keys,
        lambda c: c.execute(update(ENTRY).where(ENTRY.c.seq == later).values(target="x")),
    )
    assert_breaks_at(modified, later, "content")


def test_a_second_purge_with_nothing_expired_deletes_nothing(store: Store) -> None:
    log = write_log(store, 3)
    first = log.purge()
    with store.engine.connect() as connection:
        before = entries(connection)
    again = log.purge()  # the entry at the cutoff still holds its window back
    assert (again.up_to_seq, again.entries, again.subjects) == (first.up_to_seq, 0, 0)
    with store.engine.connect() as connection:
        assert entries(connection) == before  # no deletion, and no purge entry either
        assert len(purges(connection)) == 1
    assert log.verify().ok


def test_purges_follow_one_another(store: Store) -> None:
    """Six months later, the next windows go; the log verifies after each purge, and when
    everything has expired only the purge entries' own windows are left."""
    log = write_log(store, 3)
    first = log.purge()
    later = log.purge(NOW + dt.timedelta(days=183))
    assert later.up_to_seq > first.up_to_seq and later.entries > 0
    report = log.verify()
    assert report.ok, report.summary()
    assert report.purged_up_to == later.up_to_seq
    last = log.purge(NOW + dt.timedelta(days=3 * 365))
    with store.engine.connect() as connection:
        rows = entries(connection)
        assert [r["seq"] for r in rows] == [last.up_to_seq + 1]
        assert rows[0]["source"]["purged_up_to"] == last.up_to_seq
        assert len(purges(connection)) == 3
    report = log.verify()
    assert report.ok, report.summary()


@pytest.mark.parametrize("how", ["raise the recorded purge", "record another purge"])
def test_deleting_more_than_a_purge_did_is_detected(store: Store, how: str) -> None:
    """An attacker deletes the next window too, and makes the triggers' evidence match; no
    purge entry of the chain says so.

    Recording another purge needs no privilege (INSERT is allowed, so the append-only
    triggers then let the deletion through); raising the recorded one is refused by its own
    trigger, so that variant switches the triggers off, as a holder of the database could.
    The triggers stop mistakes; ``registre verify`` is what catches this.
    """
    log = write_log(store, 3)
    first = log.purge()
    further = first.up_to_seq + 3  # the end of the next window: a checkpoint ends there

    def delete_further(connection: Connection) -> None:
        if how == "raise the recorded purge":
            connection.execute(update(PURGE).values(up_to_seq=further))
        else:
            (recorded,) = purges(connection)
            connection.execute(
                insert(PURGE),
                [{**recorded, "up_to_seq": further, "entries": 3} | {"id": recorded["id"] + 1}],
            )
        connection.execute(delete(ENTRY).where(ENTRY.c.seq <= further))

    if how == "raise the recorded purge":
        with (
            store.engine.connect() as connection,
            connection.begin(),
            pytest.raises(DBAPIError, match="append-only"),
        ):
            connection.execute(update(PURGE).values(up_to_seq=further))
        with unguarded(store.engine) as connection:
            delete_further(connection)
            report = verify_log(connection, log.registre.keys)
    else:
        with store.engine.connect() as connection, connection.begin() as transaction:
            delete_further(connection)  # the triggers are on
            report = verify_log(connection, log.registre.keys)
            transaction.rollback()
    assert not report.ok
    (problem,) = report.breaks
    assert problem.kind == "purge" and problem.seq == further + 1
    assert f"up to {further}" in str(problem) and "no purge entry" in str(problem)


def test_deleting_expired_entries_without_a_purge_is_detected(store: Store) -> None:
    log = write_log(store, 3)
    report = tampered(
        store.engine,
        log.registre.keys,
        lambda c: c.execute(delete(ENTRY).where(ENTRY.c.seq <= 3)),
    )
    assert_breaks_at(report, 1, "missing")


def test_a_purge_after_tampering_leaves_the_tampering_visible(store: Store) -> None:
    """A purge is no way to launder the log: a modified entry it keeps still shows."""
    log = write_log(store, 3)
    victim = len(TIMES) - 1
    with unguarded(store.engine, commit=True) as connection:
        connection.execute(update(ENTRY).where(ENTRY.c.seq == victim).values(persons=99))
    log.purge()
    assert_breaks_at(log.verify(), victim, "content")


@pytest.mark.parametrize("source", [[1], "up to 3", 7, {"purged_up_to": "3"}, {}])
def test_an_entry_forged_into_a_purge_record_is_a_break_at_its_entry(
    store: Store, source: object
) -> None:
    """A purge entry's ``source`` is what the purge wrote (an object naming where it purged up
    to); anything else in its place is tampering like any other, told with its entry."""
    log = write_log(store, 3)
    report = tampered(
        store.engine,
        log.registre.keys,
        lambda c: c.execute(
            update(ENTRY)
            .where(ENTRY.c.seq == 2)
            .values(operation="purge", target=PURGE_TARGET, source=source)
        ),
    )
    assert_breaks_at(report, 2, "content")


# -- months_before ------------------------------------------------------------------------------


def _at(year: int, month: int, day: int) -> dt.datetime:
    return dt.datetime(year, month, day, 23, 59, 59, 999_999, tzinfo=UTC)


@pytest.mark.parametrize(
    ("instant", "months", "expected"),
    [
        (_at(2027, 3, 31), 1, _at(2027, 2, 28)),
        (_at(2028, 3, 31), 1, _at(2028, 2, 29)),
        (_at(2027, 5, 31), 1, _at(2027, 4, 30)),
        (_at(2027, 1, 15), 1, _at(2026, 12, 15)),
        (_at(2027, 1, 31), 13, _at(2025, 12, 31)),
        (_at(2028, 2, 29), 12, _at(2027, 2, 28)),
        (_at(2028, 2, 29), 48, _at(2024, 2, 29)),
        (_at(2027, 12, 31), 12, _at(2026, 12, 31)),
        (_at(2027, 12, 31), 11, _at(2027, 1, 31)),
        (_at(2027, 6, 30), 0, _at(2027, 6, 30)),
        (_at(2027, 3, 1), 120, _at(2017, 3, 1)),
    ],
)
def test_months_before(instant: dt.datetime, months: int, expected: dt.datetime) -> None:
    assert months_before(instant, months) == expected


@given(
    instant=st.datetimes(
        min_value=dt.datetime(1900, 1, 1), max_value=dt.datetime(2200, 12, 31)
    ).map(lambda d: d.replace(tzinfo=UTC)),
    months=st.integers(0, 240),
)
def test_months_before_is_that_many_calendar_months_earlier(
    instant: dt.datetime, months: int
) -> None:
    earlier = months_before(instant, months)
    assert (instant.year * 12 + instant.month) - (earlier.year * 12 + earlier.month) == months
    assert earlier.time() == instant.time() and earlier.tzinfo is instant.tzinfo
    assert earlier.day == instant.day or (earlier.day < instant.day and _last_day(earlier))
    assert earlier <= instant


def _last_day(instant: dt.datetime) -> bool:
    return (instant + dt.timedelta(days=1)).month != instant.month
