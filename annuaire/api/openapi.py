"""The OpenAPI document of /v1, as committed to specs/openapi.json.

FastAPI derives it from the routes; this module adjusts what FastAPI cannot know: errors are
400 ``problem+json`` (never FastAPI's 422), and because ``fields=`` may narrow any object, only
``id`` is required in the schemas of served objects (every other field is present unless
``fields=`` leaves it out). Authentication is enforced by the application, not by route
dependencies FastAPI could see: the security schemes, the operations that need a token, the
``WWW-Authenticate`` challenge of a 401, the ``Retry-After`` of a 503, the ``ETag`` of a 304,
the ``Cache-Control`` of every /v1 answer, the ``Vary`` of a collection's and the
``X-Request-Id`` of every response are declared here.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from annuaire.auth.access import DEMOGRAPHICS, DEMOGRAPHICS_SCOPE
from annuaire.schema.client import ClientScope

from .examples import EXAMPLES, page_example, registre_examples
from .problems import PROBLEM_MEDIA_TYPE

__all__ = [
    "CACHE_CONTROL",
    "DOCS_URL",
    "OPENAPI_URL",
    "PUBLIC_PATHS",
    "build_openapi",
    "openapi_text",
]

_NARROWABLE_SUFFIXES = ("Public",)
_NARROWABLE = {"RoleSummary"}
#: Outside dev/test, every /v1 operation needs one of these (the token endpoint, its keys and
#: /health need none).
_SECURITY_SCHEMES: dict[str, Any] = {
    "bearer": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "An access token: EduConnect's (parents, pupils), the guichet agent's "
        "(staff), or one the hub issues at `/oauth/token` (ENT clients, client credentials); "
        "what it may read is its holder's (see the README's access rules).",
    },
    "clientCredentials": {
        "type": "oauth2",
        "description": "An ENT client's token from the hub, by client credentials (a secret, "
        "or `private_key_jwt`); the scopes are those of its contract.",
        "flows": {
            "clientCredentials": {
                "tokenUrl": "/oauth/token",
                "scopes": {
                    ClientScope.ROSTER_CORE.value: "Structures, classes, groups, persons' "
                    "names and roles, enrollments, guardianships, nomenclatures.",
                    ClientScope.ROSTER_DEMOGRAPHICS.value: "Persons' birth dates, contact "
                    "details and addresses.",
                    ClientScope.TIMETABLE.value: "Timetables.",
                },
            }
        },
    },
}
#: On the person properties a caller may not be allowed to read: left out of its objects.
_RESTRICTED = (
    "demographics: left out for callers who may not read them (an ENT client without "
    f"`{DEMOGRAPHICS_SCOPE}`, a teacher)"
)
_REQUEST_ID_HEADER = {
    "description": "The request's id: the caller's `X-Request-Id` when it is 1 to 64 letters, "
    "digits, `.`, `_` or `-`, else one the hub made; also `request_id` in a problem document.",
    "schema": {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,64}$"},
}
_RETRY_AFTER_HEADER = {
    "description": "Seconds to wait before sending the request again (RFC 9110 §10.2.3): the "
    "database is unreachable or busy, or the keys of the token's issuer cannot be fetched.",
    "schema": {"type": "integer", "minimum": 1},
}
_NOT_MODIFIED_ETAG_HEADER = {
    "description": "The tag of the current representation: the one sent in `If-None-Match`.",
    "schema": {"type": "string"},
}
#: Where the contract and its docs page are served: public, cacheable.
OPENAPI_URL = "/v1/openapi.json"
DOCS_URL = "/v1/docs"
PUBLIC_PATHS = frozenset((OPENAPI_URL, DOCS_URL))
#: What every other /v1 answer that sets none says to caches (RFC 9111): personal data is kept
#: by no shared cache (``private``), and a client's own cache asks the hub before reusing an
#: answer (``no-cache``: with an ``ETag``, a 304 when it has not changed).
CACHE_CONTROL = "private, no-cache"
_CACHE_CONTROL_HEADER = {
    "description": f"`{CACHE_CONTROL}`: no shared cache keeps the answer (personal data), and "
    "a client's own cache asks the hub before reusing it (with the `ETag` of a single object, "
    "a 304 when it has not changed).",
    "schema": {"type": "string", "enum": [CACHE_CONTROL]},
}
_VARY_HEADER = {
    "description": "`Accept`: a collection answers a page of JSON, or every object as NDJSON, "
    "after the request's `Accept`.",
    "schema": {"type": "string", "enum": ["Accept"]},
}
_CHALLENGE_HEADER = {
    "description": '`Bearer` (RFC 6750), with `error="invalid_token"` and a description '
    "when a token was sent and refused.",
    "schema": {"type": "string"},
}


def build_openapi(app: FastAPI) -> dict[str, Any]:
    document = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
        tags=app.openapi_tags,
        servers=app.servers,
    )
    for route, path in document["paths"].items():
        for operation in path.values():
            responses = operation.get("responses", {})
            responses.pop("422", None)
            if route.startswith("/v1/"):
                operation["security"] = [{"bearer": []}, {"clientCredentials": []}]
            for status, response in responses.items():
                headers = response.setdefault("headers", {})
                headers["X-Request-Id"] = _REQUEST_ID_HEADER
                if status == "401":
                    headers["WWW-Authenticate"] = _CHALLENGE_HEADER
                elif status == "503" and not route.startswith("/oauth/"):
                    headers["Retry-After"] = _RETRY_AFTER_HEADER
                elif status == "304":
                    headers["ETag"] = _NOT_MODIFIED_ETAG_HEADER
                content = response.get("content", {})
                if route.startswith("/v1/") and route not in PUBLIC_PATHS:
                    if status.startswith("2") or status == "304":
                        headers["Cache-Control"] = _CACHE_CONTROL_HEADER
                    if status == "200" and "application/x-ndjson" in content:
                        headers["Vary"] = _VARY_HEADER
                if status.startswith(("4", "5")) and PROBLEM_MEDIA_TYPE in content:
                    schema = content.pop("application/json", {}).get("schema")
                    if schema:
                        content[PROBLEM_MEDIA_TYPE]["schema"] = schema
                elif status == "304":
                    response.pop("content", None)
    document.setdefault("components", {})["securitySchemes"] = _SECURITY_SCHEMES
    schemas = document.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    person = schemas.get("PersonPublic", {}).get("properties", {})
    for name in DEMOGRAPHICS & person.keys():
        person[name]["x-restricted"] = _RESTRICTED
    examples = {**registre_examples(), **EXAMPLES}
    for name, schema in schemas.items():
        narrowable = name.endswith(_NARROWABLE_SUFFIXES) or name in _NARROWABLE
        if narrowable and "id" in schema.get("properties", {}):
            schema["required"] = ["id"]
        if name in examples:
            schema["examples"] = [examples[name]]
        elif name.endswith("Page") and "items" in schema.get("properties", {}):
            item = schema["properties"]["items"]["items"]["$ref"].rsplit("/", 1)[-1]
            schema["examples"] = [page_example(item)]
    return document


def openapi_text(app: FastAPI) -> str:
    return json.dumps(build_openapi(app), indent=2, ensure_ascii=False) + "\n"
