"""import runs: the date of the export applied

A Delta older than the last export applied to its scope, or an export already applied, was
applied again when a later job was given it (a nightly job whose folder keeps the deliveries
of the previous nights): what the later exports had changed was undone. A run now records the
date of the export it applies (NULL for exports without a date), and an import checks each
export against the last one applied to its scope.

The AAF runs recorded before are dated from their first file's name
(``..._Complet_20260915_Eleve_0000.xml``), where it has a real date: without it, the first
job after the upgrade would find no dated run and apply the previous nights' deliveries again.

Revision ID: e4a6c8b0d2f1
Revises: c3d5f7a9b1e2
Create Date: 2026-11-30 05:40:00.000000
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "e4a6c8b0d2f1"
down_revision: str | None = "c3d5f7a9b1e2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


#: The date token of an AAF file name (AAF.md §2).
_NAMED_DATE = re.compile(r"_(?:complet|delta)_(\d{8})_", re.IGNORECASE)


def upgrade() -> None:
    op.add_column("import_run", sa.Column("export_date", sa.Date(), nullable=True))
    runs = sa.table(
        "import_run",
        sa.column("id", sa.Uuid()),
        sa.column("source", sa.String()),
        sa.column("files", sa.JSON()),
        sa.column("export_date", sa.Date()),
    )
    connection = op.get_bind()
    dated = [
        {"run": run_id, "day": day}
        for run_id, files in connection.execute(
            sa.select(runs.c.id, runs.c.files).where(runs.c.source == "aaf")
        )
        if (day := _named_day(files)) is not None
    ]
    if dated:
        by_id = runs.update().where(runs.c.id == sa.bindparam("run"))
        connection.execute(by_id.values(export_date=sa.bindparam("day")), dated)


def _named_day(files: object) -> dt.date | None:
    """The date the first file of a run names, if it is a real one."""
    if isinstance(files, str):  # a JSON text the driver did not decode
        files = json.loads(files)
    if not isinstance(files, list) or not files or not isinstance(files[0], str):
        return None
    found = _NAMED_DATE.search(re.split(r"[/\\]", files[0])[-1])
    if found is None:
        return None
    text = found.group(1)
    try:
        return dt.date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        return None


def downgrade() -> None:
    with op.batch_alter_table("import_run") as batch:
        batch.drop_column("export_date")
