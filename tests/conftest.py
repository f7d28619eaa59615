"""Shared fixtures: a migrated store on each backend, and where the third-party samples are.

``store`` is parametrised by backend. SQLite always runs. PostgreSQL runs against the server
named by ``AIGUILLAGE_TEST_PG`` (default: the local cluster on 127.0.0.1:5432): each test
session (each pytest-xdist worker) creates a throwaway database, migrates it with Alembic and
drops it at the end; it drops no other. When no server answers, PostgreSQL tests skip with the
reason, except under ``CI=true`` where they fail: CI must exercise both backends.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import Engine, text

from annuaire.registre import EXAMPLE_FILE, load_registre
from annuaire.registre.keys import generate_key_file
from annuaire.schema import (
    TABLES,
    ChangeEntry,
    ExternalId,
    FlowCheckpoint,
    FlowEntry,
    FlowPurge,
    FlowSubjectSet,
    ImportRun,
    ProcessingActivity,
)
from annuaire.schema.client import ApiClient, ClientAssertionUse
from annuaire.settings import Settings
from annuaire.store import make_engine
from annuaire.store.migrate import upgrade

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SAMPLES = (PROJECT_ROOT / ".." / "shared" / "samples").resolve()
PG_SERVER = os.environ.get("AIGUILLAGE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
IN_CI = os.environ.get("CI", "").lower() == "true"
# The CLI's rich consoles are built when ``annuaire.cli`` is imported and keep the width that
# ``COLUMNS`` gives then; tests that need a width pass it to the command. None is inherited: not
# the shell's, nor the COLUMNS=80 and LINES=24 that pytest-xdist's workers start with (GNU
# readline exports them when stdin is not a terminal).
for _variable in ("COLUMNS", "LINES"):
    os.environ.pop(_variable, None)
# The register and the flow log's keys of every test (and of the servers tests start): the
# bundled example, and a key file of this session (production settings refuse to create one).
os.environ.setdefault("AIGUILLAGE_REGISTRE_FILE", str(EXAMPLE_FILE))
if "AIGUILLAGE_REGISTRE_KEY_FILE" not in os.environ:
    _KEYS = Path(tempfile.mkdtemp(prefix="aiguillage-keys-")) / "registre-keys.json"
    generate_key_file(_KEYS)
    os.environ["AIGUILLAGE_REGISTRE_KEY_FILE"] = str(_KEYS)
#: The register the tests run under (the bundled example) and its activity for ENT clients.
REGISTER = load_registre(EXAMPLE_FILE)
ENT_ACTIVITY = REGISTER.activity("alimentation-ent")

# Fails the session when a fixture person's name or birth date reaches the logs.
pytest_plugins = ["tests._personal_data_guard"]


def samples_dir(*parts: str) -> Path:
    """A folder of ../shared/samples, or a skip naming what is missing."""
    path = SAMPLES.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"third-party samples not found at {path} (they live in ../shared/samples)")
    return path


def key_files(folder: Path) -> dict[str, Path]:
    """The settings naming the hub's signing key and the dev key in ``folder``: an app built
    without them would create its keys under ``.aiguillage/`` of the working directory (the
    repository), which tests running in parallel would share."""
    return {
        "signing_key_file": folder / "signing-key.json",
        "dev_key_file": folder / "dev-key.json",
    }


@dataclass
class Store:
    backend: str
    engine: Engine
    settings: Settings


def _pg_available() -> str | None:
    try:
        with psycopg.connect(PG_SERVER, connect_timeout=3):
            return None
    except psycopg.Error as exc:
        return str(exc).strip().splitlines()[0]


@contextlib.contextmanager
def throwaway_pg_database() -> Iterator[str]:
    """An empty PostgreSQL database for the duration of the block, or a skip (a failure in CI)."""
    problem = _pg_available()
    if problem is not None:
        message = f"PostgreSQL not reachable at {PG_SERVER}: {problem}"
        if IN_CI:
            pytest.fail(message + " (CI=true: the PostgreSQL tests must run)")
        pytest.skip(message)
    # Unique to this process (each pytest-xdist worker is one), named after the worker.
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    name = f"aiguillage_test_{worker}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_SERVER, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{PG_SERVER.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(PG_SERVER, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def pg_database_url() -> Iterator[str]:
    with throwaway_pg_database() as url:
        engine = make_engine(Settings(database_url=url))
        upgrade(engine)
        engine.dispose()
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database with nothing in it yet, on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    with throwaway_pg_database() as url:
        yield url


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    engine = make_engine(Settings(database_url=f"sqlite:///{path}"))
    upgrade(engine)
    engine.dispose()
    return path


_ALL_TABLES = [
    t.__table__.name  # type: ignore[attr-defined]
    for t in (
        *TABLES.values(),
        ExternalId,
        ImportRun,
        ChangeEntry,
        ApiClient,
        ClientAssertionUse,
        FlowEntry,
        FlowCheckpoint,
        FlowPurge,
        FlowSubjectSet,
        ProcessingActivity,
    )
]


def empty_postgres_store(engine: Engine) -> None:
    """Empty every table, the append-only flow log included, and reset the chain head."""
    with engine.begin() as connection:
        # The flow log's triggers refuse TRUNCATE; the tests' superuser may switch them off.
        connection.execute(text("SET LOCAL session_replication_role = replica"))
        connection.execute(text(f"TRUNCATE {', '.join(_ALL_TABLES)} RESTART IDENTITY"))
        connection.execute(
            text(
                "UPDATE flow_chain SET last_seq = 0, last_hash = :genesis, "
                "last_checkpoint_seq = 0, last_checkpoint_at = now()"
            ),
            {"genesis": "0" * 64},
        )


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        path = tmp_path / "store.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        url = f"sqlite:///{path}"
    else:
        url = request.getfixturevalue("pg_database_url")
    settings = Settings(database_url=url, environment="test", **key_files(tmp_path / "keys"))
    engine = make_engine(settings)
    if request.param == "postgres":
        empty_postgres_store(engine)
    yield Store(request.param, engine, settings)
    engine.dispose()
