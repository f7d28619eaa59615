"""The exceptions of Aiguillage, grouped by what the caller should do.

    AiguillageError                 root: every error the project raises on purpose
    ├── BadInput                    fatal for the run: the input is malformed (file, line, record)
    ├── Refused                     a guard stopped the run; an operator override exists
    ├── ConfigurationError          settings or declarations are wrong; fix them and restart
    └── Retriable                   a passing failure (network, lock): tenacity may retry it

``BadInput`` and ``Refused`` always leave the store as it was: the sync engine applies a run in
one transaction and rolls it back on either. Non-fatal findings about input are not exceptions:
connectors yield :class:`annuaire.schema.SourceWarning` items in their record stream.
"""

from __future__ import annotations

__all__ = ["AiguillageError", "BadInput", "ConfigurationError", "Refused", "Retriable"]


class AiguillageError(Exception):
    """Root of the project's exceptions."""


class BadInput(AiguillageError):
    """Input that cannot be read: names the file, and the line, column and record when known."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        column: int | None = None,
        record_id: str | None = None,
    ) -> None:
        self.message = message
        self.file = file
        self.line = line
        self.column = column
        self.record_id = record_id
        super().__init__(str(self))

    def __str__(self) -> str:
        where = []
        if self.file:
            where.append(self.file)
        if self.line is not None:
            where.append(f"line {self.line}" + (f", column {self.column}" if self.column else ""))
        if self.record_id:
            where.append(f"record {self.record_id}")
        return f"{': '.join([', '.join(where), self.message]) if where else self.message}"


class Refused(AiguillageError):
    """A guard refused the run (mass removal, missing chunk...). Nothing was applied."""


class ConfigurationError(AiguillageError):
    """Settings or declarations are invalid."""


class Retriable(AiguillageError):
    """A failure worth retrying (a lock held by another run, a network hiccup)."""
