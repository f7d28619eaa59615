"""Import jobs: plan a delivery with a connector, then apply each export as one sync run.

This is where a format's reader meets the sync engine; it holds no format knowledge (the
connector plans and reads) and no SQL beyond looking up what the store already knows.

For AAF deliveries:
- every export (prefix, complet/delta, date) is one run, applied in the planned order
  (complets before deltas, by date); the first failure stops the job, earlier runs stay;
- the scope is ``aaf:<académie>:<degree>``: the académie is ``--academie``, else the
  ``codeAcademieExport`` header, else the export's file prefix (reported, so that the operator
  can pin it);
- a complet whose chunk numbering has a gap or which lacks a category is refused (it would
  make people disappear) unless the operator asks for a partial import, which infers no
  removal at all;
- an export is checked against the exports applied to its scope before (by the export's
  date, a Complet before a Delta of the same date): one older than the last applied would undo
  what the later exports changed: it is skipped if it was applied already (a nightly job whose
  folder keeps the previous deliveries), else refused; ``allow_older`` applies it;
- a dry run computes the first export it would apply to a scope, and not the ones after it:
  computed against a store without the exports before them, their figures would not be what
  the job does.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Connection, Engine, select

from annuaire.errors import BadInput, Refused
from annuaire.registre.runtime import open_registre, registre_config
from annuaire.schema import ImportRun, RunOutcome, StreamItem, Structure, academie_code
from annuaire.settings import Settings
from annuaire.sync import Mode, RunReport, Scope, Stop, apply_run, record_refused
from connectors.aaf import AafExport, AafReader, ReadStats, plan

__all__ = ["ExportRun", "academie_of", "import_aaf"]

#: Called with each export before it is read, then with each item of its stream.
ExportListener = Callable[[AafExport, Scope, Mode], None]
ItemListener = Callable[[StreamItem], None]


@dataclass
class ExportRun:
    export: AafExport
    scope: Scope
    mode: Mode
    stats: ReadStats
    report: RunReport | None = None
    notes: list[str] = field(default_factory=list)
    #: Why the export was not applied, when it was skipped (applied already).
    skipped: str | None = None
    #: Why a dry run did not compute the export (it follows another of its scope).
    not_computed: str | None = None


def academie_of(export: AafExport, override: str | None) -> tuple[str, str | None]:
    """The académie of an export's scope (which a per-school delivery names by its UAI
    instead), and a note when it had to be guessed."""
    code = override or export.academie
    if code:
        return academie_code(code), None
    guessed = re.sub(r"[^A-Z0-9_-]+", "-", export.prefix.upper()).strip("-")[:32] or "UNKNOWN"
    named = (
        f"académie recorded as {guessed!r} (the scope is school {export.uai}'s)"
        if export.uai
        else f"scope named {guessed!r} after the file prefix"
    )
    return guessed, (
        f"no académie code in {export.prefix!r} (no codeAcademieExport header): {named}; "
        "pass --academie CODE to pin it"
    )


def _mode_of(export: AafExport, partial: bool) -> Mode:
    if export.mode == "delta":
        return "delta"
    if partial:
        return "partial"
    if not export.complete:
        problems = [*export.gaps, *(f"no {c} file" for c in export.missing_categories)]
        raise Refused(
            f"complet export {export.prefix} {export.date or ''} in {export.location} is "
            f"incomplete or doubtful ({'; '.join(problems)}): importing it as complete could "
            "make people leave that are in the export. Nothing was applied. Pass --partial to "
            "import what is there without inferring any removal."
        )
    return "complet"


def _applied_already(
    connection: Connection, scope: Scope, export: AafExport, mode: Mode
) -> str | None:
    """None when ``export`` may be applied to ``scope``: no later export was applied to it
    (the last one applied again changes nothing). An export older than the last one applied:
    why it is skipped, if it was applied already (a folder that keeps the previous nights'
    deliveries); else ``Refused``.

    Exports are ordered by date, a Complet (or partial) before a Delta of the same date.
    """
    issued = export.issued
    if issued is None:
        return None
    table = ImportRun.__table__  # type: ignore[attr-defined]
    later = connection.execute(
        select(table.c.export_date, table.c.mode, table.c.started_at)
        .where(
            table.c.scope == scope.key,
            table.c.outcome == RunOutcome.APPLIED.value,
            table.c.export_date >= issued,
        )
        .order_by(table.c.export_date, table.c.started_at)
    ).all()
    place = (issued, _rank(mode))
    newer = [row for row in later if (row[0], _rank(row[1])) > place]
    if not newer:
        return None  # the newest export (applied again, it changes nothing), or a later one
    date, applied_mode, started_at = max(newer, key=lambda row: (row[0], _rank(row[1]), row[2]))
    last = f"the {applied_mode} export of {date:%Y%m%d} ({_when(started_at)})"
    for applied_date, earlier_mode, earlier_start in later:
        if (applied_date, _rank(earlier_mode)) == place:
            return (
                f"applied to scope {scope.key} already ({_when(earlier_start)}), before {last}; "
                "applied again, it would undo what the later exports changed (--allow-older "
                "applies it)"
            )
    raise Refused(
        f"{_named(export)} is older than {last}, applied to scope {scope.key}: applied now, it "
        "would undo what the later exports changed. Nothing was applied. Import a newer "
        "Complet to catch up, or pass --allow-older if this is intended."
    )


def _still_newest(scope: Scope, export: AafExport, mode: Mode) -> Callable[[Connection], None]:
    """The check, inside the run's transaction (its scope held), that no later export was
    applied to ``scope`` since the job looked (another job, in between)."""

    def check(connection: Connection) -> None:
        skipped = _applied_already(connection, scope, export, mode)
        if skipped is not None:
            raise Refused(f"{_named(export)} was {skipped}. Nothing was applied.")

    return check


def _rank(mode: str) -> int:
    """A Complet (or partial) comes before a Delta of the same date."""
    return 1 if mode == "delta" else 0


def _named(export: AafExport) -> str:
    return f"{export.mode} export {export.prefix} {export.date or ''}".rstrip()


def _when(moment: dt.datetime) -> str:
    return f"run of {moment:%Y-%m-%d %H:%M} UTC"


def _known_structures(engine: Engine, scope: Scope) -> dict[str, str]:
    """Structure join key -> UAI already in the store, for deltas without EtabEducNat."""
    with engine.connect() as connection:
        table = Structure.__table__  # type: ignore[attr-defined]
        rows = connection.execute(
            select(table.c.source_key, table.c.uai).where(table.c.scope == scope.key)
        )
        return {key: uai for key, uai in rows if uai}


def _observed(items: Iterable[StreamItem], listener: ItemListener | None) -> Iterator[StreamItem]:
    if listener is None:
        yield from items
        return
    for item in items:
        listener(item)
        yield item


def import_aaf(
    engine: Engine,
    settings: Settings,
    paths: Sequence[Path],
    *,
    academie: str | None = None,
    partial: bool = False,
    dry_run: bool = False,
    allow_mass_removal: bool = False,
    allow_older: bool = False,
    on_export: ExportListener | None = None,
    on_item: ItemListener | None = None,
    collect: list[ExportRun] | None = None,
    stop: Stop | None = None,
) -> list[ExportRun]:
    """Plan ``paths`` and apply each export; raises on the first refused or malformed one.

    ``collect`` receives each run as it starts, so a caller still has the earlier runs (and
    the failing one, with its report) when an exception stops the job. ``stop``, once asked,
    stops the job before the next export or at the next safe point of the current run
    (:class:`~annuaire.sync.Interrupted`: that run is recorded as failed, nothing of it
    applied).
    """
    exports = plan(paths, max_member_bytes=settings.aaf_max_member_mb << 20)
    if not exports:
        raise BadInput(
            f"no AAF file found in {', '.join(str(p) for p in paths)}: an export's files are "
            "named <prefix>_<Complet|Delta>_<YYYYMMDD>_<Category>_<NNNN>.xml, loose or in a "
            ".zip or .tgz. Check that the delivery arrived and that this is its folder."
        )
    runs: list[ExportRun] = [] if collect is None else collect
    # A dry run writes nothing, the register's fiche versions and its key file included: it
    # only checks the register as a real run would.
    registre = None if dry_run else open_registre(settings, engine)
    if registre is None:
        registre_config(settings)
    #: Scope -> the export a dry run computed for it (and did not apply).
    computed: dict[str, AafExport] = {}
    for export in exports:
        if stop is not None:
            stop.check()
        code, note = academie_of(export, academie)
        scope = Scope("aaf", academie=code, uai=export.uai, degree=export.degree)
        files = [f.path for f in export.files]
        notes = [note] if note else []
        if export.issued is None and export.date:
            notes.append(
                f"{export.date!r} in the file names is not a date (YYYYMMDD), and no header "
                "dates the export: it is not checked against the exports applied before"
            )
        mode: Mode = "complet"
        try:
            mode = _mode_of(export, partial)
            skipped = None
            if not allow_older:
                with engine.connect() as connection:
                    skipped = _applied_already(connection, scope, export, mode)
        except Refused as exc:
            refused = RunReport(uuid.uuid4(), scope, mode, files, export_date=export.issued)
            refused.outcome, refused.message = RunOutcome.REFUSED, str(exc)
            if not dry_run:
                record_refused(engine, refused, str(exc), settings=settings, registre=registre)
            runs.append(ExportRun(export, scope, mode, ReadStats(), refused, notes))
            raise
        if skipped is not None:
            runs.append(ExportRun(export, scope, mode, ReadStats(), notes=notes, skipped=skipped))
            continue
        if dry_run and (before := computed.get(scope.key)) is not None:
            # Computed against the store without the export before it, its figures would be
            # none of what the real job does.
            runs.append(
                ExportRun(
                    export,
                    scope,
                    mode,
                    ReadStats(),
                    notes=notes,
                    not_computed=f"it applies on top of {_named(before)}, which a dry run does "
                    "not apply (import that one first, or run the job for real)",
                )
            )
            continue
        computed[scope.key] = export
        known = _known_structures(engine, scope) if mode != "complet" else None
        reader = AafReader(export, known_structures=known)
        run = ExportRun(export, scope, mode, reader.stats, notes=notes)
        runs.append(run)
        if on_export is not None:
            on_export(export, scope, mode)
        run.report = RunReport(uuid.uuid4(), scope, mode, files, export_date=export.issued)
        stream = reader.stream()
        try:
            apply_run(
                engine,
                scope,
                _observed(stream, on_item),
                mode=mode,
                settings=settings,
                files=files,
                allow_mass_removal=allow_mass_removal,
                dry_run=dry_run,
                report=run.report,
                registre=registre,
                stop=stop,
                guard=None if allow_older else _still_newest(scope, export, mode),
            )
        finally:
            stream.close()  # however the run ended: its parsing worker stops now, not at exit
            run.stats = reader.stats
    return runs
