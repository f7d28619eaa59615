"""``/v1/groups``: teaching groups of each structure and the classes they draw from."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request
from sqlalchemy import ColumnElement, Text
from starlette.responses import Response

from annuaire.api.deps import ReaderDep
from annuaire.api.filters import EXAMPLE_ID, UaiQuery, by_structure_uai
from annuaire.api.listing import ListParamsDep, collection_response
from annuaire.api.models import list_responses, page_model
from annuaire.api.resources import RESOURCES
from annuaire.api.single import add_single_route
from annuaire.schema import GroupPublic

router = APIRouter(prefix="/groups", tags=["groups"])
GROUPS = RESOURCES["groups"]
GroupPage = page_model("GroupPage", GroupPublic)


@router.get(
    "",
    response_model=GroupPage,
    responses=list_responses(GroupPublic),
    operation_id="listGroups",
    summary="List groups",
)
def list_groups(
    request: Request,
    reader: ReaderDep,
    params: ListParamsDep,
    structure: UaiQuery = None,
    code: Annotated[
        str | None, Query(max_length=64, description="Group code.", examples=["3ESP2"])
    ] = None,
    class_id: Annotated[
        uuid.UUID | None,
        Query(
            alias="class",
            description="Only groups drawing pupils from this class (hub id).",
            examples=[EXAMPLE_ID],
        ),
    ] = None,
) -> Response:
    """Groups in hub-id order, by structure UAI, code or component class."""
    table = GROUPS.table
    predicates: list[ColumnElement[bool]] = []
    if structure is not None:
        predicates.append(by_structure_uai(table, structure))
    if code is not None:
        predicates.append(table.c.code == code)
    if class_id is not None:
        # class_ids is a JSON list of UUID strings; the quoted form cannot match a prefix.
        predicates.append(table.c.class_ids.cast(Text).contains(f'"{class_id}"'))
    filters = {"structure": structure, "code": code, "class": class_id}
    return collection_response(request, reader, GROUPS, params, predicates, filters)


add_single_route(router, GROUPS, "group", "getGroup")
