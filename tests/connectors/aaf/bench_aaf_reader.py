"""Reader vs bare iterparse on the big AAF samples.

Run ``.venv/bin/python tests/connectors/aaf/bench_aaf_reader.py [copies] [rounds]``.

Prints CPU times (best of N, runs interleaved) of: a bare lxml ``iterparse`` that touches every
value, the raw layer (``iter_raw``), and the full neutral stream (``AafReader``), for
``men-2013-complet`` and for ``men-2013-full-chunk`` copied N times as chunks of one export.
Not collected by pytest (no ``test_`` prefix).
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from lxml import etree

from connectors.aaf import AafExport, AafReader, iter_raw, plan

SAMPLES = Path(__file__).resolve().parents[3] / ".." / "shared" / "samples" / "aaf"
TAGS = ("addRequest", "modifyRequest", "deleteRequest")


def bare(files: list[Path]) -> None:
    for path in files:
        for _, element in etree.iterparse(
            str(path),
            events=("end",),
            tag=TAGS,
            resolve_entities=False,
            load_dtd=False,
            no_network=True,
            huge_tree=False,
        ):
            for value in element.iter("value", "id"):
                _ = value.text
            element.clear()
            while element.getprevious() is not None:
                del element.getparent()[0]


def raw(export: AafExport) -> None:
    for file in export.files:
        for _ in iter_raw(file):
            pass


def full(export: AafExport) -> None:
    for _ in AafReader(export).stream():
        pass


def measure(label: str, folder: Path, rounds: int) -> None:
    (export,) = plan([folder])
    files = sorted(folder.glob("*.xml"))
    runs: dict[str, Callable[[], None]] = {
        "bare iterparse": lambda: bare(files),
        "raw records": lambda: raw(export),
        "neutral stream": lambda: full(export),
    }
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(rounds):
        for name, run in runs.items():
            start = time.process_time()
            run()
            best[name] = min(best[name], time.process_time() - start)
    size = sum(f.stat().st_size for f in files) / 1e6
    base = best["bare iterparse"]
    print(f"{label}: {len(files)} files, {size:.1f} MB")
    for name, seconds in best.items():
        print(f"  {name:15s} {seconds * 1000:7.0f} ms  {seconds / base:4.2f}x")


def main() -> None:
    copies = int(sys.argv[1]) if len(sys.argv) > 1 else 8
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    measure("men-2013-complet", SAMPLES / "men-2013-complet", rounds)
    chunk = next((SAMPLES / "men-2013-full-chunk").glob("*.xml"))
    with tempfile.TemporaryDirectory() as tmp:
        for n in range(copies):
            shutil.copy(chunk, Path(tmp) / chunk.name.replace("_0010.xml", f"_{n:04d}.xml"))
        measure(f"men-2013-full-chunk x{copies}", Path(tmp), rounds)


if __name__ == "__main__":
    main()
