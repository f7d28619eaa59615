"""The nightly import job as a scheduler runs it: exit codes, ``--report``, what is printed."""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from annuaire.cli import app
from annuaire.settings import get_settings
from connectors.sample import generate_academie, generate_delta
from tests.integration.import_support import aaf_dir, malformed_lines
from tests.integration.test_aaf_import import MALFORMED, cli


def _report(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    assert set(document) == {"exit_code", "error", "runs"}, document
    return document


def test_the_report_says_how_the_job_ended_whatever_ended_it(tmp_path: Path) -> None:
    """A scheduler reads ``--report`` to learn what happened: it is written however the job
    ends, before any run (a store not upgraded, a folder missing or empty) as after one, with
    the exit code and the error the operator sees on stderr (file and line when known)."""
    url = f"sqlite:///{tmp_path / 'job.db'}"
    report = tmp_path / "run.json"
    generated = tmp_path / "generated"
    generate_academie(generated, pupils=40, seed=5)

    behind = cli(url, tmp_path, "import", "aaf", str(generated), "--report", str(report))
    assert behind.returncode == 2, behind.stderr
    written = _report(report)
    assert written["exit_code"] == 2 and written["runs"] == []
    assert "aiguillage db upgrade" in written["error"]["message"]
    assert written["error"]["message"] in " ".join(behind.stderr.split())
    assert cli(url, tmp_path, "db", "upgrade").returncode == 0

    missing = tmp_path / "2026-11-27"
    absent = cli(url, tmp_path, "import", "aaf", str(missing), "--report", str(report))
    assert absent.returncode == 2, absent.stderr
    written = _report(report)
    assert written["error"] == {
        "kind": "bad input",
        "message": f"{missing}: does not exist",
        "file": str(missing),
        "line": None,
        "column": None,
        "record_id": None,
    }

    missing.mkdir()
    empty = cli(url, tmp_path, "import", "aaf", str(missing), "--report", str(report))
    assert empty.returncode == 2, empty.stderr
    written = _report(report)
    assert written["exit_code"] == 2 and written["runs"] == []
    assert written["error"]["kind"] == "bad input"
    assert written["error"]["message"].startswith(f"no AAF file found in {missing}: ")
    assert "Check that the delivery arrived" in written["error"]["message"]  # what to do

    applied = cli(url, tmp_path, "import", "aaf", str(generated), "--report", str(report))
    assert applied.returncode == 0, applied.stderr
    written = _report(report)
    assert written["exit_code"] == 0 and written["error"] is None
    assert [run["outcome"] for run in written["runs"]] == ["applied"]

    broken = aaf_dir("men-2013-delta-malformed")
    bad = cli(url, tmp_path, "import", "aaf", str(broken), "--report", str(report))
    assert bad.returncode == 2, bad.stderr
    written = _report(report)
    bad_name = MALFORMED["men-2013-delta-malformed"]
    error = written["error"]
    assert error["kind"] == "bad input" and Path(error["file"]).name == bad_name
    assert error["line"] == malformed_lines()[f"aaf/men-2013-delta-malformed/{bad_name}"]
    assert [run["outcome"] for run in written["runs"]] == ["failed"]

    refused = cli(
        url, tmp_path, "import", "aaf", str(aaf_dir("eole-mini")), "--report", str(report)
    )
    assert refused.returncode == 1, refused.stderr
    written = _report(report)
    assert written["exit_code"] == 1 and written["error"]["kind"] == "refused"
    assert written["error"]["message"] == written["runs"][-1]["message"]


def test_a_report_that_cannot_be_written_stops_the_job_before_it_applies(tmp_path: Path) -> None:
    """``--report`` into a folder that does not exist is bad usage (exit 2) found before the
    import, not a traceback (exit 1, "refused") after the runs were applied."""
    url = f"sqlite:///{tmp_path / 'job.db'}"
    assert cli(url, tmp_path, "db", "upgrade").returncode == 0
    generated = tmp_path / "generated"
    generate_academie(generated, pupils=40, seed=5)
    nowhere = tmp_path / "reports" / "run.json"
    done = cli(url, tmp_path, "import", "aaf", str(generated), "--report", str(nowhere))
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert str(nowhere.parent) in done.stderr
    listed = cli(url, tmp_path, "runs").stdout
    assert "aaf:" not in listed, listed  # nothing was imported


def test_each_run_printed_names_its_export_date(tmp_path: Path) -> None:
    """A folder that keeps several nights' deliveries prints one result per export: each names
    its date, or the operator cannot tell which night's figures, or which skip, are which."""
    url = f"sqlite:///{tmp_path / 'job.db'}"
    assert cli(url, tmp_path, "db", "upgrade").returncode == 0
    complet, nights = tmp_path / "complet", tmp_path / "nights"
    generate_academie(complet, pupils=40, seed=5)
    generate_delta(complet, tmp_path / "d1", seed=6, also_complet=tmp_path / "c2")
    generate_delta(tmp_path / "c2", tmp_path / "d2", seed=7)
    for folder in (complet, tmp_path / "d1", tmp_path / "d2"):
        shutil.copytree(folder, nights, dirs_exist_ok=True)
    for night in (complet, tmp_path / "d1"):
        assert cli(url, tmp_path, "import", "aaf", str(night)).returncode == 0
    done = cli(url, tmp_path, "import", "aaf", str(nights))
    assert done.returncode == 0, done.stderr
    printed = " ".join(done.stdout.split())
    assert "ENT_SANDBOX complet 20260915 -> aaf:099:2d (complet): skipped, applied" in printed
    assert "ENT_SANDBOX delta 20260916 -> aaf:099:2d (delta)" in printed
    assert "ENT_SANDBOX delta 20260917 -> aaf:099:2d (delta)" in printed


def test_purge_names_a_scope_it_does_not_know(tmp_path: Path) -> None:
    """``purge --scope`` with a scope no import ever wrote (a typo, the académie's number for a
    per-school scope) is bad input naming the scopes there are, not "nothing to purge"; a
    negative delay is bad usage."""
    url = f"sqlite:///{tmp_path / 'job.db'}"
    assert cli(url, tmp_path, "db", "upgrade").returncode == 0
    complet, later = tmp_path / "complet", tmp_path / "later"
    generate_academie(complet, pupils=40, seed=5)
    generate_delta(complet, tmp_path / "delta", seed=6, rate=0.2, also_complet=later)
    for folder in (complet, later):
        done = cli(url, tmp_path, "import", "aaf", str(folder), "--allow-mass-removal")
        assert done.returncode == 0, done.stderr
    typo = cli(url, tmp_path, "purge", "--scope", "aaf:013:2d", "--older-than-days", "0")
    assert typo.returncode == 2, typo.stdout
    assert "aaf:013:2d" in typo.stderr and "aaf:099:2d" in typo.stderr, typo.stderr
    negative = cli(url, tmp_path, "purge", "--older-than-days", "-1")
    assert negative.returncode == 2, negative.stdout
    purged = cli(url, tmp_path, "purge", "--scope", "aaf:099:2d", "--older-than-days", "0")
    assert purged.returncode == 0, purged.stderr
    assert re.match(r"purged [1-9]\d* entities: ", purged.stdout), purged.stdout


def test_a_second_writer_on_sqlite_is_a_refusal_not_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite has one writer at a time: an import or a purge started while another job writes
    (a long import, last night's job still running) waits the busy timeout, then is refused
    (exit 1, a message saying what to do, the report written), as PostgreSQL refuses a second
    run of one scope; it was a traceback of ``database is locked``, and no report."""
    database = tmp_path / "job.db"
    url = f"sqlite:///{database}"
    assert cli(url, tmp_path, "db", "upgrade").returncode == 0
    generated = tmp_path / "generated"
    generate_academie(generated, pupils=40, seed=5)
    monkeypatch.setenv("AIGUILLAGE_SQLITE_BUSY_TIMEOUT_S", "0.5")
    other = sqlite3.connect(database, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # the other job, writing
        report = tmp_path / "run.json"
        busy = cli(url, tmp_path, "import", "aaf", str(generated), "--report", str(report))
        purging = cli(url, tmp_path, "purge", "--older-than-days", "0")
    finally:
        other.rollback()
        other.close()
    assert busy.returncode == 1, busy.stderr
    assert "Traceback" not in busy.stderr
    assert "refused: another import or purge is writing to the store" in busy.stderr
    written = _report(report)
    assert written["error"]["kind"] == "refused"
    assert written["exit_code"] == 1 and written["runs"] == []  # it waited before the first
    assert purging.returncode == 1, purging.stderr
    assert "refused: another import or purge is writing to the store" in purging.stderr
    again = cli(url, tmp_path, "import", "aaf", str(generated))  # once the other job ended
    assert again.returncode == 0, again.stderr


def test_a_job_refused_by_another_writer_waits_the_busy_timeout_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An import that waited the busy timeout for another writer (SQLite) is refused; it
    waited that timeout a second time to record the refused run, which needs the same lock.
    It now tries to record it briefly, and says on stderr and in ``--report`` that the run
    could not be recorded, and why (``aiguillage runs`` will not list it)."""
    database = tmp_path / "job.db"
    url = f"sqlite:///{database}"
    assert cli(url, tmp_path, "db", "upgrade").returncode == 0
    generated = tmp_path / "generated"
    generate_academie(generated, pupils=40, seed=5)
    assert cli(url, tmp_path, "import", "aaf", str(generated)).returncode == 0
    timeout = 3.0
    monkeypatch.setenv("AIGUILLAGE_DATABASE_URL", url)
    monkeypatch.setenv("AIGUILLAGE_SQLITE_BUSY_TIMEOUT_S", str(timeout))
    monkeypatch.chdir(tmp_path)
    get_settings.cache_clear()
    report = tmp_path / "run.json"
    other = sqlite3.connect(database, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # the other job, writing all along
        started = time.monotonic()
        busy = CliRunner().invoke(app, ["import", "aaf", str(generated), "--report", str(report)])
        elapsed = time.monotonic() - started
    finally:
        other.rollback()
        other.close()
        get_settings.cache_clear()
    assert busy.exit_code == 1, busy.output
    # Two waits take 2 x timeout at least; one (and the brief try to record the run, at most a
    # tenth of it) leaves the rest of that bound to the job's own work, however loaded the
    # machine is.
    assert timeout <= elapsed < 2 * timeout, elapsed
    stderr = " ".join(busy.stderr.split())
    assert "refused: another import or purge is writing to the store" in stderr, stderr
    assert "not recorded:" in stderr and "database is locked" in stderr, stderr
    assert "`aiguillage runs` does not list it" in stderr, stderr
    written = _report(report)
    assert written["error"]["kind"] == "refused"
    (run,) = written["runs"]
    assert run["outcome"] == "refused"
    assert run["message"] == written["error"]["message"]
    assert "database is locked" in run["not_recorded"]
    listed = cli(url, tmp_path, "runs")
    assert listed.returncode == 0 and "refused" not in listed.stdout, listed.stdout


def test_a_database_out_of_reach_is_said_not_a_traceback(tmp_path: Path) -> None:
    """A store that cannot be reached (the server down, a wrong host or port) stops the job
    before anything is read, with a message naming the database without its password and what
    to check, exit 2 and the report written; it was a traceback, exit 1 (what a refusal by a
    guard exits with), and no report."""
    report = tmp_path / "run.json"
    generated = tmp_path / "generated"
    generate_academie(generated, pupils=40, seed=5)
    url = "postgresql://aiguillage:s3cret@127.0.0.1:1/aiguillage"  # nothing listens on port 1
    done = cli(url, tmp_path, "import", "aaf", str(generated), "--report", str(report))
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and "s3cret" not in done.stderr
    printed = " ".join(done.stderr.split())
    assert "error: cannot open the database 127.0.0.1:1/aiguillage (" in printed
    assert "check AIGUILLAGE_DATABASE_URL" in printed
    written = _report(report)
    assert written["error"]["kind"] == "error" and written["runs"] == []
    assert written["error"]["message"] in printed
    listed = cli(url, tmp_path, "runs")
    assert listed.returncode == 2 and "Traceback" not in listed.stderr, listed.stderr


def test_the_report_gives_each_warning_where_a_program_can_read_it(tmp_path: Path) -> None:
    """Each warning of ``--report`` gives its file, line and record as fields (not only in one
    string to parse again), and the run its warning codes, as printed."""
    url = f"sqlite:///{tmp_path / 'job.db'}"
    assert cli(url, tmp_path, "db", "upgrade").returncode == 0
    complet = tmp_path / "complet"
    generate_academie(complet, pupils=200, seed=5)
    generate_delta(complet, tmp_path / "d1", seed=6, rate=0.1, also_complet=tmp_path / "c2")
    generate_delta(tmp_path / "c2", tmp_path / "d2", seed=7, rate=0.1)
    assert cli(url, tmp_path, "import", "aaf", str(complet)).returncode == 0
    report = tmp_path / "run.json"
    # The second night without the first: what the first added, the second modifies.
    done = cli(url, tmp_path, "import", "aaf", str(tmp_path / "d2"), "--report", str(report))
    assert done.returncode == 0, done.stderr
    (run,) = _report(report)["runs"]
    assert run["warning_count"] > 0
    assert sum(run["warning_codes"].values()) == run["warning_count"]
    codes = ", ".join(f"{n} {code}" for code, n in sorted(run["warning_codes"].items()))
    assert f"warnings: {run['warning_count']} ({codes})" in done.stdout
    placed = [w for w in run["warnings"] if w["where"] is not None]  # some concern the run
    assert placed
    for warning in placed:
        assert warning["file"].endswith(".xml") and warning["line"] > 0 and warning["record_id"]
        assert warning["where"] == (
            f"{warning['file']}, line {warning['line']}, record {warning['record_id']}"
        )
    for warning in run["warnings"][:5]:  # the first ones, printed
        shown = f"{warning['where']}: " if warning["where"] else ""
        assert f"{shown}{warning['message']}" in " ".join(done.stdout.split())


def test_runs_says_why_a_run_was_not_applied(tmp_path: Path) -> None:
    """The morning after, ``aiguillage runs`` tells why a run was refused, under its table (the
    reason is too long for a cell): the message the import printed, with the run's scope."""
    url = f"sqlite:///{tmp_path / 'job.db'}"
    generated = tmp_path / "generated"
    generate_academie(generated, pupils=40, seed=5)
    for chunk in generated.glob("*_PersRelEleve_*.xml"):
        chunk.unlink()  # a Complet without its guardians: refused, it would make them leave
    assert cli(url, tmp_path, "db", "upgrade").returncode == 0
    refused = cli(url, tmp_path, "import", "aaf", str(generated))
    assert refused.returncode == 1, refused.stderr
    listed = " ".join(cli(url, tmp_path, "runs").stdout.split())
    why = re.search(r"(aaf:\S+) refused: (complet export .*? Nothing was applied)", listed)
    assert why is not None, listed
    assert why.group(2) in " ".join(refused.stderr.split())


def test_the_report_holds_the_figures_of_the_printed_table(tmp_path: Path) -> None:
    """Each cell of the requests table (add / modify / delete / warnings per AAF category) is
    in ``--report`` too: a monitoring script reads the same figures as the operator."""
    url = f"sqlite:///{tmp_path / 'job.db'}"
    assert cli(url, tmp_path, "db", "upgrade").returncode == 0
    report_path = tmp_path / "run.json"
    done = cli(
        url, tmp_path, "import", "aaf", "--partial", str(aaf_dir("men-2013-complet")),
        "--report", str(report_path),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (run,) = _report(report_path)["runs"]
    categories = {"Eleve", "EtabEducNat", "MatiereEducNat", "MefEducNat", "PersEducNat"}
    printed = {
        cells[0]: [int(n.replace(",", "")) for n in cells[1:]]
        for line in done.stdout.splitlines()
        if len(cells := [c.strip() for c in line.strip().strip("│").split("│")]) == 5
        and cells[0] in categories | {"PersRelEleve"}
    }
    assert len(printed) == 6 and any(row[3] for row in printed.values()), done.stdout
    for category, (add, modify, delete, warnings) in printed.items():
        requests = [
            run["requests"].get(f"{category}:{op}", 0) for op in ("add", "modify", "delete")
        ]
        assert requests == [add, modify, delete], category
        assert run["warnings_by_category"].get(category, 0) == warnings, category


def test_a_dry_run_writes_nothing_not_even_the_registers_bookkeeping(tmp_path: Path) -> None:
    """``--dry-run`` changes nothing: no entity, no run, no flow entry, and neither the versions
    of the register's fiches (recorded when a registre is opened) nor a key file for the log in
    the working folder; the real run then writes them."""
    url = f"sqlite:///{tmp_path / 'job.db'}"
    generated = tmp_path / "generated"
    generate_academie(generated, pupils=40, seed=5)
    assert cli(url, tmp_path, "db", "upgrade").returncode == 0
    tables = ("processing_activity", "flow_entry", "import_run", "person")

    def rows() -> dict[str, int]:
        with sqlite3.connect(tmp_path / "job.db") as connection:
            return {
                t: connection.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables
            }

    def files() -> list[str]:
        return sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())

    before, present = rows(), files()
    dry = cli(url, tmp_path, "import", "aaf", "--dry-run", str(generated))
    assert dry.returncode == 0, dry.stderr
    assert rows() == before and files() == present
    assert cli(url, tmp_path, "import", "aaf", str(generated)).returncode == 0
    after = rows()
    assert all(after[t] > before[t] for t in tables), (before, after)


def test_only_db_upgrade_creates_a_sqlite_store(tmp_path: Path) -> None:
    """A command run on a SQLite path where no store exists (a typo in AIGUILLAGE_DATABASE_URL,
    the job run before ``db upgrade``) says to run ``db upgrade`` and leaves nothing behind: it
    created an empty database file (and its folder, -wal and -shm) that the next command then
    found "at revision none", as if a store were there."""
    folder = tmp_path / "store"
    url = f"sqlite:///{folder / 'job.db'}"
    generated = tmp_path / "generated"
    generate_academie(generated, pupils=40, seed=5)
    for command in (
        ("import", "aaf", str(generated)),
        ("runs",),
        ("purge", "--older-than-days", "0"),
        ("changes",),
        ("db", "current"),
        ("registre", "verify"),
    ):
        done = cli(url, tmp_path, *command)
        assert done.returncode == 2, (command, done.stdout, done.stderr)
        printed = " ".join(done.stderr.split())
        assert "Traceback" not in printed, (command, printed)
        assert f"the database {folder / 'job.db'} does not exist" in printed, (command, printed)
        assert "run `aiguillage db upgrade` first" in printed, (command, printed)
        assert not folder.exists(), (command, sorted(folder.rglob("*")))
    assert cli(url, tmp_path, "db", "upgrade").returncode == 0
    assert (folder / "job.db").is_file()
    listed = cli(url, tmp_path, "runs")
    assert listed.returncode == 0, listed.stderr


def test_a_refused_run_prints_why_not_empty_tables(tmp_path: Path) -> None:
    """A run refused before it read anything (an incomplete Complet) printed its title over
    two empty tables, and why only on stderr: it prints what was refused and why. A run
    refused with figures (the mass-removal guard) still prints them: they say why."""
    url = f"sqlite:///{tmp_path / 'job.db'}"
    assert cli(url, tmp_path, "db", "upgrade").returncode == 0
    complet, later, incomplete = tmp_path / "complet", tmp_path / "later", tmp_path / "incomplete"
    generate_academie(complet, pupils=40, seed=5)
    generate_delta(complet, tmp_path / "delta", seed=6, rate=0.2, also_complet=later)
    shutil.copytree(later, incomplete)
    for chunk in incomplete.glob("*_PersRelEleve_*.xml"):
        chunk.unlink()
    assert cli(url, tmp_path, "import", "aaf", str(complet)).returncode == 0

    refused = cli(url, tmp_path, "import", "aaf", str(incomplete))
    assert refused.returncode == 1, refused.stderr
    printed = " ".join(refused.stdout.split())
    assert "┏" not in refused.stdout and "AAF category" not in printed, refused.stdout
    why = re.search(r"-> aaf:099:2d \(complet\): REFUSED, nothing applied (.*)", printed)
    assert why is not None, printed
    assert why.group(1).startswith("refused: complet export ENT_SANDBOX 20260916 in ")
    assert "(no PersRelEleve file)" in why.group(1) and "Pass --partial" in why.group(1)

    guarded = cli(url, tmp_path, "import", "aaf", str(later))
    assert guarded.returncode == 1, guarded.stderr
    printed = " ".join(guarded.stdout.split())
    assert "REFUSED, nothing applied" in printed and "refused: " in printed, printed
    leaving = [
        int(cells[4].replace(",", ""))
        for line in guarded.stdout.splitlines()
        if len(cells := [c.strip() for c in line.strip().strip("│").split("│")]) == 6
        and cells[0] in ("person", "role", "enrollment", "guardianship")
    ]
    assert leaving and any(leaving), guarded.stdout


def test_an_archive_member_over_the_setting_is_bad_input(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A .zip member larger once decompressed than ``AIGUILLAGE_AAF_MAX_MEMBER_MB`` (a zip
    bomb's) is bad input naming it, before anything is read."""
    url = f"sqlite:///{tmp_path / 'job.db'}"
    assert cli(url, tmp_path, "db", "upgrade").returncode == 0
    generated = tmp_path / "generated"
    generate_academie(generated, pupils=40, seed=5)
    archive = tmp_path / "delivery.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as packed:
        for path in sorted(generated.rglob("*.xml")):
            body = path.read_bytes()
            if "_Eleve_" in path.name:  # 2 MB of blanks after the root's start tag
                body = body.replace(b"<ficAlimMENESR>", b"<ficAlimMENESR>" + b" " * (2 << 20), 1)
            packed.writestr(path.name, body)
    monkeypatch.setenv("AIGUILLAGE_AAF_MAX_MEMBER_MB", "1")
    done = cli(url, tmp_path, "import", "aaf", str(archive))
    assert done.returncode == 2, done.stderr
    printed = " ".join(done.stderr.split())
    assert f"{archive}!" in printed and "_Eleve_" in printed
    assert "more than the 1 MB an archive member may hold" in printed
    monkeypatch.setenv("AIGUILLAGE_AAF_MAX_MEMBER_MB", "3")
    assert cli(url, tmp_path, "import", "aaf", str(archive)).returncode == 0
