"""Filter parameters shared by several routes, and the SQL predicates they become.

Every filter is a typed, allow-listed query parameter turned into a bound-parameter predicate:
no filter text ever reaches SQL, and a value of the wrong shape is a 400 naming it.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import Path, Query
from sqlalchemy import ColumnElement, Table, exists, select

from annuaire.schema import ExternalId, Structure
from annuaire.schema.uai import UAI_PATTERN

from .problems import ApiProblem, ProblemType

__all__ = [
    "EXAMPLE_ID",
    "ExternalIdQuery",
    "FieldsQuery",
    "IdPath",
    "UaiQuery",
    "by_external_id",
    "by_structure_uai",
    "structure_ids",
]

_STRUCTURE: Table = Structure.__table__  # type: ignore[attr-defined]
_EXTERNAL_ID: Table = ExternalId.__table__  # type: ignore[attr-defined]

EXAMPLE_ID = "0b8e4c39-5d3e-5f6a-9c1d-2f3b4a5c6d7e"

UaiQuery = Annotated[
    str | None,
    Query(
        pattern=UAI_PATTERN,
        description="UAI of a structure (7 digits and the check letter).",
        examples=["0771991W"],
    ),
]
ExternalIdQuery = Annotated[
    str | None,
    Query(
        alias="externalId",
        min_length=3,
        max_length=320,
        description="A typed external id `type:value`; the type is everything before the last "
        "colon (`aaf:ENTPersonJointure:1234567`, `ine:123456789AB`).",
        examples=["aaf:ENTPersonJointure:1234567"],
    ),
]
FieldsQuery = Annotated[
    str | None,
    Query(
        description="Comma-separated fields to return (`id` is always returned).",
        examples=["id,first_name,usage_name"],
    ),
]
IdPath = Annotated[
    uuid.UUID,
    Path(description="Hub id (UUID).", examples=[EXAMPLE_ID]),
]


def structure_ids(uai: str) -> Any:
    """Ids of the structures with this UAI (one per import scope that knows it)."""
    return select(_STRUCTURE.c.id).where(_STRUCTURE.c.uai == uai)


def by_structure_uai(table: Table, uai: str) -> ColumnElement[bool]:
    return table.c.structure_id.in_(structure_ids(uai))


def by_external_id(table: Table, entity_type: str, typed: str) -> ColumnElement[bool]:
    id_type, sep, value = typed.rpartition(":")
    if not sep or not id_type or not value:
        raise ApiProblem(
            ProblemType.INVALID_PARAMETER,
            f"externalId must be type:value, got {typed!r}",
            params=[("externalId", "expected type:value")],
        )
    ext = _EXTERNAL_ID
    return exists().where(
        ext.c.entity_id == table.c.id,
        ext.c.entity_type == entity_type,
        ext.c.type == id_type,
        ext.c.value == value,
    )
