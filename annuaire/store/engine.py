"""Database engines and transactions for SQLite (embedded default) and PostgreSQL (production).

SQLite runs in WAL mode with a busy timeout, so API readers never block on an import and two
writers queue instead of failing. A write transaction on SQLite starts with ``BEGIN IMMEDIATE``
(it takes the write lock up front, so it cannot fail half-way when upgrading a read lock).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from annuaire.settings import Settings
from annuaire.store.changes import structures_union

__all__ = [
    "WRITER_BUSY",
    "make_engine",
    "one_snapshot",
    "placeholder",
    "read_snapshot",
    "write_transaction",
    "writer_busy",
]

#: Why a job that waited the busy timeout for another SQLite writer is refused.
WRITER_BUSY = (
    "another import or purge is writing to the store and did not end within the busy timeout "
    "(SQLite has one writer at a time; AIGUILLAGE_SQLITE_BUSY_TIMEOUT_S): try again when it ends"
)


def make_engine(settings: Settings, *, serving: bool = False, **kwargs: Any) -> Engine:
    """An engine on the configured database.

    ``serving=True`` tunes a PostgreSQL engine for the API's short reads: autocommit (no
    BEGIN / ROLLBACK round trips; a request that needs one snapshot opens a transaction
    itself), server-side prepared statements after two executions (planning the JSON-building
    queries costs more than running them), no JIT (an export's unbounded query would spend
    a quarter of a second compiling before its first row), a pool of ``api_db_pool_size``
    connections kept open (a connection opened per request costs PostgreSQL a process and its
    prepared statements), and no ping on checkout (a dropped connection fails one request with
    a 503 and the pool is renewed).
    """
    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            from pathlib import Path

            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            echo=settings.database_echo,
            connect_args={"timeout": settings.sqlite_busy_timeout_s},
            **kwargs,
        )
        _configure_sqlite(engine, settings)
        return engine
    if serving:
        return create_engine(
            url,
            echo=settings.database_echo,
            isolation_level="AUTOCOMMIT",
            connect_args={"prepare_threshold": 2, "options": "-c jit=off"},
            pool_size=settings.api_db_pool_size,
            max_overflow=0,
            **kwargs,
        )
    return create_engine(
        url,
        echo=settings.database_echo,
        pool_pre_ping=True,
        # Server-side prepared statements get generic plans that ignore the IN lists the sync
        # engine sends; planning each statement is far cheaper than a bad plan.
        connect_args={"prepare_threshold": None},
        **kwargs,
    )


def _configure_sqlite(engine: Engine, settings: Settings) -> None:
    busy_ms = int(settings.sqlite_busy_timeout_s * 1000)
    cache_kib = settings.sqlite_cache_mb * 1024

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event below decide how a transaction starts.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
        cursor.execute("PRAGMA foreign_keys=ON")
        # Imports insert into many indexes at once: a page cache of a few MB thrashes.
        cursor.execute(f"PRAGMA cache_size=-{cache_kib}")
        cursor.execute(f"PRAGMA temp.cache_size=-{cache_kib}")
        cursor.close()
        # What PostgreSQL spells in SQL (annuaire.sync's change entries of rewritten rows).
        dbapi_connection.create_function(
            "structures_union", 2, structures_union, deterministic=True
        )

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        immediate = connection.get_execution_options().get("sqlite_immediate", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


@contextlib.contextmanager
def write_transaction(
    engine: Engine, *, busy_timeout_s: float | None = None
) -> Iterator[Connection]:
    """One transaction that writes: committed on exit, rolled back on any exception.

    ``busy_timeout_s``: on SQLite, how long this transaction waits for another writer instead
    of the configured busy timeout (ignored on PostgreSQL)."""
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            connection = connection.execution_options(sqlite_immediate=True)
            if busy_timeout_s is not None:
                with _busy_timeout(connection, busy_timeout_s), connection.begin():
                    yield connection
                return
        with connection.begin():
            yield connection


@contextlib.contextmanager
def _busy_timeout(connection: Connection, seconds: float) -> Iterator[None]:
    """The SQLite connection's busy timeout set to ``seconds`` for a block, then restored (the
    connection goes back to the pool)."""
    driver = connection.connection.dbapi_connection
    assert driver is not None
    cursor = driver.cursor()
    cursor.execute("PRAGMA busy_timeout")
    row = cursor.fetchone()
    assert row is not None
    before = row[0]
    cursor.execute(f"PRAGMA busy_timeout={int(seconds * 1000)}")
    try:
        yield
    finally:
        cursor.execute(f"PRAGMA busy_timeout={int(before)}")
        cursor.close()


def writer_busy(exc: BaseException) -> bool:
    """Whether ``exc`` is SQLite's "database is locked": the busy timeout passed while another
    connection held the write lock."""
    return isinstance(exc, OperationalError) and "database is locked" in str(exc.orig)


@contextlib.contextmanager
def read_snapshot(engine: Engine) -> Iterator[Connection]:
    """A transaction whose statements all read one snapshot of the database: REPEATABLE READ
    on PostgreSQL (its default gives each statement its own), a deferred ``BEGIN`` on SQLite
    (a read transaction keeps its snapshot). For reads of several statements that must agree,
    such as verifying the flow log while requests append to it."""
    with engine.connect() as connection, one_snapshot(connection).begin():
        yield connection


def one_snapshot(connection: Connection) -> Connection:
    """``connection``, whose next transaction reads one snapshot (see ``read_snapshot``; for
    a caller that manages the connection's life itself, a streaming export)."""
    if connection.dialect.name == "postgresql":
        return connection.execution_options(isolation_level="REPEATABLE READ")
    return connection


def placeholder(connection: Connection) -> str:
    """The driver's positional parameter marker, for SQL sent to it directly (``?`` for
    sqlite3, ``%s`` for psycopg)."""
    return "%s" if connection.dialect.paramstyle in ("format", "pyformat") else "?"
