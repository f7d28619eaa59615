"""Helpers for the AAF connector tests: where the samples are, and an AAF file writer."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[3]
SAMPLES = (PROJECT_ROOT / ".." / "shared" / "samples").resolve()
AAF_SAMPLES = SAMPLES / "aaf"

CATEGORY_ATTRIBUTE = {
    "EtabEducNat": "categorieStructure",
    "MatEducNat": "categorieMatiere",
    "MefEducNat": "categorieMef",
    "Eleve": "categoriePersonne",
    "PersRelEleve": "categoriePersonne",
    "PersEducNat": "categoriePersonne",
}


def aaf_samples(*parts: str) -> Path:
    """A folder or file of ../shared/samples/aaf, or a skip saying the samples are absent."""
    path = AAF_SAMPLES.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"third-party samples not found at {path} (they live in ../shared/samples)")
    return path


Attr = tuple[str, str | Sequence[str] | None]


def request(category: str, ident: str, attrs: Iterable[Attr] = (), op: str = "add") -> str:
    """One request element. A value of None writes ``<attr name="x"></attr>`` (no value)."""
    tag = {"add": "addRequest", "modify": "modifyRequest", "delete": "deleteRequest"}[op]
    parts = [
        f"<{tag}>",
        f'<operationalAttributes><attr name="{CATEGORY_ATTRIBUTE[category]}">'
        f"<value>{category}</value></attr></operationalAttributes>",
        f"<identifier><id>{ident}</id></identifier>",
    ]
    if op != "delete":
        container, element = (
            ("modifications", "modification") if op == "modify" else ("attributes", "attr")
        )
        extra = ' operation="replace"' if op == "modify" else ""
        parts.append(f"<{container}>")
        for name, values in attrs:
            if values is None:
                parts.append(f'<{element} name="{name}"{extra}></{element}>')
                continue
            if isinstance(values, str):
                values = [values]
            inner = "".join(f"<value>{v}</value>" if v else "<value/>" for v in values)
            parts.append(f'<{element} name="{name}"{extra}>{inner}</{element}>')
        parts.append(f"</{container}>")
    parts.append(f"</{tag}>")
    return "\n".join(parts)


def document(
    requests: Iterable[str],
    *,
    encoding: str | None = "UTF-8",
    header: dict[str, str] | None = None,
    doctype: str | None = '<!DOCTYPE ficAlimMENESR SYSTEM "ficAlimMENESR.dtd">',
) -> str:
    lines = []
    if encoding is not None:
        lines.append(f'<?xml version="1.0" encoding="{encoding}"?>')
    if doctype is not None:
        lines.append(doctype)
    lines.append("<ficAlimMENESR>")
    for name, value in (header or {"versionAF": "AAF-VE2407"}).items():
        lines.append(f'<!-- {name}="{value}" -->')
    lines.extend(requests)
    lines.append("</ficAlimMENESR>")
    return "\n".join(lines) + "\n"


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode(encoding))
    return path


@dataclass(frozen=True)
class CountRow:
    """One AAF row of COUNTS.md."""

    path: str
    category: str
    add: int
    modify: int
    delete: int
    distinct: int
    #: For a NOT WELL-FORMED row: the line the parser stops at.
    error_line: int | None


def counts_rows() -> list[CountRow]:
    """The per-file AAF table of COUNTS.md (expected values come from there, not from here)."""
    counts = SAMPLES / "COUNTS.md"
    if not counts.exists():
        return []
    rows = []
    section = counts.read_text(encoding="utf-8").split("## AAF files", 1)[1].split("\n## ", 1)[0]
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 6 or not cells[0].startswith("`aaf/"):
            continue
        path = cells[0].strip("`")
        if cells[1].startswith("NOT WELL-FORMED"):
            found = re.search(r"line (\d+)", cells[1])
            rows.append(CountRow(path, "", 0, 0, 0, 0, int(found.group(1)) if found else None))
            continue
        add, modify, delete, distinct = (int(c.replace(",", "")) for c in cells[2:])
        category = "" if cells[1].startswith("(none") else cells[1]
        rows.append(CountRow(path, category, add, modify, delete, distinct, None))
    return rows


def fastest(call: Callable[[], object], repeat: int = 5) -> float:
    """The best of ``repeat`` timings of ``call`` (seconds): what a cost comparison within one
    test uses, the least disturbed by the rest of the machine."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - start)
    return best
