"""The migration that keeps a person's FrEduCtId once: the duplicates a store already holds
(simultaneous first logins on PostgreSQL wrote them) are deleted, the lowest id of each kept,
and a second row of the same id is refused afterwards; other external ids are left as they
are, duplicates included; on both backends."""

from __future__ import annotations

import uuid

import pytest
from alembic import command
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from annuaire.schema import ExternalId
from annuaire.settings import Settings
from annuaire.store import make_engine
from annuaire.store.migrate import alembic_config, current_revision, head_revision, upgrade

BEFORE = "e4a6c8b0d2f1"
ECT = "educonnect:FrEduCtId"
JOIN_KEY = "aaf:ENTPersonJointure"
EXT = ExternalId.__table__  # type: ignore[attr-defined]


def test_duplicate_educonnect_ids_are_deleted_and_refused_after(empty_database_url: str) -> None:
    engine = make_engine(Settings(database_url=empty_database_url, environment="test"))
    try:
        upgrade(engine, BEFORE)
        one, two = uuid.uuid4(), uuid.uuid4()
        # (person, type, value, scope), in the order the store wrote them.
        rows = [
            (one, ECT, "aa" * 48, "educonnect"),
            (one, ECT, "aa" * 48, "educonnect"),
            (two, ECT, "aa" * 48, "educonnect"),  # the same value for another person
            (one, ECT, "bb" * 48, "educonnect"),  # another value for the same person
            (one, ECT, "aa" * 48, "educonnect"),
            (one, JOIN_KEY, "1000337", "aaf:099:2d"),
            (one, JOIN_KEY, "1000337", "aaf:099:2d"),  # not an EduConnect id: untouched
            (two, ECT, "cc" * 48, "educonnect"),
            (two, ECT, "cc" * 48, "educonnect"),
        ]
        columns = ("entity_id", "type", "value", "scope")
        with engine.begin() as connection:
            ids = [
                connection.execute(
                    insert(EXT).returning(EXT.c.id),
                    {**dict(zip(columns, row, strict=True)), "entity_type": "person"},
                ).scalar_one()
                for row in rows
            ]
        assert ids == sorted(ids)
        upgrade(engine)
        assert current_revision(engine) == head_revision()
        with engine.connect() as connection:
            left = set(connection.execute(select(EXT.c.id)).scalars())
        assert sorted(ids.index(i) for i in left) == [0, 2, 3, 5, 6, 7]

        again = {"entity_type": "person", "entity_id": two, "type": ECT, "value": "cc" * 48}
        refused = r"uq_external_id_educonnect_id|failed: external_id\.entity_id, external_id\.type"
        with pytest.raises(IntegrityError, match=refused), engine.begin() as connection:
            connection.execute(insert(EXT), {**again, "scope": "educonnect"})
        with engine.begin() as connection:  # any other type may still repeat itself
            connection.execute(insert(EXT), {**again, "type": JOIN_KEY, "scope": "aaf:099:2d"})

        config = alembic_config(engine)
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.downgrade(config, BEFORE)
        with engine.begin() as connection:  # the downgrade drops the index
            connection.execute(insert(EXT), {**again, "scope": "educonnect"})
    finally:
        engine.dispose()
