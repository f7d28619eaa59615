"""import runs: the date of the export applied

A Delta older than the last export applied to its scope, or an export already applied, was
applied again when a later job was given it (a nightly job whose folder keeps the deliveries
of the previous nights): what the later exports had changed was undone. A run now records the
date of the export it applies (NULL for the runs before, and for exports without a date), and
an import checks each export against the last one applied to its scope.

Revision ID: e4a6c8b0d2f1
Revises: c3d5f7a9b1e2
Create Date: 2026-11-30 05:40:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "e4a6c8b0d2f1"
down_revision: str | None = "c3d5f7a9b1e2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("import_run", sa.Column("export_date", sa.Date(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("import_run") as batch:
        batch.drop_column("export_date")
