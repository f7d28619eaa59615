"""What an import does with values the schema cannot hold, with dry runs that end badly, and
after its commit, on both backends."""

from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path

import orjson
import pytest
from sqlalchemy import create_engine, func, select, text

from annuaire.errors import BadInput, Refused
from annuaire.importing import ExportRun, import_aaf
from annuaire.registre.flowlog import ENTRY
from annuaire.schema import EntityKind, ImportRun, SourceWarning
from connectors.sample import generate_academie
from tests.conftest import Store
from tests.integration.import_support import by_key, snapshot

PERSON = EntityKind.PERSON


def _academie(folder: Path, pupils: int = 40, chunk_size: int = 5000) -> Path:
    generate_academie(folder, pupils=pupils, seed=7, chunk_size=chunk_size)
    return folder


def _logged(store: Store) -> tuple[int, int]:
    """Runs recorded and flow-log entries."""
    with store.engine.connect() as connection:
        runs = connection.execute(select(func.count()).select_from(ImportRun.__table__)).scalar()  # type: ignore[attr-defined]
        entries = connection.execute(select(func.count()).select_from(ENTRY)).scalar()
    return int(runs or 0), int(entries or 0)


def _replace_value(folder: Path, pattern: str, old: str, new: str) -> str:
    """Replace the first ``old`` in the first file matching ``pattern``; its record id."""
    path = next(folder.glob(pattern))
    data = path.read_text(encoding="utf-8")
    at = data.index(old)
    start = data.rindex("<id>", 0, at) + 4
    record = data[start : data.index("</id>", start)]
    path.write_text(data[:at] + new + data[at + len(old) :], encoding="utf-8")
    return record


def test_values_longer_than_their_column_are_cut_with_a_warning(
    store: Store, tmp_path: Path
) -> None:
    """PostgreSQL refuses a longer value (the whole run would fail), SQLite stores it (and the
    API would serve what its contract forbids): both cut it, and say so."""
    folder = _academie(tmp_path / "a")
    name = "LONGNOM" * 43  # 301 characters; usage_name holds 128
    path = next(folder.glob("*_PersRelEleve_0000.xml"))
    data = path.read_text(encoding="utf-8")
    at = data.index('<attr name="sn"><value>') + len('<attr name="sn"><value>')
    end = data.index("</value>", at)
    record = data[data.rindex("<id>", 0, at) + 4 : data.rindex("</id>", 0, at)]
    path.write_text(data[:at] + name + data[end:], encoding="utf-8")
    (run,) = import_aaf(store.engine, store.settings, [folder])
    assert run.report is not None and run.report.outcome == "applied"
    person = by_key(store.engine, PERSON)[record]
    assert person.usage_name == name[:128]
    (warning,) = [w for w in run.report.warnings if "usage_name" in w.message]
    assert warning.code == "bad-value"
    assert f"person {record!r}: usage_name has 301 characters" in warning.message
    assert warning.provenance is not None and warning.provenance.file == str(path)
    assert warning.provenance.line is not None and warning.provenance.record_id == record
    (again,) = import_aaf(store.engine, store.settings, [folder])  # the same file, unchanged
    assert again.report is not None and again.report.counts[PERSON].updated == 0


def test_a_key_longer_than_keys_are_stored_is_bad_input(store: Store, tmp_path: Path) -> None:
    folder = _academie(tmp_path / "a")
    before = snapshot(store.engine)
    path = next(folder.glob("*_PersEducNat_0000.xml"))
    data = path.read_text(encoding="utf-8")
    at = data.index("<id>") + 4
    old = data[at : data.index("</id>", at)]
    key = "9" * 300
    path.write_text(data.replace(f">{old}<", f">{key}<"), encoding="utf-8")
    with pytest.raises(BadInput, match="a person key of 300 characters") as caught:
        import_aaf(store.engine, store.settings, [folder])
    assert caught.value.file == str(path) and caught.value.record_id == key[:64]
    assert snapshot(store.engine) == before  # nothing of the run applied


def test_a_dry_run_refused_by_a_guard_or_failing_logs_nothing(store: Store, tmp_path: Path) -> None:
    """A dry run applies nothing and logs nothing, however it ends: no run row, no flow
    entry (a refused or failed real run records both)."""
    folder = _academie(tmp_path / "a", pupils=60, chunk_size=20)
    import_aaf(store.engine, store.settings, [folder])
    logged = _logged(store)
    emptied = tmp_path / "emptied"
    shutil.copytree(folder, emptied)
    last = sorted(emptied.glob("*_Eleve_*.xml"))[-1]
    head, _, _ = last.read_text(encoding="utf-8").partition("<addRequest>")
    last.write_text(head + "</ficAlimMENESR>\n", encoding="utf-8")  # a third of the pupils
    runs: list[ExportRun] = []
    with pytest.raises(Refused, match=r"mass-removal|would mark") as refusal:
        import_aaf(store.engine, store.settings, [emptied], dry_run=True, collect=runs)
    assert _logged(store) == logged
    (report,) = [run.report for run in runs]  # what the command prints and `--report` writes
    assert report is not None and report.outcome == "refused"
    assert report.message == str(refusal.value)
    broken = tmp_path / "broken"
    shutil.copytree(folder, broken)
    _replace_value(broken, "*_Eleve_0001.xml", "</addRequest>", "</addReq>")
    with pytest.raises(BadInput):
        import_aaf(store.engine, store.settings, [broken], dry_run=True)
    assert _logged(store) == logged
    with pytest.raises(Refused):  # the same run, for real: recorded as refused
        import_aaf(store.engine, store.settings, [emptied])
    assert _logged(store) == (logged[0] + 1, logged[1] + 1)


