"""Table arguments every tracked entity table shares: one unique key, one owner index, and a
partial index of the rows that are not active."""

from __future__ import annotations

from sqlalchemy import Index, UniqueConstraint, text

__all__ = ["NOT_ACTIVE", "tracked_table_args"]

#: The condition of the partial ``ix_<table>_scope_gone`` index, spelt as queries must spell it
#: for the database to use it (a literal, not a bound parameter).
NOT_ACTIVE = "status != 'active'"


def tracked_table_args(table: str) -> tuple[UniqueConstraint | Index, ...]:
    return (
        UniqueConstraint("scope", "source_key", name=f"uq_{table}_scope_key"),
        Index(f"ix_{table}_scope_owner", "scope", "owner_key"),
        # The rows that left (few): an import counts a scope's active rows as all its rows
        # (through the owner index) less these, instead of reading the whole table.
        Index(
            f"ix_{table}_scope_gone",
            "scope",
            sqlite_where=text(NOT_ACTIVE),
            postgresql_where=text(NOT_ACTIVE),
        ),
    )
