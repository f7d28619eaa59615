"""The personal-data guard can fail: its scanners find what is planted, its spy sees imports."""

from __future__ import annotations

import datetime as dt
import inspect
import logging
import os
import shutil
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

import annuaire.importing
import annuaire.sync.engine
from annuaire.cli import app
from annuaire.importing import import_aaf
from annuaire.schema import EntityKind, NeutralRecord, Person, SourceWarning
from annuaire.settings import Settings
from annuaire.store import make_engine
from tests import _personal_data_guard as guard_plugin
from tests._personal_data_guard import (
    KnownPersonalData,
    PersonalDataGuard,
    export_dates,
    find_birth_dates,
    find_names,
    mask,
    name_index,
)
from tests.conftest import PROJECT_ROOT, Store
from tests.integration.import_support import aaf_dir

BORN = dt.date(2011, 4, 5)


def names_in(line: str, *names: str) -> list[str]:
    return [line[start:end] for start, end in find_names(line, name_index(names))]


def dates_in(line: str, *dates: dt.date) -> list[str]:
    return [line[start:end] for start, end in find_birth_dates(line, set(dates))]


# -- scanners ----------------------------------------------------------------------------------


def test_a_planted_name_is_found_whatever_its_case() -> None:
    assert names_in("INFO aiguillage.api: refused dupontel (request 3)", "DUPONTEL") == ["dupontel"]
    assert names_in("pupil Dupontel, Hélène", "dupontel", "hélène") == ["Dupontel", "Hélène"]


def test_names_match_whole_words_only_and_keep_their_accents() -> None:
    assert names_in("martinez amartin martin_x martin2", "martin") == []
    assert names_in("helene", "hélène") == []
    assert names_in("the-martin-case", "martin") == ["martin"]


def test_a_name_of_several_words_matches_as_a_whole() -> None:
    line = "guardian DE LA FONTAINE then de-la-fontaine then la fontaine"
    assert names_in(line, "de la fontaine") == ["DE LA FONTAINE", "de-la-fontaine"]
    assert names_in("N'DIAYE Aïssatou", "n'diaye") == ["N'DIAYE"]


def test_short_names_are_not_scanned() -> None:
    known = KnownPersonalData()
    known.learn({"usage_name": "LI", "first_name": "Léo", "other_first_names": ["Eva", "Emma"]})
    assert known.names == {"li", "léo", "eva", "emma"}
    assert known.scanned_names() == {"emma"}


@pytest.mark.parametrize(
    "written", ["2011-04-05", "05/04/2011", "20110405", "born on 2011-04-05T00:00", "id_20110405"]
)
def test_a_planted_birth_date_is_found_in_each_form(written: str) -> None:
    assert dates_in(f"WARNING aiguillage.api: {written}.", BORN)


@pytest.mark.parametrize(
    "written",
    [
        "2011-04-06",  # another day
        "04/05/2011",  # month and day swapped
        "a20110405b",  # hex digits of an id
        "120110405",  # nine digits
        "2011-13-05",  # not a date
    ],
)
def test_other_numbers_are_not_birth_dates(written: str) -> None:
    assert dates_in(written, BORN) == []


def test_an_aaf_export_date_is_not_a_birth_date_in_its_compact_form() -> None:
    exports = export_dates("reading ENT_Delta_20110405_Eleve_0000.xml")
    assert exports == {BORN}
    assert find_birth_dates("ENT delta 20110405 -> scope aaf:ENT:2d", {BORN}, exports) == []
    assert find_birth_dates("born 2011-04-05 or 05/04/2011", {BORN}, exports) == [(5, 15), (19, 29)]


def test_the_project_vocabulary_is_not_scanned() -> None:
    known = KnownPersonalData()
    known.learn({"usage_name": "Fields", "first_name": "Hélène"})
    assert known.scanned_names() == {"hélène"}


def test_the_report_masks_what_it_found() -> None:
    line = "refused DUPONTEL born 05/04/2011"
    spans = sorted(find_names(line, name_index(["dupontel"])) + find_birth_dates(line, {BORN}))
    assert mask(line, spans) == "refused D******* born 0*/**/****"


# -- the apply_run spy -------------------------------------------------------------------------


def person(key: str, **data: Any) -> NeutralRecord:
    return NeutralRecord(EntityKind.PERSON, key, data=data)


def test_the_spy_reads_the_stream_once_and_returns_what_apply_run_returns() -> None:
    guard, pulled, returned = PersonalDataGuard(), [], object()

    def stream() -> Iterator[Any]:
        for item in (
            person("P1", usage_name="DUPONTEL", first_name="Hélène", birth_date=BORN),
            NeutralRecord(EntityKind.STRUCTURE, "S1", data={"name": "COLLEGE JULES FERRY"}),
            SourceWarning("w", "a warning"),
        ):
            pulled.append(item)
            yield item

    def real(engine: Any, scope: Any, items: Any, *, mode: str) -> object:
        assert (engine, scope, mode) == ("engine", "scope", "delta")
        assert [i.key for i in items if isinstance(i, NeutralRecord)] == ["P1", "S1"]
        return returned

    assert guard.spy(real)("engine", "scope", stream(), mode="delta") is returned
    assert len(pulled) == 3  # one pass
    assert guard.known.names == {"dupontel", "hélène"} and guard.known.birth_dates == {BORN}


def test_the_spy_lets_a_failing_stream_fail() -> None:
    def failing() -> Iterator[Any]:
        yield person("P1", usage_name="DUPONTEL")
        raise ValueError("line 2 is malformed")

    def real(engine: Any, scope: Any, items: Any) -> None:
        list(items)

    with pytest.raises(ValueError, match="line 2"):
        PersonalDataGuard().spy(real)(None, None, failing())