def test_statistics_not_refreshed_after_the_commit_do_not_fail_the_run(
    pg_database_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The run is committed when the planner's statistics are refreshed: another session
    holding a table (a VACUUM, another import's ANALYZE) past the lock timeout leaves them as
    they are, with a warning; the run is applied and recorded once."""
    from annuaire.settings import Settings
    from annuaire.store import make_engine
    from tests.conftest import empty_postgres_store

    url = f"{pg_database_url}?options=-c%20lock_timeout%3D300"
    settings = Settings(database_url=url, environment="test")
    engine = make_engine(settings)
    empty_postgres_store(engine)
    folder = _academie(tmp_path / "a", pupils=400)
    holder = create_engine(pg_database_url)
    try:
        with holder.connect() as connection, connection.begin():
            # ANALYZE needs this lock; the import's inserts do not.
            connection.execute(text("LOCK TABLE person IN SHARE UPDATE EXCLUSIVE MODE"))
            with caplog.at_level(logging.WARNING, logger="annuaire.sync.engine"):
                (run,) = import_aaf(engine, settings, [folder])
        assert run.report is not None and run.report.outcome == "applied"
        assert "planner statistics not refreshed" in caplog.text
        with engine.connect() as connection:
            outcomes = connection.execute(select(ImportRun.__table__.c.outcome)).scalars().all()  # type: ignore[attr-defined]
        assert outcomes == ["applied"]
    finally:
        holder.dispose()
        engine.dispose()


def test_a_value_too_long_in_a_later_run_is_cut_and_the_next_run_finds_it_unchanged(
    store: Store, tmp_path: Path
) -> None:
    """The row's hash is the record's as sent: a re-import of the same file is unchanged (no
    update every night), and what is stored fits the column."""
    folder = _academie(tmp_path / "a")
    import_aaf(store.engine, store.settings, [folder])
    longer = tmp_path / "longer"
    shutil.copytree(folder, longer)
    path = next(longer.glob("*_PersEducNat_0000.xml"))
    data = path.read_text(encoding="utf-8")
    at = data.index('<attr name="sn"><value>') + len('<attr name="sn"><value>')
    record = data[data.rindex("<id>", 0, at) + 4 : data.rindex("</id>", 0, at)]
    path.write_text(data[:at] + "X" * 200 + data[data.index("</value>", at) :], encoding="utf-8")
    (run,) = import_aaf(store.engine, store.settings, [longer])
    assert run.report is not None
    assert run.report.counts[PERSON].updated == 1
    assert by_key(store.engine, PERSON)[record].usage_name == "X" * 128
    assert [w.code for w in run.report.warnings if "usage_name" in w.message] == ["bad-value"]
    (again,) = import_aaf(store.engine, store.settings, [longer])
    assert again.report is not None
    assert again.report.counts[PERSON].updated == 0
    assert again.report.counts[PERSON].unchanged == run.report.counts[PERSON].unchanged + 1


def test_a_rejected_personal_value_is_masked_wherever_the_run_is_read(
    store: Store, tmp_path: Path
) -> None:
    """A malformed birth date or address is a person's data: the warning names the attribute,
    the record, its line and what was expected, and hides the value — in the report, in the
    stored run and in ``/v1/import-runs`` (which ENT clients read)."""
    from fastapi.testclient import TestClient

    from annuaire.api import create_app

    folder = _academie(tmp_path / "a")
    born = re.search(
        r'"ENTPersonDateNaissance"><value>([^<]+)',
        next(folder.glob("*_Eleve_0000.xml")).read_text(encoding="utf-8"),
    )
    assert born is not None
    impossible = "31/02/" + born.group(1)[-4:]
    pupil = _replace_value(folder, "*_Eleve_0000.xml", born.group(1), impossible)
    address = "12 RUE DUPONTEL$BATIMENT QUINCAMPOIX"  # two lines: neither one nor four
    guardian = _replace_value(
        folder,
        "*_PersRelEleve_0000.xml",
        '"ENTPersonAdresse"><value>',
        f'"ENTPersonAdresse"><value>{address}$',
    )
    (run,) = import_aaf(store.engine, store.settings, [folder])
    assert run.report is not None and run.report.outcome == "applied"

    def bad(attribute: str) -> SourceWarning:
        (found,) = [w for w in run.report.warnings if w.message.startswith(f"{attribute}:")]  # type: ignore[union-attr]
        return found

    date_warning, address_warning = bad("ENTPersonDateNaissance"), bad("ENTPersonAdresse")
    assert date_warning.code == "bad-value"
    assert date_warning.message == (
        "ENTPersonDateNaissance: a value of 10 characters shaped '**/**/****' is not valid, "
        "expected an existing date (dd/MM/yyyy); date left empty"
    )
    assert date_warning.provenance is not None and date_warning.provenance.record_id == pupil
    assert date_warning.provenance.line is not None
    assert (
        address_warning.provenance is not None and address_warning.provenance.record_id == guardian
    )
    assert "'** *** ********$******** ***********$" in address_warning.message
    with store.engine.connect() as connection:
        stored = orjson.dumps(
            connection.execute(select(ImportRun.__table__.c.warnings)).scalars().all()  # type: ignore[attr-defined]
        ).decode()
    app = create_app(store.settings)
    with TestClient(app) as client:
        served = client.get("/v1/import-runs").text
    app.state.engine.dispose()
    for text_ in (stored, served):
        assert "ENTPersonDateNaissance" in text_ and pupil in text_
        assert impossible not in text_ and "DUPONTEL" not in text_ and "QUINCAMPOIX" not in text_
