"""``/v1/import-runs``: what each import did, newest first."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from sqlalchemy import ColumnElement
from starlette.responses import Response

from annuaire.api.deps import ReaderDep
from annuaire.api.listing import PageParamsDep, collection_response
from annuaire.api.models import list_responses, page_model
from annuaire.api.resources import RESOURCES
from annuaire.api.single import add_single_route
from annuaire.schema import ImportRunPublic, RunOutcome

router = APIRouter(prefix="/import-runs", tags=["import runs"])
RUNS = RESOURCES["import-runs"]
ImportRunPage = page_model(
    "ImportRunPage", ImportRunPublic, "newest first (by `started_at`, then `id`)"
)


@router.get(
    "",
    response_model=ImportRunPage,
    responses=list_responses(ImportRunPublic, in_feed=False),
    operation_id="listImportRuns",
    summary="List import runs",
)
def list_import_runs(
    request: Request,
    reader: ReaderDep,
    params: PageParamsDep,
    scope: Annotated[
        str | None,
        Query(max_length=64, description="Import scope.", examples=["aaf:099:2d"]),
    ] = None,
    source: Annotated[
        str | None, Query(max_length=32, description="Source family.", examples=["aaf"])
    ] = None,
    outcome: Annotated[RunOutcome | None, Query(description="Outcome of the run.")] = None,
) -> Response:
    """Import runs, newest first, by scope, source or outcome."""
    table = RUNS.table
    predicates: list[ColumnElement[bool]] = []
    if scope is not None:
        predicates.append(table.c.scope == scope)
    if source is not None:
        predicates.append(table.c.source == source)
    if outcome is not None:
        predicates.append(table.c.outcome == outcome.value)
    filters = {"scope": scope, "source": source, "outcome": outcome}
    return collection_response(request, reader, RUNS, params, predicates, filters)


add_single_route(router, RUNS, "import run", "getImportRun")
