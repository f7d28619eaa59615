"""The store: engines, transactions, migrations and the change log."""

from __future__ import annotations

from .changes import ChangePage, ChangeRecorder, changes_after, structures_list, structures_text
from .engine import make_engine, placeholder, write_transaction

__all__ = [
    "ChangePage",
    "ChangeRecorder",
    "changes_after",
    "make_engine",
    "placeholder",
    "structures_list",
    "structures_text",
    "write_transaction",
]
