"""``/v1/changes``: the change feed, with tombstones (`leave`, `purge`) for removals."""

from __future__ import annotations

import re
from typing import Annotated

import orjson
from fastapi import APIRouter, Query
from sqlalchemy import ColumnElement
from starlette.responses import Response

from annuaire.api.cursors import decode_cursor, encode_cursor
from annuaire.api.deps import ReaderDep
from annuaire.api.filters import UaiQuery
from annuaire.api.listing import feed_end, feed_head, json_response
from annuaire.api.models import FeedCursor, FeedPage
from annuaire.api.problems import ApiProblem, ProblemType, problem_responses
from annuaire.registre.vocabulary import DataCategory, Operation
from annuaire.schema import ChangeEntry, EntityKind

router = APIRouter(prefix="/changes", tags=["changes"])
_TABLE = ChangeEntry.__table__  # type: ignore[attr-defined]
#: A feed entry names an entity by its hub id, a person's among them.
FEED_CATEGORIES = frozenset({DataCategory.IDENTIFIERS})
_ERRORS = problem_responses(
    ProblemType.INVALID_PARAMETER,
    ProblemType.UNKNOWN_PARAMETER,
    ProblemType.INVALID_CURSOR,
    ProblemType.UNAVAILABLE,
)


#: A feed position as cursors carry it: a change-log sequence number (ASCII digits only).
_POSITION = re.compile(r"[0-9]{1,18}")


def feed_position(cursor: str | None) -> int:
    if cursor is None:
        return 0
    key = decode_cursor(cursor, "changes", "", param="after")
    if len(key) != 1 or not isinstance(key[0], str) or not _POSITION.fullmatch(key[0]):
        raise ApiProblem(
            ProblemType.INVALID_CURSOR,
            "after: not a cursor this API issued",
            params=[("after", "bad position")],
        )
    return int(key[0])


@router.get(
    "",
    response_model=FeedPage,
    responses={200: {"description": "Changes after the cursor, oldest first."}, **_ERRORS},
    operation_id="listChanges",
    summary="Read the change feed",
)
def list_changes(
    reader: ReaderDep,
    after: Annotated[
        str | None,
        Query(
            description="Cursor from a previous `next` or `X-Feed-Cursor`; absent = from the "
            "oldest entry kept.",
            examples=["WzEsImNoYW5nZXMiLCIiLFsiMTIwMzQiXV0"],
        ),
    ] = None,
    limit: Annotated[
        int, Query(ge=1, le=1000, description="At most this many entries.", examples=[500])
    ] = 100,
    entity_type: Annotated[
        EntityKind | None, Query(alias="entityType", description="Only this kind of entity.")
    ] = None,
    structure: UaiQuery = None,
) -> Response:
    """Every create, update, leave (tombstone: the entity left its source and is now
    `tobedeleted`), return and purge, in commit order. Paging with `after` never misses nor
    repeats an entry, whatever imports commit meanwhile."""
    position = feed_position(after)
    predicates: list[ColumnElement[bool]] = []
    if entity_type is not None:
        predicates.append(_TABLE.c.entity_type == entity_type.value)
    if structure is not None:
        predicates.append(_TABLE.c.structures.contains(f"|{structure}|"))
    with reader.connected() as connection:
        if position and position > feed_end(connection):
            raise ApiProblem(
                ProblemType.INVALID_CURSOR,
                "after: beyond the end of this feed (a cursor of another or a restored "
                "database?): start again from /v1/changes/cursor or an export",
                params=[("after", "beyond the end")],
            )
        page, last = reader.changes(position, limit, predicates)
        next_cursor = orjson.dumps(encode_cursor("changes", "", [str(last)]))
        body = b'{"items":[' + b",".join(page.documents) + b'],"next":' + next_cursor + b"}"
        if page.documents:
            reader.record(Operation.READ, FEED_CATEGORIES, page, payload=body)
    return Response(body, media_type="application/json")


@router.get(
    "/cursor",
    response_model=FeedCursor,
    responses=_ERRORS,
    operation_id="getFeedCursor",
    summary="Current end of the feed",
)
def feed_cursor(reader: ReaderDep) -> Response:
    """The position of the newest entry: read from here to get only what happens next."""
    with reader.connected() as connection:
        return json_response({"cursor": feed_head(connection)})
