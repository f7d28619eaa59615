"""The flow writer: request threads hand it records, its one thread commits them in batches.

On PostgreSQL the writer remembers the chain head it wrote last and writes the next batch after
it in one autocommitted statement guarded by that head (``FlowLog.append_after``); when another
writer moved the head it takes the chain's lock instead (``FlowLog.append_many``). On SQLite
every batch takes the lock. Either way: every write gets its own sequence number once durable,
the chain verifies, each entry says what its record said, checkpoints come when due, a failed
batch fails its requests without writing and the writer carries on, and ``close`` writes what
is queued before it stops.

Some tests look at the writer's insides (``_thread``, ``_queue``, ``_session``,
``_Pending``): what they check (a queued entry, a lost connection) cannot be set up otherwise.
"""

from __future__ import annotations

import datetime as dt
import random
import threading
import uuid
from collections import Counter
from collections.abc import Sequence
from typing import Any

import orjson
import psycopg
import pytest
import sqlalchemy.exc
from sqlalchemy import Connection

from annuaire.errors import ConfigurationError
from annuaire.registre.flowlog import ChainHead, FlowLog, FlowRecord
from annuaire.registre.purge import purge_log
from annuaire.registre.runtime import Registre, open_registre
from annuaire.registre.verify import Verification, verify_log
from annuaire.registre.vocabulary import DataCategory, FlowKind, Operation, RecipientKind
from annuaire.registre.writer import OPTIMISTIC_TRIES, FlowWriter, _Pending
from annuaire.store.changes import PackedIds
from annuaire.store.engine import write_transaction
from tests.conftest import Store

from .flowlog_support import entries

WRITER_THREAD = "flow-log writer"


def writer_threads() -> set[threading.Thread]:
    """The writer threads alive in this process (other tests' apps may have left some)."""
    return {t for t in threading.enumerate() if t.name == WRITER_THREAD}


#: Checkpoints by count only in these tests, never because an hour went by.
NEVER = dt.timedelta(days=3650)
#: What a lost database connection may raise: the driver's error, or SQLAlchemy's.
DATABASE_ERRORS = (psycopg.Error, sqlalchemy.exc.SQLAlchemyError)


@pytest.fixture
def registre(store: Store) -> Registre:
    return open_registre(store.settings, store.engine)


class CountingLog(FlowLog):
    """A flow log that counts which path the writer takes, and may hold its first batch."""

    def __init__(
        self,
        base: FlowLog,
        *,
        checkpoint_every: int | None = None,
        checkpoint_interval: dt.timedelta = NEVER,
    ) -> None:
        super().__init__(
            base.keys,
            base.versions,
            checkpoint_every=checkpoint_every or base.checkpoint_every,
            checkpoint_interval=checkpoint_interval,
        )
        self.calls: Counter[str] = Counter()
        self._lock = threading.Lock()
        #: When set, the first batch waits for it (after setting ``entered``).
        self.gate: threading.Event | None = None
        self.entered = threading.Event()

    def _count(self, what: str) -> None:
        with self._lock:
            self.calls[what] += 1

    def _hold(self) -> None:
        gate, self.gate = self.gate, None
        if gate is not None:
            self.entered.set()
            assert gate.wait(timeout=10), "the test never released the writer"

    def append_after(
        self,
        connection: Any,
        records: Sequence[FlowRecord],
        expected: ChainHead,
        *,
        now: dt.datetime | None = None,
    ) -> ChainHead | None:
        self._hold()
        head = super().append_after(connection, records, expected, now=now)
        self._count("fast" if head is not None else "head moved")
        return head

    def append_many(
        self,
        connection: Connection,
        records: Sequence[FlowRecord],
        *,
        now: dt.datetime | None = None,
    ) -> list[int]:
        self._hold()
        self._count("locked")
        return super().append_many(connection, records, now=now)


def operator_record(
    registre: Registre,
    target: str,
    subjects: Sequence[uuid.UUID],
    operation: Operation = Operation.READ,
) -> FlowRecord:
    """What the operator reading (or exporting) ``subjects`` through ``target`` logs."""
    return FlowRecord(
        flow=FlowKind.API_OPERATOR,
        operation=operation,
        activity=registre.activity_id(FlowKind.API_OPERATOR),
        actor_kind=RecipientKind.OPERATOR,
        target=target,
        subjects=subjects,
    )


