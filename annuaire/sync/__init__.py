"""Import runs: diff a source snapshot against the store and apply it atomically."""

from __future__ import annotations

from ._stop import Interrupted, Stop
from .engine import (
    KindCounts,
    Mode,
    Purged,
    RunReport,
    Scope,
    apply_run,
    hub_id,
    purge,
    record_refused,
)

__all__ = [
    "Interrupted",
    "KindCounts",
    "Mode",
    "Purged",
    "RunReport",
    "Scope",
    "Stop",
    "apply_run",
    "hub_id",
    "purge",
    "record_refused",
]
