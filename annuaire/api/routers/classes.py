"""``/v1/classes``: the classes (divisions) of each structure."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from sqlalchemy import ColumnElement
from starlette.responses import Response

from annuaire.api.deps import ReaderDep
from annuaire.api.filters import UaiQuery, by_structure_uai
from annuaire.api.listing import ListParamsDep, collection_response
from annuaire.api.models import list_responses, page_model
from annuaire.api.resources import RESOURCES
from annuaire.api.single import add_single_route
from annuaire.schema import SchoolClassPublic

router = APIRouter(prefix="/classes", tags=["classes"])
CLASSES = RESOURCES["classes"]
ClassPage = page_model("ClassPage", SchoolClassPublic)


@router.get(
    "",
    response_model=ClassPage,
    responses=list_responses(SchoolClassPublic),
    operation_id="listClasses",
    summary="List classes",
)
def list_classes(
    request: Request,
    reader: ReaderDep,
    params: ListParamsDep,
    structure: UaiQuery = None,
    code: Annotated[
        str | None, Query(max_length=64, description="Class code.", examples=["3A"])
    ] = None,
) -> Response:
    """Classes in hub-id order, by structure UAI or code."""
    table = CLASSES.table
    predicates: list[ColumnElement[bool]] = []
    if structure is not None:
        predicates.append(by_structure_uai(table, structure))
    if code is not None:
        predicates.append(table.c.code == code)
    filters = {"structure": structure, "code": code}
    return collection_response(request, reader, CLASSES, params, predicates, filters)


add_single_route(router, CLASSES, "class", "getClass")
