"""The import benchmark runs end to end (at a toy size) and prints what it promises."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import PROJECT_ROOT


def test_the_benchmark_prints_each_round_and_the_median_ratios(tmp_path: Path) -> None:
    output = subprocess.run(
        [
            sys.executable,
            str(PROJECT_ROOT / "bench" / "aaf_import.py"),
            *("--pupils", "300", "--small", "200", "--rounds", "3"),
            *("--workdir", str(tmp_path)),
        ],
        check=True,
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        timeout=300,
    ).stdout
    rounds = re.findall(
        r"round (\d): a [\d.]+ +b ([\d.]+) +c [\d.]+ +d [\d.]+ +d1 [\d.]+ +r [\d.]+ s +b/a",
        output,
    )
    assert [number for number, _ in rounds] == ["1", "2", "3"]
    assert "median of 3 rounds" in output
    for step in ("(a) parse only", "(b) full import", "(c) re-import", "(d) 1 % delta"):
        assert step in output
    # The delta of 1 % of the records is the smaller one.
    assert _count(
        r"\(d1\) delta of 1 % of the records +[\d.]+ .*? ([\d,]+) AAF requests", output
    ) < (_count(r"\(d\) 1 % delta +[\d.]+ .*? ([\d,]+) AAF requests", output))
    # The unchanged re-import found every entity of the full import unchanged.
    assert _count(r"-> ([\d,]+) entities", output) == _count(
        r"([\d,]+) unchanged, 0 created", output
    )
    assert _count(r"-> ([\d,]+) entities", output) > 0
    # The reader's floor read every request the full import read, and mapped none of them.
    assert _count(r"\(r\) reader's floor.*? ([\d,]+) AAF requests read", output) == _count(
        r"\(b\) full import +[\d.]+ .*? ([\d,]+) AAF records", output
    )
    medians = {
        name: float(value)
        for name, value in re.findall(
            r"^(b / a|c / b|d / b|d1 / b|r / a|r / b) .*? ([\d.]+)   \(rounds", output, re.M
        )
    }
    assert set(medians) == {"b / a", "c / b", "d / b", "d1 / b", "r / a", "r / b"}
    assert all(v > 0 for v in medians.values())
    assert "projection for 2,800,000 AAF records" in output


def _count(pattern: str, output: str) -> int:
    found = re.search(pattern, output)
    assert found is not None, f"{pattern!r} not in the output:\n{output}"
    return int(found[1].replace(",", ""))
