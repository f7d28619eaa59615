"""The behaviour every collection and single-resource route shares.

Collections: keyset pages of JSON (``{"items": [...], "next": cursor}`` and a ``Link`` header),
or, with ``Accept: application/x-ndjson``, the whole filtered collection streamed one object per
line from a server-side cursor. Single resources: a strong ``ETag`` over the bytes served, and
``304 Not Modified`` for a matching ``If-None-Match``. ``fields=`` narrows both. Anything the
route did not declare in the query string, and a value with a control character, is a 400 that
names it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import re
import uuid
from collections import Counter
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import orjson
from fastapi import Depends, Header, Query, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from sqlalchemy import ColumnElement, Engine, func, select
from starlette.responses import Response

from annuaire.registre.vocabulary import Operation
from annuaire.schema import ChangeEntry, Status
from annuaire.store.engine import one_snapshot

from ._prefetch import prefetched
from ._streaming import ClosingStreamingResponse
from .cursors import decode_cursor, encode_cursor, filters_fingerprint
from .filters import FieldsQuery
from .problems import ApiProblem, ProblemType
from .resources import Filter, Page, Reader, Resource

__all__ = [
    "JSON_OPTIONS",
    "NDJSON",
    "ListParams",
    "ListParamsDep",
    "PageParamsDep",
    "check_query_string",
    "collection_response",
    "feed_head",
    "json_response",
    "single_response",
]

NDJSON = "application/x-ndjson"
#: A collection's answer depends on ``Accept`` (a page of JSON, or the NDJSON export): said to
#: caches (RFC 9110 §12.5.5), so that none gives a client asking for one the other.
_NEGOTIATED = {"Vary": "Accept"}
#: RFC 3339 date-time (section 5.6), offset required; the values are then checked by parsing.
RFC3339_PATTERN = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})$"
)
JSON_OPTIONS = orjson.OPT_NAIVE_UTC | orjson.OPT_UTC_Z
MAX_LIMIT = 1000
#: C0 controls and DEL: in no value of a query parameter.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
#: Objects an NDJSON export sends per flow entry.
EXPORT_PART = 1000


async def check_query_string(request: Request) -> None:
    """Router dependency: a query parameter the route does not declare, one given more than
    once (none of them is a list: which value would count?), or a value with a control
    character (no parameter takes one; PostgreSQL refuses NUL in text) is a 400."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    known = _declared_parameters(route)
    unknown = sorted(set(request.query_params) - known)
    if unknown:
        raise ApiProblem(
            ProblemType.UNKNOWN_PARAMETER,
            "unknown query parameter "
            + ", ".join(repr(u) for u in unknown)
            + (f"; this endpoint accepts {', '.join(sorted(known))}" if known else "")
            + ("" if known else "; this endpoint takes no query parameter"),
            params=[(u, "not a parameter of this endpoint") for u in unknown],
        )
    pairs = request.query_params.multi_items()
    given = Counter(name for name, _ in pairs)
    repeated = sorted(name for name, times in given.items() if times > 1)
    if repeated:
        raise ApiProblem(
            ProblemType.INVALID_PARAMETER,
            "query parameter " + ", ".join(repr(r) for r in repeated) + " given more than once",
            params=[(r, "given more than once") for r in repeated],
        )
    controlled = sorted({name for name, value in pairs if _CONTROL.search(value)})
    if controlled:
        raise ApiProblem(
            ProblemType.INVALID_PARAMETER,
            "query parameter " + ", ".join(repr(c) for c in controlled) + " holds a control "
            "character",
            params=[(c, "holds a control character") for c in controlled],
        )


_DECLARED: dict[int, frozenset[str]] = {}


def _declared_parameters(route: APIRoute) -> frozenset[str]:
    key = id(route)
    if key not in _DECLARED:
        _DECLARED[key] = frozenset(_query_aliases(route.dependant))
    return _DECLARED[key]


def _query_aliases(dependant: Dependant) -> Iterator[str]:
    for param in dependant.query_params:
        yield param.alias
    for sub in dependant.dependencies:
        yield from _query_aliases(sub)


@dataclass(frozen=True)
class ListParams:
    limit: int
    cursor: str | None
    fields: str | None
    status: Status | None
    modified_since: dt.datetime | None
    #: The negotiated representation: ``application/json`` (pages) or NDJSON (everything).
    media_type: str

    @property
    def ndjson(self) -> bool:
        return self.media_type == NDJSON


