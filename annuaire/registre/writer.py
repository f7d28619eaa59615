"""The flow entries of API requests, committed in batches by one thread per process.

Why
    Entries are chained: the writer of an entry holds the chain head's row lock from the moment
    it reserves its sequence number until it commits. Taken by every request thread, that lock
    would be held across several round trips *and* the waits of its holder for Python's GIL,
    which the other request threads hold while they build pages: the chain, not the database
    or the CPU, would set the API's throughput. One writer thread per process instead takes
    what the request threads have queued and writes it as one batch. On PostgreSQL the thread
    remembers the head it wrote last and writes the next batch after it in ONE autocommitted
    statement that checks the head has not moved (one round trip, one commit); when another
    process wrote meanwhile, nothing is written, the thread reads the new head and tries again,
    and only after :data:`OPTIMISTIC_TRIES` such tries takes the chain's lock
    (:meth:`FlowLog.append_many`). On SQLite every batch takes the lock.

Contract
    :meth:`FlowWriter.write` returns only once the entry is committed, and raises if it could
    not be (the request then fails and serves nothing); a request never answers before its
    entry is durable. An entry may be committed while its request fails afterwards (the client
    went away, a checkpoint failed): the log may say more than was served, never less.
    :meth:`FlowWriter.close` returns once what was queued before it is written; a write racing
    it starts a new thread (each thread has its own connections and stop signal).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import queue
import threading
from dataclasses import dataclass, field
from typing import Any

import psycopg
from sqlalchemy import Connection, Engine

from annuaire.store.engine import write_transaction

from .flowlog import ChainHead, FlowLog, FlowRecord

__all__ = ["EntryNotWritten", "FlowWriter"]

#: How long a request waits for its entry before failing (the database is unreachable, say).
WRITE_TIMEOUT_S = 30.0
MAX_BATCH = 500
#: One-statement writes tried (re-reading the head between them) before taking the chain's lock:
#: with several API processes, the head has usually moved since a process last wrote, but
#: rarely again within the round trip of a retry.
OPTIMISTIC_TRIES = 3
#: How often an idle thread looks whether it was asked to stop.
_IDLE_S = 0.2


class EntryNotWritten(TimeoutError):
    """A request's entry was not committed within :data:`WRITE_TIMEOUT_S`: the database is
    busy (on SQLite, an import holds the write lock for its whole run) or slow to answer. The
    request fails and serves nothing; the same request later succeeds. The entry may still be
    committed afterwards: the log may say more than was served, never less."""


class _Pending:
    """A record waiting for its entry; the request thread sleeps on ``_done`` until the writer
    releases it (a bare lock: the cheapest wake-up there is, paid by every logged request)."""

    __slots__ = ("_done", "error", "log", "record", "seq")

    def __init__(self, log: FlowLog, record: FlowRecord) -> None:
        self.log = log
        self.record = record
        self.seq: int | None = None
        self.error: BaseException | None = None
        self._done = threading.Lock()
        self._done.acquire()

    def settle(self, seq: int | None = None, error: BaseException | None = None) -> None:
        self.seq, self.error = seq, error
        self._done.release()

    def wait(self, timeout: float) -> int:
        if not self._done.acquire(timeout=timeout):
            raise EntryNotWritten(f"flow log: no entry written after {timeout:.0f} s")
        if self.error is not None:
            raise self.error
        assert self.seq is not None
        return self.seq


@dataclass
class _Session:
    """What one writer thread holds: its stop signal and connections, its view of the head."""

    stop: threading.Event = field(default_factory=threading.Event)
    #: SQLAlchemy's connection on SQLite, the driver's (autocommit) on PostgreSQL.
    connection: Connection | None = None
    pg: psycopg.Connection[Any] | None = None
    #: PostgreSQL: the chain head as this thread last wrote it (None: read it again).
    head: ChainHead | None = None

    def discard(self) -> None:
        """Drop the connections after a failure: the next batch starts on fresh ones."""
        self.head = None
        connection, self.connection = self.connection, None
        pg, self.pg = self.pg, None
        # A broken connection may fail to close; it is gone anyway.
        for closing in (connection, pg):
            if closing is not None:
                with contextlib.suppress(Exception):
                    closing.close()


class FlowWriter:
    """Commits the entries request threads hand it, in arrival order, in batches."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._queue: queue.SimpleQueue[_Pending] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._session: _Session | None = None

    def write(self, log: FlowLog, record: FlowRecord) -> int:
        """Commit ``record`` as an entry of ``log``; its sequence number once durable."""
        pending = _Pending(log, record)
        self._queue.put(pending)
        if self._thread is None:
            self._start()
        return pending.wait(WRITE_TIMEOUT_S)

    def close(self) -> None:
        """Write what is queued, then stop the thread."""
        with self._lock:
            thread, session = self._thread, self._session
            self._thread = self._session = None
        if thread is not None and session is not None:
            session.stop.set()
            thread.join()

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._session = _Session()
                self._thread = threading.Thread(
                    target=self._run, args=(self._session,), name="flow-log writer", daemon=True
                )
                self._thread.start()

    def _run(self, session: _Session) -> None:
        try:
            while True:
                try:
                    first = self._queue.get(timeout=_IDLE_S)
                except queue.Empty:
                    if session.stop.is_set():
                        return
                    continue
                batch = [first]
                while len(batch) < MAX_BATCH:
                    try:
                        batch.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                self._commit(session, batch)
        finally:
            session.discard()

    def _commit(self, session: _Session, batch: list[_Pending]) -> None:
        # Normally one log per process; a test may swap it between requests.
        by_log: dict[int, list[_Pending]] = {}
        for pending in batch:
            by_log.setdefault(id(pending.log), []).append(pending)
        for group in by_log.values():
            log, records = group[0].log, [p.record for p in group]
            try:
                if self.engine.dialect.name == "postgresql":
                    seqs = self._write_pg(session, log, records)
                else:
                    connection = self._connected(session)
                    with connection.begin():
                        seqs = log.append_many(connection, records)
            except BaseException as exc:  # every waiting request of the batch fails with it
                session.discard()
                for pending in group:
                    pending.settle(error=exc)
                continue
            for pending, seq in zip(group, seqs, strict=True):
                pending.settle(seq)

    def _connected(self, session: _Session) -> Connection:
        if session.connection is None:
            connection = self.engine.connect()
            if self.engine.dialect.name == "sqlite":
                connection.execution_options(sqlite_immediate=True)
            session.connection = connection
        return session.connection

    def _write_pg(self, session: _Session, log: FlowLog, records: list[FlowRecord]) -> list[int]:
        if session.pg is None:
            url = self.engine.url.set(drivername="postgresql")
            session.pg = psycopg.connect(url.render_as_string(hide_password=False), autocommit=True)
        for _attempt in range(OPTIMISTIC_TRIES):
            if session.head is None:
                with session.pg.cursor() as cursor:
                    cursor.execute(_PG_HEAD)
                    session.head = ChainHead(*cursor.fetchone())  # type: ignore[misc]
            head = log.append_after(session.pg, records, session.head)
            if head is not None:
                break
            session.head = None  # another process wrote: read its head, chain onto it
        else:  # the head keeps moving: take the chain's lock
            with write_transaction(self.engine) as connection:
                return log.append_many(connection, records)
        session.head = head
        if log.checkpoint_due(head, dt.datetime.now(dt.UTC)):
            session.head = None
            with write_transaction(self.engine) as connection:
                log.checkpoint(connection)
        return list(range(head.seq - len(records) + 1, head.seq + 1))


_PG_HEAD = (
    "SELECT last_seq, last_hash, last_checkpoint_seq, last_checkpoint_at "
    "FROM flow_chain WHERE id = 1"
)
