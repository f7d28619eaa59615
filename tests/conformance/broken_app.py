"""Deliberately non-conforming deployments, for the conformance kit's negative tests.

Each is the real application with one defect, served by uvicorn as a real server::

    uvicorn tests.conformance.broken_app:create_broken_app --factory
    uvicorn tests.conformance.broken_app:create_renaming_app --factory

- ``create_broken_app``: problem documents go out as ``application/json`` instead of
  ``application/problem+json``;
- ``create_renaming_app``: a person's ``usage_name`` is served as ``usageName`` (every body
  still validates against the schemas, which require ``id`` only);
- ``create_repeating_app``: a change-feed cursor past seq 2,000 is read one entry back, so
  that every later page repeats the last entry of the page before (past the first 2,000
  entries, which the kit also reads in small pages);
- ``create_overlapping_app``: a /v1/persons cursor is read one hub id back, so that every page
  but the first starts with the last person of the page before;
- ``create_uncached_app``: ``If-None-Match`` is ignored (every read is a 200 with the object);
- ``create_shouting_app``: ``status`` is served as ``ACTIVE`` instead of ``active``, a value
  outside its enum (every object still carries exactly its documented members);
- ``create_forgetful_app``: the change feed leaves out its ``update`` entries (the feed still
  pages cleanly, in increasing seqs: what it misses shows only when data changes);
- ``create_get_only_app``: HEAD is refused with a 405, as before contract 1.1.0;
- ``create_role_renaming_app``: the ``structure_uai`` of each of a person's ``roles[]`` is
  served as ``structure_UAI`` (a member the schema of those items does not require: every body
  still validates, and the persons themselves carry exactly their members);
- ``create_relative_instance_app``: a problem's ``instance`` is the request path without its
  ``/v1`` (``/persons`` for ``/v1/persons``), which the request path still ends with;
- ``create_redirecting_app``: a path with a trailing slash is redirected (307) to the path
  without it, and another method than GET or HEAD is a 405 whose ``Allow`` says ``GET`` only;
- ``create_unfiltered_app``: a valid ``modifiedSince`` is ignored on /v1/persons (every person
  is served, valid pages of valid objects: only what they select is wrong; an invalid value is
  still refused).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlencode

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from annuaire.api import create_app
from annuaire.api.cursors import encode_cursor
from annuaire.api.listing import RFC3339_PATTERN
from annuaire.encoding import b64url_decode

__all__ = [
    "create_broken_app",
    "create_forgetful_app",
    "create_get_only_app",
    "create_overlapping_app",
    "create_redirecting_app",
    "create_relative_instance_app",
    "create_renaming_app",
    "create_repeating_app",
    "create_role_renaming_app",
    "create_shouting_app",
    "create_uncached_app",
    "create_unfiltered_app",
]

#: Feed cursors past this seq are moved one entry back by the repeating app.
REPEAT_AFTER = 2000

_PROBLEM = b"application/problem+json"
_RFC3339 = re.compile(RFC3339_PATTERN)


def create_broken_app() -> ASGIApp:
    app = create_app()

    async def broken(scope: Scope, receive: Receive, send: Send) -> None:
        async def send_as_plain_json(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    (name, b"application/json" if value == _PROBLEM else value)
                    for name, value in message.get("headers", [])
                ]
            await send(message)

        await app(scope, receive, send_as_plain_json)

    return broken


def create_renaming_app() -> ASGIApp:
    app = create_app()

    async def renaming(scope: Scope, receive: Receive, send: Send) -> None:
        async def send_renamed(message: Message) -> None:
            if message["type"] == "http.response.start":  # the body's length changes
                message["headers"] = [
                    (name, value)
                    for name, value in message.get("headers", [])
                    if name.lower() != b"content-length"
                ]
            elif message["type"] == "http.response.body":
                message["body"] = message.get("body", b"").replace(b'"usage_name"', b'"usageName"')
            await send(message)

        await app(scope, receive, send_renamed)

    return renaming


def create_repeating_app() -> ASGIApp:
    app = create_app()

    async def repeating(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/v1/changes":
            query = parse_qsl(scope["query_string"].decode("latin-1"))
            for index, (name, value) in enumerate(query):
                if name == "after":
                    seq = int(orjson.loads(b64url_decode(value))[3][0])
                    if seq > REPEAT_AFTER:
                        query[index] = (name, encode_cursor("changes", "", [str(seq - 1)]))
            scope = {**scope, "query_string": urlencode(query).encode("latin-1")}
        await app(scope, receive, send)

    return repeating


def create_overlapping_app() -> ASGIApp:
    app = create_app()

    async def overlapping(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/v1/persons":
            query = parse_qsl(scope["query_string"].decode("latin-1"))
            for index, (name, value) in enumerate(query):
                if name != "cursor":
                    continue
                try:
                    _, resource, fingerprint, key = orjson.loads(b64url_decode(value))
                    before = uuid.UUID(int=uuid.UUID(key[0]).int - 1)
                except (ValueError, TypeError, IndexError, KeyError):
                    continue  # not a cursor the app issued: the app refuses it itself
                query[index] = (name, encode_cursor(resource, fingerprint, [str(before)]))
            scope = {**scope, "query_string": urlencode(query).encode("latin-1")}
        await app(scope, receive, send)

    return overlapping


def create_uncached_app() -> ASGIApp:
    app = create_app()

    async def uncached(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = [(k, v) for k, v in scope["headers"] if k.lower() != b"if-none-match"]
            scope = {**scope, "headers": headers}
        await app(scope, receive, send)

    return uncached


def create_shouting_app() -> ASGIApp:
    return _replacing(b'"status":"active"', b'"status":"ACTIVE"')


def create_forgetful_app() -> ASGIApp:
    def without_updates(page: Any) -> Any:
        page["items"] = [e for e in page["items"] if e.get("op") != "update"]
        return page

    return _rewriting_json(
        lambda scope, start: scope["path"] == "/v1/changes" and start["status"] == 200,
        without_updates,
    )


def create_get_only_app() -> ASGIApp:
    app = create_app()

    async def get_only(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "HEAD":
            await send(
                {"type": "http.response.start", "status": 405, "headers": [(b"allow", b"GET")]}
            )
            await send({"type": "http.response.body", "body": b""})
            return
        await app(scope, receive, send)

    return get_only


def create_role_renaming_app() -> ASGIApp:
    return _replacing(b'"structure_uai"', b'"structure_UAI"')


def create_relative_instance_app() -> ASGIApp:
    def relative(problem: Any) -> Any:
        problem["instance"] = problem["instance"].removeprefix("/v1")
        return problem

    return _rewriting_json(
        lambda _scope, start: (b"content-type", _PROBLEM) in start.get("headers", []), relative
    )


def create_redirecting_app() -> ASGIApp:
    app = create_app()

    async def redirecting(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].endswith("/") and scope["path"] != "/":
            location = scope["path"].rstrip("/").encode()
            await send(
                {"type": "http.response.start", "status": 307, "headers": [(b"location", location)]}
            )
            await send({"type": "http.response.body", "body": b""})
            return

        async def allow_get_only(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 405:
                message["headers"] = [
                    (k, b"GET" if k.lower() == b"allow" else v) for k, v in message["headers"]
                ]
            await send(message)

        await app(scope, receive, allow_get_only)

    return redirecting


def create_unfiltered_app() -> ASGIApp:
    app = create_app()

    async def unfiltered(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/v1/persons":
            query = parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True)
            # A valid value is checked, then not applied; an invalid one is still refused.
            kept = [(k, v) for k, v in query if k != "modifiedSince" or not _RFC3339.match(v)]
            scope = {**scope, "query_string": urlencode(kept).encode("latin-1")}
        await app(scope, receive, send)

    return unfiltered


def _replacing(old: bytes, new: bytes) -> ASGIApp:
    """The app, each ``old`` of its bodies served as ``new``, of the same length (no header to
    fix)."""
    app = create_app()

    async def replacing(scope: Scope, receive: Receive, send: Send) -> None:
        async def send_replaced(message: Message) -> None:
            if message["type"] == "http.response.body":
                message["body"] = message.get("body", b"").replace(old, new)
            await send(message)

        await app(scope, receive, send_replaced)

    return replacing


def _rewriting_json(
    wanted: Callable[[Scope, Message], bool], rewrite: Callable[[Any], Any]
) -> ASGIApp:
    """The app, the JSON body of each response ``wanted`` (by its scope and start message) read
    whole and served as ``rewrite`` makes it, with its new length; the others as they come."""
    app = create_app()

    async def rewriting(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        start: Message = {}
        body = bytearray()

        async def send_rewritten(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                if wanted(scope, message):
                    start = message  # sent with the whole body
                else:
                    await send(message)
                return
            if not start:
                await send(message)
                return
            body.extend(message.get("body", b""))
            if message.get("more_body", False):
                return
            content = bytes(body)
            if content:  # not a HEAD
                content = orjson.dumps(rewrite(orjson.loads(content)))
                start["headers"] = [
                    (k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"
                ] + [(b"content-length", str(len(content)).encode())]
            await send(start)
            await send({"type": "http.response.body", "body": content})

        await app(scope, receive, send_rewritten)

    return rewriting
