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
    ``partial``  a complet known to be incomplete (missing chunks): adds and updates with delta
                 replacement per owner, and no removal inferred from absence.

Guards
    A run that would make more than ``mass_removal_threshold`` of the scope's active entities
    leave is refused (``Refused``) unless ``allow_mass_removal``. A second run of the same scope
    while one is in progress is refused at once (advisory lock on PostgreSQL; SQLite serialises
    writers anyway).

Idempotence
    Every row keeps the content hash of what its source said; a record whose hash is unchanged
    is skipped and writes no change-log entry.
"""

from __future__ import annotations

import datetime as dt
import functools
import itertools
import operator
import time
import uuid
import zlib
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic_core import PydanticUndefined
from sqlalchemy import (
    Connection,
    Engine,
    Table,
    bindparam,
    delete,
    func,
    insert,
    select,
    text,
    update,
)

from annuaire.errors import Refused
from annuaire.schema import (
    REFERENCES,
    TABLES,
    ChangeOp,
    EntityKind,
    ExternalId,
    ImportRun,
    NeutralRecord,
    Ref,
    RunOutcome,
    SourceWarning,
    Status,
    StreamItem,
    Tracked,
    content_hash,
)
from annuaire.settings import Settings
from annuaire.store.bulk import bulk_insert
from annuaire.store.changes import ChangeRecorder, structures_text
from annuaire.store.engine import write_transaction

__all__ = ["Mode", "RunReport", "Scope", "apply_run", "hub_id", "purge"]

Mode = Literal["complet", "delta", "partial"]

_ID_NAMESPACE = uuid.UUID("0b6f3c5e-6a7d-4e0e-9f43-61a1b2c3d4e5")
_IN_CHUNK = 900  # keys per IN (...) list: well under every backend's parameter limit


@functools.lru_cache(maxsize=1 << 16)  # references repeat: a structure, a pupil's own id...
def hub_id(scope: str, kind: EntityKind, key: str) -> uuid.UUID:
    """The stable hub id of (scope, kind, key): the same on every run, on every backend."""
    return uuid.uuid5(_ID_NAMESPACE, f"{scope}\x1f{kind.value}\x1f{key}")


@dataclass(frozen=True)
class Scope:
    """What one import run is authoritative for: a source, an académie or a UAI, a degree."""

    source: str
    academie: str | None = None
    uai: str | None = None
    degree: str | None = None

    @property
    def key(self) -> str:
        return f"{self.source}:{self.academie or self.uai or '-'}:{self.degree or '-'}"


@dataclass
class KindCounts:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    leaving: int = 0
    returning: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass
class RunReport:
    run_id: uuid.UUID
    scope: Scope
    mode: Mode
    files: list[str]
    outcome: RunOutcome = RunOutcome.FAILED
    message: str | None = None
    counts: dict[EntityKind, KindCounts] = field(default_factory=lambda: defaultdict(KindCounts))
    warnings: list[SourceWarning] = field(default_factory=list)
    warning_count: int = 0
    warning_codes: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    duration_s: float = 0.0
    active_before: int = 0

    def warn(self, warning: SourceWarning, keep: int) -> None:
        self.warning_count += 1
        self.warning_codes[warning.code] += 1
        if len(self.warnings) < keep:
            self.warnings.append(warning)

    @property
    def leaving(self) -> int:
        return sum(c.leaving for c in self.counts.values())

    def counts_dict(self) -> dict[str, dict[str, int]]:
        return {
            kind.value: self.counts[kind].as_dict() for kind in EntityKind if kind in self.counts
        }


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
) -> RunReport:
    """Apply one run and return its report; ``Refused`` or ``BadInput`` leave nothing applied.

    Pass ``report`` to keep what was counted when the run is refused or fails.
    """
    report = report or RunReport(uuid.uuid4(), scope, mode, list(files))
    started_at = now or dt.datetime.now(dt.UTC)
    clock = time.monotonic()
    try:
        with write_transaction(engine) as connection:
            _lock_scope(connection, scope)
            applier = _Applier(connection, scope, report, settings, started_at)
            for batch in _batched(items, settings.batch_size):
                applier.apply_batch(batch)
            applier.finish(allow_mass_removal=allow_mass_removal)
            report.outcome = RunOutcome.DRY_RUN if dry_run else RunOutcome.APPLIED
            report.duration_s = time.monotonic() - clock
            if dry_run:
                raise _DryRun
            applier.recorder.publish()
            connection.execute(insert(ImportRun.__table__), [_run_row(report, started_at)])  # type: ignore[attr-defined]
        if engine.dialect.name == "sqlite":
            with engine.connect() as connection:  # keep the planner's statistics current
                connection.exec_driver_sql("PRAGMA optimize")
    except _DryRun:
        pass
    except Refused as exc:
        _record_failure(engine, report, started_at, clock, RunOutcome.REFUSED, str(exc))
        raise
    except Exception as exc:
        _record_failure(engine, report, started_at, clock, RunOutcome.FAILED, str(exc))
        raise
    return report


class _DryRun(Exception):
    """Rolls a complete dry run back."""


def _batched(items: Iterable[StreamItem], size: int) -> Iterator[list[StreamItem]]:
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


def _lock_scope(connection: Connection, scope: Scope) -> None:
    if connection.dialect.name != "postgresql":
        return  # SQLite: BEGIN IMMEDIATE already serialises writers
    key = zlib.crc32(scope.key.encode())
    acquired = connection.execute(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": key}).scalar()
    if not acquired:
        raise Refused(f"another import of scope {scope.key} is running; try again when it ends")


def _run_row(report: RunReport, started_at: dt.datetime) -> dict[str, Any]:
    return {
        "id": report.run_id,
        "scope": report.scope.key,
        "source": report.scope.source,
        "academie": report.scope.academie,
        "uai": report.scope.uai,
        "degree": report.scope.degree,
        "mode": report.mode,
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


def _record_failure(
    engine: Engine,
    report: RunReport,
    started_at: dt.datetime,
    clock: float,
    outcome: RunOutcome,
    message: str,
) -> None:
    report.outcome = outcome
    report.message = message
    report.duration_s = time.monotonic() - clock
    with write_transaction(engine) as connection:
        connection.execute(insert(ImportRun.__table__), [_run_row(report, started_at)])  # type: ignore[attr-defined]


@dataclass
class _Existing:
    id: uuid.UUID
    content_hash: str
    status: str


class _Applier:
    """The state of one run inside its transaction."""

    def __init__(
        self,
        connection: Connection,
        scope: Scope,
        report: RunReport,
        settings: Settings,
        now: dt.datetime,
    ) -> None:
        self.connection = connection
        self.scope = scope
        self.scope_key = scope.key
        self.report = report
        self.settings = settings
        self.now = now
        self.recorder = ChangeRecorder(connection, scope=scope.key, run_id=report.run_id)
        self.seen: dict[EntityKind, set[str]] = defaultdict(set)
        self.replaced_owners: set[str] = set()
        self.deleted_owners: set[str] = set()
        self.columns_checked: set[EntityKind] = set()
        self.blanks: dict[EntityKind, dict[str, Any]] = {}
        self.report.active_before = self._count_active()

    # -- helpers -----------------------------------------------------------------------------

    def table(self, kind: EntityKind) -> Table:
        return TABLES[kind].__table__  # type: ignore[attr-defined]

    def warn(self, code: str, message: str, record: NeutralRecord | None = None) -> None:
        warning = SourceWarning(code, message, record.provenance if record else None)
        self.report.warn(warning, self.settings.warnings_kept)

    def _count_active(self) -> int:
        total = 0
        for kind in EntityKind:
            table = self.table(kind)
            total += self.connection.execute(
                select(func.count())
                .select_from(table)
                .where(table.c.scope == self.scope_key, table.c.status == Status.ACTIVE.value)
            ).scalar_one()
        return total

    def _check_columns(self, kind: EntityKind, record: NeutralRecord) -> None:
        if kind in self.columns_checked:
            return
        table = self.table(kind)
        unknown = (set(record.data) | set(record.refs)) - set(table.c.keys())
        if unknown:
            raise ValueError(f"{kind.value} records carry unknown columns: {sorted(unknown)}")
        self.columns_checked.add(kind)

    def _resolve(self, value: Ref | list[Ref] | None) -> Any:
        if value is None:
            return None
        if isinstance(value, list):
            return [str(hub_id(self.scope_key, r.kind, r.key)) for r in value]
        return hub_id(self.scope_key, value.kind, value.key)

    def _blank(self, kind: EntityKind) -> dict[str, Any]:
        """Every content column of ``kind`` at its default: a record replaces the whole row."""
        blank = self.blanks.get(kind)
        if blank is None:
            tracked = set(Tracked.model_fields)
            blank = {}
            for name, info in TABLES[kind].model_fields.items():
                if name in tracked:
                    continue
                blank[name] = info.default_factory() if info.default_factory else info.default  # type: ignore[call-arg]
                if blank[name] is PydanticUndefined:
                    blank[name] = None
            self.blanks[kind] = blank
        return dict(blank)

    def _row(self, record: NeutralRecord, digest: str, run_id: uuid.UUID) -> dict[str, Any]:
        row = self._blank(record.kind)
        row.update(record.data)
        for column, ref in record.refs.items():
            row[column] = self._resolve(ref)
        provenance = record.provenance
        row.update(
            id=hub_id(self.scope_key, record.kind, record.key),
            scope=self.scope_key,
            source_key=record.key,
            owner_key=record.owner_key,
            source=self.scope.source,
            import_run_id=run_id,
            content_hash=digest,
            source_file=provenance.file[-255:] if provenance else None,
            source_record=provenance.record_id if provenance else None,
            status=Status.ACTIVE.value,
            leaving_since=None,
            modified_at=self.now,
            structures=structures_text(record.structures),
        )
        return row

    def _existing(self, kind: EntityKind, keys: list[str]) -> dict[str, _Existing]:
        table = self.table(kind)
        found: dict[str, _Existing] = {}
        for start in range(0, len(keys), _IN_CHUNK):
            chunk = keys[start : start + _IN_CHUNK]
            rows = self.connection.execute(
                select(table.c.source_key, table.c.id, table.c.content_hash, table.c.status).where(
                    table.c.scope == self.scope_key, table.c.source_key.in_(chunk)
                )
            )
            for source_key, id_, digest, status in rows:
                found[source_key] = _Existing(id_, digest, status)
        return found

    # -- one batch ---------------------------------------------------------------------------

    def apply_batch(self, batch: list[StreamItem]) -> None:
        by_kind: dict[EntityKind, dict[str, NeutralRecord]] = defaultdict(dict)
        for item in batch:
            if isinstance(item, SourceWarning):
                self.report.warn(item, self.settings.warnings_kept)
                continue
            if item.op == "delete":
                self._flush(by_kind)
                by_kind = defaultdict(dict)
                self._delete_owner(item)
                continue
            records = by_kind[item.kind]
            if item.key in records or item.key in self.seen[item.kind]:
                self.warn(
                    "duplicate-record",
                    f"{item.kind.value} {item.key!r} appears twice in this run; the last one wins",
                    item,
                )
            records[item.key] = item
        self._flush(by_kind)

    def _flush(self, by_kind: dict[EntityKind, dict[str, NeutralRecord]]) -> None:
        for kind in EntityKind:  # dependency order
            if by_kind.get(kind):
                self._upsert(kind, list(by_kind[kind].values()))

    def _upsert(self, kind: EntityKind, records: list[NeutralRecord]) -> None:
        table = self.table(kind)
        self._check_columns(kind, records[0])
        existing = self._existing(kind, [r.key for r in records])
        counts = self.report.counts[kind]
        run_id = self.report.run_id
        inserts: list[dict[str, Any]] = []
        updates: list[dict[str, Any]] = []
        returning: list[dict[str, Any]] = []
        changes: list[tuple[str, uuid.UUID, str, str]] = []
        external: list[tuple[uuid.UUID, tuple[tuple[str, str], ...]]] = []
        seen = self.seen[kind]
        for record in records:
            seen.add(record.key)
            if record.owner_ref == record.ref and self.report.mode != "complet":
                self.replaced_owners.add(record.owner_key)
            digest = content_hash(record)
            current = existing.get(record.key)
            if current is None:
                if record.op == "modify" and self.report.mode == "delta":
                    self.warn(
                        "modify-unknown",
                        f"modify of unknown {kind.value} {record.key!r} applied as an add",
                        record,
                    )
                row = self._row(record, digest, run_id)
                row["created_at"] = self.now
                inserts.append(row)
                external.append((row["id"], record.external_ids))
                changes.append((kind.value, row["id"], ChangeOp.CREATE.value, row["structures"]))
                counts.created += 1
                continue
            was_leaving = current.status != Status.ACTIVE.value
            if current.content_hash == digest:
                if not was_leaving:
                    counts.unchanged += 1
                    continue
                returning.append(
                    {"b_id": current.id, "modified_at": self.now, "import_run_id": run_id}
                )
                changes.append(
                    (
                        kind.value,
                        current.id,
                        ChangeOp.RETURN.value,
                        structures_text(record.structures),
                    )
                )
                counts.returning += 1
                continue
            if record.op == "add" and self.report.mode == "delta" and not was_leaving:
                # Deltas re-send nomenclatures and structures in full; only a changed one is news.
                self.warn(
                    "add-existing",
                    f"add of existing {kind.value} {record.key!r} changes it (applied as a modify)",
                    record,
                )
            row = self._row(record, digest, run_id)
            row["b_id"] = row.pop("id")
            updates.append(row)
            external.append((current.id, record.external_ids))
            op = ChangeOp.RETURN if was_leaving else ChangeOp.UPDATE
            changes.append((kind.value, current.id, op.value, row["structures"]))
            if was_leaving:
                counts.returning += 1
            else:
                counts.updated += 1
        bulk_insert(self.connection, table, inserts)
        if updates:
            self._update_by_id(table, updates)
        if returning:
            self._update_by_id(
                table,
                [dict(r, status=Status.ACTIVE.value, leaving_since=None) for r in returning],
            )
        self._replace_external_ids(kind, external, fresh={r["id"] for r in inserts})
        self.recorder.stage(changes, self.now)

    def _update_by_id(self, table: Table, rows: list[dict[str, Any]]) -> None:
        # Group rows by the columns they set, so that each executemany has one statement shape.
        shapes: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
        for row in rows:
            shapes[tuple(sorted(row))].append(row)
        for shape, group in shapes.items():
            statement = (
                update(table)
                .where(table.c.id == bindparam("b_id"))
                .values({c: bindparam(c) for c in shape if c != "b_id"})
            )
            self.connection.execute(statement, group)

    def _replace_external_ids(
        self,
        kind: EntityKind,
        entries: list[tuple[uuid.UUID, tuple[tuple[str, str], ...]]],
        fresh: set[uuid.UUID],
    ) -> None:
        if not entries:
            return
        table = ExternalId.__table__  # type: ignore[attr-defined]
        stale = [entity_id for entity_id, _ in entries if entity_id not in fresh]
        for start in range(0, len(stale), _IN_CHUNK):
            self.connection.execute(
                delete(table).where(table.c.entity_id.in_(stale[start : start + _IN_CHUNK]))
            )
        rows = [
            {
                "entity_type": kind.value,
                "entity_id": entity_id,
                "type": id_type,
                "value": value,
                "scope": self.scope_key,
            }
            for entity_id, ids in entries
            for id_type, value in dict.fromkeys(ids)
        ]
        bulk_insert(self.connection, table, rows)

    # -- removals ----------------------------------------------------------------------------

    def _delete_owner(self, record: NeutralRecord) -> None:
        owner_key = record.owner_key
        table = self.table(record.kind)
        exists = self.connection.execute(
            select(table.c.id).where(
                table.c.scope == self.scope_key, table.c.source_key == record.key
            )
        ).first()
        if exists is None:
            self.warn(
                "delete-unknown",
                f"delete of unknown {record.kind.value} {record.key!r} ignored",
                record,
            )
            return
        self.deleted_owners.add(owner_key)
        for kind in EntityKind:
            table = self.table(kind)
            leaving = self.connection.execute(
                select(table.c.id, table.c.structures).where(
                    table.c.scope == self.scope_key,
                    table.c.owner_key == owner_key,
                    table.c.status == Status.ACTIVE.value,
                )
            ).all()
            self._mark_leaving(kind, [(row.id, row.structures) for row in leaving])

    def _mark_leaving(self, kind: EntityKind, rows: list[tuple[uuid.UUID, str]]) -> None:
        if not rows:
            return
        table = self.table(kind)
        self._update_by_id(
            table,
            [
                {
                    "b_id": id_,
                    "status": Status.TOBEDELETED.value,
                    "leaving_since": self.now,
                    "modified_at": self.now,
                    "import_run_id": self.report.run_id,
                }
                for id_, _ in rows
            ],
        )
        self.recorder.stage(
            [(kind.value, id_, ChangeOp.LEAVE.value, structures) for id_, structures in rows],
            self.now,
        )
        self.report.counts[kind].leaving += len(rows)

    def _replace_owned(self) -> None:
        """Delta: what an owner carried before and its new version no longer yields leaves."""
        owners = sorted(self.replaced_owners - self.deleted_owners)
        for kind in EntityKind:
            table = self.table(kind)
            seen = self.seen[kind]
            leaving: list[tuple[uuid.UUID, str]] = []
            for start in range(0, len(owners), _IN_CHUNK):
                rows = self.connection.execute(
                    select(table.c.id, table.c.source_key, table.c.structures).where(
                        table.c.scope == self.scope_key,
                        table.c.owner_key.in_(owners[start : start + _IN_CHUNK]),
                        table.c.status == Status.ACTIVE.value,
                    )
                )
                leaving.extend((r.id, r.structures) for r in rows if r.source_key not in seen)
            self._mark_leaving(kind, leaving)

    def _infer_missing(self) -> None:
        """Complet: what the scope holds and the stream did not contain leaves."""
        for kind in EntityKind:
            table = self.table(kind)
            seen = self.seen[kind]
            rows = self.connection.execute(
                select(table.c.id, table.c.source_key, table.c.structures).where(
                    table.c.scope == self.scope_key, table.c.status == Status.ACTIVE.value
                )
            )
            leaving = [(r.id, r.structures) for r in rows if r.source_key not in seen]
            self._mark_leaving(kind, leaving)

    def _check_references(self) -> None:
        """Warn about rows written by this run that point to entities the store does not hold."""
        for kind, columns in REFERENCES.items():
            table = self.table(kind)
            for column, target_kind in columns.items():
                target = self.table(target_kind).alias("target")
                query = (
                    select(func.count(), func.min(table.c.source_key))
                    .select_from(table.outerjoin(target, target.c.id == table.c[column]))
                    .where(
                        table.c.import_run_id == self.report.run_id,
                        table.c.status == Status.ACTIVE.value,
                        table.c[column].is_not(None),
                        target.c.id.is_(None),
                    )
                )
                count, example = self.connection.execute(query).one()
                if count:
                    self.warn(
                        "dangling-reference",
                        f"{count} {kind.value} row(s) point through {column} to a "
                        f"{target_kind.value} the store does not hold "
                        f"(e.g. {kind.value} {example!r})",
                    )

    def finish(self, *, allow_mass_removal: bool) -> None:
        mode = self.report.mode
        if mode in ("delta", "partial"):
            self._replace_owned()
        if mode == "complet":
            self._infer_missing()
        leaving = self.report.leaving
        before = self.report.active_before
        threshold = self.settings.mass_removal_threshold
        if before and leaving > threshold * before and not allow_mass_removal:
            detail = ", ".join(
                f"{c.leaving} {k.value}" for k, c in self.report.counts.items() if c.leaving
            )
            raise Refused(
                f"this run would mark {leaving} of {before} active entities of scope "
                f"{self.scope_key} as leaving ({leaving / before:.1%} > {threshold:.0%}: "
                f"{detail}); nothing was applied. Check the input (a missing file?) or pass "
                "--allow-mass-removal if this is expected."
            )
        self._check_references()


def purge(
    engine: Engine,
    settings: Settings,
    *,
    now: dt.datetime | None = None,
    scope: str | None = None,
    delay_days: int | None = None,
) -> dict[str, int]:
    """Delete entities that have been ``tobedeleted`` for longer than the delay. One transaction."""
    now = now or dt.datetime.now(dt.UTC)
    delay = settings.purge_delay_days if delay_days is None else delay_days
    cutoff = now - dt.timedelta(days=delay)
    purged: dict[str, int] = {}
    with write_transaction(engine) as connection:
        recorder = ChangeRecorder(connection, scope=scope or "*", run_id=None)
        ext = ExternalId.__table__  # type: ignore[attr-defined]
        for kind in EntityKind:
            table = TABLES[kind].__table__  # type: ignore[attr-defined]
            condition = [table.c.status == Status.TOBEDELETED.value, table.c.leaving_since < cutoff]
            if scope is not None:
                condition.append(table.c.scope == scope)
            rows = connection.execute(
                select(table.c.id, table.c.scope, table.c.structures).where(*condition)
            ).all()
            if not rows:
                continue
            ids = [r.id for r in rows]
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
    return purged
