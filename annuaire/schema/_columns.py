"""Table arguments every tracked entity table shares (one unique key, one owner index)."""

from __future__ import annotations

from sqlalchemy import Index, UniqueConstraint

__all__ = ["tracked_table_args"]


def tracked_table_args(table: str) -> tuple[UniqueConstraint | Index, ...]:
    return (
        UniqueConstraint("scope", "source_key", name=f"uq_{table}_scope_key"),
        Index(f"ix_{table}_scope_owner", "scope", "owner_key"),
    )
