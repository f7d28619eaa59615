"""Apply a stream of neutral records to the store as one import run of one scope.

Contract
    ``apply_run`` reads the stream once, in batches, and applies it inside ONE transaction:
    either everything is applied (and an ImportRun row says so), or nothing is (the store is as
    before; a refused or failed run is still recorded, in a transaction of its own).

Modes
    ``complet``  authoritative for the scope: active entities of the scope that the stream does
                 not contain become ``tobedeleted`` (leaving), never deleted at once.
    ``delta``    add / modify / delete. A modify (or add) of an owner record replaces what that
                 owner carries; a delete makes the owner and what it carries leave. A modify of
                 an unknown id is an add, with a warning; a delete of an unknown id is a warning.
                 A row that an owner's new version no longer yields, but that active rows still
                 point to (a class its structure no longer lists, with pupils enrolled in it),
                 stays, with a ``kept-referenced`` warning.
    ``partial``  a complet known to be incomplete (missing chunks): adds and updates with delta
                 replacement per owner, and no removal inferred from absence.

    A guardian (a person without a role) belongs to the structures of their active pupils. A
    delta or partial run derives them again for the guardians of the pupils and guardianships
    it changed (a pupil may change school without their guardians' records in the delivery);
    a complet's records give them all. A guardian whose record the run also wrote keeps one
    change entry, with the UAIs they end with.

    In every mode, an ``ensure`` record (an entity its source knows in part, see
    ``annuaire.schema.records``) is created if the store lacks it, made active again if it was
    leaving, and otherwise left as stored: it never rewrites a row.

Guards
    A run that would make more than ``mass_removal_threshold`` of the scope's active entities
    leave is refused (``Refused``) unless ``allow_mass_removal``. A second run of the same scope
    while one is in progress is refused at once (advisory lock on PostgreSQL; SQLite serialises
    writers anyway: a second one waits the busy timeout, then is refused, and recording it
    waits a tenth of that timeout at most: the writer that held the store likely still does).
    A refused or failed run that cannot be recorded says why in ``RunReport.not_recorded``.

Idempotence
    Every row keeps the content hash of what its source said; a record whose hash is unchanged
    is skipped and writes no change-log entry.

How (``_applier.py``)
    Records are resolved, serialised and hashed once in Python and staged in a temporary table;
    each entity kind is then applied with a handful of set-based statements. Python memory
    does not grow with the size of the scope.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import hashlib
import itertools
import logging
import operator
import time
import uuid
import zlib
from collections.abc import Callable, Collection, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, delete, exists, func, insert, not_, or_, select, text
from sqlalchemy.exc import SQLAlchemyError

from annuaire.errors import Refused
from annuaire.registre.flowlog import FlowRecord
from annuaire.registre.runtime import Registre, open_registre
from annuaire.registre.vocabulary import DataCategory, FlowKind, Operation, RecipientKind
from annuaire.schema import (
    PERSON_COLUMNS,
    TABLES,
    ChangeOp,
    EntityKind,
    ExternalId,
    ImportRun,
    RunOutcome,
    Status,
    StreamItem,
)
from annuaire.settings import Settings
from annuaire.store.changes import ChangeRecorder, structures_list
from annuaire.store.engine import WRITER_BUSY, write_transaction, writer_busy

from ._applier import REFERRED_BY, Applier
from ._ids import hub_id
from ._report import KindCounts, Mode, RunReport, Scope
from ._stop import Interrupted, Stop

_log = logging.getLogger(__name__)

__all__ = [
    "KindCounts",
    "Mode",
    "Purged",
    "RunReport",
    "Scope",
    "apply_run",
    "hub_id",
    "purge",
    "record_refused",
]

_IN_CHUNK = 900  # ids per IN (...) list: well under every backend's parameter limit


def apply_run(
    engine: Engine,
    scope: Scope,
    items: Iterable[StreamItem],
    *,
    mode: Mode,
    settings: Settings,
    files: Iterable[str] = (),
    allow_mass_removal: bool = False,
    dry_run: bool = False,
    now: dt.datetime | None = None,
    report: RunReport | None = None,
    registre: Registre | None = None,
    stop: Stop | None = None,
    guard: Callable[[Connection], None] | None = None,
) -> RunReport:
    """Apply one run and return its report; ``Refused`` or ``BadInput`` leave nothing applied.

    ``guard`` is called in the run's transaction once the scope is held, before the stream is
    read: it may raise ``Refused`` (the run is then recorded as refused).

    Pass ``report`` to keep what was counted when the run is refused or fails. The run's flow
    entry (annuaire.registre) is written in the run's own transaction, last: the data and the
    entry commit together or not at all. A refused or failed run is logged as such, and so is a
    run stopped by ``stop`` (at a safe point: see ``_stop``), with nothing of it applied. A dry
    run applies nothing and logs nothing: it opens no registre (which records the register's
    fiche versions and may create its key file).
    """
    if registre is None and not dry_run:
        registre = open_registre(settings, engine)
    report = report or RunReport(uuid.uuid4(), scope, mode, list(files))
    started_at = now or dt.datetime.now(dt.UTC)
    clock = time.monotonic()
    # The files are hashed by a helper thread (hashlib releases the GIL) once the stream is read,
    # while the run applies it: only the flow entry needs their digests, at the end. Reading the
    # stream keeps both cores of a small machine busy (this process maps, a worker parses);
    # applying it is the database's work, on one. A run that fails before hashes its files then.
    digests = ThreadPoolExecutor(1, thread_name_prefix="sync-digest")
    sources: Future[list[dict[str, str | None]]] | None = None

    def recorded(outcome: RunOutcome, message: str, *, waited: bool = False) -> None:
        report.outcome = outcome
        report.message = message
        report.duration_s = time.monotonic() - clock
        if not dry_run:  # a dry run logs nothing, however it ends; its report says how
            assert registre is not None  # opened for every run but a dry one
            # A run that waited the busy timeout for another writer does not wait it again to
            # be recorded: that writer is likely still there.
            wait = min(1.0, settings.sqlite_busy_timeout_s / 10) if waited else None
            _record_failure(engine, registre, report, started_at, sources, busy_timeout_s=wait)

    try:
        with _fewer_collections(), write_transaction(engine) as connection:
            _lock_scope(connection, scope.key)
            if guard is not None:
                guard(connection)
            applier = Applier(connection, report, settings, started_at, stop)
            try:
                for batch in _batched(items, settings.batch_size):
                    applier.stage(batch)
                if not dry_run:
                    sources = digests.submit(_file_digests, report.files)
                applier.apply(allow_mass_removal=allow_mass_removal)
            finally:
                applier.close()  # nothing of it left running when the transaction ends
            report.outcome = RunOutcome.DRY_RUN if dry_run else RunOutcome.APPLIED
            report.duration_s = time.monotonic() - clock
            if dry_run:
                raise _DryRun
            # A run that created every person names them all already (a first import).
            persons, uais, kinds = applier.recorder.concerned(
                linked=EntityKind.PERSON.value not in applier.fresh
            )
            applier.recorder.publish()
            connection.execute(insert(ImportRun.__table__), [_run_row(report, started_at)])  # type: ignore[attr-defined]
            assert sources is not None  # a dry run has ended above
            assert registre is not None  # opened for every run but a dry one
            flow = _import_flow(registre, report, sources.result(), persons, uais, kinds)
            registre.log.append(connection, flow)
    except _DryRun:
        return report
    except Refused as exc:
        recorded(RunOutcome.REFUSED, str(exc))
        raise
    except Exception as exc:
        if stop is None or stop.reason is None:
            if writer_busy(exc):  # SQLite: another writer held the store the whole busy timeout
                recorded(RunOutcome.REFUSED, WRITER_BUSY, waited=True)
                raise Refused(WRITER_BUSY) from exc
            recorded(RunOutcome.FAILED, str(exc))
            raise
        # Failed while being stopped: the signal reached the source too (systemd sends SIGTERM
        # to the whole group, and the AAF parsing worker ends with it).
        recorded(RunOutcome.FAILED, stop.reason)
        raise Interrupted(stop.reason, stop.signum) from exc
    except Interrupted as exc:
        if exc.safe:  # else the run's connection may still hold its lock: the process ends
            recorded(RunOutcome.FAILED, str(exc))
        raise
    finally:
        digests.shutdown(cancel_futures=True)
    _refresh_statistics(engine, report)  # the run is committed: never a failure of it
    return report


#: What an entity kind written by an import carries (for the flow log).
_KIND_CATEGORIES = {
    EntityKind.PERSON.value: (
        DataCategory.IDENTIFIERS,
        DataCategory.IDENTITY_NAME,
        DataCategory.IDENTITY_BIRTH_DATE,
        DataCategory.CONTACT,
    ),
    # Staff functions; a pupil's MEF or level and options.
    EntityKind.ROLE.value: (DataCategory.PROFESSIONAL, DataCategory.SCHOOLING),
    EntityKind.ENROLLMENT.value: (DataCategory.SCHOOLING,),
    EntityKind.CLASS.value: (DataCategory.SCHOOLING,),
    EntityKind.GROUP.value: (DataCategory.SCHOOLING,),
    EntityKind.GUARDIANSHIP.value: (DataCategory.RELATIONS,),
}


def _import_flow(
    registre: Registre,
    report: RunReport,
    sources: list[dict[str, str | None]],
    persons: Collection[uuid.UUID],
    uais: set[str],
    kinds: set[str],
    outcome: str = "success",
) -> FlowRecord:
    """The flow entry of a run: the persons and structures whose data it wrote or removed."""
    scope = report.scope
    return FlowRecord(
        flow=FlowKind.IMPORT,
        operation=Operation.COLLECT,
        activity=registre.activity_id(FlowKind.IMPORT),
        actor_kind=RecipientKind.IMPORT_JOB,
        actor=f"import {scope.source}",
        target=f"import {scope.source} {report.mode} {scope.key}",
        categories={c for kind in kinds for c in _KIND_CATEGORIES.get(kind, ())},
        structures=uais or {u for u in [scope.uai] if u},
        subjects=persons,
        source={"run": str(report.run_id), "files": sources},
        outcome=outcome,
        detail=(report.message or "")[:255] or None,
    )


def _file_digests(names: Iterable[str]) -> list[dict[str, str | None]]:
    return [_file_digest(name) for name in names]


def _file_digest(name: str) -> dict[str, str | None]:
    """A source file's name and SHA-256 (None for a member of an archive)."""
    path = Path(name)
    if not path.is_file():
        return {"file": path.name, "sha256": None}
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    return {"file": path.name, "sha256": digest.hexdigest()}


