"""``/oauth``: the hub's token endpoint (client credentials) and the keys that verify its tokens.

``POST /oauth/token`` speaks OAuth 2.0, not the /v1 conventions: the request is an
``application/x-www-form-urlencoded`` body (parsed here with :mod:`urllib.parse`, strictly: a
parameter given twice, a query string or a body over 16 KiB is an ``invalid_request``), the
errors are RFC 6749 §5.2 JSON objects (``error``, ``error_description``), and every answer
carries ``Cache-Control: no-store``. Checks run in this order, so that a refused request costs
little: request syntax, grant type, signing key available (else 503
``temporarily_unavailable``), client authentication (``invalid_client``, 401 with a Basic
challenge), scope. The reason of an ``invalid_client`` is logged, never returned. A client id
that cannot be one (a control character, RFC 6749 A.1), in HTTP Basic, the body or an
assertion, is an ``invalid_client`` and is never looked up (see annuaire.auth.clients).

A client assertion's ``aud`` must name the hub: its issuer identifier
(``settings.token_issuer_url``) or this endpoint's public URL when the deployment configures it
(``settings.token_endpoint_url``). Neither is ever rebuilt from the request: its Host header is
the caller's, and an assertion a client signed for another authorization server (whose token
endpoint is at ``/oauth/token`` too) would be accepted by naming that server's host.

``GET /oauth/jwks.json`` publishes the public half of the signing key.
"""

from __future__ import annotations

import base64
import binascii
import enum
import logging
from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import parse_qsl, unquote_plus

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from pydantic.config import JsonDict
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response

from annuaire.api.deps import EngineDep, SettingsDep
from annuaire.api.problems import problem_responses
from annuaire.auth.clients import (
    CLIENT_ASSERTION_TYPE,
    InvalidClient,
    authenticate_assertion,
    authenticate_secret,
    contract_refusal,
)
from annuaire.auth.issuing import (
    InvalidScope,
    SigningKeyUnavailable,
    granted_scopes,
    hub_jwks,
    mint_access_token,
    signing_key,
)
from annuaire.registre.activities import Activity
from annuaire.schema import ApiClient, ClientScope
from annuaire.settings import Settings

__all__ = ["JsonWebKeySet", "OAuthError", "OAuthErrorCode", "TokenResponse", "router"]

log = logging.getLogger("aiguillage.oauth")

router = APIRouter(prefix="/oauth", tags=["oauth"])

_MAX_BODY_BYTES = 16 * 1024
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_BASIC_CHALLENGE = 'Basic realm="aiguillage", charset="UTF-8"'


class OAuthErrorCode(enum.StrEnum):
    INVALID_REQUEST = "invalid_request"
    INVALID_CLIENT = "invalid_client"
    UNSUPPORTED_GRANT_TYPE = "unsupported_grant_type"
    INVALID_SCOPE = "invalid_scope"
    UNAUTHORIZED_CLIENT = "unauthorized_client"
    TEMPORARILY_UNAVAILABLE = "temporarily_unavailable"


_TOKEN_EXAMPLE: JsonDict = {
    "access_token": "eyJhbGciOiJFUzI1NiIsImtpZCI6Imh1Yi0uLi4iLCJ0eXAiOiJhdCtqd3QifQ.e30.c2ln",
    "token_type": "Bearer",
    "expires_in": 600,
    "scope": "roster-core.readonly timetable.readonly",
}


class TokenResponse(BaseModel):
    """An access token (RFC 6749 §5.1): a signed RFC 9068 JWT to send as `Bearer`."""

    model_config = ConfigDict(json_schema_extra={"examples": [_TOKEN_EXAMPLE]})

    access_token: str = Field(description="The JWT (`typ: at+jwt`, ES256), opaque to clients.")
    token_type: Literal["Bearer"]
    expires_in: int = Field(description="Seconds the token stays valid.")
    scope: str = Field(description="Scopes granted, space-separated (within the contract).")


