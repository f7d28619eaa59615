"""The deployment under test, as the checks see it: an HTTP client and a few read helpers.

Every request carries the caller's bearer token when one is given. Helpers read what several
checks need (a whole collection as NDJSON, an id that exists, the whole change feed from a
cursor) and raise :class:`Unexpected` when the deployment answers something that makes the
rest of a check meaningless; the check turns it into a failure naming the request.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx

__all__ = [
    "FEED_PAGE",
    "NDJSON",
    "Deployment",
    "Export",
    "Unexpected",
    "described",
    "hub_order",
    "media_type",
]

NDJSON = "application/x-ndjson"
#: Page size used to read the change feed to its end.
FEED_PAGE = 1000
#: Safety stop when a deployment keeps returning pages (a cursor that never advances).
MAX_FEED_PAGES = 100_000


class Unexpected(Exception):
    """The deployment answered something that stops a check; the message names the request."""


def described(response: httpx.Response) -> str:
    """``GET URL -> status`` for a failure line: enough to reproduce the request."""
    request = response.request
    return f"{request.method} {request.url} -> {response.status_code}"


def media_type(response: httpx.Response) -> str:
    return response.headers.get("content-type", "").split(";")[0].strip().lower()


def hub_order(value: str) -> Any:
    """Sort key of a hub id: UUIDs compare as 128-bit numbers (the byte order of the store)."""
    try:
        return (0, uuid.UUID(value).int)
    except ValueError:
        return (1, value)


@dataclass(frozen=True)
class Export:
    """A whole collection read as NDJSON: the lines by id, in the order served."""

    lines: dict[str, str]
    order: list[str]
    feed_cursor: str | None


@dataclass
class Deployment:
    base_url: str
    token: str | None = None
    timeout_s: float = 60.0
    client: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.base_url = self.base_url.rstrip("/")
        self.client = httpx.Client(
            base_url=self.base_url,
            headers=self.auth_headers,
            timeout=self.timeout_s,
            follow_redirects=False,
        )

    @property
    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def close(self) -> None:
        self.client.close()

    def get(
        self,
        path: str,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        return self.client.get(path, params=params, headers=headers)

    def get_json(self, path: str, params: dict[str, Any] | None = None) -> Any:
        response = self.get(path, params)
        if response.status_code != 200 or media_type(response) != "application/json":
            raise Unexpected(f"{described(response)} ({media_type(response) or 'no type'})")
        return response.json()

    def first_id(self, collection: str) -> str | None:
        """The id of the first object of a collection (``/v1/persons``), or None when empty."""
        items = self.get_json(collection, {"limit": 1, "fields": "id"})["items"]
        return str(items[0]["id"]) if items else None

    def export(self, collection: str, params: dict[str, str] | None = None) -> Export:
        """Every object of ``collection`` (that ``params`` select) streamed as NDJSON."""
        with self.client.stream(
            "GET", collection, params=params, headers={"Accept": NDJSON}
        ) as response:
            if response.status_code != 200 or media_type(response) != NDJSON:
                response.read()
                raise Unexpected(f"{described(response)} ({media_type(response) or 'no type'})")
            lines: dict[str, str] = {}
            order: list[str] = []
            for number, line in enumerate(response.iter_lines(), start=1):
                if not line.strip():
                    continue
                try:
                    item = json.loads(line)
                    item_id = str(item["id"])
                except (ValueError, KeyError, TypeError):
                    raise Unexpected(
                        f"GET {response.request.url} (NDJSON): line {number} is not a JSON "
                        f"object with an id: {line[:120]!r}"
                    ) from None
                lines[item_id] = line
                order.append(item_id)
            return Export(lines, order, response.headers.get("x-feed-cursor"))

    def feed_cursor(self) -> str:
        cursor = self.get_json("/v1/changes/cursor").get("cursor")
        if not isinstance(cursor, str):
            raise Unexpected(f"GET /v1/changes/cursor: no string cursor in {cursor!r}")
        return cursor

    def feed_pages(
        self, after: str | None, limit: int = FEED_PAGE, filters: dict[str, str] | None = None
    ) -> Iterator[tuple[httpx.Response, list[dict[str, Any]], str]]:
        """Pages of the feed from ``after`` (None: the oldest entry) until one comes back empty."""
        for _ in range(MAX_FEED_PAGES):
            params: dict[str, Any] = {"limit": limit, **(filters or {})}
            if after is not None:
                params["after"] = after
            response = self.get("/v1/changes", params)
            if response.status_code != 200:
                raise Unexpected(described(response))
            body = response.json()
            items, after = body.get("items"), body.get("next")
            if not isinstance(items, list) or not isinstance(after, str):
                raise Unexpected(f"{described(response)}: no items list or no next cursor")
            yield response, items, after
            if not items:
                return
        raise Unexpected(f"/v1/changes: still not at the end after {MAX_FEED_PAGES} pages")
