"""Stable hub ids: derived from (scope, kind, key), the same on every run and backend.

The id is the RFC 4122 version-5 UUID of ``scope \\x1f kind \\x1f key`` in the hub's namespace.
``hub_id_hex`` computes its 32-hex-digit form without building a UUID object; ``ScopeIds`` does
the same for one scope with the hashed prefix computed once per kind: an import derives one id
per record and per reference, so this is on the hot path.
"""

from __future__ import annotations

import hashlib
import uuid

from annuaire.schema import EntityKind

__all__ = ["ScopeIds", "hub_id", "hub_id_hex"]

_ID_NAMESPACE = uuid.UUID("0b6f3c5e-6a7d-4e0e-9f43-61a1b2c3d4e5")
_NAMESPACE_BYTES = _ID_NAMESPACE.bytes
# Version 5 and the RFC 4122 variant, on the 128-bit integer of the digest's first 16 bytes.
_KEEP = ~((0xF << 76) | (0x3 << 62)) & ((1 << 128) - 1)
_MARK = (0x5 << 76) | (0x2 << 62)


def _v5_hex(sha1: hashlib._Hash) -> str:
    """The 32 hex digits of the version-5 UUID whose name hashed to ``sha1``."""
    return "%032x" % ((int.from_bytes(sha1.digest()[:16], "big") & _KEEP) | _MARK)


def hub_id_hex(scope: str, kind: EntityKind, key: str) -> str:
    """``hub_id(...).hex``, computed directly."""
    name = f"{scope}\x1f{kind.value}\x1f{key}".encode()
    return _v5_hex(hashlib.sha1(_NAMESPACE_BYTES + name, usedforsecurity=False))


def hub_id(scope: str, kind: EntityKind, key: str) -> uuid.UUID:
    """The stable hub id of (scope, kind, key)."""
    return uuid.UUID(hex=hub_id_hex(scope, kind, key))


class ScopeIds:
    """``hub_id_hex`` for one scope, by kind value: the hashed prefix is computed once per kind,
    and references (which repeat: a school, a pupil named by their guardianships) are cached
    in a bounded table."""

    _CACHE_LIMIT = 1 << 16

    def __init__(self, scope: str) -> None:
        self._bases = {
            kind.value: hashlib.sha1(
                _NAMESPACE_BYTES + f"{scope}\x1f{kind.value}\x1f".encode(), usedforsecurity=False
            )
            for kind in EntityKind
        }
        self._cache: dict[tuple[str, str], str] = {}

    def hex(self, kind: str, key: str) -> str:
        """The 32 hex digits of the hub id of (scope, ``kind`` value, ``key``)."""
        digest = self._bases[kind].copy()
        digest.update(key.encode())
        return _v5_hex(digest)

    def reference(self, kind: str, key: str) -> str:
        """:meth:`hex`, cached."""
        found = self._cache.get((kind, key))
        if found is None:
            if len(self._cache) >= self._CACHE_LIMIT:
                self._cache.clear()  # bounded memory; nearby repeats are what it is for
            found = self._cache[(kind, key)] = self.hex(kind, key)
        return found
