"""Helpers for the end-to-end AAF import tests: expected figures, an independent XML reader,
store queries and a snapshot of every table an import may touch.

The expectations of the tests come from the inputs, never from the code under test:

- ``set_totals()`` and ``malformed_lines()`` parse ``../shared/samples/COUNTS.md``;
- ``read_requests()`` re-reads AAF files with lxml (safe parser settings), independently of
  ``connectors.aaf``; only the value parsers the connector README declares public
  (``parse_relation``, ``legal_flag``, ``rank_semantics``) are reused, by the tests themselves.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from lxml import etree
from sqlalchemy import Engine, select

from annuaire.schema import TABLES, ChangeEntry, EntityKind, ExternalId
from tests.conftest import SAMPLES, samples_dir

JOIN_ID = "aaf:ENTPersonJointure"
PERSON_CATEGORIES = ("Eleve", "PersRelEleve", "PersEducNat")
REQUEST_TAGS = ("addRequest", "modifyRequest", "deleteRequest")
OPS = {"addRequest": "add", "modifyRequest": "modify", "deleteRequest": "delete"}


def aaf_dir(*parts: str) -> Path:
    """A folder or file of ../shared/samples/aaf, or a skip when the samples are absent."""
    return samples_dir("aaf", *parts)


# -- COUNTS.md ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Totals:
    """One row of COUNTS.md's "Totals per set" table."""

    files: int
    add: int
    modify: int
    delete: int
    distinct: int


def _counts_text() -> str:
    path = SAMPLES / "COUNTS.md"
    if not path.exists():
        pytest.skip(f"COUNTS.md not found in {SAMPLES}")
    return path.read_text(encoding="utf-8")


def _number(cell: str) -> int:
    return int(cell.replace(",", "").strip())


def _table_cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


@functools.cache
def set_totals() -> dict[str, dict[str, Totals]]:
    """``{"men-2013-complet": {"Eleve": Totals(...), ...}, ...}`` from "Totals per set"."""
    text = _counts_text()
    if "### Totals per set" not in text:
        raise AssertionError("COUNTS.md has no 'Totals per set' section")
    section = text.split("### Totals per set", 1)[1].split("\n## ", 1)[0]
    totals: dict[str, dict[str, Totals]] = {}
    for line in section.splitlines():
        cells = _table_cells(line)
        if len(cells) != 7 or not cells[0].startswith("`aaf/"):
            continue
        name = cells[0].strip("`").removeprefix("aaf/")
        totals.setdefault(name, {})[cells[1]] = Totals(*(_number(c) for c in cells[2:]))
    if not totals:
        raise AssertionError("no row found in COUNTS.md's 'Totals per set' table")
    return totals


@functools.cache
def malformed_lines() -> dict[str, int]:
    """Path under samples/ (``aaf/...``) of each NOT WELL-FORMED AAF file -> the error line."""
    found: dict[str, int] = {}
    for line in _counts_text().splitlines():
        cells = _table_cells(line)
        if len(cells) < 2 or not cells[0].startswith("`aaf/"):
            continue
        match = re.match(r"NOT WELL-FORMED \(.*?line (\d+), column \d+\)", cells[1])
        if match:
            found[cells[0].strip("`")] = int(match.group(1))
    return found


# -- an independent reader of AAF files -------------------------------------------------------


@dataclass
class Request:
    """One request of an AAF file, as the XML says it (empty values dropped)."""

    file: Path
    line: int
    op: str
    category: str
    id: str
    attrs: dict[str, list[str]] = field(default_factory=dict)
    version_af: str | None = None

    def first(self, name: str) -> str | None:
        values = self.attrs.get(name)
        return values[0] if values else None


_VERSION = re.compile(r'versionAF\s*=\s*"([^"]*)"')


def read_requests(path: Path) -> list[Request]:
    """Every request of one AAF file, parsed with entity expansion, DTD and network off."""
    with path.open("rb") as stream:
        head = stream.read(4096)
    found = _VERSION.search(head.decode("latin-1"))
    version = found.group(1) if found else None
    requests: list[Request] = []
    for _event, element in etree.iterparse(
        str(path),
        events=("end",),
        tag=REQUEST_TAGS,
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        huge_tree=False,
    ):
        category = element.findtext("operationalAttributes/attr/value") or ""
        ident = (element.findtext("identifier/id") or "").strip()
        attrs: dict[str, list[str]] = {}
        for attr in element.iterfind("attributes/attr"):
            _collect(attrs, attr)
        for attr in element.iterfind("modifications/modification"):
            _collect(attrs, attr)
        requests.append(
            Request(path, element.sourceline, OPS[element.tag], category, ident, attrs, version)
        )
        element.clear()
    return requests


