"""Nomenclatures: subjects (MatiereEducNat) and levels (MEF, 1D levels and cycles)."""

from __future__ import annotations

from sqlmodel import Field, SQLModel

from ._columns import tracked_table_args
from ._tracked import Tracked, TrackedPublic

__all__ = ["Level", "LevelBase", "LevelPublic", "Subject", "SubjectBase", "SubjectPublic"]


class SubjectBase(SQLModel):
    code: str = Field(max_length=16, index=True, description="Code with its leading zeros.")
    label: str | None = Field(default=None, max_length=255)
    parent_code: str | None = Field(default=None, max_length=16)


class Subject(SubjectBase, Tracked, table=True):
    __tablename__ = "subject"
    __table_args__ = tracked_table_args("subject")


class SubjectPublic(SubjectBase, TrackedPublic):
    """A subject of the national nomenclature (MatiereEducNat)."""


class LevelBase(SQLModel):
    code: str = Field(max_length=16, index=True)
    label: str | None = Field(default=None, max_length=255)
    kind: str = Field(max_length=16, description="`mef`, `1d_level` or `1d_cycle`.")
    parent_code: str | None = Field(default=None, max_length=16)
    stat_code: str | None = Field(default=None, max_length=16, description="Statistical MEF.")


class Level(LevelBase, Tracked, table=True):
    __tablename__ = "level"
    __table_args__ = tracked_table_args("level")


class LevelPublic(LevelBase, TrackedPublic):
    """A level: MEF (2D) or 1D level or cycle."""
