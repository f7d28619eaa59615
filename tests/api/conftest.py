"""A generated académie imported once per backend, served by the real app in-process.

``api`` is read-only and shared by the module's tests (one import per backend and session);
tests that change data use ``fresh_api``, which imports into a store of their own.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from annuaire.api import create_app
from annuaire.importing import import_aaf
from annuaire.settings import Settings
from annuaire.store import make_engine
from annuaire.store.migrate import upgrade
from connectors.sample import generate_academie, generate_delta
from tests.conftest import Store, key_files, throwaway_pg_database

PUPILS = 400
SEED = 11


@dataclass
class Api:
    backend: str
    client: TestClient
    engine: Engine
    settings: Settings


@pytest.fixture(scope="session")
def academie(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("api-academie") / "complet"
    generate_academie(out, pupils=PUPILS, seed=SEED, degree="both")
    return out


@pytest.fixture(scope="session")
def academie_delta(academie: Path) -> Path:
    out = academie.parent / "delta"
    generate_delta(academie, out, seed=SEED + 1, rate=0.05)
    return out


def _serve(backend: str, url: str, academie: Path, keys: Path) -> Iterator[Api]:
    settings = Settings(database_url=url, environment="test", **key_files(keys))
    engine = make_engine(settings)
    upgrade(engine)
    import_aaf(engine, settings, [academie])
    app = create_app(settings)  # its own engine, tuned for serving, as in production
    with TestClient(app) as client:
        yield Api(backend, client, engine, settings)
    app.state.engine.dispose()
    engine.dispose()


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def api(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, academie: Path
) -> Iterator[Api]:
    folder = tmp_path_factory.mktemp("api-db")
    if request.param == "sqlite":
        yield from _serve("sqlite", f"sqlite:///{folder / 'api.db'}", academie, folder / "keys")
        return
    with throwaway_pg_database() as url:
        yield from _serve("postgres", url, academie, folder / "keys")


@pytest.fixture
def fresh_api(store: Store, academie: Path) -> Iterator[Api]:
    import_aaf(store.engine, store.settings, [academie])
    app = create_app(store.settings)
    with TestClient(app) as client:
        yield Api(store.backend, client, store.engine, store.settings)
    app.state.engine.dispose()


def legal_guardian_vector(api: Api) -> tuple[str, str, str, str, str]:
    """A legal guardian's hub id and the fields of the FrEduVecteur that names them: their last
    and first names, their pupil's SIECLE id, the pupil's school (the first by that id)."""
    with api.engine.connect() as connection:
        row = connection.execute(
            text(
                "SELECT g.guardian_id, p.usage_name, p.first_name, e.value, s.uai "
                "FROM guardianship g JOIN person p ON p.id = g.guardian_id "
                "JOIN external_id e ON e.entity_id = g.pupil_id AND e.type = 'siecle:ELEVE_ID' "
                "JOIN role r ON r.person_id = g.pupil_id "
                "JOIN structure s ON s.id = r.structure_id WHERE g.legal ORDER BY e.value"
            )
        ).first()
    assert row is not None
    guardian, last, first, pupil_ref, uai = row
    return str(guardian), last, first, pupil_ref, uai
