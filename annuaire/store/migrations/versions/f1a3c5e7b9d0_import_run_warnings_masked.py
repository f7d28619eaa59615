"""import runs: the personal values quoted by their warnings masked

A ``bad-value`` warning about an attribute that holds a person's own data (a birth date, a
name, an address, an e-mail, a phone, an INE) quoted the rejected value, and the runs keep their
warnings: ``/v1/import-runs`` served them to API clients. Imports now give such a value by its
length and shape only (``connectors.aaf._context.masked``); this revision does the same to the
warnings the runs recorded before, so that the store holds no such value any more.

The attributes and the masking are written out here as they are on the day of this revision
(a later change to the connector's list must not change what this revision did). A warning
whose file does not name a category is masked too: in doubt, the value goes.

The downgrade changes nothing: the values are gone.

Revision ID: f1a3c5e7b9d0
Revises: d67d30807886
Create Date: 2026-11-30 16:00:00.000000
"""

from __future__ import annotations

import ast
import re
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "f1a3c5e7b9d0"
down_revision: str | None = "d67d30807886"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PERSONAL_ATTRIBUTES = frozenset(
    {
        "sn",
        "givenName",
        "ENTPersonNomPatro",
        "ENTPersonAutresPrenoms",
        "personalTitle",
        "ENTPersonDateNaissance",
        "ENTPersonAdresse",
        "ENTPersonCodePostal",
        "ENTPersonVille",
        "ENTPersonPays",
        "mail",
        "homePhone",
        "mobile",
        "ENTPersonMobileSMS",
        "telephoneNumber",
        "ENTEleveINE",
    }
)
#: The category token of a file that holds no person (AAF.md §2): its values are not personal.
_NOT_PERSONS = re.compile(r"_(EtabEducNat|MatiereEducNat|MefEducNat)_", re.IGNORECASE)
#: ``attribute: 'value' is not valid, expected ...``, the value as Python's repr wrote it.
_QUOTED = re.compile(
    r"^(?P<attribute>[A-Za-z][A-Za-z0-9]*): "
    r"(?P<value>'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\") is not valid, expected ",
    re.DOTALL,
)
_MASKED_SHAPE = 40


def _masked(value: str) -> str:
    shape = "".join("*" if c.isalnum() else c for c in value[:_MASKED_SHAPE])
    more = "…" if len(value) > _MASKED_SHAPE else ""
    return f"a value of {len(value)} characters shaped {shape + more!r}"


def masked_warning(warning: Any) -> Any:
    """``warning`` (a run's stored warning) with a personal value it quotes masked."""
    if not isinstance(warning, dict) or warning.get("code") != "bad-value":
        return warning
    message = warning.get("message")
    found = _QUOTED.match(message) if isinstance(message, str) else None
    if found is None or found["attribute"] not in _PERSONAL_ATTRIBUTES:
        return warning
    if _NOT_PERSONS.search(str(warning.get("file") or "")):
        return warning
    try:
        value = ast.literal_eval(found["value"])
    except (ValueError, SyntaxError):
        return warning
    rest = message[found.end("value") :]
    return {**warning, "message": f"{found['attribute']}: {_masked(str(value))}{rest}"}


def upgrade() -> None:
    runs = sa.table("import_run", sa.column("id", sa.Uuid()), sa.column("warnings", sa.JSON()))
    connection = op.get_bind()
    changed = []
    for run_id, warnings in connection.execute(
        sa.select(runs.c.id, runs.c.warnings).where(runs.c.warnings.is_not(None))
    ):
        if not isinstance(warnings, list):
            continue
        masked = [masked_warning(w) for w in warnings]
        if masked != warnings:
            changed.append({"run": run_id, "masked": masked})
    if changed:
        by_id = runs.update().where(runs.c.id == sa.bindparam("run"))
        connection.execute(by_id.values(warnings=sa.bindparam("masked")), changed)


def downgrade() -> None:
    """Nothing to undo: the masked values are not kept anywhere."""
