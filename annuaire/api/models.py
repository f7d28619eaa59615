"""Envelopes of the API (pages, feed pages) and the OpenAPI ``responses=`` of each route kind."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, create_model

from annuaire.schema import ChangeEntryPublic

from .problems import ProblemType, problem_responses

__all__ = [
    "FeedCursor",
    "FeedPage",
    "list_responses",
    "page_model",
    "single_responses",
]

_NEXT = (
    "Cursor of the next page (pass it as `cursor`), or null on the last page. The same URL is "
    'in the `Link: <...>; rel="next"` header.'
)


def page_model(name: str, item: type[BaseModel], order: str = "in hub-id order") -> type[BaseModel]:
    return create_model(
        name,
        __doc__=f"A page of {item.__name__.removesuffix('Public')} objects, {order}.",
        items=(list[item], Field(description="At most `limit` objects.")),  # type: ignore[valid-type]
        next=(str | None, Field(description=_NEXT)),
    )


class FeedPage(BaseModel):
    """A page of the change feed, oldest first."""

    items: list[ChangeEntryPublic]
    next: str = Field(
        description="Cursor to pass as `after` next time. When `items` is empty it is the "
        "cursor you sent: store it and poll again later."
    )


class FeedCursor(BaseModel):
    """A position in the change feed."""

    cursor: str = Field(description="Pass as `after` to read the changes after this position.")


_FEED_CURSOR_HEADER = {
    "X-Feed-Cursor": {
        "description": "Position of the change feed when this read started (first pages and "
        "NDJSON exports): follow `/v1/changes?after=` from there to stay in sync.",
        "schema": {"type": "string"},
    },
    "Link": {
        "description": '`<next page URL>; rel="next"` when there is one.',
        "schema": {"type": "string"},
    },
}


def list_responses(
    item: type[BaseModel], *, in_feed: bool = True
) -> dict[int | str, dict[str, Any]]:
    """The responses of a collection; ``in_feed``: its objects have change-feed entries (an
    ``X-Feed-Cursor`` header comes with the first page and the export)."""
    headers = (
        _FEED_CURSOR_HEADER
        if in_feed
        else {k: v for k, v in _FEED_CURSOR_HEADER.items() if k != "X-Feed-Cursor"}
    )
    return {
        200: {
            "description": "A page of objects (JSON), or with `Accept: application/x-ndjson` "
            "every matching object, one per line, streamed.",
            "headers": headers,
            "content": {
                "application/x-ndjson": {
                    "schema": {"$ref": f"#/components/schemas/{item.__name__}"}
                }
            },
        },
        **problem_responses(
            ProblemType.INVALID_PARAMETER,
            ProblemType.UNKNOWN_PARAMETER,
            ProblemType.UNKNOWN_FIELD,
            ProblemType.INVALID_CURSOR,
            ProblemType.NOT_ACCEPTABLE,
            ProblemType.UNAVAILABLE,
        ),
    }


def single_responses() -> dict[int | str, dict[str, Any]]:
    return {
        200: {
            "description": "The object. Its `ETag` changes whenever the bytes served change.",
            "headers": {
                "ETag": {
                    "description": "Strong entity tag of this representation.",
                    "schema": {"type": "string"},
                }
            },
        },
        304: {"description": "Not modified: the `If-None-Match` tag is still current."},
        **problem_responses(
            ProblemType.INVALID_PARAMETER,
            ProblemType.UNKNOWN_PARAMETER,
            ProblemType.UNKNOWN_FIELD,
            ProblemType.NOT_FOUND,
            ProblemType.UNAVAILABLE,
        ),
    }