def make_record(rng: random.Random, activities: Sequence[str], tag: str) -> FlowRecord:
    """A record told apart by ``tag`` (its target and request id), with 0 to 5 subjects (one
    of them sometimes twice: a person counts once)."""
    subjects = [uuid.UUID(int=rng.getrandbits(128), version=4) for _ in range(rng.randint(0, 5))]
    if subjects and rng.random() < 0.2:
        subjects.append(subjects[0])
    return FlowRecord(
        flow=rng.choice(list(FlowKind)),
        operation=rng.choice(list(Operation)),
        activity=rng.choice(list(activities)),
        actor_kind=rng.choice(list(RecipientKind)),
        target=f"GET /v1/persons/{tag}",
        categories=rng.sample(list(DataCategory), rng.randint(0, 2)),
        structures=["0750001A"] if rng.random() < 0.5 else [],
        subjects=subjects,
        request_id=f"req-{tag}",
    )


def verify(store: Store, registre: Registre) -> Verification:
    with store.engine.connect() as connection:
        return verify_log(connection, registre.keys)


def assert_log_holds(store: Store, registre: Registre, written: dict[int, FlowRecord]) -> None:
    """The log is exactly ``written`` (sequence -> record), entry by entry, and verifies."""
    n = len(written)
    assert sorted(written) == list(range(1, n + 1))
    report = verify(store, registre)
    assert report.ok, report.summary()
    assert (report.entries, report.first_seq, report.last_seq) == (n, 1 if n else None, n or None)
    with store.engine.connect() as connection:
        rows = entries(connection)
    assert [row["seq"] for row in rows] == list(range(1, n + 1))
    for row in rows:
        record = written[row["seq"]]
        pseudonyms = sorted({registre.keys.pseudonym(s) for s in record.subjects})
        seen = (
            row["flow"],
            row["target"],
            row["request_id"],
            row["event_id"],
            row["persons"],
            list(row["subjects"]),
        )
        expected = (
            record.flow.value,
            record.target,
            record.request_id,
            record.event_id,
            len(pseudonyms),
            pseudonyms,
        )
        assert seen == expected, f"entry {row['seq']}"


def write_one_by_one(store: Store, log: FlowLog, count: int, *, seed: int) -> dict[int, FlowRecord]:
    """Write ``count`` random records through a writer, one at a time: sequence -> record
    (each write gets the next sequence number)."""
    rng = random.Random(seed)
    activities = sorted(log.versions)
    writer = FlowWriter(store.engine)
    written: dict[int, FlowRecord] = {}
    try:
        for n in range(count):
            record = make_record(rng, activities, f"s{seed}-{n}")
            seq = writer.write(log, record)
            assert seq == n + 1
            written[seq] = record
    finally:
        writer.close()
    return written


def direct_append(store: Store, log: FlowLog, record: FlowRecord) -> int:
    """What another process writes: one entry in its own transaction, under the chain's lock."""
    with write_transaction(store.engine) as connection:
        return log.append(connection, record)


# -- 1. many request threads, and another process -----------------------------------------------

THREADS, PER_THREAD = 8, 25
#: After how many writes through the writer "another process" appends an entry.
DIRECT_AT = (15, 50, 90, 130)
#: The last writes of each thread wait for the last direct append: some batches follow it.
HELD_BACK = 3


