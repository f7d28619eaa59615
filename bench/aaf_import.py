"""AAF import benchmark: ratios against a parse-only baseline measured in the same run.

    python bench/aaf_import.py [--pupils 100000] [--small 20000] [--workdir bench/out] [--rounds 1]

On a generated 2D académie (seeded, with its guardians and staff) it measures, each step in a
fresh process so that peak RSS belongs to that step alone:

  (a) parse only: lxml iterparse of the same files, touching every value;
  (b) the full import into a new SQLite store (reader + sync engine + commit);
  (c) re-import of the unchanged set;
  (d) a 1 % delta: about 1 % of the pupils, guardians and staff added, 1 % modified and 1 %
      deleted (the generator's default, ``--delta-from``): 3.3 % of the AAF records;
  (d1) a delta of 1 % of the AAF records (a third each added, modified, deleted), on a copy of
      the same database: the other reading of "a 1 % delta";
  (e) peak RSS of the full import at ``--small`` and ``--pupils`` pupils;
  (r) the reader's floor: the same files read as an import reads them (the parsing worker
      sending every request to this process, in dependency order), nothing mapped, staged or
      written. An unchanged re-import reads every request too, so (r) is the least (c) can
      take while the reader parses them all: r / b is the lowest c / b any change to the
      mapping or the sync engine can reach, and it does not depend on them.

Beside (b) and (d), the database pages the step's largest transaction wrote (SQLite's WAL
frames): what a delta must write whatever the Python side does, its I/O floor.

Before each step the bench waits for the writes of the steps before it (and of its own copies)
to reach the disk (``os.sync``), so that their writeback is not charged to the next step (a
delta's commit waits for the disk). Measured here, the effect on (d) is within the machine's
noise (3.6 to 4.3 s either way, after a copy of the database); it is kept as hygiene.

Peak RSS is the step's own process; the import also parses in a forked worker process
(``connectors/aaf/_feed.py``), whose peak is printed apart ("worker": it shares most of its
pages with the importing process it was forked from).

Targets (issue #3): b/a <= 3, c <= 0.5 b, d <= 0.05 b, peak RSS <= 400 MB growing < 20 %
between the two sizes. Figures are printed, never asserted: wall-clock time depends on the
machine, ratios measured in one run much less.

``--rounds N`` repeats (a) to (d1) and (r) N times, each round from an empty database, and
prints each round's figures, then the median of each step and of each ratio (ratios taken
within a round) with their range: on a shared machine whose speed drifts by 10 % or more
between minutes, a single round can land either side of a target.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

LARGEST_ACADEMIE_RECORDS = 2_800_000  # AAF person records of the largest académie, about


def _peak_rss_mb() -> float:
    """This process's own high-water mark (VmHWM: unlike ru_maxrss, not inherited at exec)."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def step_parse(folder: Path) -> dict[str, Any]:
    from lxml import etree

    started = time.perf_counter()
    values = chars = 0
    for path in sorted(folder.glob("*.xml")):
        with path.open("rb") as stream:
            for _, element in etree.iterparse(
                stream,
                events=("end",),
                resolve_entities=False,
                no_network=True,
                load_dtd=False,
                huge_tree=False,
            ):
                tag = element.tag
                if tag == "value":
                    values += 1
                    chars += len(element.text or "")
                elif tag in ("addRequest", "modifyRequest", "deleteRequest"):
                    element.clear()
                    while element.getprevious() is not None:
                        del element.getparent()[0]
    return {"seconds": time.perf_counter() - started, "values": values, "chars": chars}


def step_read(folder: Path) -> dict[str, Any]:
    """(r): every request of the export(s), through the parsing worker as an import gets them."""
    from connectors.aaf import plan
    from connectors.aaf._feed import RawFeed
    from connectors.aaf._files import reading_order
    from connectors.aaf._xml import RawRecord

    started = time.perf_counter()
    requests = 0
    for export in plan([folder]):
        with RawFeed(sorted(export.files, key=reading_order), parallel=True) as feed:
            for _, source in feed:
                requests += sum(1 for item in source if type(item) is RawRecord)
    return {"seconds": time.perf_counter() - started, "aaf_requests": requests}


def step_import(folder: Path, database: Path) -> dict[str, Any]:
    from annuaire.importing import import_aaf
    from annuaire.settings import Settings
    from annuaire.store import make_engine
    from annuaire.store.migrate import current_revision, upgrade

    settings = Settings(database_url=f"sqlite:///{database}")
    engine = make_engine(settings)
    if current_revision(engine) is None:
        upgrade(engine)
    started = time.perf_counter()
    runs = import_aaf(engine, settings, [folder])
    seconds = time.perf_counter() - started
    counts: dict[str, int] = {}
    for run in runs:
        assert run.report is not None
        for figures in run.report.counts_dict().values():
            for name, value in figures.items():
                counts[name] = counts.get(name, 0) + value
    requests = sum(sum(run.stats.requests.values()) for run in runs)
    return {
        "seconds": seconds,
        "counts": counts,
        "aaf_requests": requests,
        "pages_written": _wal_pages(engine, database),
    }


