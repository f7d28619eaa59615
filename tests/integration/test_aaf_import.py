"""The AAF import end to end (files -> connectors.aaf -> sync engine -> store), on both backends.

Expected figures are derived from the inputs: COUNTS.md for the third-party samples, and an
independent lxml reading of the XML (``import_support.read_requests``) for the rest.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy import select

from annuaire.errors import BadInput, Refused
from annuaire.importing import ExportRun, import_aaf
from annuaire.schema import EntityKind, ImportRun, Status
from annuaire.settings import Settings
from annuaire.store import changes_after, make_engine, structures_text
from annuaire.store.migrate import upgrade
from annuaire.sync import hub_id
from connectors.aaf import _context as aaf_context
from connectors.aaf import _feed as feed
from connectors.aaf import legal_flag, parse_relation, rank_semantics
from connectors.sample import generate_academie, generate_delta
from tests._personal_data_guard import record_output
from tests.conftest import PROJECT_ROOT, Store
from tests.integration.import_support import (
    JOIN_ID,
    PERSON_CATEGORIES,
    Request,
    aaf_dir,
    aaf_files,
    by_category,
    by_id,
    by_key,
    category_files,
    drop_requests,
    external_ids,
    malformed_lines,
    read_requests,
    requests_of,
    rows,
    set_totals,
    signature,
    snapshot,
)

PERSON = EntityKind.PERSON
STRUCTURE = EntityKind.STRUCTURE
ROLE = EntityKind.ROLE
ENROLLMENT = EntityKind.ENROLLMENT
GUARDIANSHIP = EntityKind.GUARDIANSHIP
CLASS = EntityKind.CLASS
GROUP = EntityKind.GROUP
LEVEL = EntityKind.LEVEL
SUBJECT = EntityKind.SUBJECT
ACTIVE = Status.ACTIVE.value
LEAVING = Status.TOBEDELETED.value
NONE_CODES = ("", "-")


def run_import(store: Store, paths: Sequence[Path], **options: Any) -> list[ExportRun]:
    runs = import_aaf(store.engine, store.settings, list(paths), **options)
    assert runs and all(r.report is not None and r.report.outcome == "applied" for r in runs)
    return runs


def import_runs(store: Store) -> list[Any]:
    """The import_run rows (every attempt the engine recorded)."""
    table = ImportRun.__table__  # type: ignore[attr-defined]
    with store.engine.connect() as connection:
        return list(connection.execute(select(table)))


def report_of(run: ExportRun) -> Any:
    assert run.report is not None
    return run.report


def total(runs: Iterable[ExportRun], kind: EntityKind, what: str) -> int:
    return sum(getattr(report_of(r).counts[kind], what) for r in runs)


def parse_day(value: str | None) -> dt.date | None:
    """``dd/MM/yyyy`` -> date; empty or impossible dates are left empty (connector README)."""
    if not value:
        return None
    try:
        return dt.datetime.strptime(value, "%d/%m/%Y").date()
    except ValueError:
        return None


def person_fields(request: Request) -> dict[str, Any]:
    """What the store should say of a person, from its request (2D or 1D vocabulary)."""
    return {
        "usage_name": request.first("sn") or request.first("ENTPersonNom"),
        "first_name": request.first("givenName") or request.first("ENTPersonPrenom"),
        "birth_name": request.first("ENTPersonNomPatro"),
        "birth_date": parse_day(request.first("ENTPersonDateNaissance")),
    }


def stored_fields(row: Any) -> dict[str, Any]:
    return {name: getattr(row, name) for name in ("usage_name", "first_name", "birth_name")} | {
        "birth_date": row.birth_date
    }


def join_key(request: Request) -> str:
    """The documented rule: the external id is ENTPersonJointure, else the request id."""
    return request.first("ENTPersonJointure") or request.id


def guardian_links(pupil: Request) -> list[list[str]]:
    """Well-formed ``ENTElevePersRelEleve`` values of a pupil, split in their 6 fields."""
    links = []
    for value in pupil.attrs.get("ENTElevePersRelEleve", []):
        fields = value.split("$")
        if len(fields) == 6 and fields[0]:
            links.append(fields)
    return links


def carried_by(store: Store, person_id: uuid.UUID) -> list[tuple[EntityKind, Any]]:
    """The roles, enrollments and guardianships (as pupil) of one person."""
    found: list[tuple[EntityKind, Any]] = []
    for kind, column in (
        (ROLE, "person_id"),
        (ENROLLMENT, "person_id"),
        (GUARDIANSHIP, "pupil_id"),
    ):
        found.extend(
            (kind, row) for row in rows(store.engine, kind) if getattr(row, column) == person_id
        )
    return found


# =============================================================================================
# 1. Every AAF sample set imports and the store holds what COUNTS.md says
# =============================================================================================

#: What to import for each set of COUNTS.md's "Totals per set" (paths under samples/aaf).
#: Every one of them is an incomplete Complet on purpose (missing chunk or category, or no
#: mode in the file names), so it needs ``partial=True``. Malformed files are left out here
#: (they are the subject of section 2): eole-negative/badaaf, laclasse-unit's EtabEducNat.
SAMPLE_SETS: dict[str, list[str]] = {
    "besancon-1d": ["besancon-1d"],
    "duplicates": ["duplicates"],
    "entcore-2020": ["entcore-2020"],
    "eole-mini": ["eole-mini"],
    "eole-negative": ["eole-negative/personnels_sans_date.xml", "eole-negative/emptyaaf"],
    "laclasse-unit": ["laclasse-unit/file_Eleve_test.xml"],
    "men-2013-full-chunk": ["men-2013-full-chunk"],
    "men-2013-complet": ["men-2013-complet"],
}
#: A Delta whose one well-formed file is checked by ``test_men_2013_delta_relatives_file``.
DELTA_SETS = {"men-2013-delta-malformed"}
#: Left out of the totals by COUNTS.md (alternative scenarios), tested on their own below.
SCENARIO_SETS = {"eole-delta-cases", "entcore-2024-positions"}


def test_every_sample_set_is_covered() -> None:
    folders = {p.name for p in aaf_dir().iterdir() if p.is_dir()}
    assert set(set_totals()) == set(SAMPLE_SETS) | DELTA_SETS
    assert folders == set(SAMPLE_SETS) | DELTA_SETS | SCENARIO_SETS


def check_sample_store(store: Store, name: str, paths: list[Path], runs: list[ExportRun]) -> None:
    """The store after a partial import of one sample set, against COUNTS.md and the XML."""
    totals = set_totals()[name]
    requests = requests_of(*paths)
    grouped = by_category(requests)
    # The independent reading agrees with COUNTS.md, so the ids below are the documented ones.
    for category, expected in totals.items():
        found = grouped.get(category, [])
        ops = Counter(r.op for r in found)
        assert (ops["add"], ops["modify"], ops["delete"], len({r.id for r in found})) == (
            expected.add,
            expected.modify,
            expected.delete,
            expected.distinct,
        ), category
    assert set(grouped) == set(totals)

    scopes = {r.scope.key for r in runs}
    engine = store.engine
    persons = [p for p in rows(engine, PERSON) if p.scope in scopes]
    join_ids = external_ids(engine, JOIN_ID)
    category_of_file: dict[str, str] = {}
    for request in requests:
        category_of_file.setdefault(request.file.name, request.category)

    # Persons per category: pupils = Eleve, guardians = PersRelEleve, staff = PersEducNat.
    per_category = Counter(category_of_file[Path(p.source_file).name] for p in persons)
    expected_persons = {c: totals[c].distinct for c in PERSON_CATEGORIES if c in totals}
    assert dict(per_category) == expected_persons
    assert all(len(join_ids.get(p.id, [])) == 1 for p in persons)

    # Ids vs join keys: the key is identifier/id, the typed external id is ENTPersonJointure.
    person_requests = {r.id: r for c in PERSON_CATEGORIES for r in grouped.get(c, [])}
    assert {p.source_key for p in persons} == set(person_requests)
    for person in persons:
        request = person_requests[person.source_key]
        assert join_ids[person.id] == [join_key(request)]
        assert stored_fields(person) == person_fields(request), person.source_key
        assert person.status == ACTIVE and person.leaving_since is None

    structures = [s for s in rows(engine, STRUCTURE) if s.scope in scopes]
    assert len(structures) == (totals["EtabEducNat"].distinct if "EtabEducNat" in totals else 0)
    assert {s.source_key for s in structures} == {r.id for r in grouped.get("EtabEducNat", [])}
    subjects = [s for s in rows(engine, SUBJECT) if s.scope in scopes]
    assert len(subjects) == (totals["MatEducNat"].distinct if "MatEducNat" in totals else 0)
    mefs = [lv for lv in rows(engine, LEVEL) if lv.scope in scopes and lv.kind == "mef"]
    assert len(mefs) == (totals["MefEducNat"].distinct if "MefEducNat" in totals else 0)
    assert {m.code for m in mefs} == {r.id for r in grouped.get("MefEducNat", [])}

    # Pupils: one pupil role in their attachment structure.
    by_hub = {p.id: p for p in persons}
    pupil_roles = Counter(
        (by_hub[r.person_id].source_key, r.structure_id)
        for r in rows(engine, ROLE)
        if r.scope in scopes and r.role == "pupil"
    )
    scope_of = {p.source_key: p.scope for p in persons}
    for pupil in grouped.get("Eleve", []):
        attachment = pupil.first("ENTPersonStructRattach")
        if attachment:
            structure_id = hub_id(scope_of[pupil.id], STRUCTURE, attachment)
            assert pupil_roles[(pupil.id, structure_id)] == 1

    # Guardianships: built from the pupil side. The sets are imported as partial: a link whose
    # guardian is not a PersRelEleve record of the set is kept all the same (the guardian may be
    # stored, or in what the delivery lacks), and the sync engine reports it as dangling. A
    # pupil named as their own related person is no link, but for the relation "the pupil
    # themself" (7, 70): entcore-2020's pupil names their own id as their mother.
    links = {
        (f[0], p.id)
        for p in grouped.get("Eleve", [])
        for f in guardian_links(p)
        if f[0] != p.id or f[1] in ("7", "70")
    }
    guardianships = [g for g in rows(engine, GUARDIANSHIP) if g.scope in scopes]
    stored = {(g.guardian_id, by_hub[g.pupil_id].source_key) for g in guardianships}
    assert stored == {(hub_id(scope_of[p], PERSON, g), p) for g, p in links}
    assert sum(r.stats.dropped_guardianships for r in runs) == 0
    # A link may name a person of the set who is not a PersRelEleve record.
    dangling = {link for link in links if link[0] not in person_requests}
    assert sum(g.guardian_id not in by_hub for g in guardianships) == len(dangling)
    reported = [w.message for r in runs for w in report_of(r).warnings]
    if dangling and len(reported) < store.settings.warnings_kept:
        assert any("through guardian_id to a person the store" in m for m in reported)

    # Nothing leaves in a partial import; the report counted what the store holds.
    assert sum(report_of(r).leaving for r in runs) == 0
    assert total(runs, PERSON, "created") == len(persons)
    assert total(runs, STRUCTURE, "created") == len(structures)


def import_sample_set(store: Store, name: str) -> tuple[list[Path], list[ExportRun]]:
    paths = [aaf_dir(*p.split("/")) for p in SAMPLE_SETS[name]]
    empty = snapshot(store.engine)
    with pytest.raises(Refused, match="--partial"):
        import_aaf(store.engine, store.settings, paths)  # incomplete on purpose
    assert snapshot(store.engine) == empty
    runs = run_import(store, paths, partial=True)
    assert {r.mode for r in runs} == {"partial"}
    return paths, runs


@pytest.mark.parametrize("name", [n for n in SAMPLE_SETS if n != "men-2013-complet"])
def test_sample_set_imports_as_counts_md_says(store: Store, name: str) -> None:
    paths, runs = import_sample_set(store, name)
    check_sample_store(store, name, paths, runs)
    # Refused again once the store holds the set: still untouched.
    before = snapshot(store.engine)
    with pytest.raises(Refused):
        import_aaf(store.engine, store.settings, paths)
    assert snapshot(store.engine) == before
    if len(requests_of(*paths)) > 1000:
        return  # idempotence of the big sets costs a second full run; the small ones check it
    again = run_import(store, paths, partial=True)
    counts = [c for r in again for c in report_of(r).counts.values()]
    assert sum(c.created + c.updated + c.leaving + c.returning for c in counts) == 0
    assert snapshot(store.engine) == before


@pytest.mark.slow
def test_men_2013_complet(store: Store) -> None:
    paths, runs = import_sample_set(store, "men-2013-complet")
    check_sample_store(store, "men-2013-complet", paths, runs)
    before = snapshot(store.engine)
    with pytest.raises(Refused, match=r"Eleve: chunk 0000 missing"):
        import_aaf(store.engine, store.settings, paths)
    assert snapshot(store.engine) == before


def test_men_2013_delta_relatives_file(store: Store) -> None:
    """The one well-formed file of men-2013-delta-malformed: 2 add, 2 modify, 2 delete.

    None of its ids is in men-2013-complet, so it is applied to an empty store (the same
    outcome as over the complet, without re-importing 11,000 persons): adds are created,
    modifies of unknown ids are adds with a warning, deletes of unknown ids are warnings.
    """
    delta_file = next(aaf_dir("men-2013-delta-malformed").glob("*PersRelEleve_0000.xml"))
    totals = set_totals()["men-2013-delta-malformed"]["PersRelEleve"]
    delta = read_requests(delta_file)
    ops = Counter(r.op for r in delta)
    assert (ops["add"], ops["modify"], ops["delete"]) == (totals.add, totals.modify, totals.delete)
    assert len({r.id for r in delta}) == totals.distinct
    complet_ids = {r.id for r in requests_of(aaf_dir("men-2013-complet"))}
    assert not complet_ids & {r.id for r in delta}
    (run,) = run_import(store, [delta_file])
    report = report_of(run)
    assert run.mode == "delta"
    assert report.counts[PERSON].created == totals.add + totals.modify
    assert report.warning_codes["modify-unknown"] == totals.modify
    assert report.warning_codes["delete-unknown"] == totals.delete
    assert report.leaving == 0
    persons = by_key(store.engine, PERSON, run.scope.key)
    assert set(persons) == {r.id for r in delta if r.op != "delete"}
    for request in delta:
        if request.op != "delete":
            assert stored_fields(persons[request.id]) == person_fields(request)
            assert persons[request.id].status == ACTIVE


def test_entcore_positions_before_then_after(store: Store) -> None:
    """A Complet re-imported over an earlier one: changed function, new person, no removal."""
    before_dir, after_dir = (
        aaf_dir("entcore-2024-positions", "before"),
        aaf_dir("entcore-2024-positions", "after"),
    )
    (first,) = run_import(store, [before_dir], partial=True)
    (second,) = run_import(store, [after_dir], partial=True)
    assert first.scope.key == second.scope.key == "aaf:013:2d"  # codeAcademieExport="13"
    scope = first.scope.key
    staff = [r for r in requests_of(after_dir) if r.category == "PersEducNat"]
    before_ids = {r.id for r in requests_of(before_dir) if r.category == "PersEducNat"}
    persons = by_key(store.engine, PERSON, scope)
    assert set(persons) == before_ids | {r.id for r in staff}
    assert all(p.status == ACTIVE for p in persons.values())
    assert report_of(second).counts[PERSON].created == len({r.id for r in staff} - before_ids)
    structures = by_id(store.engine, STRUCTURE)
    for request in staff:
        expected = set()
        for value in request.attrs.get("ENTPersonFonctions", []):
            s, fcode, flabel, dcode, dlabel = value.split("$")
            expected.add(
                (
                    s,
                    None if fcode in NONE_CODES else fcode,
                    flabel or None,
                    None if dcode in NONE_CODES else dcode,
                    dlabel or None,
                )
            )
        found = {
            (
                structures[r.structure_id].source_key,
                r.function_code,
                r.function_label,
                r.discipline_code,
                r.discipline_label,
            )
            for r in rows(store.engine, ROLE, scope)
            if r.person_id == persons[request.id].id and r.status == ACTIVE
        }
        assert found == expected, request.id


# =============================================================================================
# 2. Malformed sets are rejected cleanly
# =============================================================================================

MALFORMED = {
    # set folder: the file the import must stop at (the first malformed one in reading order)
    "men-2013-delta-malformed": "FULL_ENTTSSERVICES_Delta_20130122_Eleve_0000.xml",
    "eole-negative/badaaf": "test_Eleve_.xml",
    "laclasse-unit": "file_EtabEducNat_test.xml",
}
PINNED = "T99"  # académie pinned so that the good and the bad imports share one scope


@pytest.mark.parametrize("worker", [False, True], ids=["in-process", "worker"])
@pytest.mark.parametrize("folder", list(MALFORMED))
def test_malformed_set_is_rejected_and_changes_nothing(
    store: Store, folder: str, worker: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Parsing in a worker process (large inputs) or in-process: the same error, nothing applied.
    monkeypatch.setattr(feed, "parallel_by_default", lambda files: worker)
    bad_name = MALFORMED[folder]
    bad_path = aaf_dir(*folder.split("/"))
    line = malformed_lines()[f"aaf/{folder}/{bad_name}"]
    good = run_import(store, [aaf_dir("eole-mini")], partial=True, academie=PINNED)
    before = snapshot(store.engine)
    assert sum(len(v) for v in before.values()) > 0
    with pytest.raises(BadInput) as caught:
        import_aaf(store.engine, store.settings, [bad_path], partial=True, academie=PINNED)
    error = caught.value
    assert error.file is not None and Path(error.file).name == bad_name
    assert error.line == line
    assert bad_name in str(error) and f"line {line}" in str(error)
    assert snapshot(store.engine) == before
    outcomes = import_runs(store)
    assert [r.outcome for r in outcomes].count("applied") == len(good)
    (failed,) = [r for r in outcomes if r.outcome == "failed"]
    assert failed.scope == good[0].scope.key and bad_name in (failed.message or "")


def test_refused_incomplete_complet_is_recorded_as_an_import_run(store: Store) -> None:
    with pytest.raises(Refused):
        import_aaf(store.engine, store.settings, [aaf_dir("eole-mini")])
    assert [r.outcome for r in import_runs(store)] == ["refused"]


# -- through the CLI (SQLite file) -------------------------------------------------------------


def cli(
    database_url: str, cwd: Path, *args: str, columns: int = 400
) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.update(
        AIGUILLAGE_DATABASE_URL=database_url,
        PYTHONPATH=str(PROJECT_ROOT),
        COLUMNS=str(columns),
        NO_COLOR="1",
        TERM="dumb",
    )
    done = subprocess.run(
        [sys.executable, "-m", "annuaire", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    record_output(f"aiguillage {args[0]} stderr (tests/integration)", done.stderr)
    return done


def test_the_cli_prints_paths_and_scopes_as_they_are(tmp_path: Path) -> None:
    """What the command prints quotes paths and scopes: ``[/]`` in a path is no closing tag
    (which stopped the error message with a traceback), ``aaf:X:2d`` no emoji code."""
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    assert cli(url, tmp_path, "db", "upgrade").returncode == 0
    generated = tmp_path / "gen[/]erated [x]"
    generate_academie(generated, pupils=20, seed=5)
    done = cli(url, tmp_path, "import", "aaf", str(generated), "--academie", "X")
    assert done.returncode == 0, done.stderr
    assert "-> scope aaf:X:2d (complet" in done.stderr
    missing = cli(url, tmp_path, "import", "aaf", str(tmp_path / "no[/]where [x]"))
    assert missing.returncode == 2, missing.stderr
    assert f"bad input: {tmp_path / 'no[/]where [x]'}: does not exist" in missing.stderr


def test_the_cli_names_the_gaps_of_a_delta_and_an_unreadable_chunk(tmp_path: Path) -> None:
    """A Delta is applied whatever its gaps (it implies no removal), but the operator is told;
    an empty chunk is bad input naming it, and a syntax error gives its position once."""
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    assert cli(url, tmp_path, "db", "upgrade").returncode == 0
    base, delta = tmp_path / "base", tmp_path / "delta"
    generate_academie(base, pupils=40, seed=5)
    generate_delta(base, delta, seed=6)
    assert cli(url, tmp_path, "import", "aaf", str(base)).returncode == 0
    (first,) = delta.glob("*_Eleve_0000.xml")
    first.rename(first.with_name(first.name.replace("_0000", "_0001")))
    done = cli(url, tmp_path, "import", "aaf", str(delta))
    assert done.returncode == 0, done.stderr
    assert "gap: Eleve: chunk 0000 missing (have 0001)" in done.stderr
    empty = tmp_path / "empty"
    shutil.copytree(base, empty)
    (chunk,) = empty.glob("*_Eleve_0000.xml")
    chunk.write_bytes(b"")
    refused = cli(url, tmp_path, "import", "aaf", str(empty))
    assert refused.returncode == 2, refused.stderr
    assert f"bad input: {chunk}: named like an AAF Eleve file" in " ".join(refused.stderr.split())
    broken = tmp_path / "broken"
    shutil.copytree(base, broken)
    (chunk,) = broken.glob("*_Eleve_0000.xml")
    chunk.write_text(chunk.read_text().replace("</identifier>", "</identifer>", 1))
    # The Complet, older than the Delta applied: read (and found broken) only when asked for.
    skipped = cli(url, tmp_path, "import", "aaf", str(broken))
    assert skipped.returncode == 0, skipped.stderr
    assert "skipped, applied to scope aaf:099:2d already" in " ".join(skipped.stdout.split())
    listed = cli(url, tmp_path, "runs").stdout  # each run with the date of its export
    assert re.search(r"aaf:099:2d[\s│]+delta[\s│]+2026-09-16[\s│]+applied", listed), listed
    assert re.search(r"aaf:099:2d[\s│]+complet[\s│]+2026-09-15[\s│]+applied", listed), listed
    # What a pipe or `make demo` shows (80 columns): the scope and the date whole, nothing cut.
    narrow = cli(url, tmp_path, "runs", columns=80).stdout
    assert re.search(r"aaf:099:2d[\s│]+delta[\s│]+2026-09-16[\s│]+applied", narrow), narrow
    assert "…" not in narrow and max(map(len, narrow.splitlines())) <= 80, narrow
    failed = cli(url, tmp_path, "import", "aaf", "--allow-older", str(broken))
    assert failed.returncode == 2, failed.stderr
    assert len(re.findall(r"line \d+, column \d+", failed.stderr)) == 1, failed.stderr
    said = " ".join(failed.stderr.split())  # and what to do
    assert "Nothing of export ENT_SANDBOX complet 20260915 was applied: have the file" in said
    assert "then run the command again" in said


@pytest.mark.slow
def test_cli_exit_codes_and_report(tmp_path: Path) -> None:
    database = tmp_path / "cli.db"
    url = f"sqlite:///{database}"
    upgraded = cli(url, tmp_path, "db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr

    generated = tmp_path / "generated"
    generate_academie(generated, pupils=40, seed=5)
    report_path = tmp_path / "run.json"
    good = cli(url, tmp_path, "import", "aaf", str(generated), "--report", str(report_path))
    assert good.returncode == 0, good.stderr
    report = json.loads(report_path.read_text(encoding="utf-8"))
    engine = make_engine(Settings(database_url=url, environment="test"))
    try:
        before = snapshot(engine)
        assert report["exit_code"] == 0 and report["error"] is None
        (run,) = report["runs"]
        assert run["outcome"] == "applied" and run["mode"] == "complet"
        assert set(run["counts"]) <= {kind.value for kind in EntityKind}
        for kind in EntityKind:
            counts = run["counts"].get(kind.value, {})
            assert counts.get("created", 0) == len(rows(engine, kind, run["scope"])) > 0, kind
            assert sum(n for what, n in counts.items() if what != "created") == 0

        incomplete = cli(url, tmp_path, "import", "aaf", str(aaf_dir("eole-mini")))
        assert incomplete.returncode == 1, incomplete.stderr
        assert "refused" in incomplete.stderr and "--partial" in incomplete.stderr

        bad = cli(url, tmp_path, "import", "aaf", str(aaf_dir("men-2013-delta-malformed")))
        assert bad.returncode == 2, bad.stderr
        bad_name = MALFORMED["men-2013-delta-malformed"]
        assert bad_name in bad.stderr
        line = malformed_lines()[f"aaf/men-2013-delta-malformed/{bad_name}"]
        assert f"line {line}" in bad.stderr
        assert snapshot(engine) == before
    finally:
        engine.dispose()


# =============================================================================================
# 3. eole-delta-cases: the semantics of each request type
# =============================================================================================


def cases(*parts: str) -> Path:
    return aaf_dir("eole-delta-cases", *parts)


def one_request(folder: Path, category: str) -> Request:
    (request,) = [r for r in requests_of(folder) if r.category == category]
    return request


def steps(store: Store, *folders: Path, allow_mass_removal: bool = True) -> list[list[ExportRun]]:
    """Import each folder in turn: the scenario's ``complet`` first, then its ``delta``.

    The Complet files of these scenarios hold one or two records of one category, so they are
    partial; and any delta removal in a one-person scope trips the 10 % guard, hence
    ``allow_mass_removal`` (checked on its own in the pupil delete case).
    """
    return [
        run_import(store, [f], partial=True, allow_mass_removal=allow_mass_removal) for f in folders
    ]


def person(store: Store, key: str) -> Any:
    (row,) = [p for p in rows(store.engine, PERSON) if p.source_key == key]
    return row


def structure_keys(store: Store) -> dict[Any, str]:
    return {s.id: s.source_key for s in rows(store.engine, STRUCTURE)}


def roles_of(store: Store, person_id: uuid.UUID) -> dict[tuple[str, str, str | None], str]:
    """(structure key, role, discipline) -> status of one person's roles.

    The structure is read from the role's key (``<person>|<structure>|<role>|...``, connector
    README) and checked against the row's structure_id through the stable hub id, since the
    structure itself may be unknown to the store.
    """
    found = {}
    for row in rows(store.engine, ROLE):
        if row.person_id == person_id:
            structure = row.source_key.split("|")[1]
            assert row.structure_id == hub_id(row.scope, STRUCTURE, structure)
            found[(structure, row.role, row.discipline_code)] = row.status
    return found


def pupil_enrollments(store: Store, person_id: uuid.UUID) -> dict[tuple[str, str], str]:
    """(structure key, class code) -> status of a pupil's class enrollments (by hub id)."""
    found = {}
    for row in rows(store.engine, ENROLLMENT):
        if row.person_id != person_id or row.class_id is None:
            continue
        structure_code = row.source_key.split("|")[2]
        structure, code = structure_code.split("$", 1)
        assert row.class_id == hub_id(row.scope, CLASS, f"{structure}${code}")
        assert row.structure_id == hub_id(row.scope, STRUCTURE, structure)
        found[(structure, code)] = row.status
    return found


