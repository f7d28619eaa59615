"""Classes (divisions) and groups of a structure."""

from __future__ import annotations

import uuid

from sqlalchemy import JSON
from sqlmodel import Field, SQLModel

from ._columns import tracked_table_args
from ._tracked import Tracked, TrackedPublic

__all__ = [
    "Group",
    "GroupBase",
    "GroupPublic",
    "SchoolClass",
    "SchoolClassBase",
    "SchoolClassPublic",
]


class SchoolClassBase(SQLModel):
    structure_id: uuid.UUID = Field(index=True)
    code: str = Field(max_length=64)
    label: str | None = Field(default=None, max_length=255)
    level_codes: list[str] = Field(
        default_factory=list, sa_type=JSON, description="MEF or 1D level codes."
    )


class SchoolClass(SchoolClassBase, Tracked, table=True):
    __tablename__ = "school_class"
    __table_args__ = tracked_table_args("school_class")


class SchoolClassPublic(SchoolClassBase, TrackedPublic):
    """A class (division) of a structure, with its level codes."""


class GroupBase(SQLModel):
    structure_id: uuid.UUID = Field(index=True)
    code: str = Field(max_length=64)
    label: str | None = Field(default=None, max_length=255)
    class_ids: list[uuid.UUID] = Field(
        default_factory=list, sa_type=JSON, description="Classes the group draws its pupils from."
    )


class Group(GroupBase, Tracked, table=True):
    __tablename__ = "pupil_group"
    __table_args__ = tracked_table_args("pupil_group")


class GroupPublic(GroupBase, TrackedPublic):
    """A group of a structure, and the classes its pupils come from."""
