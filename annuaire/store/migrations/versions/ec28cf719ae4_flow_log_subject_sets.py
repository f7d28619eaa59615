"""flow log: the persons of an entry stored once per distinct list (flow_subject_set)

Each entry used to carry its list of pseudonyms (a ``text[]`` under a GIN index on PostgreSQL):
a hundred index keys written per page read, although the same lists come back all the time (a
page read again, a class, a parent's children). The lists move to ``flow_subject_set``, keyed
by the SHA-256 of the list as compact JSON; an entry names its list by that digest
(``subject_set``, NULL when it concerns nobody). The HMAC of an entry still covers the list
itself, rebuilt by a join: the chain written before this migration verifies unchanged.

The entries are updated once here, with their append-only trigger switched off for the
migration's own transaction; lists get the same protection (no UPDATE; DELETE is left to the
purge, which removes the lists no remaining entry names).

Revision ID: ec28cf719ae4
Revises: 36273a2e5b2e
Create Date: 2026-11-29 03:20:00.000000
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from typing import Any

import orjson
import sqlalchemy as sa
import sqlmodel
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "ec28cf719ae4"
down_revision: str | None = "36273a2e5b2e"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_LISTS = sa.JSON().with_variant(postgresql.ARRAY(sa.Text()), "postgresql")
_BATCH = 5000


def _digest(subjects: list[str]) -> str:
    return hashlib.sha256(orjson.dumps(subjects)).hexdigest()


def _listed(value: Any) -> list[str]:
    """A stored list (a PostgreSQL array, or JSON text or a list on SQLite)."""
    if isinstance(value, str):
        value = json.loads(value)
    return list(value or [])


def _batches(connection: sa.Connection, query: str) -> Iterator[list[Any]]:
    after = None
    while True:
        where = "" if after is None else f" AND seq > {int(after)}"
        rows = connection.execute(sa.text(f"{query}{where} ORDER BY seq LIMIT {_BATCH}")).all()
        if not rows:
            return
        yield list(rows)
        after = rows[-1][0]


def upgrade() -> None:
    connection = op.get_bind()
    postgres = connection.dialect.name == "postgresql"
    sets = op.create_table(
        "flow_subject_set",
        sa.Column("digest", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("subjects", _LISTS, nullable=False),
        sa.PrimaryKeyConstraint("digest"),
    )
    if postgres:
        _gin_on_subjects("flow_subject_set")
    op.add_column(
        "flow_entry",
        sa.Column("subject_set", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    )
    op.create_index("ix_flow_entry_subject_set", "flow_entry", ["subject_set"])

    _suspend_entry_trigger(postgres)
    known: set[str] = set()
    query = "SELECT seq, subjects FROM flow_entry WHERE 1 = 1"
    for rows in _batches(connection, query):
        named: list[dict[str, Any]] = []
        for seq, stored in rows:
            subjects = _listed(stored)
            if not subjects:
                continue
            digest = _digest(subjects)
            named.append({"seq": seq, "digest": digest})
            if digest not in known:
                known.add(digest)
                connection.execute(sets.insert(), [{"digest": digest, "subjects": subjects}])
        if named:
            connection.execute(
                sa.text("UPDATE flow_entry SET subject_set = :digest WHERE seq = :seq"), named
            )
    _restore_entry_trigger(postgres)

    if postgres:
        op.drop_index("ix_flow_entry_subjects", table_name="flow_entry")
    # SQLite 3.35+ drops a column in place (a batch copy would lose the table's triggers).
    op.execute("ALTER TABLE flow_entry DROP COLUMN subjects")
    _protect_sets(postgres)


def downgrade() -> None:
    connection = op.get_bind()
    postgres = connection.dialect.name == "postgresql"
    op.add_column(
        "flow_entry",
        sa.Column("subjects", _LISTS, nullable=True),
    )
    _suspend_entry_trigger(postgres)
    lists = {
        digest: _listed(subjects)
        for digest, subjects in connection.execute(
            sa.text("SELECT digest, subjects FROM flow_subject_set")
        )
    }
    query = "SELECT seq, subject_set FROM flow_entry WHERE 1 = 1"
    subjects_of = sa.text("UPDATE flow_entry SET subjects = :subjects WHERE seq = :seq")
    if not postgres:
        subjects_of = subjects_of.bindparams(sa.bindparam("subjects", type_=sa.JSON()))
    for rows in _batches(connection, query):
        connection.execute(
            subjects_of,
            [
                {"seq": seq, "subjects": lists.get(digest, []) if digest else []}
                for seq, digest in rows
            ],
        )
    _restore_entry_trigger(postgres)
    if postgres:
        op.alter_column("flow_entry", "subjects", nullable=False)
        _gin_on_subjects("flow_entry")
    op.drop_index("ix_flow_entry_subject_set", table_name="flow_entry")
    op.execute("ALTER TABLE flow_entry DROP COLUMN subject_set")
    op.drop_table("flow_subject_set")


def _gin_on_subjects(table: str) -> None:
    """PostgreSQL: who received a person's data, ``subjects @> ARRAY[pseudonym]`` (without GIN's
    pending list: see annuaire.schema.registre)."""
    op.create_index(
        f"ix_{table}_subjects",
        table,
        ["subjects"],
        postgresql_using="gin",
        postgresql_with={"fastupdate": "off"},
    )


def _suspend_entry_trigger(postgres: bool) -> None:
    if postgres:
        op.execute("ALTER TABLE flow_entry DISABLE TRIGGER flow_entry_append_only")
    else:
        op.execute("DROP TRIGGER flow_entry_no_update")


def _restore_entry_trigger(postgres: bool) -> None:
    if postgres:
        op.execute("ALTER TABLE flow_entry ENABLE TRIGGER flow_entry_append_only")
    else:
        op.execute(
            "CREATE TRIGGER flow_entry_no_update BEFORE UPDATE ON flow_entry BEGIN "
            "SELECT RAISE(ABORT, 'the flow log is append-only: UPDATE on flow_entry refused'); "
            "END"
        )


def _protect_sets(postgres: bool) -> None:
    if postgres:
        op.execute(
            "CREATE TRIGGER flow_subject_set_append_only BEFORE UPDATE ON flow_subject_set "
            "FOR EACH ROW EXECUTE FUNCTION flow_log_append_only()"
        )
    else:
        op.execute(
            "CREATE TRIGGER flow_subject_set_no_update BEFORE UPDATE ON flow_subject_set BEGIN "
            "SELECT RAISE(ABORT, 'the flow log is append-only: UPDATE on flow_subject_set "
            "refused'); END"
        )