def test_concurrent_writes_get_distinct_sequences_and_a_chain_that_verifies(
    store: Store, registre: Registre
) -> None:
    rng = random.Random(20260301)
    activities = sorted(registre.log.versions)
    log = CountingLog(registre.log)
    batches = [
        [make_record(rng, activities, f"t{t}-{i}") for i in range(PER_THREAD)]
        for t in range(THREADS)
    ]
    writer = FlowWriter(store.engine)
    written: dict[int, FlowRecord] = {}
    returned: list[int] = []
    failures: list[BaseException] = []
    progress = threading.Condition()
    start = threading.Barrier(THREADS + 1)
    last_direct_done = threading.Event()

    def request_thread(records: list[FlowRecord]) -> None:
        try:
            start.wait(timeout=10)
            for i, record in enumerate(records):
                if i == len(records) - HELD_BACK:
                    assert last_direct_done.wait(timeout=20)
                seq = writer.write(log, record)
                with progress:
                    returned.append(seq)
                    written[seq] = record
                    progress.notify_all()
        except BaseException as exc:
            failures.append(exc)
            with progress:
                progress.notify_all()

    threads = [threading.Thread(target=request_thread, args=(b,)) for b in batches]
    try:
        for thread in threads:
            thread.start()
        start.wait(timeout=10)
        for n, threshold in enumerate(DIRECT_AT):

            def reached(threshold: int = threshold) -> bool:
                return len(returned) >= threshold or bool(failures)

            with progress:
                assert progress.wait_for(reached, timeout=20)
            assert not failures, failures
            record = make_record(rng, activities, f"direct-{n}")
            seq = direct_append(store, registre.log, record)
            with progress:
                assert seq not in written
                written[seq] = record
        last_direct_done.set()
        for thread in threads:
            thread.join(timeout=30)
            assert not thread.is_alive()
    finally:
        last_direct_done.set()
        writer.close()
    assert not failures, failures
    total = THREADS * PER_THREAD + len(DIRECT_AT)
    assert len(returned) == len(set(returned)) == THREADS * PER_THREAD
    assert set(written) == set(range(1, total + 1))
    assert_log_holds(store, registre, written)
    if store.backend == "postgres":
        # The first batch goes fast; the one after another process wrote finds the head moved,
        # reads it and goes fast again (the lock only if the head kept moving).
        assert log.calls["fast"] >= 1, log.calls
        assert log.calls["head moved"] >= 1, log.calls
        assert log.calls["locked"] * OPTIMISTIC_TRIES <= log.calls["head moved"], log.calls
    else:
        assert log.calls["fast"] == log.calls["head moved"] == 0, log.calls
        assert log.calls["locked"] >= 1, log.calls
    batches_written = log.calls["fast"] + log.calls["locked"]
    assert batches_written <= THREADS * PER_THREAD


class MovingHeadLog(CountingLog):
    """Another process always wrote just before: every one-statement write finds the head moved
    (nothing is written)."""

    def append_after(
        self,
        connection: Any,
        records: Sequence[FlowRecord],
        expected: ChainHead,
        *,
        now: dt.datetime | None = None,
    ) -> ChainHead | None:
        self._count("head moved")
        return None


def test_a_head_that_keeps_moving_sends_the_batch_through_the_chain_lock(
    store: Store, registre: Registre
) -> None:
    if store.backend != "postgres":
        pytest.skip("the one-statement path is PostgreSQL's")
    log = MovingHeadLog(registre.log)
    written = write_one_by_one(store, log, 3, seed=11)
    assert log.calls == {"head moved": 3 * OPTIMISTIC_TRIES, "locked": 3}, log.calls
    assert_log_holds(store, registre, written)


# -- 2. checkpoints -----------------------------------------------------------------------------


def test_checkpoints_seal_the_entries_the_writer_writes(store: Store, registre: Registre) -> None:
    log = CountingLog(registre.log, checkpoint_every=5)
    written = write_one_by_one(store, log, 23, seed=5)
    assert_log_holds(store, registre, written)
    report = verify(store, registre)
    # One write at a time: a checkpoint every 5 entries exactly.
    assert report.checkpoints == 4 and report.sealed_up_to == 20, report.summary()
    assert report.unsealed == 3


def test_a_checkpoint_comes_when_its_interval_has_passed(store: Store, registre: Registre) -> None:
    log = CountingLog(registre.log, checkpoint_every=1000, checkpoint_interval=dt.timedelta(0))
    written = write_one_by_one(store, log, 3, seed=6)
    assert_log_holds(store, registre, written)
    report = verify(store, registre)
    assert report.checkpoints == 3 and report.sealed_up_to == 3, report.summary()


