"""``/v1/persons``: pupils, guardians and staff, with their roles and external ids."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from annuaire.api.deps import ReaderDep
from annuaire.api.filters import (
    EXAMPLE_ID,
    ExternalIdQuery,
    UaiQuery,
    by_external_id,
    structure_ids,
)
from annuaire.api.listing import ListParamsDep, collection_response
from annuaire.api.models import list_responses, page_model
from annuaire.api.resources import RESOURCES, Filter, Related
from annuaire.api.single import add_single_route
from annuaire.schema import PersonPublic, RoleKind

router = APIRouter(prefix="/persons", tags=["persons"])
PERSONS, ROLES, ENROLLMENTS = (RESOURCES[n] for n in ("persons", "roles", "enrollments"))
PersonPage = page_model("PersonPage", PersonPublic)
_ROLE, _ENROLLMENT = ROLES.table, ENROLLMENTS.table
# The filters go through the roles and enrollments the caller may read (see Related): they
# never tell more than /v1/roles and /v1/enrollments would.
_ROLES_READ = ", among the roles the caller may read (`/v1/roles`)."
_ENROLLMENTS_READ = ", among the enrollments the caller may read (`/v1/enrollments`)."


@router.get(
    "",
    response_model=PersonPage,
    responses=list_responses(PersonPublic),
    operation_id="listPersons",
    summary="List persons",
)
def list_persons(
    request: Request,
    reader: ReaderDep,
    params: ListParamsDep,
    structure: Annotated[
        UaiQuery,
        Query(description="Only persons with a role at this structure (UAI)" + _ROLES_READ),
    ] = None,
    role: Annotated[
        RoleKind | None,
        Query(description="Only persons with this role (in `structure` when given)" + _ROLES_READ),
    ] = None,
    class_id: Annotated[
        uuid.UUID | None,
        Query(
            alias="class",
            description="Only persons enrolled in this class (hub id)" + _ENROLLMENTS_READ,
            examples=[EXAMPLE_ID],
        ),
    ] = None,
    group_id: Annotated[
        uuid.UUID | None,
        Query(
            alias="group",
            description="Only persons enrolled in this group (hub id)" + _ENROLLMENTS_READ,
            examples=[EXAMPLE_ID],
        ),
    ] = None,
    external_id: ExternalIdQuery = None,
) -> Response:
    """Persons in hub-id order: pupils, guardians and staff (their `roles` say which, where)."""
    person = PERSONS.table
    predicates: list[Filter] = []
    if structure is not None or role is not None:
        conditions = [_ROLE.c.person_id == person.c.id]
        if structure is not None:
            conditions.append(_ROLE.c.structure_id.in_(structure_ids(structure)))
        if role is not None:
            conditions.append(_ROLE.c.role == role.value)
        predicates.append(Related(ROLES, tuple(conditions)))
    for column, value in ((_ENROLLMENT.c.class_id, class_id), (_ENROLLMENT.c.group_id, group_id)):
        if value is not None:
            predicates.append(
                Related(ENROLLMENTS, (_ENROLLMENT.c.person_id == person.c.id, column == value))
            )
    if external_id is not None:
        predicates.append(by_external_id(person, "person", external_id))
    filters = {
        "structure": structure,
        "role": role,
        "class": class_id,
        "group": group_id,
        "externalId": external_id,
    }
    return collection_response(request, reader, PERSONS, params, predicates, filters)


add_single_route(router, PERSONS, "person", "getPerson")
