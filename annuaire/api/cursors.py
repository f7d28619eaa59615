"""Opaque cursors for keyset pagination and for the change feed.

A page cursor carries the resource, a fingerprint of the filters it was issued for and the sort
key of the last row served; the next page is ``key > last`` in an immutable order (the hub id),
so rows are never repeated, and no row that exists from the first page to the last is missed,
whatever imports commit in between. A cursor from another resource, or replayed with other
filters, is refused with a 400 rather than silently giving a wrong page.

Cursors are base64url text; their inside is not part of the contract and may change.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import orjson

from annuaire.encoding import b64url_decode, b64url_encode

from .problems import ApiProblem, ProblemType

__all__ = ["decode_cursor", "encode_cursor", "filters_fingerprint"]

_VERSION = 1


def filters_fingerprint(filters: Mapping[str, Any]) -> str:
    canonical = orjson.dumps(
        {k: str(v) for k, v in filters.items() if v is not None}, option=orjson.OPT_SORT_KEYS
    )
    return hashlib.blake2b(canonical, digest_size=6).hexdigest()


def encode_cursor(resource: str, fingerprint: str, key: list[Any]) -> str:
    raw = orjson.dumps([_VERSION, resource, fingerprint, key])
    return b64url_encode(raw)


def decode_cursor(
    text: str, resource: str, fingerprint: str, *, param: str = "cursor"
) -> list[Any]:
    """The key stored in ``text``; a 400 ``invalid-cursor`` naming ``param`` otherwise."""

    def refuse(reason: str) -> ApiProblem:
        return ApiProblem(
            ProblemType.INVALID_CURSOR, f"{param}: {reason}", params=[(param, reason)]
        )

    if len(text) > 512:
        raise refuse("too long to be a cursor this API issued")
    try:
        raw = b64url_decode(text)
        decoded = orjson.loads(raw)
    except (ValueError, orjson.JSONDecodeError):
        raise refuse("not a cursor this API issued") from None
    if not (isinstance(decoded, list) and len(decoded) == 4 and isinstance(decoded[3], list)):
        raise refuse("not a cursor this API issued")
    version, issued_for, issued_fingerprint, key = decoded
    if version != _VERSION:
        raise refuse("issued by another version of the API; start again from the first page")
    if issued_for != resource:
        raise refuse(f"issued for {issued_for!r}, not for {resource!r}")
    if issued_fingerprint != fingerprint:
        raise refuse("issued for other filters; keep the filters of the first page")
    return key
