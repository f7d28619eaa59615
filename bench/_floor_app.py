"""The real API with the least a durable flow entry can cost a page read: bench/_api_flowlog.py.

``uvicorn _floor_app:create_app --factory --app-dir bench``: the app of ``aiguillage serve``
without its flow log (as bench/_nolog_app.py), where a page of persons inserts instead ONE row
into the scratch table ``FLOOR_TABLE`` (request id, data categories, the hub ids of the persons
served, their UAIs) *from the page's own statement*: a data-modifying ``WITH`` wraps the page's
SQL text at the cursor, so the row commits with the read, in the same round trip, and no thread,
lock or second statement is involved. It has none of what the real entry needs (pseudonyms,
HMAC chain, checkpoints, the register's activity): it is not a design, it is a floor. What it
adds to the request time bounds from below what any entry written before the page is served can
add on this machine. The hub itself offers no way to serve without its log; this file is not
packaged.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import psycopg
from fastapi import FastAPI
from sqlalchemy import event

from annuaire.api import create_app as create_real_app
from annuaire.api import resources
from annuaire.api.resources import Page, Reader, Resource
from bench._api_flowlog import FLOOR_TABLE as TABLE

__all__ = ["create_app"]

_CREATE = (
    f"CREATE TABLE IF NOT EXISTS {TABLE} (id bigserial PRIMARY KEY, "
    "at timestamptz NOT NULL DEFAULT now(), request_id text, categories text, "
    "persons uuid[] NOT NULL, structures text)"
)
#: The column of the page's SQL that holds the hub id of each person (the sort key ``id`` is
#: selected first, then the persons the rows concern: SQLAlchemy labels the repeat ``id__1``).
_PERSON_COLUMN = "id__1"

_staged = threading.local()
_wrapped: dict[str, str] = {}


def _wrap(statement: str) -> str:
    """The page's statement, which also inserts the floor row (cached per statement text, so
    the driver prepares it like the page's own)."""
    wrapped = _wrapped.get(statement)
    if wrapped is None:
        if f"AS {_PERSON_COLUMN}" not in statement:
            raise RuntimeError(f"floor app: no column {_PERSON_COLUMN} in the page's statement")
        wrapped = _wrapped[statement] = (
            f"WITH page AS ({statement}), floor AS (INSERT INTO {TABLE} "
            "(request_id, categories, persons, structures) SELECT %(floor_request)s, "
            f"%(floor_categories)s, ARRAY(SELECT {_PERSON_COLUMN} FROM page "
            "LIMIT %(floor_limit)s), (SELECT string_agg(structures, '') FROM page)) "
            "SELECT * FROM page"
        )
    return wrapped


def _before_cursor_execute(
    _connection: Any,
    _cursor: Any,
    statement: str,
    parameters: Any,
    _context: Any,
    _executemany: bool,
) -> tuple[str, Any]:
    stage = getattr(_staged, "values", None)
    if stage is None:
        return statement, parameters
    _staged.values = None
    return _wrap(statement), {**parameters, **stage}


_real_page = Reader.page


def _page(
    self: Reader, resource: Resource, *args: Any, fields: Sequence[str], **kwargs: Any
) -> Page:
    if resource.name == "persons" and self.journal is not None:
        _staged.values = {
            "floor_request": self.journal.request_id,
            "floor_categories": ",".join(sorted(c.value for c in resource.categories_of(fields))),
            "floor_limit": kwargs["limit"],
        }
    try:
        return _real_page(self, resource, *args, fields=fields, **kwargs)
    finally:
        _staged.values = None


def create_app() -> FastAPI:
    app = create_real_app()
    url = app.state.engine.url.set(drivername="postgresql")
    with psycopg.connect(url.render_as_string(hide_password=False), autocommit=True) as admin:
        admin.execute(_CREATE)
    # The page reads the journal to know the request; nothing else of the log remains.
    resources.Reader.page = _page  # type: ignore[method-assign]
    resources.Reader.record = lambda *_args, **_kwargs: None  # type: ignore[method-assign]
    event.listen(app.state.engine, "before_cursor_execute", _before_cursor_execute, retval=True)
    return app
