"""Import runs (what each sync did) and the change log (the feed every consumer pages through)."""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Identity, Integer
from sqlmodel import Field, SQLModel

from ._tracked import utcnow

__all__ = [
    "ChangeEntry",
    "ChangeEntryPublic",
    "ChangeOp",
    "ImportRun",
    "ImportRunBase",
    "ImportRunPublic",
    "RunOutcome",
    "academie_code",
]


def academie_code(code: str) -> str:
    """An académie code as import runs record it: digits on three (``13`` and ``013`` are one
    académie, as EduConnect's one- and two-digit forms are), any other name in capitals."""
    code = code.strip()
    return code.zfill(3) if code.isdigit() else code.upper()


class RunOutcome(enum.StrEnum):
    APPLIED = "applied"
    DRY_RUN = "dry_run"
    REFUSED = "refused"
    FAILED = "failed"


class ImportRunBase(SQLModel):
    scope: str = Field(max_length=64, index=True, description="`source:académie-or-UAI:degree`.")
    source: str = Field(max_length=32)
    academie: str | None = Field(
        default=None, max_length=32, description="Académie code (or the export's name)."
    )
    uai: str | None = Field(default=None, max_length=8)
    degree: str | None = Field(default=None, max_length=2)
    mode: str = Field(max_length=8, description="`complet` or `delta`.")
    files: list[str] = Field(default_factory=list, sa_type=JSON)
    started_at: dt.datetime = Field(default_factory=utcnow)
    finished_at: dt.datetime | None = None
    duration_s: float | None = None
    outcome: str = Field(max_length=16, description="One of " + ", ".join(RunOutcome))
    message: str | None = Field(default=None, max_length=4000)
    counts: dict[str, dict[str, int]] = Field(
        default_factory=dict,
        sa_type=JSON,
        description="Per entity kind: created, updated, unchanged, leaving, returning.",
    )
    warning_count: int = 0
    warnings: list[dict[str, Any]] = Field(
        default_factory=list, sa_type=JSON, description="The first warnings, with where they are."
    )


class ImportRun(ImportRunBase, table=True):
    __tablename__ = "import_run"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    #: The date of the export applied, when its source tells it: an import checks a new export
    #: against the last one applied to its scope (``annuaire.importing``).
    export_date: dt.date | None = None


class ImportRunPublic(ImportRunBase):
    """One import run: its scope, files, outcome, counts per entity kind and warnings."""

    id: uuid.UUID


class ChangeOp(enum.StrEnum):
    CREATE = "create"
    UPDATE = "update"
    #: The entity left its source: a tombstone for consumers (status becomes tobedeleted).
    LEAVE = "leave"
    #: The entity came back before being purged.
    RETURN = "return"
    #: The entity was purged after the retention delay.
    PURGE = "purge"


class ChangeEntryBase(SQLModel):
    entity_type: str = Field(max_length=16)
    entity_id: uuid.UUID
    op: str = Field(max_length=8, description="One of " + ", ".join(ChangeOp))
    at: dt.datetime = Field(default_factory=utcnow)
    scope: str = Field(max_length=64)
    run_id: uuid.UUID | None = None
    structures: str = Field(default="", max_length=4000, description="`|UAI|UAI|` touched.")


class ChangeEntry(ChangeEntryBase, table=True):
    """One row of the feed. ``seq`` grows in commit order (see annuaire.store.changes)."""

    __tablename__ = "change_log"

    seq: int | None = Field(
        default=None,
        sa_column=Column(
            BigInteger().with_variant(Integer(), "sqlite"),
            Identity(),
            primary_key=True,
        ),
    )


#: The collection of /v1 that serves each kind of entity (``/v1/{collection}/{id}``).
FEED_COLLECTIONS = {
    "structure": "structures",
    "subject": "subjects",
    "level": "levels",
    "class": "classes",
    "group": "groups",
    "person": "persons",
    "role": "roles",
    "enrollment": "enrollments",
    "guardianship": "guardianships",
}


class ChangeEntryPublic(SQLModel):
    """One entry of the change feed: which entity changed, how, when, where."""

    seq: int = Field(
        description="The entry's place in the feed: it grows in commit order and is never "
        "reused. Pass the last one read as `after` to read on."
    )
    entity_type: str = Field(
        description="The kind of entity, read at `/v1/{collection}/{entity_id}`: "
        + ", ".join(f"`{kind}` at `/v1/{path}`" for kind, path in FEED_COLLECTIONS.items())
        + ". An open vocabulary: kinds may be added in a minor version (timetables), and a "
        "client skips the entries of kinds it does not know."
    )
    entity_id: uuid.UUID = Field(description="The entity's hub id: the `id` of its object.")
    op: ChangeOp = Field(
        description="`create`: new. `update`: its object changed. `leave`: it left its source "
        "and is `tobedeleted` (still served, until purged). `return`: it came back before being "
        "purged, `active` again. `purge`: it is gone (its URL answers 404)."
    )
    at: dt.datetime = Field(description="When the change was committed (UTC).")
    structures: list[str] = Field(
        default_factory=list,
        description=(
            "UAIs touched: for `update` and `return`, those the entity had and those it ends "
            "with (the feed of a structure it leaves tells of it)."
        ),
    )
