"""Build the FastAPI application: /v1 routers, error handlers, request ids, OpenAPI."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from typing import Any

import anyio.to_thread
from fastapi import APIRouter, Depends, FastAPI
from sqlalchemy import Engine, text
from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from annuaire.auth import AccessRules, current_principal
from annuaire.auth.bearer import Authenticator, trusted_issuers
from annuaire.registre.runtime import open_registre
from annuaire.registre.writer import FlowWriter
from annuaire.settings import Settings, get_settings
from annuaire.store import make_engine

from .deps import EngineDep
from .listing import check_query_string, json_response
from .openapi import CACHE_CONTROL, DOCS_URL, OPENAPI_URL, PUBLIC_PATHS, build_openapi
from .problems import ProblemType, install_handlers, problem_responses
from .routers import ROUTERS, oauth

__all__ = ["API_VERSION", "contract_app", "create_app"]

#: Version of the /v1 contract (semantic: see specs/VERSIONING.md).
API_VERSION = "1.5.1"

_DESCRIPTION = """\
The open, read-only API of Aiguillage: the identities and structures of the académie's
annuaire (AAF) in one neutral schema, a change feed and bulk exports.

- **Paging**: every collection pages by an opaque `cursor` (`next` in the body, `Link` header),
  in hub-id order (import runs: newest first). No object is missed or repeated while imports
  commit between two pages. `limit` is 100 by default, at most 1,000.
- **Full sync**: ask a collection with `Accept: application/x-ndjson` to get every matching
  object streamed one per line, then follow `/v1/changes?after=` from its `X-Feed-Cursor`.
- **Change feed**: `/v1/changes` lists creates, updates, tombstones (`leave`: the entity left
  its source and is `tobedeleted`; `purge`: it is gone) in commit order.
- **Fields**: an object carries every property of its schema (`null` when unknown) and no
  other, but those marked `x-restricted` that the caller may not read (a person's
  demographics); `fields=a,b` narrows it to those; `id` is always returned.
