"""``/v1/structures``: écoles, collèges, lycées and services."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from annuaire.api.deps import ReaderDep
from annuaire.api.filters import ExternalIdQuery, by_external_id
from annuaire.api.listing import ListParamsDep, collection_response
from annuaire.api.models import list_responses, page_model
from annuaire.api.resources import RESOURCES
from annuaire.api.single import add_single_route
from annuaire.schema import StructureKind, StructurePublic
from annuaire.schema.uai import UAI_PATTERN

router = APIRouter(prefix="/structures", tags=["structures"])
STRUCTURES = RESOURCES["structures"]
StructurePage = page_model("StructurePage", StructurePublic)


@router.get(
    "",
    response_model=StructurePage,
    responses=list_responses(StructurePublic),
    operation_id="listStructures",
    summary="List structures",
)
def list_structures(
    request: Request,
    reader: ReaderDep,
    params: ListParamsDep,
    uai: Annotated[
        str | None, Query(pattern=UAI_PATTERN, description="UAI.", examples=["0771991W"])
    ] = None,
    kind: Annotated[StructureKind | None, Query(description="Kind of structure.")] = None,
    degree: Annotated[
        Literal["1d", "2d"] | None, Query(description="Premier or second degré.")
    ] = None,
    academie: Annotated[
        str | None,
        Query(max_length=8, description="Académie code.", examples=["077"]),
    ] = None,
    external_id: ExternalIdQuery = None,
) -> Response:
    """Structures in hub-id order, filtered by UAI, kind, degree, académie or external id."""
    table = STRUCTURES.table
    predicates = []
    if uai is not None:
        predicates.append(table.c.uai == uai)
    if kind is not None:
        predicates.append(table.c.kind == kind.value)
    if degree is not None:
        predicates.append(table.c.degree == degree)
    if academie is not None:
        predicates.append(table.c.academie == academie)
    if external_id is not None:
        predicates.append(by_external_id(table, "structure", external_id))
    filters = {
        "uai": uai,
        "kind": kind,
        "degree": degree,
        "academie": academie,
        "externalId": external_id,
    }
    return collection_response(request, reader, STRUCTURES, params, predicates, filters)


add_single_route(router, STRUCTURES, "structure", "getStructure")
