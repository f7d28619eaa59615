"""The migration that moved the persons of the entries into shared lists (``flow_subject_set``):
a chain written before it verifies after it, unchanged, and answers access requests; the
downgrade puts the lists back into the entries; on both backends."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from alembic import command
from sqlalchemy import JSON, Column, Engine, MetaData, Table, Text, func, insert, select, update
from sqlalchemy.dialects.postgresql import ARRAY

from annuaire.registre.flowlog import CHAIN, ENTRY, GENESIS, SUBJECT_SET, FlowLog, FlowRecord
from annuaire.registre.keys import RegistreKeys, load_keys
from annuaire.registre.person import person_report
from annuaire.registre.verify import verify_log
from annuaire.registre.vocabulary import FlowKind, Operation, RecipientKind
from annuaire.settings import Settings
from annuaire.store import make_engine
from annuaire.store.migrate import alembic_config, current_revision, upgrade

from .flowlog_support import entries

BEFORE = "36273a2e5b2e"
AFTER = "ec28cf719ae4"
AT = dt.datetime(2026, 10, 1, 8, 0, tzinfo=dt.UTC)


def _records(persons: list[uuid.UUID]) -> list[FlowRecord]:
    """Entries naming the same lists again and again, and some naming nobody."""
    lists = [persons[:3], persons[2:5], [], persons[:3], [persons[5], persons[5]], persons[2:5]]
    return [
        FlowRecord(
            flow=FlowKind.API_OPERATOR,
            operation=Operation.READ,
            activity="exploitation",
            actor_kind=RecipientKind.OPERATOR,
            actor="operator",
            target="GET /v1/persons",
            subjects=subjects,
        )
        for subjects in lists
    ]


def _old_entry_table() -> Table:
    """``flow_entry`` as the previous revision had it: the list in the entry, no digest."""
    columns = [c._copy() for c in ENTRY.c if c.name != "subject_set"]
    lists = JSON().with_variant(ARRAY(Text()), "postgresql")
    return Table("flow_entry", MetaData(), *columns, Column("subjects", lists))


def _write_old_log(
    engine: Engine, keys: RegistreKeys, records: list[FlowRecord]
) -> list[dict[str, Any]]:
    """The log as the previous revision stored it: each entry with its list of pseudonyms."""
    flow_log = FlowLog(keys, {"exploitation": 1})
    rows = flow_log.entries(records, 0, GENESIS, AT)
    for row in rows:
        del row["subject_set"]  # not a column yet
    old_entry = _old_entry_table()
    with engine.begin() as connection:
        connection.execute(insert(old_entry), rows)
        connection.execute(
            update(CHAIN)
            .where(CHAIN.c.id == 1)
            .values(last_seq=len(rows), last_hash=rows[-1]["entry_hash"])
        )
    return rows


def test_a_chain_written_before_the_move_verifies_after_it_and_after_a_downgrade(
    empty_database_url: str,
) -> None:
    settings = Settings(database_url=empty_database_url, environment="test")
    engine = make_engine(settings)
    keys = load_keys(settings)
    persons = [uuid.uuid4() for _ in range(6)]
    try:
        upgrade(engine, BEFORE)
        written = _write_old_log(engine, keys, _records(persons))

        upgrade(engine, AFTER)
        assert current_revision(engine) == AFTER
        with engine.connect() as connection:
            report = verify_log(connection, keys)
            assert report.ok, report.summary()
            assert report.entries == len(written)
            moved = entries(connection)
            assert [(e["seq"], e["subjects"]) for e in moved] == [
                (r["seq"], r["subjects"]) for r in written
            ]
            assert [e["subject_set"] is None for e in moved] == [not r["subjects"] for r in written]
            # Three distinct non-empty lists, stored once each.
            lists = connection.execute(select(func.count()).select_from(SUBJECT_SET)).scalar()
            assert lists == 3
            answer = person_report(
                connection, keys, persons[2], retention_months=12, client_names={}
            )
            assert [f.seq for f in answer.flows] == [1, 2, 4, 6]
            answer = person_report(
                connection, keys, persons[5], retention_months=12, client_names={}
            )
            assert [f.seq for f in answer.flows] == [5]

        upgrade_to_previous(engine)
        old_entry = _old_entry_table()
        with engine.connect() as connection:
            back = connection.execute(
                select(old_entry.c.seq, old_entry.c.subjects).order_by(old_entry.c.seq)
            ).all()
        assert [(seq, list(subjects)) for seq, subjects in back] == [
            (r["seq"], r["subjects"]) for r in written
        ]
    finally:
        engine.dispose()


def upgrade_to_previous(engine: Engine) -> None:
    config = alembic_config(engine)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, BEFORE)
    assert current_revision(engine) == BEFORE
