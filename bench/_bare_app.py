"""The floor of the API benchmark: FastAPI serving precomputed bytes, nothing else.

    uvicorn _bare_app:create_app --factory --app-dir bench   (BENCH_BARE_RESPONSES=manifest.json)

The manifest (written by bench/api.py) maps each measured route of the real API to the exact
body and content type the real endpoint served for a representative request. Every request to
that route gets those bytes back from an ``async`` endpoint: no database, no serialisation, no
threadpool, so the difference with the real endpoint is what the hub's own code costs on top of
uvicorn + Starlette routing + FastAPI.
"""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

from fastapi import FastAPI
from starlette.responses import Response

__all__ = ["MANIFEST_ENV", "create_app"]

#: Environment variable naming the manifest: ``{"routes": [{"path", "media_type", "body"}]}``
#: where ``body`` is a file next to the manifest.
MANIFEST_ENV = "BENCH_BARE_RESPONSES"


def _endpoint(body: bytes, media_type: str) -> Callable[[], Awaitable[Response]]:
    async def serve() -> Response:
        return Response(body, media_type=media_type)

    return serve


def create_app() -> FastAPI:
    manifest_path = Path(os.environ[MANIFEST_ENV])
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    for route in manifest["routes"]:
        body = (manifest_path.parent / route["body"]).read_bytes()
        app.add_api_route(route["path"], _endpoint(body, route["media_type"]), methods=["GET"])
    return app