def classes_of(request: Request) -> set[tuple[str, str]]:
    return {tuple(v.split("$", 1)) for v in request.attrs.get("ENTEleveClasses", [])}  # type: ignore[misc]


def test_eole_delta_add_creates_the_pupil(store: Store) -> None:
    folder = cases("eleves", "addRequest")
    request = one_request(folder, "Eleve")
    assert request.op == "add"
    ((run,),) = steps(store, folder)
    report = report_of(run)
    assert run.mode == "delta" and report.counts[PERSON].created == 1
    assert "modify-unknown" not in report.warning_codes
    row = person(store, request.id)
    assert row.status == ACTIVE and stored_fields(row) == person_fields(request)
    assert pupil_enrollments(store, row.id) == dict.fromkeys(classes_of(request), ACTIVE)
    attachment = request.first("ENTPersonStructRattach")
    assert roles_of(store, row.id) == {(attachment, "pupil", None): ACTIVE}
    # In a Delta a link to a guardian the store may hold is kept (connector README); here the
    # guardians are unknown to the store, which the run reports as dangling references.
    guardians = {g.guardian_id for g in rows(store.engine, GUARDIANSHIP) if g.pupil_id == row.id}
    assert guardians == {hub_id(run.scope.key, PERSON, f[0]) for f in guardian_links(request)}
    assert report.warning_codes["dangling-reference"] >= 1


