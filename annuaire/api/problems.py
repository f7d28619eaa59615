"""Errors as RFC 9457 ``application/problem+json``, one stable ``type`` per kind of error.

Clients switch on ``type`` (a URN that never changes within /v1), never on ``title`` or
``detail``. Every problem carries the request id that the server also logs. Anything not
foreseen becomes a 500 ``internal-error`` without details: no stack trace, no SQL, no data.
"""

from __future__ import annotations

import enum
import logging
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from annuaire.auth.jwks import KeysUnavailable
from annuaire.auth.principal import Unauthenticated
from annuaire.registre.writer import EntryNotWritten

__all__ = [
    "PROBLEM_MEDIA_TYPE",
    "ApiProblem",
    "Problem",
    "ProblemType",
    "install_handlers",
    "problem_responses",
]

log = logging.getLogger("aiguillage.api")

PROBLEM_MEDIA_TYPE = "application/problem+json"
_URN = "urn:aiguillage:problem:"
#: Retry-After of a request whose flow entry could not be written in time (a busy database).
_LOG_BUSY_RETRY_S = 30


class ProblemType(enum.Enum):
    """name -> (HTTP status, title). The URN is ``urn:aiguillage:problem:<name>``."""

    INVALID_PARAMETER = (400, "A query parameter has an invalid value")
    UNKNOWN_PARAMETER = (400, "Unknown query parameter")
    UNKNOWN_FIELD = (400, "Unknown field in fields=")
    INVALID_CURSOR = (400, "Malformed or foreign cursor")
    UNAUTHORIZED = (401, "Authentication required")
    FORBIDDEN = (403, "Reserved to another role or contract")
    NOT_FOUND = (404, "No such resource")
    METHOD_NOT_ALLOWED = (405, "Method not allowed")
    NOT_ACCEPTABLE = (406, "Unsupported media type in Accept")
    UNAVAILABLE = (503, "Service temporarily unavailable")
    INTERNAL_ERROR = (500, "Internal error")

    @property
    def status(self) -> int:
        return self.value[0]

    @property
    def title(self) -> str:
        return self.value[1]

    @property
    def slug(self) -> str:
        return self.name.lower().replace("_", "-")

    @property
    def uri(self) -> str:
        return _URN + self.slug


class InvalidParam(BaseModel):
    name: str = Field(description="The query parameter (or path parameter) at fault.")
    reason: str


class Problem(BaseModel):
    """An RFC 9457 problem document."""

    type: str = Field(description="Stable URN of the kind of error; switch on this.")
    title: str = Field(description="Short summary of the kind of error (stable).")
    status: int = Field(description="The HTTP status code.")
    detail: str = Field(description="What went wrong with this request, in plain words.")
    instance: str = Field(description="Path of the request.")
    request_id: str = Field(description="Also in the X-Request-Id header and the server log.")
    invalid_params: list[InvalidParam] | None = Field(
        default=None, description="For 400s: each parameter at fault and why."
    )


