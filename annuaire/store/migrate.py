"""Schema migrations (Alembic), driven from code: ``aiguillage db upgrade`` calls ``upgrade``.

The schema changes only through the revisions under ``migrations/versions``; the same revisions
run on SQLite and PostgreSQL. ``create_all`` is used by tests only.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

__all__ = [
    "alembic_config",
    "current_revision",
    "head_revision",
    "objects_for",
    "revision",
    "upgrade",
]

_MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def objects_for(dialect: str) -> Callable[..., bool]:
    """Autogenerate's filter for ``dialect``: a model index built on another backend only
    (``Index(...).ddl_if(dialect=...)``) is not expected on this one."""

    def include(item: Any, _name: str | None, _type: str, _reflected: bool, _other: Any) -> bool:
        ddl_if = getattr(item, "_ddl_if", None)
        return ddl_if is None or ddl_if.dialect in (None, dialect)

    return include


def upgrade(engine: Engine, target: str = "head") -> None:
    config = alembic_config(engine)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, target)


def revision(engine: Engine, message: str) -> None:
    """Autogenerate a new revision against an up-to-date database (developers only)."""
    config = alembic_config(engine)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.revision(config, message=message, autogenerate=True)


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str | None:
    return ScriptDirectory(str(_MIGRATIONS)).get_current_head()