def _collect(attrs: dict[str, list[str]], attr: Any) -> None:
    values = attrs.setdefault(attr.get("name"), [])
    for value in attr.iterfind("value"):
        if value.text and value.text not in values:
            values.append(value.text)


def aaf_files(paths: Iterable[Path]) -> list[Path]:
    """The AAF XML files under ``paths`` (folders searched recursively)."""
    files: list[Path] = []
    for path in paths:
        candidates = sorted(path.rglob("*.xml")) if path.is_dir() else [path]
        for candidate in candidates:
            with candidate.open("rb") as stream:
                if b"ficAlimMENESR" in stream.read(1 << 16):
                    files.append(candidate)
    return files


@functools.cache
def _read_all(paths: tuple[Path, ...]) -> tuple[Request, ...]:
    return tuple(r for f in aaf_files(paths) for r in read_requests(f))


def requests_of(*paths: Path) -> tuple[Request, ...]:
    """Every request of every AAF file under ``paths`` (cached: sample sets are read-only)."""
    return _read_all(tuple(paths))


def by_category(requests: Iterable[Request]) -> dict[str, list[Request]]:
    grouped: dict[str, list[Request]] = {}
    for request in requests:
        grouped.setdefault(request.category, []).append(request)
    return grouped


# -- the store ---------------------------------------------------------------------------------


def rows(engine: Engine, kind: EntityKind, scope: str | None = None) -> list[Any]:
    """Every row of ``kind`` (in ``scope`` when given), as SQLAlchemy rows."""
    table = TABLES[kind].__table__  # type: ignore[attr-defined]
    query = select(table)
    if scope is not None:
        query = query.where(table.c.scope == scope)
    with engine.connect() as connection:
        return list(connection.execute(query))


def by_key(engine: Engine, kind: EntityKind, scope: str | None = None) -> dict[str, Any]:
    """Rows of ``kind`` by source key (keys are unique per scope: pass one when several)."""
    found = {}
    for row in rows(engine, kind, scope):
        assert row.source_key not in found, f"{kind} {row.source_key} in several scopes"
        found[row.source_key] = row
    return found


def by_id(engine: Engine, kind: EntityKind) -> dict[Any, Any]:
    return {row.id: row for row in rows(engine, kind)}


def external_ids(engine: Engine, id_type: str) -> dict[Any, list[str]]:
    """Entity id -> values of its external ids of ``id_type``."""
    table = ExternalId.__table__  # type: ignore[attr-defined]
    found: dict[Any, list[str]] = {}
    with engine.connect() as connection:
        for entity_id, value in connection.execute(
            select(table.c.entity_id, table.c.value).where(table.c.type == id_type)
        ):
            found.setdefault(entity_id, []).append(value)
    return found


def snapshot(engine: Engine) -> dict[str, list[tuple[str, ...]]]:
    """Every entity row, external id and change-log entry, in a comparable form."""
    tables = [t.__table__ for t in TABLES.values()]  # type: ignore[attr-defined]
    tables += [ExternalId.__table__, ChangeEntry.__table__]  # type: ignore[attr-defined]
    with engine.connect() as connection:
        return {
            table.name: sorted(
                tuple(str(v) for v in row) for row in connection.execute(select(table))
            )
            for table in tables
        }


def signature(engine: Engine) -> dict[tuple[str, str, str], tuple[Any, str, str]]:
    """(kind, scope, source key) -> (hub id, content hash, status) of every entity."""
    found = {}
    for kind in EntityKind:
        for row in rows(engine, kind):
            found[(kind.value, row.scope, row.source_key)] = (row.id, row.content_hash, row.status)
    return found


# -- files -------------------------------------------------------------------------------------


def drop_requests(path: Path, ids: set[str]) -> int:
    """Remove the requests whose identifier is in ``ids`` from one AAF file; returns how many.

    The file is rewritten by text surgery on whole request elements, so that everything else
    stays byte for byte as generated.
    """
    text = path.read_text(encoding="utf-8")
    pattern = re.compile(r"<(addRequest|modifyRequest|deleteRequest)>.*?</\1>\n?", flags=re.DOTALL)
    dropped = 0

    def keep(match: re.Match[str]) -> str:
        nonlocal dropped
        ident = re.search(r"<identifier>\s*<id>([^<]*)</id>", match.group(0))
        if ident and ident.group(1).strip() in ids:
            dropped += 1
            return ""
        return match.group(0)

    path.write_text(pattern.sub(keep, text), encoding="utf-8")
    return dropped


def category_files(folder: Path, category: str) -> list[Path]:
    """The chunks of one category in a generated set (``..._Eleve_0000.xml``...), in order."""
    return sorted(folder.glob(f"*_{category}_[0-9][0-9][0-9][0-9].xml"))
