"""The /v1 REST API (FastAPI): read resources, the change feed, NDJSON exports.

``create_app()`` builds the application; ``aiguillage serve`` runs it under uvicorn. The
OpenAPI document it generates is committed as specs/openapi.json (``aiguillage spec write``).
"""

from __future__ import annotations

from .main import API_VERSION, create_app

__all__ = ["API_VERSION", "create_app"]