def _wal_pages(engine: Any, database: Path) -> int:
    """Database pages the step's largest transaction wrote: each step runs in a fresh process,
    which starts without a WAL file; a checkpoint resets the log but never shrinks the file, so
    its frames count the largest transaction (every page is written twice: to the WAL, then
    into the database by the checkpoint)."""
    wal = Path(f"{database}-wal")
    if not wal.exists():
        return 0
    with engine.connect() as connection:
        page_size = int(connection.exec_driver_sql("PRAGMA page_size").scalar())
    return (wal.stat().st_size - 32) // (page_size + 24)  # WAL header, frame headers


def _in_child(*args: str) -> dict[str, Any]:
    """Run one step in a fresh interpreter, once the writes before it are on disk; return its
    figures and peak RSS."""
    os.sync()
    output = subprocess.run(
        [sys.executable, __file__, "--step", *args],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    return json.loads(output.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def _generate(workdir: Path, pupils: int) -> tuple[Path, Path, Path]:
    """The complet, its delta of 1 % adds + 1 % modifies + 1 % deletes, and its delta of 1 % of
    the records in all."""
    from connectors.sample import generate_academie, generate_delta

    complet, delta = workdir / f"complet-{pupils}", workdir / f"delta-{pupils}"
    delta1 = workdir / f"delta1-{pupils}"
    if not (complet / ".sample-manifest.json").exists():
        print(f"generating {pupils:,} pupils into {complet} ...", flush=True)
        generate_academie(complet, pupils=pupils, seed=2026, degree="2d")
    for folder, rate in ((delta, 0.01), (delta1, 0.01 / 3)):
        if not (folder / ".sample-manifest.json").exists():
            generate_delta(complet, folder, seed=2027, rate=rate)
    return complet, delta, delta1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pupils", type=int, default=100_000)
    parser.add_argument("--small", type=int, default=20_000)
    parser.add_argument("--workdir", type=Path, default=ROOT / "bench" / "out")
    parser.add_argument("--rounds", type=int, default=1, help="repeat (a) to (d) N times")
    parser.add_argument("--step", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be 1 or more")

    if args.step:
        name, *rest = args.step
        if name == "parse":
            figures = step_parse(Path(rest[0]))
        elif name == "read":
            figures = step_read(Path(rest[0]))
        else:
            figures = step_import(Path(rest[0]), Path(rest[1]))
        figures["peak_rss_mb"] = _peak_rss_mb()
        # The AAF parsing worker (a fork of this process, see connectors/aaf/_feed.py).
        figures["worker_rss_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print(json.dumps(figures))
        return

    args.workdir.mkdir(parents=True, exist_ok=True)
    small_complet, _, _ = _generate(args.workdir, args.small)
    complet, delta, delta1 = _generate(args.workdir, args.pupils)
    database = args.workdir / f"bench-{args.pupils}.db"
    database1 = args.workdir / f"bench-{args.pupils}-d1.db"
    small_database = args.workdir / f"bench-{args.small}.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{small_database}{suffix}").unlink(missing_ok=True)

    print("measuring (each step in its own process) ...", flush=True)
    rounds = []
    for number in range(1, args.rounds + 1):
        for suffix in ("", "-wal", "-shm"):
            Path(f"{database}{suffix}").unlink(missing_ok=True)
            Path(f"{database1}{suffix}").unlink(missing_ok=True)
        a = _in_child("parse", str(complet))
        r = _in_child("read", str(complet))
        b = _in_child("import", str(complet), str(database))
        c = _in_child("import", str(complet), str(database))
        for suffix in ("", "-wal"):  # the same committed state (the WAL, if one was left)
            if Path(f"{database}{suffix}").exists():
                shutil.copyfile(f"{database}{suffix}", f"{database1}{suffix}")
        d1 = _in_child("import", str(delta1), str(database1))
        d = _in_child("import", str(delta), str(database))
        rounds.append((a, b, c, d, d1, r))
        if args.rounds > 1:
            print(
                f"  round {number}: a {a['seconds']:.2f}  b {b['seconds']:.2f}  "
                f"c {c['seconds']:.2f}  d {d['seconds']:.2f}  d1 {d1['seconds']:.2f}  "
                f"r {r['seconds']:.2f} s   b/a {b['seconds'] / a['seconds']:.3f}  "
                f"c/b {c['seconds'] / b['seconds']:.3f}  d/b {d['seconds'] / b['seconds']:.3f}  "
                f"d1/b {d1['seconds'] / b['seconds']:.3f}  r/b {r['seconds'] / b['seconds']:.3f}",
                flush=True,
            )
    for suffix in ("", "-wal", "-shm"):
        Path(f"{database1}{suffix}").unlink(missing_ok=True)
    small = _in_child("import", str(small_complet), str(small_database))
    a, b, c, d, d1, r = (_median_step([step[i] for step in rounds]) for i in range(6))

    records = b["aaf_requests"]
    entities = b["counts"].get("created", 0)
    growth = b["peak_rss_mb"] / small["peak_rss_mb"] - 1
    rows = [
        ("(a) parse only", a["seconds"], f"{a['values']:,} values", a["peak_rss_mb"]),
        (
            "(b) full import",
            b["seconds"],
            f"{records:,} AAF records -> {entities:,} entities, "
            f"{b['pages_written']:,} pages written",
            b["peak_rss_mb"],
        ),
        (
            "(c) re-import, unchanged",
            c["seconds"],
            f"{c['counts'].get('unchanged', 0):,} unchanged, "
            f"{c['counts'].get('created', 0)} created",
            c["peak_rss_mb"],
        ),
        (
            "(d) 1 % delta",
            d["seconds"],
            f"{d['aaf_requests']:,} AAF requests, {d['pages_written']:,} pages written",
            d["peak_rss_mb"],
        ),
        (
            "(d1) delta of 1 % of the records",
            d1["seconds"],
            f"{d1['aaf_requests']:,} AAF requests, {d1['pages_written']:,} pages written",
            d1["peak_rss_mb"],
        ),
        (
            f"(e) full import, {args.small:,} pupils",
            small["seconds"],
            f"{small['aaf_requests']:,} AAF records",
            small["peak_rss_mb"],
        ),
        (
            "(r) reader's floor, nothing mapped",
            r["seconds"],
            f"{r['aaf_requests']:,} AAF requests read through the parsing worker",
            r["peak_rss_mb"],
        ),
    ]
    over = f", median of {args.rounds} rounds" if args.rounds > 1 else ""
    print(f"\nAAF import benchmark, {args.pupils:,} pupils (2D, seed 2026), SQLite{over}")
    workers = [a, b, c, d, d1, small, r]
    print(f"{'step':34} {'seconds':>9} {'peak RSS MB':>12} {'worker':>7}  detail")
    for (name, seconds, detail, rss), step in zip(rows, workers, strict=True):
        worker = f"{step['worker_rss_mb']:7.0f}" if step.get("worker_rss_mb") else f"{'-':>7}"
        print(f"{name:34} {seconds:9.2f} {rss:12.0f} {worker}  {detail}")

    def ratio(i: int, j: int) -> list[float]:
        return [step[i]["seconds"] / step[j]["seconds"] for step in rounds]

    ratios = [
        ("b / a   (target <= 3)", ratio(1, 0)),
        ("c / b   (target <= 0.5)", ratio(2, 1)),
        ("d / b   (target <= 0.05)", ratio(3, 1)),
        ("d1 / b  (the same target, other reading)", ratio(4, 1)),
        ("r / a   (the reader against the parse baseline)", ratio(5, 0)),
        ("r / b   (the least c / b can be, see (r))", ratio(5, 1)),
        (f"RSS growth {args.small:,} -> {args.pupils:,} (target < 20 %)", [growth]),
    ]
    print()
    for name, values in ratios:
        spread = f"   (rounds: {min(values):.3f} to {max(values):.3f})" if len(values) > 1 else ""
        print(f"{name:48} {statistics.median(values):8.3f}{spread}")
    scale = LARGEST_ACADEMIE_RECORDS / records
    print(
        f"\nthroughput: {records / b['seconds']:,.0f} AAF records/s, "
        f"{entities / b['seconds']:,.0f} entities/s; projection for "
        f"{LARGEST_ACADEMIE_RECORDS:,} AAF records: full import {b['seconds'] * scale / 60:.1f} "
        f"min, re-import {c['seconds'] * scale / 60:.1f} min, 1 % delta "
        f"{d['seconds'] * scale / 60:.1f} min, delta of 1 % of the records "
        f"{d1['seconds'] * scale / 60:.1f} min"
    )


def _median_step(steps: list[dict[str, Any]]) -> dict[str, Any]:
    """The figures of the round whose time is the median (the lower one for an even count)."""
    ordered = sorted(steps, key=lambda step: step["seconds"])
    return ordered[(len(ordered) - 1) // 2]


if __name__ == "__main__":
    main()
