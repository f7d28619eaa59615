"""Structures: écoles, collèges, lycées, services — anything with a UAI or a join key."""

from __future__ import annotations

import enum
import uuid

from sqlmodel import Field, SQLModel

from ._columns import tracked_table_args
from ._tracked import Tracked, TrackedPublic
from .person import ExternalIdPublic

__all__ = ["Structure", "StructureBase", "StructureKind", "StructurePublic"]


class StructureKind(enum.StrEnum):
    ECOLE = "ecole"
    COLLEGE = "college"
    LYCEE = "lycee"
    SERVICE = "service"
    OTHER = "other"


class StructureBase(SQLModel):
    uai: str | None = Field(
        default=None,
        max_length=8,
        index=True,
        description="UAI (7 digits and a check letter).",
        schema_extra={"examples": ["0771991W"]},
    )
    name: str = Field(max_length=255, description="Usual name, without type or city.")
    kind: str = Field(
        default=StructureKind.OTHER.value,
        max_length=16,
        description="`ecole`, `college`, `lycee`, `service` or `other`.",
    )
    type_label: str | None = Field(default=None, max_length=128, description="Nature label.")
    type_code: str | None = Field(default=None, max_length=8, description="Nature code (340...).")
    degree: str | None = Field(default=None, max_length=2, description="`1d` or `2d`.")
    sector: str | None = Field(default=None, max_length=2, description="`PU` public, `PR` private.")
    academie: str | None = Field(default=None, max_length=8, description="Académie code.")
    academie_name: str | None = Field(default=None, max_length=64)
    ministry: str | None = Field(default=None, max_length=128)
    siret: str | None = Field(default=None, max_length=14)
    street: str | None = Field(default=None, max_length=255)
    postal_code: str | None = Field(default=None, max_length=10)
    city: str | None = Field(default=None, max_length=128)
    phone: str | None = Field(default=None, max_length=32)
    email: str | None = Field(default=None, max_length=255)
    parent_id: uuid.UUID | None = Field(
        default=None, description="Structure this one is functionally attached to."
    )


class Structure(StructureBase, Tracked, table=True):
    __tablename__ = "structure"
    __table_args__ = tracked_table_args("structure")


class StructurePublic(StructureBase, TrackedPublic):
    """A school, an establishment or a service, identified by its UAI when it has one."""

    external_ids: list[ExternalIdPublic] = Field(default_factory=list)