class OAuthError(BaseModel):
    """An OAuth 2.0 error (RFC 6749 §5.2); switch on `error`."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"error": "invalid_client", "error_description": "client authentication failed"}
            ]
        }
    )

    error: OAuthErrorCode
    error_description: str | None = Field(default=None, description="What went wrong.")


_JWK_EXAMPLE: JsonDict = {
    "kty": "EC",
    "crv": "P-256",
    "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
    "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0",
    "kid": "hub-3b8UDVZr2cXdGfkw",
    "alg": "ES256",
    "use": "sig",
}


class JsonWebKey(BaseModel):
    """A public signing key (RFC 7517); EC keys also carry `crv`, `x` and `y`."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [_JWK_EXAMPLE]})

    kty: str
    kid: str
    alg: str
    use: str = "sig"


class JsonWebKeySet(BaseModel):
    """The hub's public keys; pick the one whose `kid` is in the token header."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"keys": [_JWK_EXAMPLE]}]})

    keys: list[JsonWebKey]


def _error_examples(*cases: tuple[OAuthErrorCode, str]) -> dict[str, Any]:
    return {
        code.value: {"value": {"error": code.value, "error_description": text}}
        for code, text in cases
    }


_TOKEN_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The access token.",
        "headers": {"Cache-Control": {"schema": {"type": "string"}, "example": "no-store"}},
    },
    400: {
        "model": OAuthError,
        "description": (
            "`invalid_request`, `unsupported_grant_type`, `invalid_scope`, or "
            "`unauthorized_client`: the contract's processing activity is not (or no longer) "
            "one of the register's activities for ENT clients."
        ),
        "content": {
            "application/json": {
                "examples": _error_examples(
                    (OAuthErrorCode.INVALID_REQUEST, "grant_type is missing"),
                    (
                        OAuthErrorCode.UNSUPPORTED_GRANT_TYPE,
                        "only grant_type=client_credentials is supported",
                    ),
                    (OAuthErrorCode.INVALID_SCOPE, "unknown scope roster-full.readonly"),
                    (
                        OAuthErrorCode.UNAUTHORIZED_CLIENT,
                        "the contract of client ent-x runs under activity ent-2024, which the "
                        "register no longer holds for ENT clients",
                    ),
                )
            }
        },
    },
    401: {
        "model": OAuthError,
        "description": "`invalid_client`: unknown, revoked, or wrong credentials.",
        "headers": {
            "WWW-Authenticate": {"schema": {"type": "string"}, "example": _BASIC_CHALLENGE}
        },
        "content": {
            "application/json": {
                "examples": _error_examples(
                    (OAuthErrorCode.INVALID_CLIENT, "client authentication failed")
                )
            }
        },
    },
    503: {
        "model": OAuthError,
        "description": "`temporarily_unavailable`: no signing key is configured.",
        "content": {
            "application/json": {
                "examples": _error_examples(
                    (
                        OAuthErrorCode.TEMPORARILY_UNAVAILABLE,
                        "the token endpoint has no signing key",
                    )
                )
            }
        },
    },
    **problem_responses(authenticated=False),
}

_FORM = "application/x-www-form-urlencoded"
_TOKEN_REQUEST_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            _FORM: {
                "schema": {
                    "type": "object",
                    "required": ["grant_type"],
                    "properties": {
                        "grant_type": {"type": "string", "enum": ["client_credentials"]},
                        "scope": {
                            "type": "string",
                            "description": "Space-separated scopes (default: the whole "
                            "contract): " + ", ".join(s.value for s in ClientScope) + ".",
                        },
                        "client_id": {"type": "string", "description": "With client_secret."},
                        "client_secret": {
                            "type": "string",
                            "description": "client_secret_post (prefer HTTP Basic).",
                        },
                        "client_assertion_type": {
                            "type": "string",
                            "enum": [CLIENT_ASSERTION_TYPE],
                        },
                        "client_assertion": {
                            "type": "string",
                            "description": "private_key_jwt: a JWT signed by the client's "
                            "key, iss = sub = client id, aud = the hub's issuer identifier "
                            "(the `iss` of its tokens) or this endpoint's public URL as the "
                            "deployment publishes it (never the Host of the request), exp at "
                            "most 5 minutes ahead, unique jti.",
                        },
                    },
                },
                "examples": {
                    "client_secret_basic": {
                        "summary": "Secret in an Authorization: Basic header",
                        "value": {"grant_type": "client_credentials"},
                    },
                    "client_secret_post": {
                        "summary": "Secret in the body",
                        "value": {
                            "grant_type": "client_credentials",
                            "client_id": "ent-4kT0c2mXoQ9wZr1y",
                            "client_secret": "m0Pq…",
                            "scope": "roster-core.readonly",
                        },
                    },
                    "private_key_jwt": {
                        "summary": "Signed client assertion (RFC 7523)",
                        "value": {
                            "grant_type": "client_credentials",
                            "client_assertion_type": CLIENT_ASSERTION_TYPE,
                            "client_assertion": "eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJlbnQtLi4uIn0.c2ln",
                        },
                    },
                },
            }
        },
    }
}


class _Refusal(Exception):
    """An OAuth error answer; the ``reason`` is logged, the ``description`` returned."""

    def __init__(
        self,
        error: OAuthErrorCode,
        description: str,
        *,
        reason: str | None = None,
        status: int = 400,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.reason = reason or description
        self.status = status
        self.headers = headers or {}

    def response(self) -> Response:
        body = {"error": self.error.value, "error_description": self.description}
        return JSONResponse(body, self.status, headers={**_NO_STORE, **self.headers})


def _invalid_client(reason: str) -> _Refusal:
    # Always a challenge: RFC 9110 requires one with a 401, and Basic is what we accept.
    return _Refusal(
        OAuthErrorCode.INVALID_CLIENT,
        "client authentication failed",
        reason=reason,
        status=401,
        headers={"WWW-Authenticate": _BASIC_CHALLENGE},
    )


async def _read_form(request: Request) -> dict[str, str]:
    if request.url.query:
        raise _Refusal(OAuthErrorCode.INVALID_REQUEST, "send the parameters in the body only")
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != _FORM:
        raise _Refusal(OAuthErrorCode.INVALID_REQUEST, f"the body must be {_FORM}")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > _MAX_BODY_BYTES:
            raise _Refusal(OAuthErrorCode.INVALID_REQUEST, "the body is too large")
    try:
        pairs = parse_qsl(
            body.decode("ascii"), strict_parsing=bool(body), errors="strict", max_num_fields=32
        )
    except ValueError:
        raise _Refusal(OAuthErrorCode.INVALID_REQUEST, "the body is not a valid form") from None
    form: dict[str, str] = {}
    for name, value in pairs:
        if name in form:
            raise _Refusal(OAuthErrorCode.INVALID_REQUEST, f"{name} is given more than once")
        form[name] = value
    # RFC 6749 §3.1: a parameter without a value is treated as omitted.
    return {name: value for name, value in form.items() if value}


def _basic_credentials(header: str) -> tuple[str, str]:
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        raise _invalid_client(f"unsupported Authorization scheme {scheme[:16]!r}")
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise _invalid_client("malformed Basic credentials") from None
    client_id, colon, secret = decoded.partition(":")
    if not colon:
        raise _invalid_client("malformed Basic credentials")
    # RFC 6749 §2.3.1: both are form-encoded before being joined.
    return unquote_plus(client_id), unquote_plus(secret)


def _authenticate(
    engine: Engine, settings: Settings, form: dict[str, str], authorization: str | None
) -> ApiClient:
    methods = [
        name
        for name, used in (
            ("client_secret_basic", authorization is not None),
            ("client_secret_post", "client_secret" in form),
            ("private_key_jwt", "client_assertion" in form or "client_assertion_type" in form),
        )
        if used
    ]
    if len(methods) > 1:
        raise _Refusal(
            OAuthErrorCode.INVALID_REQUEST,
            f"use one client authentication method, not {' and '.join(methods)}",
        )
    if not methods:
        raise _invalid_client("no client authentication")
    claimed = form.get("client_id", "(in the assertion)")
    try:
        if authorization is not None:
            claimed, secret = _basic_credentials(authorization)
            client = authenticate_secret(engine, claimed, secret)
        elif methods == ["client_secret_post"]:
            if "client_id" not in form:
                raise _Refusal(OAuthErrorCode.INVALID_REQUEST, "client_secret without client_id")
            client = authenticate_secret(engine, form["client_id"], form["client_secret"])
        else:
            if form.get("client_assertion_type") != CLIENT_ASSERTION_TYPE:
                raise _Refusal(
                    OAuthErrorCode.INVALID_REQUEST,
                    f"client_assertion_type must be {CLIENT_ASSERTION_TYPE}",
                )
            if "client_assertion" not in form:
                raise _Refusal(OAuthErrorCode.INVALID_REQUEST, "client_assertion is missing")
            client = authenticate_assertion(
                engine,
                form["client_assertion"],
                settings.token_endpoint_url or settings.token_issuer_url,
                also_accepted_audiences=[settings.token_issuer_url],
                leeway_s=settings.token_leeway_s,
            )
    except InvalidClient as exc:
        raise _invalid_client(f"{exc.reason}; claimed client id {claimed[:64]!r}") from None
    if form.get("client_id", client.client_id) != client.client_id:
        raise _invalid_client("client_id differs from the authenticated client")
    return client


def _issue(
    engine: Engine,
    settings: Settings,
    form: dict[str, str],
    authorization: str | None,
    client_activities: Mapping[str, Activity] | None,
) -> dict[str, Any]:
    grant_type = form.get("grant_type")
    if grant_type is None:
        raise _Refusal(OAuthErrorCode.INVALID_REQUEST, "grant_type is missing")
    if grant_type != "client_credentials":
        raise _Refusal(
            OAuthErrorCode.UNSUPPORTED_GRANT_TYPE,
            "only grant_type=client_credentials is supported",
        )
    try:
        signing_key(settings)
    except SigningKeyUnavailable as exc:
        raise _Refusal(
            OAuthErrorCode.TEMPORARILY_UNAVAILABLE,
            "the token endpoint has no signing key",
            reason=str(exc),
            status=503,
        ) from None
    client = _authenticate(engine, settings, form, authorization)
    try:
        scopes = granted_scopes(client, form["scope"].split() if "scope" in form else None)
    except InvalidScope as exc:
        raise _Refusal(OAuthErrorCode.INVALID_SCOPE, str(exc)) from None
    if client_activities is not None:
        refusal = contract_refusal(client_activities, client.client_id, client.activity, scopes)
        if refusal is not None:
            raise _Refusal(OAuthErrorCode.UNAUTHORIZED_CLIENT, refusal)
    token, expires_in = mint_access_token(settings, client, scopes)
    log.info("token issued to client %s (scope %s)", client.client_id, " ".join(scopes))
    return {
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": expires_in,
        "scope": " ".join(scopes),
    }


@router.post(
    "/token",
    name="oauth_token",
    response_model=TokenResponse,
    responses=_TOKEN_RESPONSES,
    operation_id="requestToken",
    summary="Get an access token (client credentials)",
    openapi_extra=_TOKEN_REQUEST_BODY,
)
async def request_token(request: Request, settings: SettingsDep, engine: EngineDep) -> Response:
    """OAuth 2.0 client credentials grant (RFC 6749 §4.4) for API clients under contract.

    Authenticate with the secret (HTTP Basic, or `client_id` + `client_secret` in the body) or
    with a signed assertion (`private_key_jwt`, RFC 7523). The token is valid for the
    requested scopes within the client's contract (all of them when `scope` is omitted), for
    the structures of the contract, for `expires_in` seconds; ask a new one when it expires.
    """
    form: dict[str, str] = {}
    try:
        form = await _read_form(request)
        body = await run_in_threadpool(
            _issue,
            engine,
            settings,
            form,
            request.headers.get("authorization"),
            _client_activities(request),
        )
    except _Refusal as refusal:
        log.warning("token request refused: %s (%s)", refusal.error.value, refusal.reason)
        return refusal.response()
    return JSONResponse(body, headers=_NO_STORE)


def _client_activities(request: Request) -> Mapping[str, Activity] | None:
    """The activities a client's contract may run under (None: an app without a register)."""
    registre = getattr(request.app.state, "registre", None)
    return None if registre is None else registre.client_activities


@router.get(
    "/jwks.json",
    response_model=JsonWebKeySet,
    responses={
        200: {
            "description": "The public keys.",
            "headers": {"Cache-Control": {"schema": {"type": "string"}, "example": "max-age=300"}},
        },
        **problem_responses(authenticated=False),
    },
    operation_id="getHubJwks",
    summary="Public keys of the hub's tokens",
)
def get_jwks(settings: SettingsDep) -> Response:
    """The JWKS that verifies the tokens `POST /oauth/token` signs (empty when it has no
    key). Cache it a few minutes; fetch it again when a token names an unknown `kid`."""
    return JSONResponse(hub_jwks(settings), headers={"Cache-Control": "max-age=300"})
