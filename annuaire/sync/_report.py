"""What an import run is about (its scope) and what it did (its report)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Literal

from annuaire.schema import EntityKind, RunOutcome, SourceWarning

__all__ = ["KindCounts", "Mode", "RunReport", "Scope"]

Mode = Literal["complet", "delta", "partial"]


@dataclass(frozen=True)
class Scope:
    """What one import run is authoritative for: a source, an académie or a UAI, a degree.

    A per-school delivery (its UAI set) is authoritative for that school alone: its key names
    the UAI, so that each school's Complet leaves the other schools' entities as they are.
    """

    source: str
    academie: str | None = None
    uai: str | None = None
    degree: str | None = None

    @property
    def key(self) -> str:
        return f"{self.source}:{self.uai or self.academie or '-'}:{self.degree or '-'}"


@dataclass
class KindCounts:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    leaving: int = 0
    returning: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass
class RunReport:
    run_id: uuid.UUID
    scope: Scope
    mode: Mode
    files: list[str]
    outcome: RunOutcome = RunOutcome.FAILED
    message: str | None = None
    counts: dict[EntityKind, KindCounts] = field(default_factory=lambda: defaultdict(KindCounts))
    warnings: list[SourceWarning] = field(default_factory=list)
    warning_count: int = 0
    warning_codes: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    duration_s: float = 0.0
    active_before: int = 0
    #: The date of the export the run applies, when the source tells it (recorded with the
    #: run: later imports are checked against it).
    export_date: dt.date | None = None
    #: Why a refused or failed run could not be recorded (``aiguillage runs`` does not list
    #: it), when it could not.
    not_recorded: str | None = None

    def warn(self, warning: SourceWarning, keep: int) -> None:
        self.warning_count += 1
        self.warning_codes[warning.code] += 1
        if len(self.warnings) < keep:
            self.warnings.append(warning)

    @property
    def leaving(self) -> int:
        return sum(c.leaving for c in self.counts.values())

    def counts_dict(self) -> dict[str, dict[str, int]]:
        return {
            kind.value: self.counts[kind].as_dict() for kind in EntityKind if kind in self.counts
        }
