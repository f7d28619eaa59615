"""Parsing in a worker process gives the stream that parsing in-process gives, errors included."""

from __future__ import annotations

import multiprocessing
from pathlib import Path
from typing import Any

import pytest
from aaf_support import AAF_SAMPLES, aaf_samples, document, request, write

from annuaire.errors import BadInput
from annuaire.schema import StreamItem
from connectors.aaf import AafExport, AafReader, plan
from connectors.aaf._feed import RawFeed, parallel_by_default
from connectors.aaf._xml import RawRecord

needs_fork = pytest.mark.skipif(
    "fork" not in multiprocessing.get_all_start_methods(), reason="no fork on this platform"
)


def _read(export: AafExport, parallel: bool) -> tuple[list[StreamItem], Any, BadInput | None]:
    reader = AafReader(export, parallel=parallel)
    items: list[StreamItem] = []
    error = None
    try:
        for item in reader.stream():
            items.append(item)
    except BadInput as caught:
        error = caught
    return items, reader.stats, error


def _sample_exports() -> list[tuple[str, AafExport]]:
    if not AAF_SAMPLES.is_dir():
        return []
    found = []
    for folder in sorted(p for p in AAF_SAMPLES.iterdir() if p.is_dir()):
        try:
            exports = plan([folder])
        except BadInput:
            continue
        found.extend((f"{folder.name}[{n}]", export) for n, export in enumerate(exports))
    return found


SAMPLE_EXPORTS = _sample_exports()


@needs_fork
@pytest.mark.parametrize(
    "export", [e for _, e in SAMPLE_EXPORTS], ids=[name for name, _ in SAMPLE_EXPORTS]
)
def test_worker_stream_equals_in_process_stream(export: AafExport) -> None:
    items, stats, error = _read(export, parallel=False)
    parallel_items, parallel_stats, parallel_error = _read(export, parallel=True)
    assert parallel_items == items
    assert parallel_stats == stats
    if error is None:
        assert parallel_error is None
    else:
        assert parallel_error is not None
        assert (str(parallel_error), parallel_error.file, parallel_error.line) == (
            str(error),
            error.file,
            error.line,
        )
        assert (parallel_error.column, parallel_error.record_id) == (
            error.column,
            error.record_id,
        )


def test_samples_include_malformed_and_large_sets() -> None:
    if not SAMPLE_EXPORTS:
        pytest.skip(f"no samples in {AAF_SAMPLES}")
    assert any(_read(e, parallel=False)[2] is not None for _, e in SAMPLE_EXPORTS)
    assert any(parallel_by_default(e.files) for _, e in SAMPLE_EXPORTS)


def _pupil(ident: str) -> str:
    return request(
        "Eleve",
        ident,
        [
            ("ENTPersonJointure", [ident]),
            ("sn", ["NOM" + ident]),
            ("givenName", ["PRENOM"]),
            ("ENTEleveEnseignements", ["FRANCAIS", "MATHEMATIQUES"]),
        ],
    )


def _export(tmp_path: Path, bodies: list[str]) -> AafExport:
    for number, body in enumerate(bodies):
        write(tmp_path / f"ENT_Delta_20260101_Eleve_{number:04d}.xml", body)
    (export,) = plan([tmp_path])
    return export


@needs_fork
def test_malformed_late_file_raises_with_its_line_after_the_earlier_records(
    tmp_path: Path,
) -> None:
    good = document([_pupil(str(1000 + n)) for n in range(600)])
    bad = document([_pupil("2000"), _pupil("2001")]).replace("</attributes>", "</attribute>", 2)
    export = _export(tmp_path, [good, bad])
    items, _, error = _read(export, parallel=False)
    parallel_items, _, parallel_error = _read(export, parallel=True)
    assert error is not None and parallel_error is not None
    assert parallel_error.file is not None and parallel_error.file.endswith("_Eleve_0001.xml")
    assert (str(parallel_error), parallel_error.line) == (str(error), error.line)
    assert parallel_items == items and len(items) >= 600


@needs_fork
def test_values_survive_the_trip_verbatim(tmp_path: Path) -> None:
    """Batches of requests only travel marshalled, a batch with a warning object pickled: both
    give back the same values, items, order, header and unknown-attribute counts."""
    odd = ["  espaces  ", "a$b$$", "é&amp;&lt;&gt;\"'", "tab\there", "ligne\nsuivante", "007"]
    plain = [_pupil(str(100 + n)) for n in range(600)]  # batches of requests only
    body = document(
        [
            *plain,
            request("Eleve", "42", [("ENTPersonJointure", "42"), ("ENTPersonAutresPrenoms", odd)]),
            request("Eleve", "43", [("ENTPersonJointure", "43"), ("sn", None), ("x", "1")]),
            request("Eleve", "44", op="delete"),
            request("Eleve", "45", [("ENTPersonJointure", "45"), ("x", "2"), ("y", "3")]),
        ]
    )
    export = _export(tmp_path, [body])
    feed_items = []
    with RawFeed(export.files, parallel=True) as feed:
        for _, source in feed:
            feed_items.extend(source)
            header, unknown = source.header, source.unknown_attributes
    assert sum(type(item) is not RawRecord for item in feed_items) == 2  # x, then y
    assert unknown == {"x": 2, "y": 1}
    with RawFeed(export.files, parallel=False) as feed:
        for _, source in feed:
            assert list(source) == feed_items
            assert source.header == header
            assert source.unknown_attributes == unknown


@needs_fork
def test_closing_the_stream_early_stops_the_worker() -> None:
    if not SAMPLE_EXPORTS:
        pytest.skip(f"no samples in {AAF_SAMPLES}")
    (export,) = plan([aaf_samples("men-2013-complet")])
    feed = RawFeed(export.files, parallel=True)
    for _, source in feed:
        next(iter(source))
        break
    worker = feed._process
    assert worker is not None and worker.is_alive()
    feed.close()
    assert not worker.is_alive() and feed._process is None


@needs_fork
def test_a_file_gone_before_reading_raises_the_same_error(tmp_path: Path) -> None:
    export = _export(tmp_path, [document([_pupil("1")]), document([_pupil("2")])])
    (tmp_path / "ENT_Delta_20260101_Eleve_0001.xml").unlink()
    for parallel in (False, True):
        reader = AafReader(export, parallel=parallel)
        items = []
        with pytest.raises(FileNotFoundError):
            for item in reader.stream():
                items.append(item)
        assert len(items) == 1
