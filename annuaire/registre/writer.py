"""The flow entries of API requests, committed in batches by one thread per process.

Why
    Entries are chained: the writer of an entry holds the chain head's row lock from the moment
    it reserves its sequence number until it commits. Taken by every request thread, that lock
    would be held across several round trips *and* the waits of its holder for Python's GIL,
    which the other request threads hold while they build pages: the chain, not the database
    or the CPU, would set the API's throughput. One writer thread per process instead takes
    what the request threads have queued, writes it with :meth:`FlowLog.append_many` in one
    transaction (three round trips, whatever the batch size) and commits.

Contract
    :meth:`FlowWriter.write` returns only once the entry is committed, and raises if it could
    not be (the request then fails and serves nothing); a request never answers before its
    entry is durable. An entry may be committed while its request fails afterwards (the client
    went away, say): the log may say more than was served, never less.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import queue
import threading
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import psycopg
from sqlalchemy import Connection, Engine

from annuaire.store.engine import write_transaction

from .flowlog import ChainHead, FlowLog, FlowRecord

__all__ = ["FlowWriter"]

#: How long a request waits for its entry before failing (the database is unreachable, say).
WRITE_TIMEOUT_S = 30.0
MAX_BATCH = 500


@dataclass(frozen=True)
class _Pending:
    log: FlowLog
    record: FlowRecord
    done: Future[int]


class FlowWriter:
    """Commits the entries request threads hand it, in arrival order, in batches."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._queue: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        #: The writer thread's own connection, kept between batches (reopened after a failure):
        #: SQLAlchemy's on SQLite, the driver's (autocommit) on PostgreSQL.
        self._connection: Connection | None = None
        self._pg: psycopg.Connection[Any] | None = None
        #: PostgreSQL: the chain head as this thread last wrote it (None: read it again).
        self._head: ChainHead | None = None

    def write(self, log: FlowLog, record: FlowRecord) -> int:
        """Commit ``record`` as an entry of ``log``; its sequence number once durable."""
        pending = _Pending(log, record, Future())
        self._queue.put(pending)
        self._start()
        return pending.done.result(timeout=WRITE_TIMEOUT_S)

    def close(self) -> None:
        """Write what is queued, then stop the thread."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join()

    def _start(self) -> None:
        if self._thread is not None:
            return
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="flow-log writer", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                self._discard()
                return
            batch = [first]
            while len(batch) < MAX_BATCH:
                try:
                    pending = self._queue.get_nowait()
                except queue.Empty:
                    break
                if pending is None:
                    self._queue.put(None)  # stop after this batch
                    break
                batch.append(pending)
            self._commit(batch)

    def _commit(self, batch: list[_Pending]) -> None:
        # Normally one log per process; a test may swap it between requests.
        by_log: dict[int, list[_Pending]] = {}
        for pending in batch:
            by_log.setdefault(id(pending.log), []).append(pending)
        for group in by_log.values():
            log, records = group[0].log, [p.record for p in group]
            try:
                if self.engine.dialect.name == "postgresql":
                    seqs = self._write_pg(log, records)
                else:
                    connection = self._connected()
                    with connection.begin():
                        seqs = log.append_many(connection, records)
            except BaseException as exc:  # every waiting request fails with the cause
                self._discard()
                for pending in group:
                    pending.done.set_exception(exc)
                continue
            for pending, seq in zip(group, seqs, strict=True):
                pending.done.set_result(seq)

    def _connected(self) -> Connection:
        if self._connection is None:
            connection = self.engine.connect()
            if self.engine.dialect.name == "sqlite":
                connection.execution_options(sqlite_immediate=True)
            self._connection = connection
        return self._connection

    def _write_pg(self, log: FlowLog, records: list[FlowRecord]) -> list[int]:
        if self._pg is None:
            url = self.engine.url.set(drivername="postgresql")
            self._pg = psycopg.connect(url.render_as_string(hide_password=False), autocommit=True)
        with self._pg.cursor() as cursor:
            if self._head is None:
                cursor.execute(_PG_HEAD)
                self._head = ChainHead(*cursor.fetchone())  # type: ignore[misc]
            head = log.append_after(cursor, records, self._head)
        if head is None:  # another process wrote: take the chain's lock
            self._head = None
            with write_transaction(self.engine) as connection:
                seqs = log.append_many(connection, records)
            return seqs
        self._head = head
        if log.checkpoint_due(head, dt.datetime.now(dt.UTC)):
            self._head = None
            with write_transaction(self.engine) as connection:
                log.checkpoint(connection)
        return list(range(head.seq - len(records) + 1, head.seq + 1))

    def _discard(self) -> None:
        """Drop the connections after a failure: the next batch starts on fresh ones."""
        self._head = None
        connection, self._connection = self._connection, None
        pg, self._pg = self._pg, None
        # A broken connection may fail to close; it is gone anyway.
        for closing in (connection, pg):
            if closing is not None:
                with contextlib.suppress(Exception):
                    closing.close()


_PG_HEAD = (
    "SELECT last_seq, last_hash, last_checkpoint_seq, last_checkpoint_at "
    "FROM flow_chain WHERE id = 1"
)