def _refresh_statistics(engine: Engine, report: RunReport) -> None:
    """Keep the planner's statistics current after a run that changed many rows.

    A large import leaves PostgreSQL's statistics describing the tables as they were (autovacuum
    catches up minutes later); the next run's plans would then be built for empty tables.
    """
    changed = {
        TABLES[kind].__table__.name: n  # type: ignore[attr-defined]
        for kind, counts in report.counts.items()
        if (n := counts.created + counts.updated + counts.leaving + counts.returning)
    }
    # Small runs (a nightly delta) leave the statistics representative.
    if sum(changed.values()) <= max(1000, report.active_before // 20):
        return
    try:
        # A write transaction: on SQLite it waits for another writer (busy timeout).
        with write_transaction(engine) as connection:
            if engine.dialect.name == "sqlite":
                connection.exec_driver_sql("PRAGMA optimize")
            else:
                connection.exec_driver_sql(f"ANALYZE {', '.join([*changed, 'external_id'])}")
    except SQLAlchemyError as exc:  # a lock held too long: the next large run refreshes them
        _log.warning("run %s: planner statistics not refreshed: %s", report.run_id, exc)


#: Cyclic garbage collector thresholds during a run (Python's defaults: 700, 10, 10).
RUN_GC_THRESHOLDS = (50_000, 10, 10)


@contextlib.contextmanager
def _fewer_collections() -> Iterator[None]:
    """Run the cyclic garbage collector less often while a run reads its stream.

    A run allocates millions of short-lived objects (raw requests, records, rows) that
    reference counting frees at once; with the default thresholds the collector still starts
    every 700 allocations and now and then walks every object the process holds: a quarter of
    a large import's time, measured (bench/aaf_import.py). Raising the first threshold keeps the
    collector for what it is for (cycles), at a cost of a few MB. A worker forked during the
    run inherits the setting. Restored when the run ends, however it ends.
    """
    before = gc.get_threshold()
    gc.set_threshold(*RUN_GC_THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*before)


class _DryRun(Exception):
    """Rolls a complete dry run back."""


def _batched(items: Iterable[StreamItem], size: int) -> Iterator[list[StreamItem]]:
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


def _lock_scope(connection: Connection, scope: str) -> None:
    """Hold the scope until the transaction ends: an import and a purge of one scope never run
    together (a purge would delete what the import brings back)."""
    if connection.dialect.name != "postgresql":
        return  # SQLite: BEGIN IMMEDIATE already serialises writers
    key = zlib.crc32(scope.encode())
    acquired = connection.execute(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": key}).scalar()
    if not acquired:
        raise Refused(f"an import or a purge of scope {scope} is running; try again when it ends")


def _run_row(report: RunReport, started_at: dt.datetime) -> dict[str, Any]:
    return {
        "id": report.run_id,
        "scope": report.scope.key,
        "source": report.scope.source,
        "academie": report.scope.academie,
        "uai": report.scope.uai,
        "degree": report.scope.degree,
        "mode": report.mode,
        "export_date": report.export_date,
        "files": report.files,
        "started_at": started_at,
        "finished_at": started_at + dt.timedelta(seconds=report.duration_s),
        "duration_s": round(report.duration_s, 3),
        "outcome": report.outcome.value,
        "message": (report.message or "")[:4000] or None,
        "counts": report.counts_dict(),
        "warning_count": report.warning_count,
        "warnings": [
            {
                "code": w.code,
                "message": w.message,
                "file": w.provenance.file if w.provenance else None,
                "line": w.provenance.line if w.provenance else None,
                "record_id": w.provenance.record_id if w.provenance else None,
            }
            for w in report.warnings
        ],
    }


def record_refused(
    engine: Engine,
    report: RunReport,
    message: str,
    *,
    settings: Settings,
    registre: Registre | None = None,
) -> None:
    """Record a run refused before it could start (an incomplete delivery, say)."""
    started_at = dt.datetime.now(dt.UTC)
    registre = registre or open_registre(settings, engine)
    report.outcome, report.message, report.duration_s = RunOutcome.REFUSED, message, 0.0
    _record_failure(engine, registre, report, started_at, None)


def _record_failure(
    engine: Engine,
    registre: Registre,
    report: RunReport,
    started_at: dt.datetime,
    sources: Future[list[dict[str, str | None]]] | None,
    *,
    busy_timeout_s: float | None = None,
) -> None:
    """Record a refused or failed run (its report says how it ended); ``sources``: its files'
    digests if being computed; ``busy_timeout_s``: how long to wait for another SQLite writer
    (default: the configured busy timeout).

    A run that cannot be recorded says why in ``report.not_recorded``: the caller goes on to
    raise why the run ended, which an error of the recording must not replace."""
    files = sources.result() if sources is not None else _file_digests(report.files)
    flow = _import_flow(registre, report, files, set(), set(), set(), outcome=report.outcome.value)
    try:
        with write_transaction(engine, busy_timeout_s=busy_timeout_s) as connection:
            connection.execute(insert(ImportRun.__table__), [_run_row(report, started_at)])  # type: ignore[attr-defined]
            registre.log.append(connection, flow)
    except SQLAlchemyError as exc:
        cause = getattr(exc, "orig", None) or exc
        report.not_recorded = str(cause).strip().splitlines()[0]


class Purged(dict[str, int]):
    """Entities purged, per kind; ``kept``: those due that other rows still point to, per kind."""

    def __init__(self) -> None:
        super().__init__()
        self.kept: dict[str, int] = {}


def purge(
    engine: Engine,
    settings: Settings,
    *,
    now: dt.datetime | None = None,
    scope: str | None = None,
    delay_days: int | None = None,
    registre: Registre | None = None,
) -> Purged:
    """Delete entities that have been ``tobedeleted`` for longer than the delay. One transaction,
    with its flow entry (operation ``delete``) when anything was purged.

    A row that another row still points to is kept, whatever its delay (a guardian whose
    guardianship their pupil's record still gives, a class with an enrollment that has not
    left): nothing the store serves names an entity that is gone. Kinds are purged referencing
    kinds first, so that a link due with what it names goes first and does not hold it back;
    the rows kept are counted (``Purged.kept``) and purged by a later purge, once nothing
    points to them."""
    registre = registre or open_registre(settings, engine)
    now = now or dt.datetime.now(dt.UTC)
    delay = settings.purge_delay_days if delay_days is None else delay_days
    cutoff = now - dt.timedelta(days=delay)
    purged = Purged()
    persons: set[uuid.UUID] = set()
    uais: set[str] = set()
    with write_transaction(engine) as connection:
        recorder = ChangeRecorder(connection, scope=scope or "*", run_id=None)
        ext = ExternalId.__table__  # type: ignore[attr-defined]
        tables = [(kind, TABLES[kind].__table__) for kind in EntityKind]  # type: ignore[attr-defined]

        def leaving(table: Any) -> list[Any]:
            condition = [table.c.status == Status.TOBEDELETED.value, table.c.leaving_since < cutoff]
            return condition if scope is None else [*condition, table.c.scope == scope]

        # The scopes purged are held as imports hold theirs (``Refused`` while one runs), so
        # that no import brings back a row this transaction then deletes.
        scopes = sorted(
            {
                s
                for _, table in tables
                for (s,) in connection.execute(
                    select(table.c.scope).where(*leaving(table)).distinct()
                )
            }
        )
        for held in scopes:
            _lock_scope(connection, held)
        for kind, table in reversed(tables):  # referencing kinds first: see the docstring
            condition = [*leaving(table), table.c.scope.in_(scopes)]
            pointing = []
            for source, column in REFERRED_BY.get(kind, ()):
                referring = TABLES[source].__table__.alias("r")  # type: ignore[attr-defined]
                pointing.append(exists().where(referring.c[column] == table.c.id))
            if pointing:
                held = or_(*pointing)
                count = select(func.count()).select_from(table).where(*condition, held)
                if kept := connection.execute(count).scalar_one():
                    purged.kept[kind.value] = kept
                condition.append(not_(held))
            # The persons a purged row is about: the person itself, or those a link names.
            about = [table.c[c] for c in PERSON_COLUMNS.get(kind, ())]
            rows = connection.execute(
                select(table.c.id, table.c.scope, table.c.structures, *about)
                .where(*condition)
                .order_by(table.c.id)  # the feed's entries in one order on every backend
            ).all()
            if not rows:
                continue
            ids = [r.id for r in rows]
            if kind is EntityKind.PERSON:
                persons.update(ids)
            persons.update(v for r in rows for v in r[3:] if v is not None)
            uais.update(u for r in rows for u in structures_list(r.structures))
            for start in range(0, len(ids), _IN_CHUNK):
                chunk = ids[start : start + _IN_CHUNK]
                connection.execute(delete(ext).where(ext.c.entity_id.in_(chunk)))
                connection.execute(delete(table).where(table.c.id.in_(chunk)))
            by_scope = operator.attrgetter("scope")
            for row_scope, group in itertools.groupby(sorted(rows, key=by_scope), key=by_scope):
                recorder.scope = row_scope
                recorder.stage(
                    [(kind.value, r.id, ChangeOp.PURGE.value, r.structures) for r in group], now
                )
            purged[kind.value] = len(rows)
        recorder.publish()
        if purged:
            registre.log.append(
                connection,
                FlowRecord(
                    flow=FlowKind.IMPORT,
                    operation=Operation.DELETE,
                    activity=registre.activity_id(FlowKind.IMPORT),
                    actor_kind=RecipientKind.IMPORT_JOB,
                    actor="purge",
                    target=f"purge tobedeleted {scope or '*'}",
                    categories={c for k in purged for c in _KIND_CATEGORIES.get(k, ())},
                    structures=uais,
                    subjects=persons,
                    source={"purged": dict(purged), "older_than_days": delay},
                ),
                now=now,
            )
    return purged
