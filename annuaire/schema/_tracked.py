"""Columns shared by every neutral entity table: identity, provenance and lifecycle.

Every row knows the import scope that owns it (``scope``), its key in that source
(``source_key``, unique per scope), the source record that carries it (``owner_key``, used for
delta replacement), which run last wrote it, the content hash of what the source said, and its
status: ``active``, or ``tobedeleted`` since ``leaving_since`` (it left the source and will be
purged after the configured delay).
"""

from __future__ import annotations

import datetime as dt
import enum
import uuid

from sqlmodel import Field, SQLModel

__all__ = ["Status", "Tracked", "TrackedPublic", "utcnow"]


class Status(enum.StrEnum):
    ACTIVE = "active"
    TOBEDELETED = "tobedeleted"


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def as_utc(value: dt.datetime) -> dt.datetime:
    """``value`` in UTC; a naive value (SQLite gives them back so) is taken as UTC."""
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


class Tracked(SQLModel):
    id: uuid.UUID = Field(primary_key=True)
    scope: str = Field(max_length=64)
    source_key: str = Field(max_length=255)
    owner_key: str = Field(max_length=255)
    source: str = Field(max_length=32)
    import_run_id: uuid.UUID | None = Field(default=None)
    content_hash: str = Field(max_length=32)
    source_file: str | None = Field(default=None, max_length=255)
    source_record: str | None = Field(default=None, max_length=255)
    status: str = Field(default=Status.ACTIVE.value, max_length=16)
    leaving_since: dt.datetime | None = Field(default=None)
    created_at: dt.datetime = Field(default_factory=utcnow)
    modified_at: dt.datetime = Field(default_factory=utcnow, index=True)
    #: UAIs of the structures the entity belongs to, as ``|UAI|UAI|`` (searchable with LIKE).
    structures: str = Field(default="", max_length=4000)


class TrackedPublic(SQLModel):
    """What the API says of every entity besides its own fields."""

    id: uuid.UUID = Field(description="Stable hub id (UUID).")
    status: Status = Field(
        description="`active`, or `tobedeleted` once the entity left its source."
    )
    leaving_since: dt.datetime | None = Field(
        default=None, description="When the entity was found missing from its source (UTC)."
    )
    modified_at: dt.datetime = Field(description="Last time the hub changed this entity (UTC).")
    source: str = Field(
        description="Source family that feeds the entity: `aaf`, `edt`, `sts`, `ldap`."
    )
