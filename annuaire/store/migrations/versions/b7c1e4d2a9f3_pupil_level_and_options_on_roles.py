"""roles: a pupil's MEF or 1D level, and their options

A pupil's role in a structure now carries what the AAF says of their schooling there: the MEF
(2D ``ENTEleveMEF``) or level (1D ``ENTEleveNiveau``) and the subjects they follow, their options
(``ENTEleveCodeEnseignements``). Existing rows get no level and no option; the next import of
each scope fills them in (every role's content changes once: its content hash covers the new
columns).

Revision ID: b7c1e4d2a9f3
Revises: 5d2e8f0a7c41
Create Date: 2026-11-29 15:40:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "b7c1e4d2a9f3"
down_revision: str | None = "5d2e8f0a7c41"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "role", sa.Column("level_code", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True)
    )
    op.add_column(
        "role",
        sa.Column("subject_codes", sa.JSON(), nullable=False, server_default=sa.text("'[]'")),
    )


def downgrade() -> None:
    with op.batch_alter_table("role") as batch:
        batch.drop_column("subject_codes")
        batch.drop_column("level_code")