def test_the_session_guard_is_installed_where_apply_run_is_imported() -> None:
    if guard_plugin.active_guard() is None:
        pytest.skip("the personal-data guard plugin is disabled")
    from tests.annuaire import test_sync

    real = inspect.unwrap(annuaire.sync.engine.apply_run)
    assert annuaire.sync.engine.apply_run is not real
    assert annuaire.importing.apply_run is annuaire.sync.engine.apply_run
    assert test_sync.apply_run is annuaire.sync.engine.apply_run


def test_the_spy_learns_a_real_import_without_changing_its_report(
    store: Store, sqlite_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = inspect.unwrap(annuaire.sync.engine.apply_run)
    guard = PersonalDataGuard()
    options: dict[str, Any] = {"partial": True, "academie": "PII"}

    monkeypatch.setattr(annuaire.importing, "apply_run", guard.spy(real))
    spied = import_aaf(store.engine, store.settings, [aaf_dir("eole-mini")], **options)
    shutil.copy(sqlite_template, tmp_path / "plain.db")
    plain_settings = Settings(database_url=f"sqlite:///{tmp_path / 'plain.db'}")
    plain_engine = make_engine(plain_settings)
    monkeypatch.setattr(annuaire.importing, "apply_run", real)
    plain = import_aaf(plain_engine, plain_settings, [aaf_dir("eole-mini")], **options)
    plain_engine.dispose()

    assert [(r.report.outcome, r.report.counts) for r in spied if r.report] == [
        (r.report.outcome, r.report.counts) for r in plain if r.report
    ]
    with store.engine.connect() as connection:
        table = Person.__table__  # type: ignore[attr-defined]
        rows = connection.execute(
            select(table.c.usage_name, table.c.first_name, table.c.birth_date)
        ).all()
    assert rows
    assert {v.lower() for row in rows for v in row[:2] if v} <= guard.known.names
    assert {row.birth_date for row in rows if row.birth_date} <= guard.known.birth_dates


def test_log_records_of_the_project_reach_the_guard() -> None:
    guard = guard_plugin.active_guard()
    if guard is None:
        pytest.skip("the personal-data guard plugin is disabled")
    probe = uuid.uuid4().hex
    logging.getLogger("aiguillage.guard-probe").debug("probe %s", probe)
    assert ("logger aiguillage.guard-probe", f"DEBUG aiguillage.guard-probe: probe {probe}") in (
        guard.texts
    )


# -- a whole session ---------------------------------------------------------------------------


def run_session(tmp_path: Path, test_body: str, *options: str) -> subprocess.CompletedProcess[str]:
    """A pytest session of its own, with the guard, running the tests of ``test_body`` (its
    output unrecorded); ``options`` are more pytest options (``-n 2``)."""
    (tmp_path / "test_planted.py").write_text(textwrap.dedent(test_body))
    command = [
        sys.executable, "-m", "pytest", "-q", "-p", "tests._personal_data_guard",
        "-p", "no:cacheprovider", "--basetemp", str(tmp_path / "basetemp"), *options,
        "test_planted.py",
    ]  # fmt: skip
    return subprocess.run(
        command,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def assert_leak_reported_masked(output: str) -> None:
    """The session's report names where DUPONTEL, born 05/04/2011, was logged, masked."""
    assert "name in logger aiguillage.api: 1 line(s)" in output
    assert "birth date in logger aiguillage.api: 1 line(s)" in output
    assert "refused D******* born 0*/**/****" in output
    assert "DUPONTEL" not in output and "05/04/2011" not in output


def test_a_session_that_logs_a_known_person_fails_with_a_masked_report(tmp_path: Path) -> None:
    done = run_session(
        tmp_path,
        """
        import logging
        from tests._personal_data_guard import active_guard

        def test_leak():
            active_guard().known.learn({"usage_name": "DUPONTEL", "birth_date": "2011-04-05"})
            logging.getLogger("aiguillage.api").info("refused DUPONTEL born 05/04/2011")
        """,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "1 passed" in done.stdout
    assert_leak_reported_masked(done.stdout)


def test_a_session_without_imports_scans_nothing(tmp_path: Path) -> None:
    done = run_session(tmp_path, "def test_nothing():\n    pass\n")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no person imported in this session, nothing to scan" in done.stdout


def test_under_xdist_a_person_learned_on_one_worker_is_found_in_the_logs_of_another(
    tmp_path: Path,
) -> None:
    # ``--dist each`` runs both tests on both workers: gw0 learns the person, gw1 logs it.
    done = run_session(
        tmp_path,
        """
        import logging, os
        from tests._personal_data_guard import active_guard

        def test_learn_on_gw0():
            if os.environ["PYTEST_XDIST_WORKER"] == "gw0":
                active_guard().known.learn({"usage_name": "DUPONTEL", "birth_date": "2011-04-05"})

        def test_log_on_gw1():
            if os.environ["PYTEST_XDIST_WORKER"] == "gw1":
                logging.getLogger("aiguillage.api").info("refused DUPONTEL born 05/04/2011")
        """,
        *("-n", "2", "--dist", "each"),
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "4 passed" in done.stdout
    assert_leak_reported_masked(done.stdout)


def test_cli_runner_stderr_reaches_the_guard() -> None:
    guard = guard_plugin.active_guard()
    if guard is None:
        pytest.skip("the personal-data guard plugin is disabled")
    result = CliRunner().invoke(app, ["runs", "--no-such-option"])
    assert result.exit_code == 2
    assert guard.texts[-1][0] == "CliRunner stderr (runs --no-such-option)"
    assert "--no-such-option" in guard.texts[-1][1]