# -- 3. failures --------------------------------------------------------------------------------


def test_a_record_of_an_unknown_activity_fails_alone_and_writes_nothing(
    store: Store, registre: Registre
) -> None:
    rng = random.Random(7)
    activities = sorted(registre.log.versions)
    writer = FlowWriter(store.engine)
    written: dict[int, FlowRecord] = {}
    try:
        first = make_record(rng, activities, "before")
        written[writer.write(registre.log, first)] = first
        bad = make_record(rng, ["nulle-part"], "bad")
        with pytest.raises(ConfigurationError, match="nulle-part"):
            writer.write(registre.log, bad)
        assert_log_holds(store, registre, written)
        for n in range(3):
            record = make_record(rng, activities, f"after{n}")
            assert writer.write(registre.log, record) == n + 2
            written[n + 2] = record
    finally:
        writer.close()
    assert_log_holds(store, registre, written)


def test_a_lost_connection_fails_at_most_the_next_write(store: Store, registre: Registre) -> None:
    """The writer's connection is closed behind its back (the server restarted, say): the next
    write fails with a database error (or succeeds on a new connection), nothing half-written,
    and the writes after it succeed on a fresh connection."""
    rng = random.Random(8)
    activities = sorted(registre.log.versions)
    writer = FlowWriter(store.engine)
    written: dict[int, FlowRecord] = {}
    try:
        first = make_record(rng, activities, "first")
        written[writer.write(registre.log, first)] = first
        if store.backend == "postgres":
            assert writer._session is not None and writer._session.pg is not None
            writer._session.pg.close()
        else:
            assert writer._session is not None and writer._session.connection is not None
            writer._session.connection.close()
        record = make_record(rng, activities, "next")
        try:
            seq = writer.write(registre.log, record)
        except DATABASE_ERRORS:
            pass  # this request fails; the writer dropped its connection
        else:
            assert seq == 2
            written[seq] = record
        for n in range(3):
            record = make_record(rng, activities, f"then{n}")
            seq = writer.write(registre.log, record)
            assert seq == len(written) + 1
            written[seq] = record
    finally:
        writer.close()
    assert_log_holds(store, registre, written)


# -- 4. close -----------------------------------------------------------------------------------


def test_close_writes_what_is_queued_then_stops_and_a_later_write_starts_again(
    store: Store, registre: Registre
) -> None:
    rng = random.Random(9)
    activities = sorted(registre.log.versions)
    log = CountingLog(registre.log)
    log.gate = gate = threading.Event()
    writer = FlowWriter(store.engine)
    written: dict[int, FlowRecord] = {}
    results: dict[str, Any] = {}
    first = make_record(rng, activities, "held")

    def held_write() -> None:
        results["held"] = writer.write(log, first)

    holder = threading.Thread(target=held_write)
    closer = threading.Thread(target=writer.close)
    before = writer_threads()
    try:
        writer.close()  # not started yet: nothing to do
        assert writer._thread is None
        holder.start()
        assert log.entered.wait(timeout=10), "the writer never took the first batch"
        # Queued behind the batch being written, before close() is called.
        queued = [_Pending(log, make_record(rng, activities, f"q{n}")) for n in range(5)]
        for pending in queued:
            writer._queue.put(pending)
        closer.start()
        while writer._thread is not None and closer.is_alive():  # close() took the thread
            threading.Event().wait(0.01)
        gate.set()
        closer.join(timeout=10)
        holder.join(timeout=10)
        assert not closer.is_alive() and not holder.is_alive()
        assert writer._thread is None
        assert writer_threads() <= before
        assert results["held"] == 1
        written[1] = first
        for seq, pending in enumerate(queued, start=2):
            # Not waited for: close() returned, so what was queued must be written already.
            assert pending.wait(timeout=0) == seq, "close() returned before writing the queue"
            written[seq] = pending.record
        assert_log_holds(store, registre, written)
        # A write after close() starts the thread again.
        again = make_record(rng, activities, "again")
        assert writer.write(log, again) == 7
        written[7] = again
        assert writer._thread is not None and writer._thread.is_alive()
    finally:
        gate.set()
        writer.close()
    assert writer._thread is None
    assert_log_holds(store, registre, written)