def test_eole_delta_modify_updates_the_present_pupil(store: Store) -> None:
    complet, delta = (
        cases("eleves", "modifyRequest_CasNormal", "complet"),
        cases("eleves", "modifyRequest_CasNormal", "delta"),
    )
    old, new = one_request(complet, "Eleve"), one_request(delta, "Eleve")
    assert old.id == new.id and new.op == "modify"
    assert person_fields(old) != person_fields(new)
    steps(store, complet)
    row = person(store, old.id)
    assert stored_fields(row) == person_fields(old)
    ((run,),) = steps(store, delta)
    report = report_of(run)
    assert report.counts[PERSON].updated == 1 and report.counts[PERSON].created == 0
    row = person(store, new.id)
    assert row.status == ACTIVE and stored_fields(row) == person_fields(new)
    assert row.birth_name == new.first("ENTPersonNomPatro") != old.first("ENTPersonNomPatro")
    # A modify is a full replacement: the old class and attachment leave, the new ones are in.
    expected = dict.fromkeys(classes_of(old), LEAVING) | dict.fromkeys(classes_of(new), ACTIVE)
    assert pupil_enrollments(store, row.id) == expected
    assert roles_of(store, row.id) == {
        (old.first("ENTPersonStructRattach"), "pupil", None): LEAVING,
        (new.first("ENTPersonStructRattach"), "pupil", None): ACTIVE,
    }


def test_eole_delta_modify_of_a_present_pupil_is_not_reported_as_unknown(store: Store) -> None:
    folder = cases("eleves", "modifyRequest_CasNormal")
    _, (run,) = steps(store, folder / "complet", folder / "delta")
    assert report_of(run).warning_codes.get("modify-unknown", 0) == 0


def test_eole_delta_modify_of_an_absent_pupil_is_an_add_with_a_warning(store: Store) -> None:
    base = cases("eleves", "deleteRequest", "complet")
    folder = cases("eleves", "modifyRequest_CasAnormal")
    request = one_request(folder, "Eleve")
    other = one_request(base, "Eleve")
    assert request.op == "modify" and request.id != other.id
    steps(store, base)
    ((run,),) = steps(store, folder)
    report = report_of(run)
    assert report.counts[PERSON].created == 1
    assert report.warning_codes["modify-unknown"] >= 1
    assert any(
        w.code == "modify-unknown" and f"person {request.id!r}" in w.message
        for w in report.warnings
    )
    row = person(store, request.id)
    assert row.status == ACTIVE and stored_fields(row) == person_fields(request)
    assert person(store, other.id).status == ACTIVE  # a delta never infers removals


def test_eole_delta_delete_makes_the_pupil_and_what_it_carries_leave(store: Store) -> None:
    complet, delta = (
        cases("eleves", "deleteRequest", "complet"),
        cases("eleves", "deleteRequest", "delta"),
    )
    pupil = one_request(complet, "Eleve")
    (deletion,) = requests_of(delta)
    assert deletion.op == "delete" and deletion.id == pupil.id
    ((first,),) = steps(store, complet)
    # Ids vs join keys: this record's id (the key) differs from its ENTPersonJointure.
    row = person(store, pupil.id)
    assert pupil.first("ENTPersonJointure") != pupil.id
    assert external_ids(store.engine, JOIN_ID)[row.id] == [pupil.first("ENTPersonJointure")]
    # The Complet has no PersRelEleve: imported as partial, it keeps the pupil's links to
    # guardians it does not hold (they may be stored), and the engine reports them.
    assert first.stats.dropped_guardianships == 0
    assert report_of(first).counts[GUARDIANSHIP].created == len(guardian_links(pupil)) > 0
    carried = carried_by(store, row.id)
    assert {k for k, _ in carried} == {ROLE, ENROLLMENT, GUARDIANSHIP}

    before = snapshot(store.engine)
    with pytest.raises(Refused, match="allow-mass-removal"):
        import_aaf(store.engine, store.settings, [delta])  # 3 of 3 entities would leave
    assert snapshot(store.engine) == before

    ((run,),) = steps(store, delta)
    report = report_of(run)
    assert report.counts[PERSON].leaving == 1
    assert sum(report.counts[k].leaving for k in (ROLE, ENROLLMENT, GUARDIANSHIP)) == len(carried)
    row = person(store, pupil.id)
    assert row.status == LEAVING and row.leaving_since is not None
    for kind, old in carried:
        (now,) = [r for r in rows(store.engine, kind) if r.id == old.id]  # not deleted
        assert (now.status, now.leaving_since) == (LEAVING, row.leaving_since), kind
    assert external_ids(store.engine, JOIN_ID)[row.id] == [pupil.first("ENTPersonJointure")]


def test_eole_delta_add_of_a_staff_member(store: Store) -> None:
    folder = cases("personnels", "delta", "addRequest")
    request = one_request(folder, "PersEducNat")
    ((run,),) = steps(store, folder)
    assert report_of(run).counts[PERSON].created == 1
    row = person(store, request.id)
    assert row.status == ACTIVE and stored_fields(row) == person_fields(request)
    assert row.email == request.first("mail")
    (function,) = request.attrs["ENTPersonFonctions"]
    structure, code, _label, discipline, _ = function.split("$")
    (role,) = [r for r in rows(store.engine, ROLE) if r.person_id == row.id]
    assert (role.function_code, role.discipline_code, role.status) == (code, discipline, ACTIVE)
    assert role.structure_id == hub_id(run.scope.key, STRUCTURE, structure)


def staff_roles(store: Store, person_id: uuid.UUID) -> dict[tuple[str, str | None], str]:
    """(structure key, discipline code) -> status of a staff member's function roles."""
    found = {}
    for row in rows(store.engine, ROLE):
        if row.person_id == person_id:
            structure = row.source_key.split("|")[1]
            assert row.structure_id == hub_id(row.scope, STRUCTURE, structure)
            found[(structure, row.discipline_code)] = row.status
    return found


def function_keys(request: Request) -> set[tuple[str, str]]:
    return {(v.split("$")[0], v.split("$")[3]) for v in request.attrs.get("ENTPersonFonctions", [])}


