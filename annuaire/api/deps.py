"""Dependencies injected into the routes, declared once as typed aliases.

They are ``async`` because they do not block: FastAPI runs a sync dependency in the thread
pool, and a few thread hops per request cost more than the database work of a page.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import Engine

from annuaire.auth import AccessRules, Principal, current_principal
from annuaire.registre.runtime import Registre
from annuaire.registre.writer import FlowWriter
from annuaire.settings import Settings

from .journal import Journal
from .resources import Reader

__all__ = ["EngineDep", "PrincipalDep", "ReaderDep", "SettingsDep"]


async def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def _engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


SettingsDep = Annotated[Settings, Depends(_settings)]
EngineDep = Annotated[Engine, Depends(_engine)]
PrincipalDep = Annotated[Principal, Depends(current_principal)]


async def _reader(request: Request, engine: EngineDep, principal: PrincipalDep) -> Reader:
    # Async and connection-less on purpose: no thread hop here; the route (run in the thread
    # pool) opens the connection with `reader.connected()` for its database work.
    rules: AccessRules = request.app.state.access_rules
    return Reader(engine, principal, rules, journal(request))


def journal(request: Request) -> Journal | None:
    """The flow-log writer of this request (None only where an app was built without one)."""
    registre: Registre | None = request.app.state.registre
    if registre is None:
        return None
    # The route, not the URL: path parameters (ids) are put back as their names.
    path = request.url.path
    for name, value in request.path_params.items():
        path = path.replace(f"/{value}", f"/{{{name}}}")
    writer: FlowWriter = request.app.state.flow_writer
    request_id = request.scope["state"].get("request_id")
    return Journal(registre, writer, request_id, f"{request.method} {path}")


ReaderDep = Annotated[Reader, Depends(_reader)]