def test_writes_racing_close_are_all_written_and_no_thread_is_left(
    store: Store, registre: Registre
) -> None:
    """close() while requests keep writing: every write gets its entry (a write after the
    stop starts a new thread), and a final close() leaves no writer thread running."""
    rng = random.Random(10)
    activities = sorted(registre.log.versions)
    writer = FlowWriter(store.engine)
    records = [make_record(rng, activities, f"race{n}") for n in range(40)]
    seqs: list[int] = []

    def requests() -> None:
        seqs.extend(writer.write(registre.log, record) for record in records)

    racer = threading.Thread(target=requests)
    before = writer_threads()
    try:
        writer.write(registre.log, make_record(rng, activities, "first"))
        racer.start()
        for _ in range(5):
            writer.close()
        racer.join(timeout=30)
        assert not racer.is_alive()
    finally:
        writer.close()
    assert sorted(seqs) == list(range(2, 42))
    assert writer._thread is None
    assert writer_threads() <= before
    with store.engine.connect() as connection:
        assert verify_log(connection, registre.keys).ok


# -- 5. lists of persons the writer believes stored -----------------------------------------------


def test_a_list_gone_with_a_purge_is_sent_again_and_nothing_is_written_without_it(
    store: Store, registre: Registre
) -> None:
    """The one-statement path sends only the lists of persons the process has not stored yet.
    A purge may remove one of those (its last entry expired): the next write naming it must
    neither write nor move the head, and the one after sends the list again."""
    if store.backend != "postgres":
        pytest.skip("the one-statement path is PostgreSQL's")
    log = FlowLog(registre.keys, registre.log.versions, checkpoint_interval=NEVER)
    persons = [uuid.uuid4(), uuid.uuid4()]
    old = dt.datetime(2025, 1, 6, 9, 0, tzinfo=dt.UTC)

    def record(tag: str) -> FlowRecord:
        return operator_record(registre, f"GET /v1/persons/{tag}", persons)

    url = store.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(url, autocommit=True) as connection:

        def head() -> ChainHead:
            row = connection.execute(
                "SELECT last_seq, last_hash, last_checkpoint_seq, last_checkpoint_at "
                "FROM flow_chain WHERE id = 1"
            ).fetchone()
            assert row is not None
            return ChainHead(*row)

        assert log.append_after(connection, [record("old")], head(), now=old) is not None
        with write_transaction(store.engine) as sa_connection:
            log.checkpoint(sa_connection, now=old)
        with write_transaction(store.engine) as sa_connection:
            purged = purge_log(
                sa_connection,
                log,
                activity=registre.activity_id(FlowKind.REGISTRE),
                retention_months=12,
                operator="test",
                now=old + dt.timedelta(days=400),
            )
        assert purged.entries == 1
        lists = "SELECT count(*) FROM flow_subject_set"
        assert connection.execute(lists).fetchone() == (0,)

        before = head()
        assert log.append_after(connection, [record("again")], before) is None
        assert head() == before  # nothing written, the head did not move
        after = log.append_after(connection, [record("again")], before)
        assert after is not None and after.seq == before.seq + 1
        assert connection.execute(lists).fetchone() == (1,)
    report = verify(store, registre)
    assert report.ok, report.summary()
    with store.engine.connect() as sa_connection:
        last = entries(sa_connection)[-1]
    assert last["subjects"] == sorted(registre.keys.pseudonyms(persons))


# -- 6. memory -----------------------------------------------------------------------------------


