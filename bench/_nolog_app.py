"""The real API with its flow log removed: the baseline of bench/_api_flowlog.py only.

``uvicorn _nolog_app:create_app --factory --app-dir bench``: the app of ``aiguillage serve``
(settings from the environment), then ``app.state.registre = None``, which the readers take as
"no journal". The hub itself offers no way to serve without logging; this file is not packaged.
"""

from __future__ import annotations

from fastapi import FastAPI

from annuaire.api import create_app as create_real_app


def create_app() -> FastAPI:
    app = create_real_app()
    app.state.registre = None
    return app
