"""One contract, one representation: the same data served from SQLite and from PostgreSQL gives
the same bytes, and so the same ``ETag``s.

An ENT editor tests against a deployment on SQLite and goes to production on PostgreSQL (or
compares the two): a body or a tag that differs for the same object would look like a change
(every cached object fetched again) or like a bug in the client. The same académie is imported
into both backends, and what differs by nature (the times of the import, the random id of an
import run) is pinned to the same values before comparing.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select, update

from annuaire.api import create_app
from annuaire.api.resources import RESOURCES
from annuaire.importing import import_aaf
from annuaire.schema import ChangeEntry, ImportRun, Person
from annuaire.settings import Settings
from annuaire.store import make_engine
from annuaire.store.migrate import upgrade
from tests.conftest import key_files, throwaway_pg_database

_AT = dt.datetime(2026, 9, 15, 6, 30, 0, 120000, tzinfo=dt.UTC)
_RUN_ID = uuid.UUID("5d1c1a52-6f0e-4c8e-9a35-2b1f4f0d7a10")


def _pin(engine: Engine) -> None:
    """Give both stores the same times, run id and a few values that render differently."""
    with engine.begin() as connection:
        for resource in RESOURCES.values():
            if resource.name != "import-runs":
                connection.execute(update(resource.table).values(modified_at=_AT))
        changes = ChangeEntry.__table__  # type: ignore[attr-defined]
        connection.execute(update(changes).values(at=_AT))
        runs = ImportRun.__table__  # type: ignore[attr-defined]
        scopes = connection.execute(select(runs.c.scope).order_by(runs.c.scope)).scalars().all()
        for number, scope in enumerate(scopes):
            # A run's id is random: the n-th scope's run gets the same one on both backends.
            connection.execute(
                update(runs)
                .where(runs.c.scope == scope)
                .values(
                    id=uuid.UUID(int=_RUN_ID.int + number),
                    started_at=_AT,
                    finished_at=_AT,
                    duration_s=2.0,
                    counts={"person": {"created": 3, "updated": 0}},
                )
            )
        persons = Person.__table__  # type: ignore[attr-defined]
        first = connection.execute(persons.select().order_by(persons.c.id).limit(1)).first()
        assert first is not None
        connection.execute(
            update(persons)
            .where(persons.c.id == first.id)
            .values(other_first_names=["ANNE", "MARIE"], address_lines=["1 RUE A", "BAT B"])
        )


def _served(backend: str, url: str, academie: Path, keys: Path) -> Iterator[TestClient]:
    settings = Settings(database_url=url, environment="test", **key_files(keys))
    engine = make_engine(settings)
    upgrade(engine)
    import_aaf(engine, settings, [academie])
    _pin(engine)
    app = create_app(settings)
    with TestClient(app) as client:
        yield client
    app.state.engine.dispose()
    engine.dispose()


@pytest.fixture(scope="module")
def clients(
    tmp_path_factory: pytest.TempPathFactory, academie: Path
) -> Iterator[tuple[TestClient, TestClient]]:
    folder = tmp_path_factory.mktemp("both-backends")
    sqlite = _served("sqlite", f"sqlite:///{folder / 'api.db'}", academie, folder / "k1")
    with throwaway_pg_database() as url:
        postgres = _served("postgres", url, academie, folder / "k2")
        yield next(sqlite), next(postgres)
        for served in (sqlite, postgres):
            next(served, None)


@pytest.mark.parametrize("name", list(RESOURCES))
def test_a_page_is_the_same_bytes_on_both_backends(
    clients: tuple[TestClient, TestClient], name: str
) -> None:
    sqlite, postgres = clients
    on_sqlite = sqlite.get(f"/v1/{name}", params={"limit": 1000})
    on_postgres = postgres.get(f"/v1/{name}", params={"limit": 1000})
    assert on_sqlite.status_code == on_postgres.status_code == 200
    assert on_sqlite.json()["items"], name
    assert on_sqlite.content == on_postgres.content


@pytest.mark.parametrize("name", list(RESOURCES))
def test_an_object_and_its_etag_are_the_same_on_both_backends(
    clients: tuple[TestClient, TestClient], name: str
) -> None:
    sqlite, postgres = clients
    for item in sqlite.get(f"/v1/{name}", params={"limit": 5}).json()["items"]:
        on_sqlite = sqlite.get(f"/v1/{name}/{item['id']}")
        on_postgres = postgres.get(f"/v1/{name}/{item['id']}")
        assert on_sqlite.content == on_postgres.content
        assert on_sqlite.headers["etag"] == on_postgres.headers["etag"]
        # A tag taken on one backend is current on the other.
        etag = {"If-None-Match": on_sqlite.headers["etag"]}
        assert postgres.get(f"/v1/{name}/{item['id']}", headers=etag).status_code == 304


def test_an_export_and_the_feed_are_the_same_bytes_on_both_backends(
    clients: tuple[TestClient, TestClient],
) -> None:
    sqlite, postgres = clients
    ndjson = {"Accept": "application/x-ndjson"}
    exported = [c.get("/v1/persons", headers=ndjson).content for c in clients]
    assert exported[0] == exported[1]
    feed = [c.get("/v1/changes", params={"limit": 1000}).content for c in (sqlite, postgres)]
    assert feed[0] == feed[1]


def test_whole_numbers_and_stored_lists_render_as_on_sqlite(
    clients: tuple[TestClient, TestClient],
) -> None:
    """What made the bodies differ: a float without a fraction (PostgreSQL wrote ``2``), the
    spacing of JSON the database renders or stores (``"id" : "..."``, ``["A", "B"]``)."""
    _, postgres = clients
    run = postgres.get(f"/v1/import-runs/{_RUN_ID}")
    assert b'"duration_s":2.0,' in run.content
    assert b'"counts":{"person":{"created":3,"updated":0}}' in run.content
    person = postgres.get("/v1/persons", params={"limit": 1}).content
    assert b'"other_first_names":["ANNE","MARIE"]' in person
    assert b'" : ' not in person
