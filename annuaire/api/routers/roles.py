"""``/v1/roles``: what each person is in each structure (also embedded in persons)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request
from sqlalchemy import ColumnElement
from starlette.responses import Response

from annuaire.api.deps import ReaderDep
from annuaire.api.filters import EXAMPLE_ID, UaiQuery, by_structure_uai
from annuaire.api.listing import ListParamsDep, collection_response
from annuaire.api.models import list_responses, page_model
from annuaire.api.resources import RESOURCES
from annuaire.api.single import add_single_route
from annuaire.schema import RoleKind, RolePublic

router = APIRouter(prefix="/roles", tags=["roles"])
ROLES = RESOURCES["roles"]
RolePage = page_model("RolePage", RolePublic)


@router.get(
    "",
    response_model=RolePage,
    responses=list_responses(RolePublic),
    operation_id="listRoles",
    summary="List roles",
)
def list_roles(
    request: Request,
    reader: ReaderDep,
    params: ListParamsDep,
    structure: UaiQuery = None,
    person: Annotated[
        uuid.UUID | None, Query(description="Person (hub id).", examples=[EXAMPLE_ID])
    ] = None,
    role: Annotated[RoleKind | None, Query(description="Kind of role.")] = None,
) -> Response:
    """Roles in hub-id order, by structure UAI, person or kind."""
    table = ROLES.table
    predicates: list[ColumnElement[bool]] = []
    if structure is not None:
        predicates.append(by_structure_uai(table, structure))
    if person is not None:
        predicates.append(table.c.person_id == person)
    if role is not None:
        predicates.append(table.c.role == role.value)
    filters = {"structure": structure, "person": person, "role": role}
    return collection_response(request, reader, ROLES, params, predicates, filters)


add_single_route(router, ROLES, "role", "getRole")
