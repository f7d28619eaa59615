"""``/v1/enrollments``: persons in classes and groups (pupils, teachers, head teachers)."""

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
from annuaire.schema import EnrollmentPublic, EnrollmentRole

router = APIRouter(prefix="/enrollments", tags=["enrollments"])
ENROLLMENTS = RESOURCES["enrollments"]
EnrollmentPage = page_model("EnrollmentPage", EnrollmentPublic)


def _id_query(alias: str, what: str) -> object:
    return Query(
        alias=alias, description=f"Only enrollments of this {what} (hub id).", examples=[EXAMPLE_ID]
    )


@router.get(
    "",
    response_model=EnrollmentPage,
    responses=list_responses(EnrollmentPublic),
    operation_id="listEnrollments",
    summary="List enrollments",
)
def list_enrollments(
    request: Request,
    reader: ReaderDep,
    params: ListParamsDep,
    structure: UaiQuery = None,
    person: Annotated[uuid.UUID | None, _id_query("person", "person")] = None,
    class_id: Annotated[uuid.UUID | None, _id_query("class", "class")] = None,
    group_id: Annotated[uuid.UUID | None, _id_query("group", "group")] = None,
    role: Annotated[EnrollmentRole | None, Query(description="Role in the class or group.")] = None,
) -> Response:
    """Enrollments in hub-id order, by structure, person, class, group or role."""
    table = ENROLLMENTS.table
    predicates: list[ColumnElement[bool]] = []
    if structure is not None:
        predicates.append(by_structure_uai(table, structure))
    for column, value in (("person_id", person), ("class_id", class_id), ("group_id", group_id)):
        if value is not None:
            predicates.append(table.c[column] == value)
    if role is not None:
        predicates.append(table.c.role == role.value)
    filters = {
        "structure": structure,
        "person": person,
        "class": class_id,
        "group": group_id,
        "role": role,
    }
    return collection_response(request, reader, ENROLLMENTS, params, predicates, filters)


add_single_route(router, ENROLLMENTS, "enrollment", "getEnrollment")
