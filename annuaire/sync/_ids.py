"""Stable hub ids: derived from (scope, kind, key), the same on every run and backend.

The id is the RFC 4122 version-5 UUID of ``scope \\x1f kind \\x1f key`` in the hub's namespace.
``hub_id_hex`` computes its 32-hex-digit form without building a UUID object: an import derives
one per record and per reference, so this is on the hot path.
"""

from __future__ import annotations

import functools
import hashlib
import uuid

from annuaire.schema import EntityKind

__all__ = ["hub_id", "hub_id_hex", "reference_hex"]

_ID_NAMESPACE = uuid.UUID("0b6f3c5e-6a7d-4e0e-9f43-61a1b2c3d4e5")
_NAMESPACE_BYTES = _ID_NAMESPACE.bytes


def hub_id_hex(scope: str, kind: EntityKind, key: str) -> str:
    """``hub_id(...).hex``, computed directly."""
    digest = bytearray(
        hashlib.sha1(
            _NAMESPACE_BYTES + f"{scope}\x1f{kind.value}\x1f{key}".encode(), usedforsecurity=False
        ).digest()[:16]
    )
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    return digest.hex()


@functools.lru_cache(maxsize=8192)  # references repeat nearby: a structure, a pupil's id...
def _cached_hex(scope: str, kind: EntityKind, key: str) -> str:
    return hub_id_hex(scope, kind, key)


def hub_id(scope: str, kind: EntityKind, key: str) -> uuid.UUID:
    """The stable hub id of (scope, kind, key)."""
    return uuid.UUID(hex=hub_id_hex(scope, kind, key))


def reference_hex(scope: str, kind: EntityKind, key: str) -> str:
    """``hub_id_hex`` for references, which repeat (cached)."""
    return _cached_hex(scope, kind, key)
