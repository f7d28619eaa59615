"""The migration that dates import runs: the AAF runs recorded before it are dated from their
first file's name, so that the first job after the upgrade does not apply the previous nights'
deliveries again; on both backends."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import JSON, Column, MetaData, String, Table, Uuid, insert, select

from annuaire.schema import ImportRun
from annuaire.settings import Settings
from annuaire.store import make_engine
from annuaire.store.migrate import upgrade

BEFORE = "c3d5f7a9b1e2"


def test_the_aaf_runs_recorded_before_are_dated_from_their_file_names(
    empty_database_url: str,
) -> None:
    engine = make_engine(Settings(database_url=empty_database_url, environment="test"))
    upgrade(engine, BEFORE)
    # import_run as the previous revision had it (no export_date): only what the rows need.
    old = Table(
        "import_run",
        MetaData(),
        Column("id", Uuid()),
        Column("scope", String()),
        Column("source", String()),
        Column("mode", String()),
        Column("files", JSON()),
        Column("started_at", ImportRun.__table__.c.started_at.type),  # type: ignore[attr-defined]
        Column("outcome", String()),
        Column("counts", JSON()),
        Column("warning_count", ImportRun.__table__.c.warning_count.type),  # type: ignore[attr-defined]
        Column("warnings", JSON()),
    )
    files = {
        "complet": ["/srv/aaf/ENT_SANDBOX_Complet_20260915_Eleve_0000.xml"],
        "delta": ["aaf.zip/in/ENT_SANDBOX_Delta_20260917_EtabEducNat_0000.xml", "x_Delta_2026"],
        "nine digits": ["/srv/FULL_ENTTSSERVICES_Delta_201300408_Eleve_0000.xml"],
        "no day 31": ["/srv/ENT_Complet_20260931_Eleve_0000.xml"],
        "undated": ["/srv/ENT_Complet_Eleve_0000.xml"],
        "none": [],
        "another source": ["/srv/ENT_Complet_20260915_Eleve_0000.xml"],
    }
    ids = {name: uuid.uuid4() for name in files}
    with engine.begin() as connection:
        connection.execute(
            insert(old),
            [
                {
                    "id": ids[name],
                    "scope": "aaf:099:2d",
                    "source": "sts" if name == "another source" else "aaf",
                    "mode": "complet",
                    "files": names,
                    "started_at": dt.datetime(2026, 9, 16, 2, 0, tzinfo=dt.UTC),
                    "outcome": "applied",
                    "counts": {},
                    "warning_count": 0,
                    "warnings": [],
                }
                for name, names in files.items()
            ],
        )
    upgrade(engine)
    table = ImportRun.__table__  # type: ignore[attr-defined]
    with engine.connect() as connection:
        dated = dict(connection.execute(select(table.c.id, table.c.export_date)).all())
    assert {name: dated[run] for name, run in ids.items()} == {
        "complet": dt.date(2026, 9, 15),
        "delta": dt.date(2026, 9, 17),
        "nine digits": None,
        "no day 31": None,
        "undated": None,
        "none": None,
        "another source": None,
    }