def test_the_lists_of_persons_remembered_stay_within_their_budget(
    store: Store, registre: Registre
) -> None:
    """An export names its persons in parts of 1,000 that never come back: the pseudonyms
    remembered per list of hub ids must stay bounded (the export's memory is flat), and what is
    written after the cache starts again must be the same as before."""
    if store.backend != "sqlite":
        pytest.skip("builds entries without the database: one backend is enough")
    from annuaire.registre.flowlog import KNOWN_IDS_IN_LISTS

    log = FlowLog(registre.keys, registre.log.versions, checkpoint_interval=NEVER)
    parts = [[uuid.uuid4() for _ in range(1000)] for _ in range(KNOWN_IDS_IN_LISTS // 1000 + 10)]

    def subjects(part: list[uuid.UUID]) -> list[str]:
        record = operator_record(registre, "GET /v1/persons", part, Operation.EXPORT)
        (entry,) = log.entries([record], 0, "0" * 64)
        return list(entry["subjects"])

    first = subjects(parts[0])
    assert first == sorted(registre.keys.pseudonyms(parts[0]))
    for part in parts[1:]:
        subjects(part)
        assert sum(len(ids) for ids in log._persons_of) <= KNOWN_IDS_IN_LISTS
    assert subjects(parts[0]) == first  # computed again once forgotten: the same list


def test_a_list_larger_than_the_budget_is_named_in_full_and_not_remembered(
    store: Store, registre: Registre
) -> None:
    """An import names every person it wrote (hundreds of thousands): its list is computed like
    any other, and neither evicts the remembered lists nor stays in memory after the entry."""
    if store.backend != "sqlite":
        pytest.skip("builds entries without the database: one backend is enough")
    from annuaire.registre.flowlog import (
        KNOWN_IDS_IN_LISTS,
        entry_message,
        entry_message_parts,
        subject_set_digest,
    )

    log = FlowLog(registre.keys, registre.log.versions, checkpoint_interval=NEVER)
    page = [uuid.uuid4() for _ in range(100)]
    everyone = [uuid.uuid4() for _ in range(KNOWN_IDS_IN_LISTS + 1)]
    entries = log.entries(
        [
            operator_record(registre, "GET /v1/persons", page, Operation.READ),
            operator_record(registre, "import", everyone, Operation.COLLECT),
        ],
        0,
        "0" * 64,
    )
    expected = sorted(set(registre.keys.pseudonyms(everyone)))
    # Kept as the JSON of the list, spelt as the list's (what the entry's HMAC covers), and
    # hashed in pieces around it: the same HMAC as over the message of the list written out.
    assert entries[1]["subjects"].json == orjson.dumps(expected)
    written_out = {**entries[1], "subjects": expected}
    assert len(entry_message_parts(entries[1])) == 3
    assert b"".join(entry_message_parts(entries[1])) == entry_message(written_out)
    assert entries[1]["entry_hash"] == registre.keys.chain_hash(
        entries[1]["key_id"], entry_message(written_out)
    )
    # An import's packed ids give the same pseudonyms, in the ids' order, without caching.
    packed = PackedIds(p.bytes for p in everyone)
    assert registre.keys.pseudonyms(packed, remember=False) == registre.keys.pseudonyms(
        sorted(everyone, key=lambda p: p.bytes), remember=False
    )
    assert sorted(registre.keys.pseudonyms(packed, remember=False)) == expected
    assert entries[1]["subject_set"] == subject_set_digest(expected)
    assert entries[1]["persons"] == len(everyone)
    assert list(log._persons_of) == [tuple(p.int for p in page)]


def test_an_import_sized_list_is_stored_and_verifies_on_both_backends(
    store: Store, registre: Registre
) -> None:
    """An import names more persons than any list remembered: stored in full, the chain
    verifies, and each person finds the entry, with repeats counted once."""
    from sqlalchemy import select

    from annuaire.registre.flowlog import ENTRY, KNOWN_IDS_IN_LISTS
    from annuaire.registre.person import person_report

    everyone = [uuid.uuid4() for _ in range(KNOWN_IDS_IN_LISTS + 1)]
    record = operator_record(registre, "import", [*everyone, everyone[0]], Operation.COLLECT)
    with store.engine.begin() as connection:
        (seq,) = registre.log.append_many(connection, [record])
    assert verify(store, registre).ok
    with store.engine.connect() as connection:
        found = person_report(
            connection, registre.keys, everyone[-1], retention_months=12, client_names={}
        )
        stored = connection.execute(select(ENTRY.c.persons).where(ENTRY.c.seq == seq)).scalar()
    assert [flow.seq for flow in found.flows] == [seq]
    assert stored == len(everyone)