def test_eole_delta_modify_of_a_staff_member_replaces_its_functions(store: Store) -> None:
    folder = cases("personnels", "delta", "modifyRequest")
    old, new = (
        one_request(folder / "complet", "PersEducNat"),
        one_request(folder / "delta", "PersEducNat"),
    )
    steps(store, folder / "complet")
    ((run,),) = steps(store, folder / "delta")
    assert report_of(run).counts[PERSON].updated == 1
    row = person(store, new.id)
    assert stored_fields(row) == person_fields(new) != person_fields(old)
    assert row.email == new.first("mail") != old.first("mail")
    gone = function_keys(old) - function_keys(new)
    assert gone
    assert staff_roles(store, row.id) == dict.fromkeys(gone, LEAVING) | dict.fromkeys(
        function_keys(new), ACTIVE
    )


def test_eole_delta_modify_of_an_absent_staff_member_is_an_add(store: Store) -> None:
    folder = cases("personnels", "delta", "modifyRequestCasAnormal")
    present, absent = (
        one_request(folder / "complet", "PersEducNat"),
        one_request(folder / "delta", "PersEducNat"),
    )
    assert present.id != absent.id
    steps(store, folder / "complet")
    ((run,),) = steps(store, folder / "delta")
    report = report_of(run)
    assert report.counts[PERSON].created == 1 and report.counts[PERSON].leaving == 0
    assert any(
        w.code == "modify-unknown" and f"person {absent.id!r}" in w.message for w in report.warnings
    )
    assert person(store, absent.id).status == ACTIVE
    assert stored_fields(person(store, absent.id)) == person_fields(absent)
    assert person(store, present.id).status == ACTIVE


@pytest.mark.parametrize("case", ["deleteRequest", "deleteRequestBis"])
def test_eole_delta_delete_of_a_staff_member(store: Store, case: str) -> None:
    folder = cases("personnels", "delta", case)
    staff = one_request(folder / "complet", "PersEducNat")
    steps(store, folder / "complet")
    row = person(store, staff.id)
    assert staff_roles(store, row.id) == dict.fromkeys(function_keys(staff), ACTIVE)
    ((run,),) = steps(store, folder / "delta")
    assert report_of(run).counts[ROLE].leaving == len(function_keys(staff))
    row = person(store, staff.id)
    assert row.status == LEAVING and row.leaving_since is not None
    assert staff_roles(store, row.id) == dict.fromkeys(function_keys(staff), LEAVING)
    assert {r.leaving_since for r in rows(store.engine, ROLE)} == {row.leaving_since}


def test_eole_delta_add_of_a_guardian(store: Store) -> None:
    base, folder = cases("responsables", "complet"), cases("responsables", "delta", "addRequest")
    relative = one_request(base, "PersRelEleve")
    added = one_request(folder, "PersRelEleve")
    pupil = one_request(folder, "Eleve")
    runs = steps(store, base, folder)
    assert [r.mode for step in runs for r in step] == ["partial", "partial", "delta"]
    assert person(store, added.id).status == ACTIVE
    assert stored_fields(person(store, added.id)) == person_fields(added)
    assert person(store, relative.id).status == ACTIVE
    # The pupil's partial Complet names the guardian the Delta adds: the link is kept though
    # the guardian is not there yet, so that the Delta's add completes it.
    assert added.id in {f[0] for f in guardian_links(pupil)}
    assert runs[1][0].stats.dropped_guardianships == 0
    links = {
        g.guardian_id: g.status
        for g in rows(store.engine, GUARDIANSHIP)
        if g.pupil_id == person(store, pupil.id).id
    }
    assert len(links) == len(guardian_links(pupil))
    assert links[person(store, added.id).id] == ACTIVE


def test_eole_delta_modify_of_a_guardian(store: Store) -> None:
    folder = cases("responsables", "delta", "modifyRequest")
    delta = one_request(folder / "delta", "PersRelEleve")
    (old,) = [r for r in requests_of(folder / "complet") if r.id == delta.id]
    steps(store, folder / "complet")
    ((run,),) = steps(store, folder / "delta")
    assert report_of(run).counts[PERSON].updated == 1
    row = person(store, delta.id)
    assert stored_fields(row) == person_fields(delta) != person_fields(old)
    assert row.phone_home == delta.first("homePhone") != old.first("homePhone")
    assert row.address_lines == [delta.first("ENTPersonAdresse")]
    assert "allée" in row.address_lines[0]  # numeric character reference &#233; decoded


def test_eole_delta_modify_of_an_absent_guardian_is_an_add(store: Store) -> None:
    folder = cases("responsables", "delta", "modifyRequestCasAnormal")
    request = one_request(folder, "PersRelEleve")
    ((run,),) = steps(store, folder)
    report = report_of(run)
    assert report.counts[PERSON].created == 1 and report.warning_codes["modify-unknown"] == 1
    assert stored_fields(person(store, request.id)) == person_fields(request)


def test_eole_delta_delete_of_a_guardian(store: Store) -> None:
    folder = cases("responsables", "delta", "deleteRequest")
    (deletion,) = requests_of(folder / "delta")
    steps(store, folder / "complet")
    assert person(store, deletion.id).status == ACTIVE
    ((run,),) = steps(store, folder / "delta")
    assert report_of(run).counts[PERSON].leaving == 1
    row = person(store, deletion.id)
    assert row.status == LEAVING and row.leaving_since is not None
    assert all(p.status == ACTIVE for p in rows(store.engine, PERSON) if p.id != row.id)


def test_eole_delta_readding_a_structure_updates_it(store: Store) -> None:
    old, new = (
        one_request(cases("etab", "complet"), "EtabEducNat"),
        one_request(cases("etab", "delta"), "EtabEducNat"),
    )
    assert old.id == new.id and new.op == "add"
    steps(store, cases("etab", "complet"))
    ((run,),) = steps(store, cases("etab", "delta"))
    report = report_of(run)
    assert report.counts[STRUCTURE].updated == 1 and report.warning_codes["add-existing"] == 1
    (row,) = rows(store.engine, STRUCTURE)
    assert row.source_key == new.id and row.status == ACTIVE
    changed = {"siret": "ENTStructureSIREN", "city": "l", "phone": "telephoneNumber"}
    for column, attribute in changed.items():
        assert getattr(row, column) == new.first(attribute) != old.first(attribute), column
    assert row.name == new.first("ENTStructureNomCourant") != old.first("ENTStructureNomCourant")


# =============================================================================================
# 4. Complet then complet with people removed; the mass-removal and missing-chunk guards
# =============================================================================================


