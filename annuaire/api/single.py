"""``GET /{id}`` routes: the same for every resource but for names."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from .deps import ReaderDep
from .filters import FieldsQuery, IdPath
from .listing import single_response
from .models import single_responses
from .resources import Resource

__all__ = ["add_single_route"]


def add_single_route(router: APIRouter, resource: Resource, what: str, operation_id: str) -> None:
    def get_one(
        request: Request,
        reader: ReaderDep,
        id: IdPath,
        fields: FieldsQuery = None,
    ) -> Response:
        return single_response(request, reader, resource, id, fields, what)

    get_one.__doc__ = (
        f"One {what} by hub id. Supports `fields=`, `ETag` and `If-None-Match`; "
        f"404 when no {what} with this id is visible to the caller."
    )
    router.add_api_route(
        "/{id}",
        get_one,
        methods=["GET"],
        response_model=resource.public,
        responses=single_responses(),
        operation_id=operation_id,
        summary=f"Get one {what}",
    )
