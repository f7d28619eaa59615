"""external ids: a person's FrEduCtId is kept once (a partial unique index)

A person's first EduConnect login keeps their ``FrEduCtId`` as the external id
``educonnect:FrEduCtId`` (scope ``educonnect``), with an insert that first looks whether the
row is there. On PostgreSQL, simultaneous first logins of one person each looked before any of
them had committed, and each kept the id: the same row several times. Nothing in the table
refused it.

A unique index on (entity_id, type, value) now refuses a second row, and a login's insert
does nothing on that conflict. The index is partial (``WHERE type = 'educonnect:FrEduCtId'``):
an import writes hundreds of thousands of AAF external ids, none of which it holds, so the
import pays nothing for it. The duplicates a store already holds are deleted first, keeping
the lowest id of each (entity_id, type, value); on PostgreSQL the table is locked against
other writers (reads go on) until the index is built, so that a login running meanwhile cannot
add one between the two.

Revision ID: d67d30807886
Revises: e4a6c8b0d2f1
Create Date: 2026-11-30 09:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "d67d30807886"
down_revision: str | None = "e4a6c8b0d2f1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_INDEX = "uq_external_id_educonnect_id"
_EDUCONNECT_ID = sa.text("type = 'educonnect:FrEduCtId'")


def upgrade() -> None:
    connection = op.get_bind()
    if connection.dialect.name == "postgresql":
        connection.execute(sa.text("LOCK TABLE external_id IN SHARE ROW EXCLUSIVE MODE"))
    ids = sa.table(
        "external_id",
        sa.column("id", sa.Integer()),
        sa.column("entity_id", sa.Uuid()),
        sa.column("type", sa.String()),
        sa.column("value", sa.String()),
    )
    kept = ids.alias("kept")
    connection.execute(
        sa.delete(ids).where(
            ids.c.type == "educonnect:FrEduCtId",
            sa.exists().where(
                kept.c.entity_id == ids.c.entity_id,
                kept.c.type == ids.c.type,
                kept.c.value == ids.c.value,
                kept.c.id < ids.c.id,
            ),
        )
    )
    op.create_index(
        _INDEX,
        "external_id",
        ["entity_id", "type", "value"],
        unique=True,
        sqlite_where=_EDUCONNECT_ID,
        postgresql_where=_EDUCONNECT_ID,
    )


def downgrade() -> None:
    op.drop_index(_INDEX, table_name="external_id")
