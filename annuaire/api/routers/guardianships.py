"""``/v1/guardianships``: links between guardians and pupils, with their flags."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request
from sqlalchemy import ColumnElement
from starlette.responses import Response

from annuaire.api.deps import ReaderDep
from annuaire.api.filters import EXAMPLE_ID, UaiQuery
from annuaire.api.listing import ListParamsDep, collection_response
from annuaire.api.models import list_responses, page_model
from annuaire.api.resources import RESOURCES
from annuaire.api.single import add_single_route
from annuaire.schema import GuardianshipPublic

router = APIRouter(prefix="/guardianships", tags=["guardianships"])
GUARDIANSHIPS = RESOURCES["guardianships"]
GuardianshipPage = page_model("GuardianshipPage", GuardianshipPublic)


@router.get(
    "",
    response_model=GuardianshipPage,
    responses=list_responses(GuardianshipPublic),
    operation_id="listGuardianships",
    summary="List guardianships",
)
def list_guardianships(
    request: Request,
    reader: ReaderDep,
    params: ListParamsDep,
    structure: Annotated[UaiQuery, Query(description="UAI of a structure of the pupil.")] = None,
    pupil: Annotated[
        uuid.UUID | None, Query(description="Pupil (hub id).", examples=[EXAMPLE_ID])
    ] = None,
    guardian: Annotated[
        uuid.UUID | None, Query(description="Guardian (hub id).", examples=[EXAMPLE_ID])
    ] = None,
    legal: Annotated[
        bool | None, Query(description="Only legal representatives (true) or only others.")
    ] = None,
) -> Response:
    """Guardianships in hub-id order, by pupil, guardian, structure or legal flag."""
    table = GUARDIANSHIPS.table
    predicates: list[ColumnElement[bool]] = []
    if structure is not None:
        predicates.append(table.c.structures.contains(f"|{structure}|"))
    if pupil is not None:
        predicates.append(table.c.pupil_id == pupil)
    if guardian is not None:
        predicates.append(table.c.guardian_id == guardian)
    if legal is not None:
        predicates.append(table.c.legal.is_(legal))
    filters = {"structure": structure, "pupil": pupil, "guardian": guardian, "legal": legal}
    return collection_response(request, reader, GUARDIANSHIPS, params, predicates, filters)


add_single_route(router, GUARDIANSHIPS, "guardianship", "getGuardianship")
