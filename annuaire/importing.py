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
  removal at all.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine, select

from annuaire.errors import BadInput, Refused
from annuaire.registre.runtime import open_registre
from annuaire.schema import RunOutcome, StreamItem, Structure, academie_code
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
    exports = plan(paths)
    if not exports:
        raise BadInput(f"no AAF file found in {', '.join(str(p) for p in paths)}")
    runs: list[ExportRun] = [] if collect is None else collect
    registre = open_registre(settings, engine)
    for export in exports:
        if stop is not None:
            stop.check()
        code, note = academie_of(export, academie)
        scope = Scope("aaf", academie=code, uai=export.uai, degree=export.degree)
        files = [f.path for f in export.files]
        try:
            mode = _mode_of(export, partial)
        except Refused as exc:
            refused = RunReport(uuid.uuid4(), scope, "complet", files)
            refused.outcome, refused.message = RunOutcome.REFUSED, str(exc)
            if not dry_run:
                record_refused(engine, refused, str(exc), settings=settings, registre=registre)
            runs.append(
                ExportRun(export, scope, "complet", ReadStats(), refused, [note] if note else [])
            )
            raise
        known = _known_structures(engine, scope) if mode != "complet" else None
        reader = AafReader(export, known_structures=known)
        run = ExportRun(export, scope, mode, reader.stats, notes=[note] if note else [])
        runs.append(run)
        if on_export is not None:
            on_export(export, scope, mode)
        run.report = RunReport(uuid.uuid4(), scope, mode, files)
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
            )
        finally:
            stream.close()  # however the run ended: its parsing worker stops now, not at exit
            run.stats = reader.stats
    return runs
