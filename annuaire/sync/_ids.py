"""Stable hub ids: derived from (scope, kind, key), the same on every run and backend."""

from __future__ import annotations

import functools
import uuid

from annuaire.schema import EntityKind

__all__ = ["hub_id"]

_ID_NAMESPACE = uuid.UUID("0b6f3c5e-6a7d-4e0e-9f43-61a1b2c3d4e5")


@functools.lru_cache(maxsize=8192)  # references repeat nearby: a structure, a pupil's id...
def hub_id(scope: str, kind: EntityKind, key: str) -> uuid.UUID:
    """The stable hub id of (scope, kind, key)."""
    return uuid.uuid5(_ID_NAMESPACE, f"{scope}\x1f{kind.value}\x1f{key}")
