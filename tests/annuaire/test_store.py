"""Store, migrations, settings and the committed schema specs."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel

from annuaire.settings import Settings, normalise_database_url
from annuaire.specs import generated_spec_files
from annuaire.store import make_engine
from annuaire.store.bulk import insert_tuples
from annuaire.store.changes import ChangeRecorder
from annuaire.store.engine import write_transaction
from annuaire.store.migrate import current_revision, head_revision, objects_for
from tests._personal_data_guard import record_output
from tests.conftest import PROJECT_ROOT, Store


def test_migrations_build_exactly_the_models(store: Store) -> None:
    assert current_revision(store.engine) == head_revision()
    with store.engine.connect() as connection:
        options = {"compare_type": True, "include_object": objects_for(connection.dialect.name)}
        context = MigrationContext.configure(connection, opts=options)
        diff = compare_metadata(context, SQLModel.metadata)
    assert diff == [], f"models and migrations differ; add a revision: {diff}"


def test_sqlite_runs_in_wal_mode(tmp_path: Path) -> None:
    engine = make_engine(Settings(database_url=f"sqlite:///{tmp_path / 'wal.db'}"))
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 60_000


def test_a_write_with_its_own_busy_timeout_leaves_the_pooled_connection_as_configured(
    store: Store,
) -> None:
    """``write_transaction(busy_timeout_s=...)`` (the recording of a run that waited for another
    writer) writes on both backends; on SQLite the connection goes back to the pool with the
    configured busy timeout, not the short one."""
    from annuaire.schema import ImportRun

    table = ImportRun.__table__  # type: ignore[attr-defined]
    with write_transaction(store.engine, busy_timeout_s=0.05) as connection:
        if store.backend == "sqlite":
            assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 50
        connection.execute(table.delete().where(table.c.scope == "none:such"))
    if store.backend == "sqlite":
        configured = int(store.settings.sqlite_busy_timeout_s * 1000)
        for _ in range(store.engine.pool.size() + 1):  # whichever connection the pool gives
            with store.engine.connect() as connection:
                assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == configured


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgres://u@h/db", "postgresql+psycopg://u@h/db"),
        ("postgresql://u:p@h:5433/db", "postgresql+psycopg://u:p@h:5433/db"),
        ("postgresql+psycopg://h/db", "postgresql+psycopg://h/db"),
        ("sqlite:///x.db", "sqlite:///x.db"),
    ],
)
def test_database_urls_are_normalised(given: str, expected: str) -> None:
    assert normalise_database_url(given) == expected
    assert Settings(database_url=given).database_url == expected


def test_unsupported_database_url_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unsupported database URL scheme in 'mysql'"):
        Settings(database_url="mysql://root@localhost/x")


def test_settings_come_from_env_and_toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "aiguillage.toml"
    config.write_text("purge_delay_days = 30\nmass_removal_threshold = 0.2\n", encoding="utf-8")
    monkeypatch.setenv("AIGUILLAGE_CONFIG", str(config))
    monkeypatch.setenv("AIGUILLAGE_MASS_REMOVAL_THRESHOLD", "0.05")
    settings = Settings()
    assert settings.purge_delay_days == 30  # from the file
    assert settings.mass_removal_threshold == 0.05  # the environment wins over the file


def test_committed_specs_match_the_models() -> None:
    stale = [
        str(relative)
        for relative, content in generated_spec_files().items()
        if not (PROJECT_ROOT / "specs" / relative).exists()
        or (PROJECT_ROOT / "specs" / relative).read_text(encoding="utf-8") != content
    ]
    assert stale == [], f"specs/ drifted from the code, run `make spec`: {stale}"


@pytest.mark.parametrize(
    "command",
    [
        ("spec", "write", "--out", "specs"),
        ("spec", "write", "--out", "specs", "--check"),
        ("conformance", "--base-url", "http://127.0.0.1:9"),
    ],
    ids=["spec-write", "spec-check", "conformance"],
)
def test_the_contract_is_built_without_writing_key_material(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    """Generating the contract, or running the kit (which reads it) against a deployment
    elsewhere, mints no token and serves no JWKS: no key may appear where it runs."""
    if "--check" in command:
        shutil.copytree(PROJECT_ROOT / "specs", tmp_path / "specs")
    done = _cli(*command, url="sqlite://", cwd=tmp_path)
    # The kit finds nothing listening on port 9: every check fails, and that is all.
    assert done.returncode == (1 if command[0] == "conformance" else 0), done.stderr
    outside_specs = sorted(
        str(path.relative_to(tmp_path))
        for path in tmp_path.rglob("*")
        if path.relative_to(tmp_path).parts[0] != "specs"
    )
    assert outside_specs == [], outside_specs


def _cli(*args: str, url: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "annuaire", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={"AIGUILLAGE_DATABASE_URL": url, "PATH": "/usr/bin:/bin", "COLUMNS": "200"},
        check=False,
    )
    record_output(f"aiguillage {args[0]} stderr (tests/annuaire)", done.stderr)
    return done


def test_cli_help_lists_the_commands(tmp_path: Path) -> None:
    result = _cli("--help", url="sqlite:///x.db", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for command in ("db", "import", "purge", "runs", "changes", "sample", "spec"):
        assert command in result.stdout


def test_cli_db_upgrade_on_an_empty_database(empty_database_url: str, tmp_path: Path) -> None:
    head = head_revision()
    assert head is not None
    result = _cli("db", "upgrade", url=empty_database_url, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert head in result.stdout
    again = _cli("db", "current", url=empty_database_url, cwd=tmp_path)
    assert again.stdout.count(head) == 2


def test_cli_changes_prints_a_page_with_the_uais_as_a_list(store: Store, tmp_path: Path) -> None:
    ids = [uuid.uuid4() for _ in range(3)]
    with write_transaction(store.engine) as connection:
        recorder = ChangeRecorder(connection, scope="s", run_id=None)
        recorder.stage(
            [
                ("person", ids[0], "create", "|0750001A|0750002B|"),
                ("person", ids[1], "update", "|0750003C|"),
                ("role", ids[2], "leave", ""),
            ],
            dt.datetime.now(dt.UTC),
        )
        recorder.publish()
    url = store.settings.database_url
    page = _cli("changes", url=url, cwd=tmp_path)
    assert page.returncode == 0, page.stderr
    lines = [json.loads(line) for line in page.stdout.splitlines()]
    assert [(e["entity_id"], e["op"], e["structures"]) for e in lines] == [
        (str(ids[0]), "create", ["0750001A", "0750002B"]),
        (str(ids[1]), "update", ["0750003C"]),
        (str(ids[2]), "leave", []),
    ]
    assert page.stderr.strip() == f"next cursor: {lines[-1]['seq']}"
    after = _cli("changes", "--after", str(lines[0]["seq"]), "--limit", "1", url=url, cwd=tmp_path)
    assert [json.loads(line)["entity_id"] for line in after.stdout.splitlines()] == [str(ids[1])]
    one = _cli("changes", "--structure", "0750002B", url=url, cwd=tmp_path)
    assert [json.loads(line)["entity_id"] for line in one.stdout.splitlines()] == [str(ids[0])]
    for wildcard in ("%", "075000_A"):  # LIKE's wildcards are plain characters here
        none = _cli("changes", "--structure", wildcard, url=url, cwd=tmp_path)
        assert none.returncode == 0 and none.stdout == "", none.stdout


def test_cli_refuses_to_import_into_an_unmigrated_database(tmp_path: Path) -> None:
    result = _cli("runs", url=f"sqlite:///{tmp_path / 'empty.db'}", cwd=tmp_path)
    assert result.returncode == 2
    assert "aiguillage db upgrade" in result.stderr


@pytest.mark.parametrize("count", [0, 1, 70, 71, 72, 200, 2000])
def test_bulk_inserts_keep_every_row_in_order(store: Store, count: int) -> None:
    """Rows go to SQLite as many-row INSERTs (71 rows of 14 columns per statement) plus the
    rest one at a time, to PostgreSQL by COPY: every row arrives once, in the order given (the
    numbers the table draws say so)."""
    from sqlalchemy import Column, Integer, MetaData, String, Table, select

    table = Table(
        "bulk_probe",
        MetaData(),
        Column("n", Integer, primary_key=True, autoincrement=True),
        *[Column(f"c{i}", String) for i in range(14)],
    )
    rows = [tuple(f"{n}-{i}" if (n + i) % 3 else None for i in range(14)) for n in range(count)]
    columns = tuple(c.name for c in table.c)[1:]
    with store.engine.connect() as connection, connection.begin() as transaction:
        table.create(connection)
        insert_tuples(connection, table, columns, rows)
        stored = connection.execute(select(table).order_by(table.c.n)).all()
        transaction.rollback()
    assert [tuple(row)[1:] for row in stored] == rows
