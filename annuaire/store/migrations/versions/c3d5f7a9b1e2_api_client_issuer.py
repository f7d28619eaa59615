"""api clients: the issuer whose tokens carry a contract

A contract was found by the ``client_id`` of a token alone, whichever trusted issuer signed it:
a configured client-credentials issuer could name a client of the hub's own token endpoint and
get its contract. A contract now names its issuer: NULL for the hub's own clients (every
existing row), or the name of a configured issuer for a client that authenticates there.

Revision ID: c3d5f7a9b1e2
Revises: b7c1e4d2a9f3
Create Date: 2026-11-30 00:30:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "c3d5f7a9b1e2"
down_revision: str | None = "b7c1e4d2a9f3"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "api_client",
        sa.Column("issuer", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    )


def downgrade() -> None:
    with op.batch_alter_table("api_client") as batch:
        batch.drop_column("issuer")
