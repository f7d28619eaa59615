"""The OpenAPI document of /v1, as committed to specs/openapi.json.

FastAPI derives it from the routes; this module adjusts what FastAPI cannot know: errors are
400 ``problem+json`` (never FastAPI's 422), and because ``fields=`` may narrow any object, only
``id`` is required in the schemas of served objects (every other field is present unless
``fields=`` leaves it out).
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from .examples import EXAMPLES, page_example, registre_examples
from .problems import PROBLEM_MEDIA_TYPE

__all__ = ["build_openapi", "openapi_text"]

_NARROWABLE_SUFFIXES = ("Public",)
_NARROWABLE = {"RoleSummary"}


def build_openapi(app: FastAPI) -> dict[str, Any]:
    document = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
        tags=app.openapi_tags,
        servers=app.servers,
    )
    for path in document["paths"].values():
        for operation in path.values():
            responses = operation.get("responses", {})
            responses.pop("422", None)
            for status, response in responses.items():
                content = response.get("content", {})
                if status.startswith(("4", "5")) and PROBLEM_MEDIA_TYPE in content:
                    schema = content.pop("application/json", {}).get("schema")
                    if schema:
                        content[PROBLEM_MEDIA_TYPE]["schema"] = schema
                elif status == "304":
                    response.pop("content", None)
    schemas = document.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
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
