"""Alembic environment: runs the project's migrations on the engine the settings describe."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

import annuaire.schema  # noqa: F401  (registers every table on SQLModel.metadata)
from annuaire.store.migrate import objects_for

config = context.config
target_metadata = SQLModel.metadata


def run_migrations_online() -> None:
    connection = config.attributes["connection"]
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        include_object=objects_for(connection.dialect.name),
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations_online()
