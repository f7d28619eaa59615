"""Every AAF sample file against COUNTS.md: requests per type, ids, and malformed files."""

from __future__ import annotations

from collections import Counter

import pytest
from aaf_support import AAF_SAMPLES, SAMPLES, CountRow, aaf_samples, counts_rows

from annuaire.errors import BadInput
from connectors.aaf import AafFile, AafReader, RawRecord, iter_raw, plan
from connectors.aaf._names import CATEGORY_BY_VALUE

ROWS = counts_rows()
WELL_FORMED = [r for r in ROWS if r.error_line is None]
MALFORMED = [r for r in ROWS if r.error_line is not None]


def _only_file(row: CountRow) -> AafFile:
    path = aaf_samples(*row.path.split("/")[1:])
    exports = plan([path])
    assert len(exports) == 1 and len(exports[0].files) == 1, exports
    return exports[0].files[0]


def test_counts_table_was_found() -> None:
    if not (SAMPLES / "COUNTS.md").exists():
        pytest.skip(f"COUNTS.md not found in {SAMPLES}")
    assert len(WELL_FORMED) >= 60 and len(MALFORMED) == 4


@pytest.mark.parametrize("row", WELL_FORMED, ids=lambda r: r.path)
def test_requests_per_file_match_counts(row: CountRow) -> None:
    file = _only_file(row)
    ops: Counter[str] = Counter()
    ids: set[str] = set()
    categories: set[str] = set()
    for item in iter_raw(file):
        if isinstance(item, RawRecord):
            ops[item.op] += 1
            ids.add(item.id)
            categories.add(item.category)
    assert (ops["add"], ops["modify"], ops["delete"], len(ids)) == (
        row.add,
        row.modify,
        row.delete,
        row.distinct,
    )
    if row.category:
        assert categories == {CATEGORY_BY_VALUE[row.category]}
        assert file.category == CATEGORY_BY_VALUE[row.category]


@pytest.mark.parametrize("row", MALFORMED, ids=lambda r: r.path)
def test_malformed_file_is_rejected_with_file_and_line(row: CountRow) -> None:
    file = _only_file(row)
    with pytest.raises(BadInput) as caught:
        for _ in iter_raw(file):
            pass
    assert caught.value.file == file.path
    assert file.path.endswith(row.path.split("/", 1)[1])
    assert caught.value.line == row.error_line
    assert row.path.split("/")[-1] in str(caught.value)


def test_reader_statistics_match_the_set_totals() -> None:
    folder = aaf_samples("men-2013-complet")
    (export,) = plan([folder])
    reader = AafReader(export)
    for _ in reader.stream():
        pass
    expected: Counter[tuple[str, str]] = Counter()
    for row in WELL_FORMED:
        if row.path.startswith("aaf/men-2013-complet/"):
            category = CATEGORY_BY_VALUE[row.category]
            expected[(category, "add")] += row.add
            expected[(category, "modify")] += row.modify
            expected[(category, "delete")] += row.delete
    assert +reader.stats.requests == +expected
    assert reader.stats.files == 46
    assert reader.stats.unknown_attributes == Counter()


def test_malformed_delta_fails_the_whole_export() -> None:
    (export,) = plan([aaf_samples("men-2013-delta-malformed")])
    with pytest.raises(BadInput) as caught:
        list(AafReader(export).stream())
    assert caught.value.file is not None and caught.value.file.endswith("_Eleve_0000.xml")
    assert caught.value.line == 100


def test_samples_folder_resolves_outside_the_project() -> None:
    assert AAF_SAMPLES.parts[-3:] == ("shared", "samples", "aaf")