class ApiProblem(Exception):
    def __init__(
        self,
        kind: ProblemType,
        detail: str,
        *,
        params: list[tuple[str, str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail
        self.params = params
        self.headers = headers or {}


def problem_response(request: Request, problem: ApiProblem) -> Response:
    body: dict[str, Any] = {
        "type": problem.kind.uri,
        "title": problem.kind.title,
        "status": problem.kind.status,
        "detail": problem.detail,
        "instance": request.url.path,
        "request_id": request_id(request),
    }
    if problem.params:
        body["invalid_params"] = [{"name": n, "reason": r} for n, r in problem.params]
    return Response(
        orjson.dumps(body),
        status_code=problem.kind.status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=problem.headers,
    )


def request_id(request: Request) -> str:
    return str(request.scope.get("state", {}).get("request_id", "-"))


def _location(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("query", "path", "header")]
    return ".".join(parts) or "request"


def install_handlers(app: FastAPI) -> None:
    async def on_problem(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiProblem)
        return problem_response(request, exc)

    async def on_validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        params = [(_location(tuple(e["loc"])), e["msg"]) for e in exc.errors()]
        names = ", ".join(sorted({name for name, _ in params}))
        return problem_response(
            request,
            ApiProblem(ProblemType.INVALID_PARAMETER, f"invalid value for {names}", params=params),
        )

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        kind = {
            404: ProblemType.NOT_FOUND,
            405: ProblemType.METHOD_NOT_ALLOWED,
            406: ProblemType.NOT_ACCEPTABLE,
        }.get(exc.status_code, ProblemType.INVALID_PARAMETER)
        detail = "no such path" if exc.status_code == 404 else str(exc.detail)
        headers = dict(exc.headers) if exc.headers else None
        if headers and "GET" in headers.get("Allow", "").split(", "):
            headers["Allow"] += ", HEAD"  # served as the GET without its body (HeadAsGet)
        return problem_response(request, ApiProblem(kind, detail, headers=headers))

    async def on_unauthenticated(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Unauthenticated)
        challenge = 'Bearer realm="aiguillage"'
        if exc.reason != "missing_token":
            # RFC 6750 §3: the reason code, never the token itself.
            challenge += f', error="invalid_token", error_description="{exc.reason}"'
        log.info("token refused (request %s): %s", request_id(request), exc.reason)
        return problem_response(
            request,
            ApiProblem(ProblemType.UNAUTHORIZED, str(exc), headers={"WWW-Authenticate": challenge}),
        )

    async def on_keys_unavailable(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, KeysUnavailable)
        log.error("token keys unavailable (request %s): %s", request_id(request), exc)
        retry = str(max(1, round(exc.retry_after_s)))
        return problem_response(
            request,
            ApiProblem(
                ProblemType.UNAVAILABLE,
                "the keys of the token's issuer cannot be fetched; retry later",
                headers={"Retry-After": retry},
            ),
        )

    async def on_database_down(request: Request, exc: Exception) -> Response:
        log.error("database unavailable (request %s): %s", request_id(request), exc.__class__)
        return problem_response(
            request,
            ApiProblem(
                ProblemType.UNAVAILABLE,
                "the database cannot be reached; retry later",
                headers={"Retry-After": "5"},
            ),
        )

    async def on_log_busy(request: Request, exc: Exception) -> Response:
        log.error("flow entry not written in time (request %s): %s", request_id(request), exc)
        return problem_response(
            request,
            ApiProblem(
                ProblemType.UNAVAILABLE,
                "this request's entry in the flow log could not be written in time (the "
                "database is busy: on SQLite, an import holds it for its whole run); retry later",
                headers={"Retry-After": str(_LOG_BUSY_RETRY_S)},
            ),
        )

    async def on_unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error (request %s)", request_id(request))
        response = problem_response(
            request,
            ApiProblem(ProblemType.INTERNAL_ERROR, "the server failed; the request id is logged"),
        )
        # This handler answers outside the request-id middleware: the header is set here.
        response.headers["x-request-id"] = request_id(request)
        return response

    app.add_exception_handler(ApiProblem, on_problem)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Unauthenticated, on_unauthenticated)
    app.add_exception_handler(KeysUnavailable, on_keys_unavailable)
    app.add_exception_handler(OperationalError, on_database_down)
    app.add_exception_handler(EntryNotWritten, on_log_busy)
    app.add_exception_handler(Exception, on_unexpected)


_EXAMPLE_DETAIL = {
    ProblemType.INVALID_PARAMETER: ("limit must be between 1 and 1000", [("limit", "too big")]),
    ProblemType.UNKNOWN_PARAMETER: ("unknown query parameter 'colour'", [("colour", "unknown")]),
    ProblemType.UNKNOWN_FIELD: ("fields= names unknown field 'shoe_size'", [("fields", "x")]),
    ProblemType.INVALID_CURSOR: ("the cursor is not one this endpoint issued", [("cursor", "x")]),
    ProblemType.UNAUTHORIZED: ("a bearer token is required", None),
    ProblemType.FORBIDDEN: ("this endpoint is reserved to the data protection officer", None),
    ProblemType.NOT_FOUND: ("no person with this id", None),
    ProblemType.NOT_ACCEPTABLE: ("this endpoint serves application/json", None),
    ProblemType.UNAVAILABLE: ("the database cannot be reached; retry later", None),
    ProblemType.INTERNAL_ERROR: ("the server failed; the request id is logged", None),
}


def _example(kind: ProblemType) -> dict[str, Any]:
    detail, params = _EXAMPLE_DETAIL.get(kind, (kind.title, None))
    example: dict[str, Any] = {
        "type": kind.uri,
        "title": kind.title,
        "status": kind.status,
        "detail": detail,
        "instance": "/v1/persons",
        "request_id": "5f0c3a9e2b7d4e61",
    }
    if params:
        example["invalid_params"] = [{"name": n, "reason": r} for n, r in params]
    return example


def problem_responses(
    *kinds: ProblemType, authenticated: bool = True
) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` entries for these problems, with one example per type."""
    by_status: dict[int, list[ProblemType]] = {}
    implied = (ProblemType.UNAUTHORIZED, ProblemType.FORBIDDEN) if authenticated else ()
    for kind in (*kinds, *implied, ProblemType.INTERNAL_ERROR):
        by_status.setdefault(kind.status, [])
        if kind not in by_status[kind.status]:
            by_status[kind.status].append(kind)
    responses: dict[int | str, dict[str, Any]] = {}
    for status, members in sorted(by_status.items()):
        responses[status] = {
            "model": Problem,
            "description": "; ".join(f"`{k.slug}`: {k.title}" for k in members),
            "content": {
                PROBLEM_MEDIA_TYPE: {
                    "examples": {k.slug: {"value": _example(k)} for k in members},
                }
            },
        }
    return responses
