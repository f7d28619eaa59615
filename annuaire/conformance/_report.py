"""What a conformance run found: one result per check, as a table for people and JSON for CI.

A check ends ``PASS`` (every property it tests held), ``FAIL`` (at least one did not: each
failure is one line naming the request that shows it) or ``SKIP`` (the deployment holds no data
to test the property on). A run passes when no check failed.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

__all__ = ["CheckResult", "Findings", "Outcome", "Report", "render_report"]

#: Failures shown under the table for each failed check (all of them are in the JSON report).
_SHOWN_FAILURES = 12
#: Characters of the first failure repeated in the table's detail column.
_DETAIL = 160


class Outcome(enum.StrEnum):
    PASS = "PASS"
    FAIL = "FAIL"
    SKIP = "SKIP"


@dataclass
class Findings:
    """What a check collects while it runs: failures (each one fails it) and a summary."""

    failures: list[str] = field(default_factory=list)
    summary: list[str] = field(default_factory=list)

    def expect(self, holds: bool, failure: str) -> bool:
        """Record ``failure`` unless ``holds``; returns ``holds`` so a check can stop early.

        The same failure seen again (on another pass, another page) is recorded once.
        """
        if not holds and failure not in self.failures:
            self.failures.append(failure)
        return holds

    def note(self, text: str) -> None:
        self.summary.append(text)


@dataclass(frozen=True)
class CheckResult:
    name: str
    outcome: Outcome
    detail: str
    failures: tuple[str, ...] = ()
    duration_s: float = 0.0

    @classmethod
    def of(cls, name: str, findings: Findings, duration_s: float) -> CheckResult:
        outcome = Outcome.FAIL if findings.failures else Outcome.PASS
        detail = "; ".join(findings.summary)
        if findings.failures:
            first = findings.failures[0]
            first = first if len(first) <= _DETAIL else first[: _DETAIL - 3] + "..."
            detail = f"{len(findings.failures)} failure(s), first: {first}" + (
                f" ({detail})" if detail else ""
            )
        return cls(name, outcome, detail, tuple(findings.failures), duration_s)

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "result": self.outcome.value,
            "detail": self.detail,
            "failures": list(self.failures),
            "duration_s": round(self.duration_s, 3),
        }


@dataclass(frozen=True)
class Report:
    base_url: str
    spec: str
    results: tuple[CheckResult, ...]
    duration_s: float

    @property
    def passed(self) -> bool:
        return all(r.outcome is not Outcome.FAIL for r in self.results)

    def result(self, name: str) -> CheckResult:
        return next(r for r in self.results if r.name == name)

    def as_json(self) -> dict[str, Any]:
        return {
            "base_url": self.base_url,
            "spec": self.spec,
            "passed": self.passed,
            "duration_s": round(self.duration_s, 3),
            "checks": [r.as_json() for r in self.results],
        }

    def write_json(self, path: Path) -> None:
        text = json.dumps(self.as_json(), indent=2, ensure_ascii=False) + "\n"
        path.write_text(text, encoding="utf-8")


_STYLE = {Outcome.PASS: "bold green", Outcome.FAIL: "bold red", Outcome.SKIP: "yellow"}


def render_report(report: Report, console: Console) -> None:
    """The report as a table, then the failures: what the server answered is printed as it is
    (no markup), the outcomes styled."""
    table = Table(
        title=Text(f"Conformance of {report.base_url} to {report.spec}"),
        title_justify="left",
    )
    table.add_column("check")
    table.add_column("result")
    table.add_column("detail", overflow="fold")
    table.add_column("s", justify="right")
    for result in report.results:
        style = _STYLE[result.outcome]
        table.add_row(
            result.name,
            Text(result.outcome.value, style),
            Text(result.detail),
            f"{result.duration_s:.1f}",
        )
    console.print(table)
    for result in report.results:
        if not result.failures:
            continue
        console.print(
            Text.assemble((result.name, "bold red"), f": {len(result.failures)} failure(s)")
        )
        for failure in result.failures[:_SHOWN_FAILURES]:
            console.print(Text(f"  - {failure}"), highlight=False, soft_wrap=True)
        if len(result.failures) > _SHOWN_FAILURES:
            console.print(f"  ... and {len(result.failures) - _SHOWN_FAILURES} more")
    verdict = ("conforms", "bold green") if report.passed else ("does not conform", "bold red")
    console.print(Text.assemble(f"{report.base_url} ", verdict, f" ({report.duration_s:.1f} s)"))