@pytest.fixture(scope="module")
def academie(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("aaftests-academie") / "a"
    generate_academie(folder, pupils=150, seed=11)
    return folder


@pytest.fixture(scope="module")
def chunked_academie(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("aaftests-chunked") / "a"
    generate_academie(folder, pupils=150, seed=12, chunk_size=40)
    return folder


def without_pupils(source: Path, target: Path, pupils: set[str]) -> Path:
    shutil.copytree(source, target)
    dropped = sum(drop_requests(f, pupils) for f in category_files(target, "Eleve"))
    assert dropped == len(pupils)
    return target


def pupil_ids(folder: Path) -> list[str]:
    return [r.id for r in requests_of(folder) if r.category == "Eleve"]


def leaving_ids(store: Store) -> dict[Any, Any]:
    return {
        row.id: row.leaving_since
        for kind in EntityKind
        for row in rows(store.engine, kind)
        if row.status == LEAVING
    }


def test_complet_without_some_pupils_makes_them_leave_then_return(
    store: Store, academie: Path, tmp_path: Path
) -> None:
    (first,) = run_import(store, [academie])
    assert first.mode == "complet"
    scope = first.scope.key
    state = signature(store.engine)
    removed = set(pupil_ids(academie)[::30])
    assert len(removed) == 5
    persons = by_key(store.engine, PERSON, scope)
    carried = {
        p: carried_by(store, persons[p].id) for p in removed
    }  # their role, enrollments, guardianships
    assert all({k for k, _ in c} == {ROLE, ENROLLMENT, GUARDIANSHIP} for c in carried.values())

    (second,) = run_import(store, [without_pupils(academie, tmp_path / "b", removed)])
    report = report_of(second)
    assert report.counts[PERSON].leaving == len(removed)
    for kind in (ROLE, ENROLLMENT, GUARDIANSHIP):
        assert report.counts[kind].leaving == sum(
            1 for c in carried.values() for k, _ in c if k == kind
        )
    left = leaving_ids(store)
    expected = {persons[p].id for p in removed} | {row.id for c in carried.values() for _, row in c}
    assert set(left) == expected  # exactly them: nothing else leaves, nothing is deleted
    assert len(set(left.values())) == 1 and None not in left.values()
    assert set(signature(store.engine)) == set(state)

    (third,) = run_import(store, [academie])
    report = report_of(third)
    assert report.counts[PERSON].returning == len(removed)
    assert sum(c.returning for c in report.counts.values()) == len(expected)
    assert sum(c.created + c.leaving for c in report.counts.values()) == 0
    assert leaving_ids(store) == {}
    assert all(persons[p].id in by_id(store.engine, PERSON) for p in removed)
    assert all(by_id(store.engine, PERSON)[persons[p].id].leaving_since is None for p in removed)
    assert signature(store.engine) == state


def test_mass_removal_guard(store: Store, academie: Path, tmp_path: Path) -> None:
    (first,) = run_import(store, [academie])
    before = snapshot(store.engine)
    pupils = pupil_ids(academie)
    removed = set(pupils[: len(pupils) * 6 // 10])
    smaller = without_pupils(academie, tmp_path / "b", removed)
    with pytest.raises(Refused, match="allow-mass-removal") as caught:
        import_aaf(store.engine, store.settings, [smaller])
    assert first.scope.key in str(caught.value)
    assert snapshot(store.engine) == before
    assert sorted(r.outcome for r in import_runs(store)) == ["applied", "refused"]

    (run,) = run_import(store, [smaller], allow_mass_removal=True)
    report = report_of(run)
    assert report.leaving > store.settings.mass_removal_threshold * report.active_before
    assert report.counts[PERSON].leaving == len(removed)
    persons = by_key(store.engine, PERSON, first.scope.key)
    assert {k for k, p in persons.items() if p.status == LEAVING} == removed


def test_an_export_older_than_the_last_applied_is_skipped_or_refused(
    store: Store, academie: Path, tmp_path: Path
) -> None:
    """A folder that keeps the previous nights' deliveries gives the Complet again after its
    Delta: applied again, it would undo the Delta (its new pupils would leave). It is skipped;
    an older export never applied is refused; the last one applied is applied again."""
    complet_day = dt.date(2026, 9, 15)  # the generator's default
    newer = tmp_path / "d-newer"
    generate_delta(academie, newer, seed=5, rate=0.05, date=complet_day + dt.timedelta(days=2))
    older = tmp_path / "d-older"
    generate_delta(academie, older, seed=6, date=complet_day + dt.timedelta(days=1))
    run_import(store, [academie])
    run_import(store, [newer])
    state = snapshot(store.engine)  # with the change feed
    newer_day = complet_day + dt.timedelta(days=2)
    assert [r.export_date for r in import_runs(store)] == [complet_day, newer_day]

    skipped, again = import_aaf(store.engine, store.settings, [academie, newer])
    assert skipped.report is None and again.report is not None
    assert skipped.skipped is not None and "already" in skipped.skipped
    assert "delta export of 20260917" in skipped.skipped
    assert again.report.outcome == "applied"  # the last one: applied again, it changes nothing
    assert not any(c.created + c.updated + c.leaving for c in again.report.counts.values())
    assert snapshot(store.engine) == state

    with pytest.raises(Refused, match="older than the delta export of 20260917"):
        import_aaf(store.engine, store.settings, [older])
    assert snapshot(store.engine) == state
    refused = import_runs(store)[-1]
    assert (refused.outcome, refused.export_date) == ("refused", complet_day + dt.timedelta(1))

    (forced,) = run_import(store, [academie], allow_older=True)
    # The Delta's new pupils leave, its deleted ones return: what the operator asked for.
    assert report_of(forced).counts[PERSON].leaving > 0
    assert report_of(forced).counts[PERSON].returning > 0


def test_a_dry_run_gives_the_figures_of_the_real_run_or_none(
    store: Store, academie: Path, tmp_path: Path
) -> None:
    """A dry run of a folder holding a Complet and the Deltas after it applies none of them,
    so it cannot compute a Delta as the real job does (on top of the Complet): such an export
    is said not computed, instead of figures that the real job then contradicts."""
    first = tmp_path / "d-first"
    generate_delta(academie, first, seed=5, date=dt.date(2026, 9, 16))
    second = tmp_path / "d-second"
    generate_delta(first, second, seed=6, date=dt.date(2026, 9, 17))
    folders = [academie, first, second]
    state = snapshot(store.engine)
    dry = import_aaf(store.engine, store.settings, folders, dry_run=True)
    assert snapshot(store.engine) == state and import_runs(store) == []
    real = run_import(store, folders)
    assert len(dry) == len(real) == 3
    for computed, applied in zip(dry, real, strict=True):
        if computed.report is not None:
            assert computed.report.counts_dict() == report_of(applied).counts_dict()
            assert computed.report.warning_count == report_of(applied).warning_count
        else:
            assert computed.not_computed is not None
            assert "on top of complet export ENT_SANDBOX 20260915" in computed.not_computed
    assert [r.report.outcome if r.report else None for r in dry] == ["dry_run", None, None]
    # Once they are applied, the folder's dry run computes the last one again, alone.
    state = snapshot(store.engine)
    again = import_aaf(store.engine, store.settings, folders, dry_run=True)
    assert [r.skipped is not None for r in again] == [True, True, False]
    assert again[2].report is not None and again[2].report.outcome == "dry_run"
    assert snapshot(store.engine) == state


def test_an_export_made_older_by_another_job_meanwhile_is_refused(
    store: Store, academie: Path, tmp_path: Path
) -> None:
    """The check is made again inside the run's transaction, once its scope is held: another
    job may have applied a later export since this one looked."""
    older, newer = tmp_path / "d-16", tmp_path / "d-17"
    generate_delta(academie, older, seed=5, date=dt.date(2026, 9, 16))
    generate_delta(academie, newer, seed=6, date=dt.date(2026, 9, 17))
    run_import(store, [academie])

    def another_job(*_: object) -> None:  # between this job's look and its run
        run_import(store, [newer])

    with pytest.raises(Refused, match="older than the delta export of 20260917"):
        import_aaf(store.engine, store.settings, [older], on_export=another_job)
    assert [(r.mode, r.outcome) for r in import_runs(store)] == [
        ("complet", "applied"),
        ("delta", "applied"),
        ("delta", "refused"),
    ]


def test_per_school_deliveries_are_a_scope_each(store: Store, tmp_path: Path) -> None:
    """An académie that delivers one export per school (its UAI in the file prefix, AAF.md §2):
    each school's Complet is authoritative for that school alone. In one scope, the second
    school's Complet would make the first school's people leave."""
    schools = {"0691670R": 11, "0940072T": 12}
    folders = []
    for uai, seed in schools.items():
        folder = tmp_path / uai
        generate_academie(folder, pupils=60, seed=seed, academie=uai, academie_code="010")
        folders.append(folder)
    runs = run_import(store, folders)
    assert sorted(r.scope.key for r in runs) == ["aaf:0691670R:2d", "aaf:0940072T:2d"]
    for run in runs:
        assert (run.scope.academie, run.notes) == ("010", [])
        report = report_of(run)
        assert report.outcome == "applied" and report.leaving == 0
        pupils = pupil_ids(tmp_path / run.scope.uai)  # type: ignore[operator]
        persons = by_key(store.engine, PERSON, run.scope.key)
        assert {p for p in pupils if persons[p].status == ACTIVE} == set(pupils)
    stored = {(r.scope, r.uai, r.academie) for r in import_runs(store)}
    assert stored == {
        ("aaf:0691670R:2d", "0691670R", "010"),
        ("aaf:0940072T:2d", "0940072T", "010"),
    }
    # The next night, the same deliveries again: nothing changes in either school.
    again = run_import(store, folders)
    assert [report_of(r).leaving + report_of(r).counts[PERSON].created for r in again] == [0, 0]


@pytest.mark.parametrize("category", ["Eleve", "PersRelEleve"])
def test_missing_chunk_guard(
    store: Store, chunked_academie: Path, tmp_path: Path, category: str
) -> None:
    """A chunk missing in the middle: refused; with --partial, what is there is imported and
    nothing leaves. Without the PersRelEleve chunk, the pupils name guardians this delivery
    lacks: their stored guardianships stay (dropping the links would make them leave, since a
    pupil's record replaces what it carries)."""
    chunks = category_files(chunked_academie, category)
    assert len(chunks) >= 3  # several chunks, so that one in the middle can go missing
    (first,) = run_import(store, [chunked_academie])
    before = snapshot(store.engine)
    state = signature(store.engine)
    gapped = tmp_path / "gapped"
    shutil.copytree(chunked_academie, gapped)
    (missing,) = gapped.glob(f"*_{category}_0001.xml")
    missing_persons = {r.id for r in read_requests(missing)}
    missing.unlink()

    with pytest.raises(Refused, match=rf"{category}: chunk 0001 missing"):
        import_aaf(store.engine, store.settings, [gapped])
    assert snapshot(store.engine) == before

    (run,) = run_import(store, [gapped], partial=True)
    report = report_of(run)
    assert run.mode == "partial" and report.leaving == 0
    assert report.counts[PERSON].created == 0
    assert sum(c.created + c.updated for c in report.counts.values()) == 0
    assert run.stats.dropped_guardianships == 0
    after = signature(store.engine)
    assert set(after) == set(state)
    assert all(status == ACTIVE for _, _, status in after.values())
    persons = by_key(store.engine, PERSON, first.scope.key)
    assert all(persons[p].status == ACTIVE for p in missing_persons)
    if category == "PersRelEleve":
        guardians = {persons[p].id for p in missing_persons}
        kept = [g for g in rows(store.engine, GUARDIANSHIP) if g.guardian_id in guardians]
        assert kept and all(g.status == ACTIVE for g in kept)


def move_pupil(pupil: Request, structure: str) -> None:
    """Attach ``pupil`` to ``structure`` in its Eleve file, by text surgery on its request."""
    text = pupil.file.read_text(encoding="utf-8")
    head = text.index(f"<id>{pupil.id}</id>")
    attached = text.index('<attr name="ENTPersonStructRattach">', head)
    value = text.index("<value>", attached) + len("<value>")
    close = text.index("</value>", value)
    pupil.file.write_text(text[:value] + structure + text[close:], encoding="utf-8")


def children_of(folder: Path) -> dict[str, list[Request]]:
    """The Eleve requests of each guardian's pupils (by the pupils' links), in file order."""
    children: dict[str, list[Request]] = {}
    for pupil in (r for r in requests_of(folder) if r.category == "Eleve"):
        for link in guardian_links(pupil):
            children.setdefault(link[0], []).append(pupil)
    return children


def two_schools(folder: Path) -> tuple[str, Request, Request, str]:
    """A generated académie with two schools: a guardian, two of their pupils (in the same
    school), and the join key of the other school."""
    generate_academie(folder, pupils=1200, seed=11)
    children = children_of(folder)
    guardian, (first, second, *_) = next((g, c) for g, c in children.items() if len(c) >= 2)
    elsewhere = next(
        r.id
        for r in requests_of(folder)
        if r.category == "EtabEducNat" and r.id != first.first("ENTPersonStructRattach")
    )
    return guardian, first, second, elsewhere


def test_a_delta_showing_some_of_a_guardians_pupils_keeps_their_other_schools(
    store: Store, tmp_path: Path
) -> None:
    """A guardian's UAIs are those of their pupils. A Delta holding the guardian's record and
    one of their pupils, in another school than the other, tells only that school: it is a
    floor, added to the stored UAIs, which it must not replace."""
    complet = tmp_path / "complet"
    guardian, shown, moved, elsewhere = two_schools(complet)
    move_pupil(moved, elsewhere)
    (first,) = run_import(store, [complet])
    persons = by_key(store.engine, PERSON, first.scope.key)
    before = persons[guardian].structures
    assert before.count("|") > 2 and persons[shown.id].structures != before

    (run,) = run_import(store, [delta_of(complet, tmp_path / "d1", {guardian, shown.id})])
    assert run.mode == "delta"
    assert sum(c.created + c.updated + c.leaving for c in report_of(run).counts.values()) == 0
    assert by_key(store.engine, PERSON, first.scope.key)[guardian].structures == before

    # All the pupils the guardian lists (ENTAuxPersRelEleveEleve), the moved one back in the
    # first school: the Delta tells all their UAIs, which replace the stored ones.
    original = tmp_path / "original"
    generate_academie(original, pupils=1200, seed=11)
    run_import(store, [delta_of(original, tmp_path / "d2", {guardian, shown.id, moved.id})])
    persons = by_key(store.engine, PERSON, first.scope.key)
    assert persons[guardian].structures == persons[shown.id].structures != before


def feed_head(store: Store) -> int:
    """The cursor after the last change entry: what a follower of the feed holds now."""
    with store.engine.connect() as connection:
        return changes_after(connection, 0, 1_000_000).next_cursor


def test_a_delta_moving_a_pupil_to_another_school_moves_their_guardians_too(
    store: Store, tmp_path: Path
) -> None:
    """A Delta that moves a pupil to another school, without their guardians' records: each
    guardian's UAIs are derived again from their pupils (the engine), with an update entry in
    the feed; moved back, the pupil takes the new school off them again. Each update entry
    names the UAIs the person had and those they end with: the feed of the school a person
    leaves tells of it (an ENT of that school would otherwise keep them for ever)."""
    complet = tmp_path / "complet"
    guardian, stays, moved, elsewhere = two_schools(complet)
    (first,) = run_import(store, [complet])
    scope = first.scope.key
    persons = by_key(store.engine, PERSON, scope)
    before, pupil_before = persons[guardian].structures, persons[moved.id].structures
    last = feed_head(store)

    delta = delta_of(complet, tmp_path / "d1", {moved.id})
    move_pupil(next(r for r in requests_of(delta) if r.id == moved.id), elsewhere)
    (run,) = run_import(store, [delta])
    persons = by_key(store.engine, PERSON, scope)
    assert persons[moved.id].structures not in ("", before)
    guardians = {f[0] for f in guardian_links(moved)}
    assert guardian in guardians
    for key in guardians:  # the UAIs of their pupils: the moved one, and the other if theirs
        theirs = [p for p in (moved, stays) if key in {f[0] for f in guardian_links(p)}]
        uais = {u for p in theirs for u in persons[p.id].structures.split("|") if u}
        assert persons[key].structures == "|" + "|".join(sorted(uais)) + "|", key
    assert persons[guardian].structures.count("|") == 3  # both schools
    with store.engine.connect() as connection:
        entries = changes_after(connection, last, 1_000).entries
    updated = {e.entity_id: e.structures for e in entries if e.op == "update"}
    assert updated[persons[guardian].id] == persons[guardian].structures
    both = structures_text([*pupil_before.split("|"), *persons[moved.id].structures.split("|")])
    assert both.count("|") == 3 and updated[persons[moved.id].id] == both
    with store.engine.connect() as connection:
        left = changes_after(connection, last, 1_000, structure=pupil_before.strip("|"))
    assert persons[moved.id].id in {e.entity_id for e in left.entries if e.op == "update"}
    assert report_of(run).counts[PERSON].updated == 1 + len(guardians)
    with store.engine.connect() as connection:
        last = changes_after(connection, last, 1_000_000).next_cursor

    run_import(store, [delta_of(complet, tmp_path / "d2", {moved.id})])
    persons_after = by_key(store.engine, PERSON, scope)
    assert persons_after[guardian].structures == before
    with store.engine.connect() as connection:
        entries = changes_after(connection, last, 1_000).entries
    updated = {e.entity_id: e.structures for e in entries if e.op == "update"}
    # Back in one school: the entry still names the one they left, and the pupil's names both.
    assert updated[persons[guardian].id] == persons[guardian].structures != before
    assert updated[persons[moved.id].id] == both


def test_a_guardian_whose_only_pupil_a_delta_deletes_is_told_to_the_school_they_leave(
    store: Store, tmp_path: Path
) -> None:
    """A Delta deleting a pupil leaves their guardians without a school (their UAIs are those
    of their active pupils): each one's update entry names the school they had, so that the
    feed filtered by that school tells an ENT of it."""
    complet = tmp_path / "complet"
    generate_academie(complet, pupils=1200, seed=11)
    guardian, (pupil,) = next((g, c) for g, c in children_of(complet).items() if len(c) == 1)
    (first,) = run_import(store, [complet])
    scope = first.scope.key
    school = by_key(store.engine, PERSON, scope)[guardian].structures
    assert school.count("|") == 2
    last = feed_head(store)

    delta = delta_of(complet, tmp_path / "delta", set())
    (eleve,) = category_files(delta, "Eleve")
    text = eleve.read_text(encoding="utf-8")
    end = text.rindex("</ficAlimMENESR>")
    deleted = (
        '<deleteRequest>\n<operationalAttributes><attr name="categoriePersonne"><value>Eleve'
        f"</value></attr></operationalAttributes>\n<identifier><id>{pupil.id}</id></identifier>"
        "\n</deleteRequest>\n"
    )
    eleve.write_text(text[:end] + deleted + text[end:], "utf-8")
    run_import(store, [delta])
    persons = by_key(store.engine, PERSON, scope)
    assert persons[guardian].structures == "" and persons[guardian].status == ACTIVE
    with store.engine.connect() as connection:
        told = changes_after(connection, last, 1_000, structure=school.strip("|")).entries
    assert [(e.op, e.structures) for e in told if e.entity_id == persons[guardian].id] == [
        ("update", school)
    ]


def test_a_guardian_written_then_derived_in_one_delta_has_one_entry(
    store: Store, tmp_path: Path
) -> None:
    """A Delta holding a guardian's new record (another country) and one of their two pupils,
    moved back to the other one's school: the record's UAIs are a floor (the other pupil is not
    shown), written with the stored ones, then the engine derives them from the pupils, which
    are now in one school. The guardian has one update entry, with the UAIs they had and end
    with, and is counted once."""
    complet = tmp_path / "complet"
    guardian, stays, moved, elsewhere = two_schools(complet)
    move_pupil(moved, elsewhere)
    (first,) = run_import(store, [complet])
    scope = first.scope.key
    before = by_key(store.engine, PERSON, scope)[guardian].structures
    assert before.count("|") == 3
    last = feed_head(store)
    original = tmp_path / "original"
    generate_academie(original, pupils=1200, seed=11)
    delta = delta_of(original, tmp_path / "delta", {guardian, moved.id})
    (chunk,) = category_files(delta, "PersRelEleve")
    text = chunk.read_text(encoding="utf-8")
    head = text.index(f"<id>{guardian}</id>")
    country = text.index('<attr name="ENTPersonPays"><value>FRANCE</value>', head)
    assert country < text.index("</addRequest>", head)
    chunk.write_text(text[:country] + text[country:].replace("FRANCE", "BELGIQUE", 1), "utf-8")

    (run,) = run_import(store, [delta])
    persons = by_key(store.engine, PERSON, scope)
    assert persons[guardian].country == "BELGIQUE"
    assert persons[guardian].structures == persons[stays.id].structures != before
    with store.engine.connect() as connection:
        entries = changes_after(connection, last, 1_000).entries
    # One entry, naming the UAIs they had (both schools) and end with (one of them).
    assert [e.structures for e in entries if e.entity_id == persons[guardian].id] == [before]
    updated = [e.entity_id for e in entries if e.entity_type == "person" and e.op == "update"]
    assert len(updated) == len(set(updated)) == report_of(run).counts[PERSON].updated


def delta_of(complet: Path, delta: Path, kept: set[str]) -> Path:
    """A Delta of the pupils and guardians of ``kept``, as the Complet has them."""
    delta.mkdir()
    for source in category_files(complet, "Eleve") + category_files(complet, "PersRelEleve"):
        target = delta / source.name.replace("_Complet_", "_Delta_")
        shutil.copyfile(source, target)
        drop_requests(target, {r.id for r in read_requests(target)} - kept)
    return delta


def test_a_pupil_in_two_chunks_of_a_delta_keeps_the_classes_of_the_later_one(
    store: Store, academie: Path, tmp_path: Path
) -> None:
    """A Delta whose two Eleve chunks both hold a pupil, in another class then in their own:
    the later request replaces the earlier one with everything it carries, so the class the
    earlier request names is never written (a duplicate is reported)."""
    (first,) = run_import(store, [academie])
    pupils = [r for r in requests_of(academie) if r.category == "Eleve" and classes_of(r)]
    pupil = pupils[0]
    school = pupil.first("ENTPersonStructRattach")
    (own,) = pupil.attrs["ENTEleveClasses"]
    other = next(
        c
        for p in pupils
        if p.first("ENTPersonStructRattach") == school
        for c in p.attrs["ENTEleveClasses"]
        if c != own
    )
    delta = delta_of(academie, tmp_path / "delta", {pupil.id})
    # Chunk 0 moves the pupil to the other class; chunk 1, read after it, gives their own.
    (chunk_0,) = category_files(delta, "Eleve")
    assert chunk_0.name.endswith("_0000.xml")
    shutil.copyfile(chunk_0, chunk_0.with_name(chunk_0.name.replace("_0000.xml", "_0001.xml")))
    text = chunk_0.read_text(encoding="utf-8")
    assert text.count(f"<value>{own}</value>") == 1
    chunk_0.write_text(text.replace(f"<value>{own}</value>", f"<value>{other}</value>"), "utf-8")
    person_id = hub_id(first.scope.key, PERSON, pupil.id)
    before = pupil_enrollments(store, person_id)

    (run,) = run_import(store, [delta])
    assert report_of(run).warning_codes["duplicate-record"] >= 1
    assert pupil_enrollments(store, person_id) == before
    assert before == {tuple(own.split("$", 1)): ACTIVE}
    counts = report_of(run).counts[ENROLLMENT]
    assert (counts.created, counts.updated, counts.leaving) == (0, 0, 0)


def pupil_guardianships(store: Store, person_id: uuid.UUID) -> dict[uuid.UUID, str]:
    """Guardian id -> status of the guardianships of one pupil."""
    return {
        row.guardian_id: row.status
        for row in rows(store.engine, GUARDIANSHIP)
        if row.pupil_id == person_id
    }


@pytest.mark.parametrize("bits", [None, 8], ids=["seen-map", "8-bit-seen-map"])
def test_a_pupil_in_two_chunks_of_a_delta_keeps_the_guardians_of_the_later_one(
    store: Store, academie: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bits: int | None
) -> None:
    """The pupil's earlier request also names two other persons, one a PersRelEleve record
    of the Delta, one not: AAF gives guardianships from the pupil side and the guardians'
    records come later, yet what the earlier request names is never written. With a map of
    8 bits, nearly every pupil shares a bit with another one: only the pupil given twice
    loses links."""
    if bits is not None:
        monkeypatch.setattr(aaf_context, "_PUPIL_BITS", bits)
    (first,) = run_import(store, [academie])
    expected = {
        f"{fields[0]}|{p.id}"
        for p in requests_of(academie)
        if p.category == "Eleve"
        for fields in guardian_links(p)
    }
    assert {row.source_key for row in rows(store.engine, GUARDIANSHIP)} == expected
    scope = first.scope.key
    pupils = [r for r in requests_of(academie) if r.category == "Eleve" and guardian_links(r)]
    pupil = pupils[0]
    own = {fields[0] for fields in guardian_links(pupil)}
    others = [fields[0] for p in pupils[1:] for fields in guardian_links(p) if fields[0] not in own]
    in_delta, not_in_delta = others[0], next(g for g in others if g != others[0])
    delta = delta_of(academie, tmp_path / "delta", {pupil.id, *own, in_delta})
    (chunk_0,) = category_files(delta, "Eleve")
    shutil.copyfile(chunk_0, chunk_0.with_name(chunk_0.name.replace("_0000.xml", "_0001.xml")))
    value = "$".join(guardian_links(pupil)[0][1:])
    extra = "".join(f"<value>{g}${value}</value>" for g in (in_delta, not_in_delta))
    text = chunk_0.read_text(encoding="utf-8")
    anchor = '<attr name="ENTElevePersRelEleve">'
    assert text.count(anchor) == 1
    chunk_0.write_text(text.replace(anchor, anchor + extra), "utf-8")
    person_id = hub_id(scope, PERSON, pupil.id)
    before = pupil_guardianships(store, person_id)
    assert set(before) == {hub_id(scope, PERSON, g) for g in own}
    others_before = {g: person(store, g).structures for g in (in_delta, not_in_delta)}

    (run,) = run_import(store, [delta])
    assert report_of(run).warning_codes["duplicate-record"] >= 1
    assert pupil_guardianships(store, person_id) == before
    counts = report_of(run).counts[GUARDIANSHIP]
    assert (counts.created, counts.updated, counts.leaving) == (0, 0, 0)
    assert {g: person(store, g).structures for g in others_before} == others_before


def test_a_guardian_given_twice_in_a_complet_keeps_the_schools_of_their_pupils(
    store: Store, academie: Path, tmp_path: Path
) -> None:
    """A PersRelEleve record repeated in a chunk of its own: the later record is the one
    written, and it belongs to the structures of the pupils who name the person, as the
    earlier one does; their guardianships stay as they are."""
    run_import(store, [academie])
    pupil = next(r for r in requests_of(academie) if r.category == "Eleve" and guardian_links(r))
    guardian = guardian_links(pupil)[0][0]
    stored = person(store, guardian)
    assert stored.structures
    repeated = tmp_path / "repeated"
    shutil.copytree(academie, repeated)
    chunks = category_files(repeated, "PersRelEleve")
    last = chunks[-1]
    number = int(last.name[-8:-4])
    extra = last.with_name(f"{last.name[:-8]}{number + 1:04d}.xml")
    shutil.copyfile(chunks[0], extra)
    ids = {r.id for r in read_requests(extra)}
    assert guardian in ids
    drop_requests(extra, ids - {guardian})
    guardianships_before = snapshot(store.engine)["guardianship"]

    (run,) = run_import(store, [repeated])
    report = report_of(run)
    assert report.warning_codes["duplicate-record"] == 1
    assert person(store, guardian).structures == stored.structures
    assert snapshot(store.engine)["guardianship"] == guardianships_before
    assert sum(c.created + c.updated + c.leaving for c in report.counts.values()) == 0


def test_a_class_new_in_a_delta_is_created_and_a_known_one_left_as_stored(
    store: Store, academie: Path, tmp_path: Path
) -> None:
    """A Delta's pupil in a class that no Complet gave yet: the class is created from what
    the Delta shows (an ``ensure`` record), so that the enrollment does not dangle; the
    classes the store holds are not rewritten by the few pupils a Delta shows."""
    (first,) = run_import(store, [academie])
    pupils = [r for r in requests_of(academie) if r.category == "Eleve" and classes_of(r)]
    moved = pupils[0]
    (own,) = moved.attrs["ENTEleveClasses"]
    stays = next(p for p in pupils if own not in p.attrs["ENTEleveClasses"])
    structure, code = own.split("$", 1)
    new = f"{structure}$9Z NEW"
    delta = delta_of(academie, tmp_path / "delta", {moved.id, stays.id})
    (chunk,) = category_files(delta, "Eleve")
    text = chunk.read_text(encoding="utf-8")
    assert text.count(f"<value>{own}</value>") == 1
    chunk.write_text(text.replace(f"<value>{own}</value>", f"<value>{new}</value>"), "utf-8")
    scope = first.scope.key
    classes_before = {
        k: (r.content_hash, r.owner_key) for k, r in by_key(store.engine, CLASS).items()
    }

    (run,) = run_import(store, [delta])
    report = report_of(run)
    classes = by_key(store.engine, CLASS)
    created = classes[f"{structure}$9Z NEW"]
    assert (created.status, created.code, created.owner_key) == (ACTIVE, "9Z NEW", f"class:{new}")
    assert created.structure_id == hub_id(scope, STRUCTURE, structure)
    assert pupil_enrollments(store, hub_id(scope, PERSON, moved.id)) == {
        (structure, code): LEAVING,
        (structure, "9Z NEW"): ACTIVE,
    }
    assert not [w for w in report.warnings if "class_id" in w.message]
    counts = report.counts[CLASS]
    assert (counts.created, counts.updated, counts.leaving) == (1, 0, 0)
    assert counts.unchanged >= 1  # the other pupil's class, as the store has it
    assert {
        k: (r.content_hash, r.owner_key) for k, r in classes.items() if k != new
    } == classes_before


def test_a_complete_complet_drops_a_link_to_a_guardian_it_does_not_hold(
    store: Store, academie: Path, tmp_path: Path
) -> None:
    """Only a complete Complet is authoritative for the guardians: a pupil's link to a person
    who is not one of its PersRelEleve records is dropped, with a warning naming the pupil; a
    stored guardianship through it leaves. Kept in a partial import (the test above)."""
    run_import(store, [academie])
    pupil = next(r for r in requests_of(academie) if r.category == "Eleve" and guardian_links(r))
    guardian = guardian_links(pupil)[0][0]
    links_to = [
        p.id
        for p in requests_of(academie)
        if p.category == "Eleve"
        for f in guardian_links(p)
        if f[0] == guardian
    ]
    changed = tmp_path / "without-guardian"
    shutil.copytree(academie, changed)
    assert sum(drop_requests(f, {guardian}) for f in category_files(changed, "PersRelEleve")) == 1

    (run,) = run_import(store, [changed])
    assert run.mode == "complet"
    assert run.stats.dropped_guardianships == len(links_to)
    report = report_of(run)
    assert report.counts[GUARDIANSHIP].leaving == len(links_to)
    assert report.counts[PERSON].leaving == 1  # the guardian
    warned = [w for w in report.warnings if guardian in w.message and "dropped" in w.message]
    assert {w.provenance.record_id for w in warned if w.provenance} == set(links_to)


def test_legacy_links_and_sts_ids_reach_the_store(
    store: Store, academie: Path, tmp_path: Path
) -> None:
    """A pupil sent with the older link attributes only (AAF.md §6.3) keeps every person they
    name, with what those attributes say; a staff member's ENTPersonSTSId is an external id."""
    changed = tmp_path / "legacy"
    shutil.copytree(academie, changed)
    pupil = next(
        r
        for r in requests_of(changed)
        if r.category == "Eleve" and {f[1] for f in guardian_links(r)} >= {"10", "20", "39"}
    )
    codes = {f[1]: f[0] for f in guardian_links(pupil)}
    mother, father, other = codes["10"], codes["20"], codes["39"]
    legacy = "".join(
        f'<attr name="{name}">{"".join(f"<value>{v}</value>" for v in values)}</attr>'
        for name, values in (
            ("ENTEleveMere", [mother]),
            ("ENTElevePere", [father]),
            ("ENTEleveParents", [mother, father]),
            ("ENTEleveAutoriteParentale", [mother]),
            ("ENTElevePersRelEleve1", [other]),
            ("ENTEleveQualitePersRelEleve1", ["CONTACT"]),
        )
    )
    text = pupil.file.read_text(encoding="utf-8")
    start = text.index('<attr name="ENTElevePersRelEleve">', text.index(f"<id>{pupil.id}</id>"))
    end = text.index("</attr>", start) + len("</attr>")
    pupil.file.write_text(text[:start] + legacy + text[end:], encoding="utf-8")
    staff = next(r for r in requests_of(changed) if r.category == "PersEducNat")
    text = staff.file.read_text(encoding="utf-8")
    at = text.index("<attributes>", text.index(f"<id>{staff.id}</id>")) + len("<attributes>")
    sts = '<attr name="ENTPersonSTSId"><value>69881</value></attr>'
    staff.file.write_text(text[:at] + sts + text[at:], encoding="utf-8")

    (run,) = run_import(store, [changed])
    persons = by_key(store.engine, PERSON, run.scope.key)
    stored = {
        row.guardian_id: (row.relation, row.relation_code, row.legal, row.contact)
        for row in rows(store.engine, GUARDIANSHIP)
        if row.pupil_id == persons[pupil.id].id
    }
    assert stored == {
        persons[mother].id: ("mother", None, True, None),
        persons[father].id: ("father", None, False, None),
        persons[other].id: ("unknown", None, False, True),
    }
    assert external_ids(store.engine, "aaf:ENTPersonSTSId") == {persons[staff.id].id: ["69881"]}


def test_partial_import_with_a_missing_chunk_updates_nothing(
    store: Store, chunked_academie: Path, tmp_path: Path
) -> None:
    run_import(store, [chunked_academie])
    gapped = tmp_path / "gapped"
    shutil.copytree(chunked_academie, gapped)
    next(gapped.glob("*_Eleve_0001.xml")).unlink()
    (run,) = run_import(store, [gapped], partial=True)
    assert sum(c.updated for c in report_of(run).counts.values()) == 0


# =============================================================================================
# 5. 1D and 2D in one delivery
# =============================================================================================


def test_first_and_second_degree(store: Store, tmp_path: Path) -> None:
    folder = tmp_path / "both"
    summary = generate_academie(folder, pupils=120, seed=21, degree="both")
    runs = run_import(store, [folder])
    assert {r.scope.key for r in runs} == {"aaf:099:1d", "aaf:099:2d"}
    assert {r.mode for r in runs} == {"complet"}
    first = [
        r for f in aaf_files([folder]) if f.name.startswith("ENT1D_") for r in read_requests(f)
    ]
    grouped = by_category(first)
    assert len(grouped["Eleve"]) == summary.by_degree["1D"]["pupils"] > 0

    scope = "aaf:099:1d"
    persons = by_key(store.engine, PERSON, scope)
    classes = by_id(store.engine, CLASS)
    structures = structure_keys(store)
    levels = {lv.code for lv in rows(store.engine, LEVEL, scope) if lv.kind == "1d_level"}
    assert all(s.degree == "1d" for s in rows(store.engine, STRUCTURE, scope))
    pupil_roles = [r for r in rows(store.engine, ROLE, scope) if r.role == "pupil"]
    for pupil in grouped["Eleve"]:
        # The pupil's role carries their level (the code of ENTEleveNiveau's code$label).
        held = [r for r in pupil_roles if r.person_id == persons[pupil.id].id]
        assert held and {r.level_code for r in held} == {
            pupil.first("ENTEleveNiveau").split("$")[0]  # type: ignore[union-attr]
        }, pupil.id
        expected = set()
        for value in pupil.attrs["ENTPersonClasses"]:
            structure, _type, _label, number, _name = value.split("$")
            expected.add((structure, number))
        level = pupil.first("ENTEleveNiveau").split("$")[0]  # type: ignore[union-attr]
        enrolled = [
            e
            for e in rows(store.engine, ENROLLMENT, scope)
            if e.person_id == persons[pupil.id].id and e.status == ACTIVE
        ]
        found = {
            (structures[classes[e.class_id].structure_id], classes[e.class_id].code)
            for e in enrolled
        }
        assert found == expected, pupil.id
        assert all(e.role == "pupil" for e in enrolled)
        assert all(level in classes[e.class_id].level_codes for e in enrolled)
        assert level in levels

    # Directors: ENTEnsFonctionDir; the DIRECTION speciality only in a record without it.
    directors = set()
    for staff in grouped["PersEducNat"]:
        for structure in staff.attrs.get("ENTEnsFonctionDir", []):
            directors.add((staff.id, structure))
        for value in staff.attrs.get("ENTPersonFonctions", []):
            fields = value.split("$")
            if fields[4] == "DIRECTION" and "ENTEnsFonctionDir" not in staff.attrs:
                directors.add((staff.id, fields[0]))
    assert directors
    by_hub = by_id(store.engine, PERSON)
    found = {
        (by_hub[r.person_id].source_key, structures[r.structure_id])
        for r in rows(store.engine, ROLE, scope)
        if r.role == "director"
    }
    assert found == directors
    second = set(by_key(store.engine, PERSON, "aaf:099:2d"))
    assert len(second) == sum(summary.by_degree["2D"][k] for k in ("pupils", "guardians", "staff"))
    assert not second & set(persons)


# =============================================================================================
# 6. Generate -> import -> every generated record is found
# =============================================================================================


@pytest.fixture(scope="module")
def academie_300(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("aaftests-300") / "a"
    generate_academie(folder, pupils=300, seed=31)
    return folder


def expected_enrollments(request: Request) -> set[tuple[str, str, str, str, str | None]]:
    """(class|group, structure key, code, role, subject) the request says, per the README."""
    found: set[tuple[str, str, str, str, str | None]] = set()
    for attribute, kind in (("ENTEleveClasses", "class"), ("ENTEleveGroupes", "group")):
        for value in request.attrs.get(attribute, []):
            structure, code = value.split("$")
            found.add((kind, structure, code, "pupil", None))
    for attribute, kind, legacy in (
        ("ENTAuxEnsClassesMatieres", "class", "ENTAuxEnsClasses"),
        ("ENTAuxEnsGroupesMatieres", "group", "ENTAuxEnsGroupes"),
    ):
        with_subject = set()
        for value in request.attrs.get(attribute, []):
            structure, code, subject = value.split("$")
            found.add((kind, structure, code, "teacher", subject or None))
            with_subject.add((structure, code))
        for value in request.attrs.get(legacy, []):  # a fallback for the classes left out
            structure, code = value.split("$")
            if (structure, code) not in with_subject:
                found.add((kind, structure, code, "teacher", None))
    for value in request.attrs.get("ENTAuxEnsClassesPrincipal", []):
        structure, code = value.split("$")
        found.add(("class", structure, code, "head_teacher", None))
    return found


def test_every_generated_record_is_in_the_store(store: Store, academie_300: Path) -> None:
    (run,) = run_import(store, [academie_300])
    scope = run.scope.key
    grouped = by_category(requests_of(academie_300))
    engine = store.engine
    persons = by_key(engine, PERSON, scope)
    join_ids = external_ids(engine, JOIN_ID)
    by_hub = by_id(engine, PERSON)
    structures = structure_keys(store)
    classes, groups = by_id(engine, CLASS), by_id(engine, GROUP)

    people = [r for c in PERSON_CATEGORIES for r in grouped[c]]
    assert len(persons) == len(people) == len({r.id for r in people})
    for request in people:
        row = persons[request.id]
        assert join_ids[row.id] == [request.first("ENTPersonJointure")]
        assert stored_fields(row) == person_fields(request), request.id
        assert row.email == request.first("mail")

    enrollments: dict[str, set[tuple[str, str, str, str, str | None]]] = {}
    for e in rows(engine, ENROLLMENT, scope):
        target = classes[e.class_id] if e.class_id else groups[e.group_id]
        enrollments.setdefault(by_hub[e.person_id].source_key, set()).add(
            (
                "class" if e.class_id else "group",
                structures[target.structure_id],
                target.code,
                e.role,
                e.subject_code,
            )
        )
        assert e.status == ACTIVE and e.structure_id == target.structure_id
    for request in people:
        assert enrollments.get(request.id, set()) == expected_enrollments(request), request.id
    assert sum(len(v) for v in enrollments.values()) == len(rows(engine, ENROLLMENT, scope))
    assert any(e[3] == "teacher" and e[4] for v in enrollments.values() for e in v)

    guardianships = {
        (by_hub[g.pupil_id].source_key, by_hub[g.guardian_id].source_key): g
        for g in rows(engine, GUARDIANSHIP, scope)
    }
    expected_links = set()
    for pupil in grouped["Eleve"]:
        residence = pupil.first("ENTEleveAdresseRel")
        for guardian, code, financial, legal, contact, payment in guardian_links(pupil):
            expected_links.add((pupil.id, guardian))
            row = guardianships[(pupil.id, guardian)]
            ranks = rank_semantics(pupil.version_af, code)
            assert (
                row.relation,
                row.relation_code,
                row.legal,
                row.financial,
                row.contact,
                row.payment,
                row.residence,
            ) == (
                parse_relation(code).value,
                code,
                legal_flag(legal, ranks),
                financial == "1",
                contact == "1",
                payment == "1",
                guardian == residence if residence else None,
            ), (pupil.id, guardian)
    assert set(guardianships) == expected_links

    subjects = {s.code for s in rows(engine, SUBJECT, scope)}
    assert subjects == {r.id for r in grouped["MatEducNat"]}
    # A pupil's role carries their MEF and their options (in the source's order).
    pupil_roles: dict[str, list[Any]] = {}
    for role in rows(engine, ROLE, scope):
        if role.role == "pupil":
            pupil_roles.setdefault(by_hub[role.person_id].source_key, []).append(role)
    for pupil in grouped["Eleve"]:
        schooling = (pupil.first("ENTEleveMEF"), pupil.attrs.get("ENTEleveCodeEnseignements", []))
        held = pupil_roles[pupil.id]
        assert held and all((r.level_code, r.subject_codes) == schooling for r in held), pupil.id
    options = {code for held in pupil_roles.values() for r in held for code in r.subject_codes}
    assert options and options <= subjects
    assert {r.level_code for held in pupil_roles.values() for r in held} <= {
        r.id for r in grouped["MefEducNat"]
    }
    mefs = {lv.code for lv in rows(engine, LEVEL, scope) if lv.kind == "mef"}
    assert mefs == {r.id for r in grouped["MefEducNat"]}
    taught = {e[4] for v in enrollments.values() for e in v if e[4]}
    assert taught <= subjects
    assert set(by_key(engine, STRUCTURE, scope)) == {r.id for r in grouped["EtabEducNat"]}


# =============================================================================================
# 7. A delta leads to the same store as the complet of the new state
# =============================================================================================


def fresh_sqlite(folder: Path) -> tuple[Any, Settings]:
    settings = Settings(database_url=f"sqlite:///{folder / 'store.db'}", environment="test")
    engine = make_engine(settings)
    upgrade(engine)
    return engine, settings


def content_rows(engine: Any) -> dict[tuple[str, str, str], Any]:
    """(kind, scope, source key) -> row, for every entity of the store."""
    return {
        (k.value, row.scope, row.source_key): row for k in EntityKind for row in rows(engine, k)
    }


BOOKKEEPING = {
    "id",
    "import_run_id",
    "content_hash",
    "source_file",
    "source_record",
    "created_at",
    "modified_at",
}


def guardians_modified_alone(delta: Path, complet: Path) -> set[str]:
    """PersRelEleve records the delta modifies while none of their pupils is in the delta."""
    requests = requests_of(delta)
    in_delta = {r.id for r in requests if r.category == "Eleve"}
    pupils_of: dict[str, set[str]] = {}
    for pupil in (r for r in requests_of(complet) if r.category == "Eleve"):
        for fields in guardian_links(pupil):
            pupils_of.setdefault(fields[0], set()).add(pupil.id)
        for value in pupil.attrs.get("ENTEleveAutoriteParentale", []):
            pupils_of.setdefault(value.split("$")[0], set()).add(pupil.id)
    return {
        r.id
        for r in requests
        if r.category == "PersRelEleve"
        and r.op == "modify"
        and not pupils_of.get(r.id, set()) & in_delta
    }


def levels_held(complet: Path) -> set[str]:
    """The keys of the 1D levels and cycles that the pupils of ``complet`` hold."""
    held = set()
    for pupil in (r for r in requests_of(complet) if r.category == "Eleve"):
        for attribute, prefix in (("ENTEleveNiveau", "1d-level:"), ("ENTEleveCycle", "1d-cycle:")):
            held.update(prefix + value.split("$")[0] for value in pupil.attrs.get(attribute, []))
    return held


def compare_delta_with_complet(
    root: Path, seed: int, rate: float, pupils: int, degree: str
) -> set[str]:
    """Import A then D in one store and B in another and demand the same active entities,
    row for row. Returns the guardians the delta modified without any of their pupils (whose
    structures only the store can supply), so that a caller can check the case was covered."""
    a, d, b = root / "a", root / "d", root / "b"
    generate_academie(a, pupils=pupils, seed=seed, degree=degree)  # type: ignore[arg-type]
    generate_delta(a, d, seed=seed + 1, rate=rate, also_complet=b)
    (root / "one").mkdir()
    (root / "two").mkdir()
    engine1, settings1 = fresh_sqlite(root / "one")
    engine2, settings2 = fresh_sqlite(root / "two")
    try:
        import_aaf(engine1, settings1, [a])
        delta_runs = import_aaf(engine1, settings1, [d], allow_mass_removal=True)
        assert {r.mode for r in delta_runs} == {"delta"}
        import_aaf(engine2, settings2, [b])
        one, two = content_rows(engine1), content_rows(engine2)
    finally:
        engine1.dispose()
        engine2.dispose()

    active1 = {k for k, row in one.items() if row.status == ACTIVE}
    active2 = {k for k, row in two.items() if row.status == ACTIVE}
    assert active2 == set(two)  # store 2 saw one complet: nothing is leaving there
    # What a delta cannot derive (connectors/aaf/README.md): 1D levels are learnt from pupils,
    # and a delta cannot tell that no pupil holds a level any more (the next complet makes it
    # leave). Those left over must be levels that no pupil of B holds.
    vacated = {k for k in active1 - active2 if k[0] == "level" and k[2].startswith("1d-")}
    assert not {k[2] for k in vacated} & levels_held(b)
    assert active1 - vacated == active2
    leaving1 = {k for k, row in one.items() if row.status == LEAVING}
    assert leaving1 == set(one) - active2 - vacated  # exactly what store 2 never had
    assert all(one[k].leaving_since is not None for k in leaving1)

    for key in sorted(active2):
        r1, r2 = one[key], two[key]
        assert r1.id == r2.id, key  # hub ids come from scope + key
        if r1.content_hash == r2.content_hash:
            continue
        differing = {
            c for c in r1._mapping if c not in BOOKKEEPING and r1._mapping[c] != r2._mapping[c]
        }
        if key[0] in ("class", "group") and r1.owner_key == f"{key[0]}:{key[2]}":
            # A class or group derived from its persons (all of 1D) is written by a complete
            # complet: its level codes are those of its pupils; a delta only creates one that
            # the store lacks (connectors/aaf/README.md).
            differing.discard("level_codes")
        if not differing:
            continue
        raise AssertionError(
            f"{key} differs after A+D vs B: "
            + ", ".join(f"{c}: {r1._mapping[c]!r} != {r2._mapping[c]!r}" for c in sorted(differing))
        )
    return guardians_modified_alone(d, b)


@pytest.mark.slow
@hypothesis_settings(
    database=None,  # write nothing outside tests/integration; a failure prints its example
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    seed=st.integers(min_value=1, max_value=10_000),
    rate=st.sampled_from([0.02, 0.05, 0.1, 0.2, 0.4]),
    pupils=st.integers(min_value=60, max_value=150),
    degree=st.sampled_from(["2d", "both"]),
)
def test_complet_then_delta_equals_the_new_complet(
    tmp_path: Path, seed: int, rate: float, pupils: int, degree: str
) -> None:
    root = tmp_path / f"example-{uuid.uuid4().hex[:8]}"
    root.mkdir()
    try:
        compare_delta_with_complet(root, seed, rate, pupils, degree)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_guardian_modified_alone_in_a_delta_keeps_its_uais(tmp_path: Path) -> None:
    # Seed 3 modifies guardians whose pupils the delta does not re-send: they keep their UAIs.
    assert compare_delta_with_complet(tmp_path, seed=3, rate=0.1, pupils=120, degree="2d")


def test_generated_delta_adds_modifies_and_deletes(
    store: Store, academie: Path, tmp_path: Path
) -> None:
    delta = tmp_path / "d"
    generate_delta(academie, delta, seed=41, rate=0.05)
    run_import(store, [academie])
    (run,) = run_import(store, [delta], allow_mass_removal=True)
    scope = run.scope.key
    persons = by_key(store.engine, PERSON, scope)
    requests = [r for r in requests_of(delta) if r.category in PERSON_CATEGORIES]
    ops = Counter(r.op for r in requests)
    assert ops["add"] and ops["modify"] and ops["delete"]
    for request in requests:
        row = persons[request.id]
        if request.op == "delete":
            assert row.status == LEAVING and row.leaving_since is not None
            for kind, carried in carried_by(store, row.id):
                assert (carried.status, carried.leaving_since) == (LEAVING, row.leaving_since), kind
        else:
            assert row.status == ACTIVE and stored_fields(row) == person_fields(request)
    report = report_of(run)
    assert report.counts[PERSON].created == ops["add"]
    assert report.counts[PERSON].leaving == ops["delete"]
