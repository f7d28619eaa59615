"""Dependencies injected into the routes, declared once as typed aliases."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import Engine

from annuaire.auth import AccessRules, Principal, current_principal
from annuaire.settings import Settings

from .resources import Reader

__all__ = ["EngineDep", "PrincipalDep", "ReaderDep", "SettingsDep"]


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


SettingsDep = Annotated[Settings, Depends(_settings)]
EngineDep = Annotated[Engine, Depends(_engine)]
PrincipalDep = Annotated[Principal, Depends(current_principal)]


def _reader(request: Request, engine: EngineDep, principal: PrincipalDep) -> Iterator[Reader]:
    rules: AccessRules = request.app.state.access_rules
    with engine.connect() as connection:
        yield Reader(connection, principal, rules)


ReaderDep = Annotated[Reader, Depends(_reader)]