async def _page_params(
    limit: Annotated[
        int | None,
        Query(
            ge=1,
            le=MAX_LIMIT,
            description="Page size (default 100, at most 1,000). With NDJSON: at most this "
            "many objects (default: all).",
            examples=[100],
        ),
    ] = None,
    cursor: Annotated[
        str | None,
        Query(
            description="Opaque cursor from the `next` of the previous page; keep the other "
            "parameters unchanged.",
            examples=["WzEsInBlcnNvbnMiLCI1YTkzYjIiLFsiMDAwNGU4Il1d"],
        ),
    ] = None,
    fields: FieldsQuery = None,
    accept: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> ListParams:
    return ListParams(limit or 0, cursor, fields, None, None, negotiate(accept))


PageParamsDep = Annotated[ListParams, Depends(_page_params)]


async def _list_params(
    page: PageParamsDep,
    status: Annotated[
        Status | None,
        Query(description="Only `active` entities, or only those `tobedeleted`."),
    ] = None,
    modified_since: Annotated[
        str | None,
        Query(
            alias="modifiedSince",
            pattern=RFC3339_PATTERN,
            json_schema_extra={"format": "date-time"},
            description="Only entities the hub changed at or after this instant: an RFC 3339 "
            "date-time with its offset (`Z` or `+02:00`).",
            examples=["2026-09-01T00:00:00Z"],
        ),
    ] = None,
) -> ListParams:
    since = None
    if modified_since is not None:
        try:
            since = dt.datetime.fromisoformat(modified_since.upper())
        except ValueError:
            raise ApiProblem(
                ProblemType.INVALID_PARAMETER,
                f"modifiedSince: {modified_since!r} is not a valid date-time",
                params=[("modifiedSince", "not a valid RFC 3339 date-time")],
            ) from None
    return dataclasses.replace(page, status=status, modified_since=since)


ListParamsDep = Annotated[ListParams, Depends(_list_params)]


def _weighted(accept: str) -> list[tuple[str, float]]:
    """The media ranges of an Accept header with their weight (RFC 9110 §12.5.1); a range
    whose ``q`` is not a number weighs 0."""
    ranges = []
    for part in accept.split(","):
        media, *parameters = (p.strip() for p in part.split(";"))
        weight = 1.0
        for parameter in parameters:
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "q":
                try:
                    weight = min(max(float(value), 0.0), 1.0)
                except ValueError:
                    weight = 0.0
        ranges.append((media.lower(), weight))
    return ranges


def negotiate(accept: str | None) -> str:
    """``application/json`` or NDJSON, from the Accept header: the type of highest ``q`` (its
    own range, else ``*/*`` or ``application/*``), JSON on a tie, none with ``q=0``; 406 when
    neither is acceptable."""
    if not accept:
        return "application/json"
    ranges = _weighted(accept)

    def weight_of(served: str) -> float:
        exact = [weight for media, weight in ranges if media == served]
        if exact:
            return max(exact)
        wild = [weight for media, weight in ranges if media in ("*/*", "application/*")]
        return max(wild, default=0.0)

    json_weight, ndjson_weight = weight_of("application/json"), weight_of(NDJSON)
    if ndjson_weight > json_weight:
        return NDJSON
    if json_weight > 0:
        return "application/json"
    raise ApiProblem(
        ProblemType.NOT_ACCEPTABLE,
        f"this endpoint serves application/json (pages) or {NDJSON} (whole collection); "
        f"Accept was {accept!r}",
    )


#: Unknown ``fields=`` names a 400 names, at most, and the characters it shows of each.
_UNKNOWN_SHOWN = 10
_NAME_SHOWN = 64


def selected_fields(reader: Reader, resource: Resource, fields: str | None) -> list[str]:
    readable = reader.readable_fields(resource)
    if fields is None:
        return list(readable)
    asked = [f.strip() for f in fields.split(",") if f.strip()]
    unknown = list(dict.fromkeys(f for f in asked if f not in readable))
    if unknown or not asked:
        # The first few, each cut: a query of thousands of names is not echoed back whole.
        shown = [repr(u[:_NAME_SHOWN]) for u in unknown[:_UNKNOWN_SHOWN]]
        more = len(unknown) - len(shown)
        names = ", ".join(shown) + (f" and {more:,} more" if more else "") or "nothing"
        raise ApiProblem(
            ProblemType.UNKNOWN_FIELD,
            f"fields= names {names}; the fields of {resource.name} are " + ", ".join(readable),
            params=[("fields", f"unknown field {u}") for u in shown] or [("fields", "empty")],
        )
    return ["id", *[f for f in readable if f in asked and f != "id"]]


def common_predicates(resource: Resource, params: ListParams) -> list[ColumnElement[bool]]:
    table = resource.table
    predicates: list[ColumnElement[bool]] = []
    if params.status is not None:
        predicates.append(table.c.status == params.status.value)
    if params.modified_since is not None:
        predicates.append(table.c.modified_at >= params.modified_since)
    return predicates


def json_response(
    body: Any, *, status_code: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(
        orjson.dumps(body, option=JSON_OPTIONS),
        status_code=status_code,
        media_type="application/json",
        headers=headers,
    )


def feed_end(connection: Any) -> int:
    """Sequence number of the newest change-log entry visible to this connection (0: none)."""
    table = ChangeEntry.__table__  # type: ignore[attr-defined]
    return int(connection.execute(select(func.max(table.c.seq))).scalar() or 0)


def feed_head(connection: Any) -> str:
    """Cursor of the newest change-log entry visible to this connection."""
    return encode_cursor("changes", "", [str(feed_end(connection))])


def collection_response(
    request: Request,
    reader: Reader,
    resource: Resource,
    params: ListParams,
    predicates: Sequence[Filter],
    filters: dict[str, Any],
) -> Response:
    fingerprint = filters_fingerprint(
        {**filters, "status": params.status, "modifiedSince": params.modified_since}
    )
    after = None
    if params.cursor is not None:
        key = decode_cursor(params.cursor, resource.name, fingerprint)
        try:
            after = resource.parse_key(key)
        except ValueError:
            raise ApiProblem(
                ProblemType.INVALID_CURSOR,
                "cursor: not a cursor this API issued",
                params=[("cursor", "bad key")],
            ) from None
    where: list[Filter] = [*common_predicates(resource, params), *predicates]
    if params.ndjson:
        return _stream(request, reader, resource, where, params.fields, after, params.limit or None)
    headers = dict(_NEGOTIATED)
    with reader.connected() as connection:
        fields = selected_fields(reader, resource, params.fields)
        if params.cursor is None and resource.entity_type is not None:
            headers["X-Feed-Cursor"] = feed_head(connection)
        page = reader.page(resource, where, fields=fields, limit=params.limit or 100, after=after)
        next_cursor = encode_cursor(resource.name, fingerprint, page.last) if page.last else None
        body = b'{"items":[' + b",".join(page.documents) + b'],"next":' + orjson.dumps(next_cursor)
        body += b"}"
        if resource.personal and page.documents:
            reader.record(
                Operation.READ, reader.categories_of(resource, fields), page, payload=body
            )
    if next_cursor:
        headers["Link"] = f'<{request.url.include_query_params(cursor=next_cursor)}>; rel="next"'
    return Response(body, media_type="application/json", headers=headers)


def _stream(
    request: Request,
    reader: Reader,
    resource: Resource,
    where: list[Filter],
    fields_param: str | None,
    after: list[Any] | None,
    limit: int | None,
) -> Response:
    """NDJSON from its own connection in one read-only snapshot, kept open while streaming.

    Sent in parts of :data:`EXPORT_PART` objects; before each part leaves, its flow entry
    (operation ``export``, the persons and structures of that part) is committed. Nothing is
    sent without its entry, memory stays flat whatever the size of the export, and a client
    that stops reading stops the entries. If an entry cannot be written the stream is cut
    (no terminating chunk: the client sees a broken transfer, not a short success). A thread
    reads the next page from the cursor while the current part is logged and sent
    (:func:`~annuaire.api._prefetch.prefetched`: one page ahead at most). However the response
    ends (sent, failed, the client gone), the generator is closed, which stops that thread, and
    then the connection (:class:`~annuaire.api._streaming.ClosingStreamingResponse`).
    """
    engine: Engine = request.app.state.engine
    # One snapshot for the whole export, so X-Feed-Cursor matches what is streamed.
    connection = one_snapshot(engine.connect())
    try:
        connection.begin()
        streaming = reader.bound(connection)
        fields = selected_fields(streaming, resource, fields_param)
        head = feed_head(connection) if resource.entity_type is not None else None
    except BaseException:
        connection.close()
        raise
    categories = streaming.categories_of(resource, fields)

    def send(part: Page) -> bytes:
        if resource.personal:
            streaming.record(Operation.EXPORT, categories, part)
        return b"\n".join(part.documents) + b"\n"

    def lines() -> Generator[bytes]:
        part = Page([], None)
        batch = min(1000, EXPORT_PART)
        pages = streaming.stream(
            resource, where, fields=fields, after=after, limit=limit, batch=batch
        )
        # The database builds the next page while this one is logged and sent.
        with prefetched(pages) as ahead:
            for page in ahead:
                part.documents.extend(page.documents)
                part.persons.extend(page.persons)
                part.structures.update(page.structures)
                if len(part.documents) >= EXPORT_PART:
                    yield send(part)
                    part = Page([], None)
        if part.documents:
            yield send(part)

    headers = {**_NEGOTIATED, "X-Feed-Cursor": head} if head else dict(_NEGOTIATED)
    return ClosingStreamingResponse(
        lines(), on_close=connection.close, media_type=NDJSON, headers=headers
    )


def single_response(
    request: Request,
    reader: Reader,
    resource: Resource,
    entity_id: uuid.UUID,
    fields: str | None,
    what: str,
) -> Response:
    with reader.connected():
        wanted = selected_fields(reader, resource, fields)
        page = reader.one(resource, entity_id, wanted)
        if not page.documents:
            raise ApiProblem(ProblemType.NOT_FOUND, f"no {what} with id {entity_id}")
        body = page.documents[0]
        etag = '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'
        if _matches(request.headers.get("if-none-match"), etag):
            # Nothing is sent: the caller already holds these bytes.
            return Response(status_code=304, headers={"ETag": etag})
        if resource.personal:
            reader.record(
                Operation.READ, reader.categories_of(resource, wanted), page, payload=body
            )
    return Response(body, media_type="application/json", headers={"ETag": etag})


def _matches(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    candidates = [c.strip().removeprefix("W/") for c in if_none_match.split(",")]
    return "*" in candidates or etag in candidates
