"""``/v1/subjects`` and ``/v1/levels``: the national nomenclatures the sources use."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from sqlalchemy import ColumnElement
from starlette.responses import Response

from annuaire.api.deps import ReaderDep
from annuaire.api.listing import ListParamsDep, collection_response
from annuaire.api.models import list_responses, page_model
from annuaire.api.resources import RESOURCES
from annuaire.api.single import add_single_route
from annuaire.schema import LevelPublic, SubjectPublic

subjects = APIRouter(prefix="/subjects", tags=["nomenclatures"])
levels = APIRouter(prefix="/levels", tags=["nomenclatures"])
SUBJECTS = RESOURCES["subjects"]
LEVELS = RESOURCES["levels"]
SubjectPage = page_model("SubjectPage", SubjectPublic)
LevelPage = page_model("LevelPage", LevelPublic)

CodeQuery = Annotated[
    str | None,
    Query(max_length=16, description="Code, with its leading zeros.", examples=["030201"]),
]


@subjects.get(
    "",
    response_model=SubjectPage,
    responses=list_responses(SubjectPublic),
    operation_id="listSubjects",
    summary="List subjects",
)
def list_subjects(
    request: Request, reader: ReaderDep, params: ListParamsDep, code: CodeQuery = None
) -> Response:
    """Subjects (MatiereEducNat) in hub-id order."""
    predicates: list[ColumnElement[bool]] = []
    if code is not None:
        predicates.append(SUBJECTS.table.c.code == code)
    return collection_response(request, reader, SUBJECTS, params, predicates, {"code": code})


@levels.get(
    "",
    response_model=LevelPage,
    responses=list_responses(LevelPublic),
    operation_id="listLevels",
    summary="List levels",
)
def list_levels(
    request: Request,
    reader: ReaderDep,
    params: ListParamsDep,
    code: CodeQuery = None,
    kind: Annotated[
        Literal["mef", "1d_level", "1d_cycle"] | None,
        Query(description="MEF (2D), 1D level or 1D cycle."),
    ] = None,
) -> Response:
    """Levels (MEF, 1D levels and cycles) in hub-id order."""
    table = LEVELS.table
    predicates: list[ColumnElement[bool]] = []
    if code is not None:
        predicates.append(table.c.code == code)
    if kind is not None:
        predicates.append(table.c.kind == kind)
    filters = {"code": code, "kind": kind}
    return collection_response(request, reader, LEVELS, params, predicates, filters)


add_single_route(subjects, SUBJECTS, "subject", "getSubject")
add_single_route(levels, LEVELS, "level", "getLevel")
