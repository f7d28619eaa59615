"""Persons (pupils, guardians, staff: the role says which) and their typed external ids."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import JSON, Index, text
from sqlmodel import Field, SQLModel

from ._columns import tracked_table_args
from ._tracked import Tracked, TrackedPublic
from .membership import RoleSummary

__all__ = [
    "EDUCONNECT_ID_ONLY",
    "ExternalId",
    "ExternalIdPublic",
    "Person",
    "PersonBase",
    "PersonPublic",
]

#: The condition of the partial unique index ``uq_external_id_educonnect_id``, spelt as an
#: ``ON CONFLICT`` must spell it for the database to find that index.
EDUCONNECT_ID_ONLY = "type = 'educonnect:FrEduCtId'"


class PersonBase(SQLModel):
    usage_name: str | None = Field(default=None, max_length=128, description="Nom d'usage.")
    birth_name: str | None = Field(default=None, max_length=128, description="Nom de naissance.")
    first_name: str | None = Field(default=None, max_length=128)
    other_first_names: list[str] = Field(default_factory=list, sa_type=JSON)
    birth_date: dt.date | None = Field(default=None)
    civility: str | None = Field(default=None, max_length=8, description="`M.`, `Mme`...")
    email: str | None = Field(default=None, max_length=255)
    phone_home: str | None = Field(default=None, max_length=32)
    phone_mobile: str | None = Field(default=None, max_length=32)
    phone_work: str | None = Field(default=None, max_length=32)
    address_lines: list[str] = Field(default_factory=list, sa_type=JSON)
    postal_code: str | None = Field(default=None, max_length=10)
    city: str | None = Field(default=None, max_length=128)
    country: str | None = Field(default=None, max_length=64)


class Person(PersonBase, Tracked, table=True):
    __tablename__ = "person"
    __table_args__ = tracked_table_args("person")


class ExternalIdPublic(SQLModel):
    """An identifier of the entity in another system, typed by that system."""

    type: str = Field(
        max_length=64,
        description="Typed id: `aaf:ENTPersonJointure`, `ine`, `educonnect:FrEduCtId`...",
        schema_extra={"examples": ["ine"]},
    )
    value: str = Field(max_length=255)


class ExternalId(ExternalIdPublic, table=True):
    """One typed identifier of an entity, as its source spells it."""

    __tablename__ = "external_id"
    __table_args__ = (
        Index("ix_external_id_type_value", "type", "value"),
        # A person's FrEduCtId, once: simultaneous first logins write it at once. Partial, so
        # that the import's AAF ids (the bulk of the table) cost no more to write.
        Index(
            "uq_external_id_educonnect_id",
            "entity_id",
            "type",
            "value",
            unique=True,
            sqlite_where=text(EDUCONNECT_ID_ONLY),
            postgresql_where=text(EDUCONNECT_ID_ONLY),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    entity_type: str = Field(max_length=16)
    entity_id: uuid.UUID = Field(index=True)
    scope: str = Field(max_length=64)


class PersonPublic(PersonBase, TrackedPublic):
    """A natural person: pupil, guardian or staff member. Roles say which, and where; a guardian
    has none: their guardianships (`/v1/guardianships`) say whose guardian they are."""

    external_ids: list[ExternalIdPublic] = Field(default_factory=list)
    roles: list[RoleSummary] = Field(
        default_factory=list, description="What the person is in each structure."
    )