- **Authentication**: every `/v1` request carries a bearer token (EduConnect, the guichet
  agent, or the hub's `/oauth/token` for ENT clients); a 401 says why in `WWW-Authenticate`.
  Every response carries an `X-Request-Id`.
- **Caching**: every `/v1` answer says `Cache-Control: private, no-cache` (personal data: no
  shared cache keeps it, a client's own cache checks with the hub before reusing it); a
  collection answers JSON or NDJSON after `Accept`, and says so (`Vary: Accept`).
  Single objects carry an `ETag`; send it back in `If-None-Match` to get a 304.
  The same object is the same bytes, hence the same `ETag`, whichever database a deployment
  runs on (a test one on SQLite, production on PostgreSQL): compact JSON, keys in schema order.
  Every GET also answers HEAD (RFC 9110): the same status and headers, no content.
- **Errors**: RFC 9457 `application/problem+json`; switch on `type` (a stable URN).
  An unknown parameter, field or cursor is a 400 that names it.
- **Versioning**: breaking changes only in a new major path (`/v2`); see specs/VERSIONING.md.
"""

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_CACHE_CONTROL = (b"cache-control", CACHE_CONTROL.encode("ascii"))


class RequestIdMiddleware:
    """Tags each request with an id (the caller's X-Request-Id when sane), echoed back; gives
    every /v1 answer that sets no ``Cache-Control`` of its own the hub's (``_CACHE_CONTROL``)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = given if _REQUEST_ID.match(given) else _new_id()
        scope.setdefault("state", {})["request_id"] = request_id
        header = (b"x-request-id", request_id.encode("ascii"))
        path = scope["path"]
        cached = path.startswith("/v1/") and path not in PUBLIC_PATHS

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", []), header]
                if cached and not any(name.lower() == b"cache-control" for name, _ in headers):
                    headers.append(_CACHE_CONTROL)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_id)


class _HeadersSent(OSError):
    """Raised into a streamed body once a HEAD's headers are out: to the response, the client
    is gone (an ``OSError`` from ``send``), and it stops producing."""


class HeadAsGet:
    """Serves ``HEAD`` as the ``GET`` of the same URL, without its body (RFC 9110 §9.3.2: a
    server that supports GET supports HEAD): the same status and headers (``ETag``,
    ``Content-Length``), authentication and problems included. A streamed response (an NDJSON
    export) is stopped at its first chunk, as if the client had left."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return
        finished = stopped = False

        async def headers_only(message: Message) -> None:
            nonlocal finished, stopped
            if message["type"] != "http.response.body":
                await send(message)
                return
            if not finished:
                finished = True
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            if message.get("more_body", False):
                stopped = True
                raise _HeadersSent("HEAD: the headers are sent")

        try:
            await self.app({**scope, "method": "GET"}, receive, headers_only)
        except (_HeadersSent, ClientDisconnect):
            if not stopped:  # the client's, not ours
                raise


def _new_id() -> str:
    import secrets

    return secrets.token_hex(8)


def create_app(settings: Settings | None = None, engine: Engine | None = None) -> FastAPI:
    """The API on ``engine`` (or one made from the settings).

    Refuses to build (``ConfigurationError``) when the register of processing activities or
    the flow log's keys are missing or invalid: the API serves nothing it cannot log.
    """
    settings = settings or get_settings()
    app = _build(settings)
    # Only a served app trusts issuers: outside production this creates the hub's signing key
    # (and the dev key) on first use, which building the contract must never do.
    app.state.authenticator = Authenticator(settings, trusted_issuers(settings))
    app.state.engine = engine or make_engine(settings, serving=True)
    app.state.registre = open_registre(settings, app.state.engine)
    # A first EduConnect login's FrEduCtId is kept with its flow entry.
    app.state.access_rules = AccessRules(app.state.registre)
    # Transactions of their own (never autocommit): the flow writer's batches and the DPO's
    # endpoints.
    url = app.state.engine.url.render_as_string(hide_password=False)
    app.state.flow_engine = make_engine(
        settings.model_copy(update={"database_url": url}), pool_size=2, max_overflow=4
    )
    app.state.flow_writer = FlowWriter(app.state.flow_engine)
    return app


def contract_app() -> FastAPI:
    """The routes without a database nor token issuers: what specs/openapi.json is made from.
    Never served, so it writes no key (``aiguillage spec write`` and ``aiguillage conformance``
    run it in any folder)."""
    return _build(Settings(database_url="sqlite://", environment="development"))


def _build(settings: Settings) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Sync routes run in the thread pool: no more at once than there are connections.
        limiter = anyio.to_thread.current_default_thread_limiter()
        limiter.total_tokens = settings.api_db_pool_size
        yield
        app.state.flow_writer.close()
        app.state.engine.dispose()
        app.state.flow_engine.dispose()

    app = FastAPI(
        lifespan=lifespan,
        title="Aiguillage API",
        version=API_VERSION,
        description=_DESCRIPTION,
        openapi_url=OPENAPI_URL,
        docs_url=DOCS_URL,
        redoc_url=None,
        # A path with a trailing slash is not a route (404), not a redirect to another URL.
        redirect_slashes=False,
        openapi_tags=[
            {"name": "structures", "description": "Écoles, collèges, lycées, services."},
            {"name": "persons", "description": "Pupils, guardians and staff."},
            {"name": "roles", "description": "What each person is in each structure."},
            {"name": "classes", "description": "Classes (divisions)."},
            {"name": "groups", "description": "Teaching groups."},
            {"name": "enrollments", "description": "Persons in classes and groups."},
            {"name": "guardianships", "description": "Guardians and their pupils."},
            {"name": "nomenclatures", "description": "Subjects and levels."},
            {"name": "import runs", "description": "What each import did."},
            {"name": "changes", "description": "The change feed."},
            {
                "name": "registre",
                "description": "RGPD: the art. 30 register and who received a person's data "
                "(data protection officer only).",
            },
            {"name": "service", "description": "Health of this deployment."},
            {"name": "oauth", "description": "Token endpoint for ENT vendors, and its keys."},
        ],
    )
    app.state.settings = settings
    app.state.access_rules = AccessRules()
    install_handlers(app)
    app.add_middleware(RequestIdMiddleware)
    app.add_middleware(HeadAsGet)  # outermost: every layer below sees the GET it answers

    # Who is calling comes first: without a token, a request is a 401 whatever it asks.
    v1 = APIRouter(
        prefix="/v1", dependencies=[Depends(current_principal), Depends(check_query_string)]
    )
    for router in ROUTERS:
        v1.include_router(router)
    app.include_router(v1)
    app.include_router(oauth.router)
    app.add_api_route(
        "/health",
        _health,
        methods=["GET"],
        tags=["service"],
        operation_id="getHealth",
        summary="Liveness and database check",
        responses={
            200: {"content": {"application/json": {"example": {"status": "ok"}}}},
            **problem_responses(
                ProblemType.UNKNOWN_PARAMETER, ProblemType.UNAVAILABLE, authenticated=False
            ),
        },
        dependencies=[Depends(check_query_string)],
    )

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build_openapi(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def _health(engine: EngineDep) -> Response:
    """`{"status": "ok"}` when the API can query its database (503 problem otherwise)."""
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))
    return json_response({"status": "ok"})
