"""Read API benchmark: the real endpoints against a bare FastAPI app serving the same bytes.

    python bench/api.py [--pupils 100000] [--seed 2026] [--fresh] [--json PATH]

On a seeded 2D académie imported into its own PostgreSQL database (built once, then reused while
its marker matches: seed, pupils, generator code, schema head; ``--fresh`` rebuilds it), for 1
and 2 uvicorn workers, and for each case:

  (a) ``GET /v1/persons?limit=100&cursor=C``, round-robin over 200 cursors spread over the table;
  (b) ``GET /v1/persons/{id}``, round-robin over 1,000 random ids;
  (c) ``GET /v1/changes?after=C&limit=100``, round-robin over 200 positions spread over the feed;

it measures the saturating throughput (wrk, closed loop, 2 s warm-up then 8 s) of the real server
(``aiguillage serve``, access log off) and of a bare FastAPI app (bench/_bare_app.py, same uvicorn,
loop, HTTP parser and worker count) that answers the same route with the bytes the real endpoint
served for a representative request; then p50/p99 latency of the real server under an open-loop
load at half its saturating rate (bench/_api_load.py: fixed schedule, latency counted from the
due time). Then, on one worker, the cost of token validation and access rules: the same requests
with and without the access token of an API client whose contract is one collège (its pages of
persons, and persons by id; bench/_api_auth.py), and what the RGPD flow log adds to a page of
persons, beside the floor any durable entry would add (bench/_api_flowlog.py). Last, the NDJSON
export of every person from one worker: persons/s and the worker's RSS before, at peak and
after, against a 1,000-person export (the largest ``limit``) from another fresh worker.

Each measurement also splits the machine's CPU between the API workers, PostgreSQL (exited
backends included), the load generator and the rest, and counts the sessions opened on the
database meanwhile: whether the API, PostgreSQL or a churning connection pool is the limit.

The database is ``aiguillage_bench_api_<pupils>`` on postgres@127.0.0.1:5432 unless
``--database-url`` names another (its name must contain "bench"); the generated files are shared
with bench/aaf_import.py in ``--workdir`` (bench/out), the walked request paths, the bare app's
bodies and the server logs go to ``<workdir>/api-<pupils>/``.

Targets: (a) and (c) >= 0.5 x bare throughput; p99 <= 50 ms at half the saturating load; token
validation and access rules (warm caches) cost a page read < 10 % of its throughput; the flow
log adds at most 15 % to the page-read request time; NDJSON export >= 20,000 persons/s with flat
memory (peak RSS of the full export <= 1.2 x that of the 1,000-person one). Figures are printed
with PASS/FAIL, never asserted. Every load generator runs in its own process on loopback;
servers are stopped on exit, error, Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import psutil
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._api_auth import measure_token_overhead, report_token_overhead
from bench._api_flowlog import FLOOR_TABLE, measure_flowlog_overhead, report_flowlog_overhead
from bench._api_support import (
    BENCH,
    ROOT,
    CpuMeter,
    RssSampler,
    Server,
    SessionCounter,
    free_port,
    machine_busy,
    prepare_database,
    run_wrk,
    stop_all,
)

RATIO_TARGET = 0.5
P99_TARGET_MS = 50.0
EXPORT_TARGET = 20_000
FLAT_TARGET = 1.2
PAGE_CURSORS = 200
PERSON_IDS = 1000
SUBSET = 1000  # the API's largest limit, also for NDJSON
#: What the database marker says besides what identifies the académie.
_MARKER_NOTES = ("reused", "upgraded_from")


@dataclass(frozen=True)
class Case:
    key: str
    label: str
    #: The bare app's route for this case (the real path template).
    route: str
    ratio_target: float | None


CASES = (
    Case("persons_page", "(a) page of 100 persons", "/v1/persons", RATIO_TARGET),
    Case("person", "(b) one person by id", "/v1/persons/{id}", None),
    Case("feed_page", "(c) page of 100 feed entries", "/v1/changes", RATIO_TARGET),
)


def _spread(items: list[str], count: int) -> list[str]:
    """``count`` items evenly spaced over ``items``, first one included."""
    if len(items) <= count:
        return list(items)
    return [items[i * len(items) // count] for i in range(count)]


def _collect_paths(base: str, seed: int) -> dict[str, list[str]]:
    """Walk the real API as a client would, keeping paths spread over persons and the feed."""
    page_paths: list[str] = []
    ids: list[str] = []
    feed_paths: list[str] = []
    started = time.perf_counter()
    with httpx.Client(base_url=base, timeout=60.0) as client:
        path: str | None = "/v1/persons?limit=100"
        while path is not None:
            page_paths.append(path)
            response = client.get(path)
            response.raise_for_status()
            body = orjson.loads(response.content)
            ids.extend(item["id"] for item in body["items"])
            path = f"/v1/persons?limit=100&cursor={body['next']}" if body["next"] else None
        after = ""
        while True:
            # Feed positions are plain offsets in the log: any page size yields valid ones.
            response = client.get("/v1/changes", params={"limit": 1000, **_after(after)})
            response.raise_for_status()
            body = orjson.loads(response.content)
            if not body["items"]:
                break
            feed_paths.append("/v1/changes?limit=100" + (f"&after={after}" if after else ""))
            after = body["next"]
    print(
        f"walked {len(page_paths):,} person pages and {len(feed_paths):,} feed pages "
        f"in {time.perf_counter() - started:.0f} s",
        flush=True,
    )
    rng = random.Random(seed)
    return {
        "persons_page": _spread(page_paths[1:] or page_paths, PAGE_CURSORS),
        "person": [f"/v1/persons/{i}" for i in rng.sample(ids, min(PERSON_IDS, len(ids)))],
        "feed_page": _spread(feed_paths, PAGE_CURSORS),
    }


def _after(cursor: str) -> dict[str, str]:
    return {"after": cursor} if cursor else {}


def _paths(base: str, scratch: Path, marker: dict[str, Any], seed: int) -> dict[str, list[str]]:
    """The request paths of each case: walked once per database, then reused while valid."""
    cache = scratch / "paths.json"
    if cache.exists():
        saved = json.loads(cache.read_text(encoding="utf-8"))
        if saved.get("marker") == {k: v for k, v in marker.items() if k not in _MARKER_NOTES}:
            paths: dict[str, list[str]] = saved["paths"]
            with httpx.Client(base_url=base, timeout=60.0) as client:
                if all(client.get(p[0]).status_code == 200 for p in paths.values()):
                    return paths
    paths = _collect_paths(base, seed)
    marker = {k: v for k, v in marker.items() if k not in _MARKER_NOTES}
    cache.write_text(json.dumps({"marker": marker, "paths": paths}), encoding="utf-8")
    return paths


def _write_bare_manifest(base: str, scratch: Path, paths: dict[str, list[str]]) -> Path:
    """Fetch a representative response of each case; the bare app serves exactly those bytes."""
    folder = scratch / "bare"
    folder.mkdir(exist_ok=True)
    routes = []
    with httpx.Client(base_url=base, timeout=60.0) as client:
        for case in CASES:
            chosen = paths[case.key][len(paths[case.key]) // 2]
            response = client.get(chosen, headers={"Accept": "application/json"})
            response.raise_for_status()
            (folder / f"{case.key}.body").write_bytes(response.content)
            routes.append(
                {
                    "path": case.route,
                    "media_type": response.headers["content-type"],
                    "body": f"{case.key}.body",
                    "sample_request": chosen,
                    "bytes": len(response.content),
                }
            )
    manifest = folder / "manifest.json"
    manifest.write_text(json.dumps({"routes": routes}, indent=2), encoding="utf-8")
    return manifest


def _real_server(
    database_url: str,
    workers: int,
    scratch: Path,
    tag: str,
    extra_env: dict[str, str] | None = None,
) -> Server:
    port = free_port()
    argv = [str(Path(sys.executable).parent / "aiguillage"), "serve", "--host", "127.0.0.1"]
    argv += ["--port", str(port), "--workers", str(workers)]
    env = {
        "AIGUILLAGE_DATABASE_URL": database_url,
        "AIGUILLAGE_API_ACCESS_LOG": "false",
        "AIGUILLAGE_ENVIRONMENT": "development",
        **(extra_env or {}),
    }
    server = Server(f"aiguillage serve ({tag})", argv, port, scratch / f"serve-{tag}.log", env)
    return server.start("/health", workers)


def _variant_server(database_url: str, scratch: Path, module: str, name: str) -> Server:
    """The real app as ``bench/<module>.py`` alters it, one worker, same settings."""
    port = free_port()
    argv = [sys.executable, "-m", "uvicorn", f"{module}:create_app", "--factory"]
    argv += ["--app-dir", str(BENCH), "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--workers", "1", "--no-access-log", "--log-level", "info"]
    env = {
        "AIGUILLAGE_DATABASE_URL": database_url,
        "AIGUILLAGE_ENVIRONMENT": "development",
        "PYTHONPATH": str(ROOT),
    }
    server = Server(name, argv, port, scratch / f"serve-{module.strip('_')}.log", env)
    return server.start("/health", 1)


def _empty_flow_log(database_url: str) -> int:
    """Empty the bench database's flow log (each run writes hundreds of thousands of entries).

    The log is append-only: its triggers are switched off for this transaction, which the
    bench's superuser connection may do (never the hub's own role in production)."""
    with psycopg.connect(database_url) as connection:
        row = connection.execute("SELECT coalesce(max(seq), 0) FROM flow_entry").fetchone()
        connection.execute("SET LOCAL session_replication_role = replica")
        connection.execute("TRUNCATE flow_entry, flow_subject_set, flow_checkpoint, flow_purge")
        connection.execute(f"DROP TABLE IF EXISTS {FLOOR_TABLE}")  # bench/_floor_app.py's
        connection.execute(
            "UPDATE flow_chain SET last_seq = 0, last_hash = %s, last_checkpoint_seq = 0, "
            "last_checkpoint_at = now()",
            ("0" * 64,),
        )
    return int(row[0]) if row else 0


def _bare_server(manifest: Path, workers: int, scratch: Path) -> Server:
    from bench._bare_app import MANIFEST_ENV

    port = free_port()
    argv = [sys.executable, "-m", "uvicorn", "_bare_app:create_app", "--factory"]
    argv += ["--app-dir", str(BENCH), "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--workers", str(workers), "--no-access-log", "--log-level", "info"]
    log = scratch / f"bare-{workers}w.log"
    server = Server("bare app", argv, port, log, {MANIFEST_ENV: str(manifest)})
    return server.start("/v1/persons", workers)


def _child(*args: str) -> dict[str, Any]:
    output = subprocess.run(
        [sys.executable, str(BENCH / "_api_load.py"), *args],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    figures: dict[str, Any] = json.loads(output.stdout.strip().splitlines()[-1])
    return figures


def _saturate(
    server: Server, paths: Path, args: argparse.Namespace, sessions: SessionCounter
) -> dict[str, Any]:
    run_wrk(server.port, paths, args.warmup, args.connections, paths.parent)
    opened = sessions.count()
    figures = run_wrk(server.port, paths, args.seconds, args.connections, paths.parent, server.pid)
    figures["pg_sessions"] = sessions.count() - opened
    return figures


def _measure_case(
    case: Case,
    workers: int,
    servers: tuple[Server, Server],
    sessions: SessionCounter,
    scratch: Path,
    args: argparse.Namespace,
) -> dict[str, Any]:
    real, bare = servers
    paths = scratch / f"{case.key}.paths"
    real_wrk = _saturate(real, paths, args, sessions)
    bare_wrk = _saturate(bare, paths, args, sessions)
    rate = real_wrk["rps"] / 2
    opened = sessions.count()
    with CpuMeter(real.pid) as meter:
        latency = _child(
            "open-loop",
            "--port",
            str(real.port),
            "--paths",
            str(paths),
            "--rate",
            f"{rate:.3f}",
            "--duration",
            str(args.seconds),
            "--connections",
            str(args.latency_connections),
        )
    latency["cpu"] = meter.figures
    latency["pg_sessions"] = sessions.count() - opened
    figures = {
        "case": case.key,
        "label": case.label,
        "workers": workers,
        "real": real_wrk,
        "bare": bare_wrk,
        "ratio": real_wrk["rps"] / bare_wrk["rps"],
        "latency": latency,
    }
    print(
        f"  {case.label:30} {workers}w  real {real_wrk['rps']:8,.0f}/s  bare "
        f"{bare_wrk['rps']:8,.0f}/s  ratio {figures['ratio']:.3f}  at {rate:,.0f}/s: p50 "
        f"{_ms(latency['p50_ms'])} p99 {_ms(latency['p99_ms'])} ms",
        flush=True,
    )
    return figures


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _export(database_url: str, scratch: Path, query: str, tag: str) -> dict[str, Any]:
    """One NDJSON export from a fresh single worker, its RSS sampled throughout."""
    with _real_server(database_url, 1, scratch, tag) as server:
        with httpx.Client(base_url=server.base, timeout=60.0) as client:
            # The same warm-up for every export, so that "before" excludes first-use imports.
            client.get("/v1/persons?limit=100").raise_for_status()
            client.get("/v1/persons?limit=100", headers={"Accept": "application/x-ndjson"})
        time.sleep(0.5)
        sampler = RssSampler(server.pid)
        before = sampler.rss()
        with sampler, CpuMeter(server.pid) as meter:
            result = _child("ndjson", "--url", f"{server.base}/v1/persons{query}")
        time.sleep(1.0)
        after = sampler.rss()
    mb = 1024 * 1024
    return {
        **result,
        "query": query,
        "persons_per_s": result["lines"] / result["seconds"],
        "rss_before_mb": before / mb,
        "rss_peak_mb": max(sampler.peak, before) / mb,
        "rss_after_mb": after / mb,
        "rss_samples": len(sampler.samples),
        "cpu": meter.figures,
    }


def _counts(database_url: str) -> tuple[int, int]:
    with psycopg.connect(database_url) as connection:
        persons = connection.execute("SELECT count(*) FROM person").fetchone()
        changes = connection.execute("SELECT count(*) FROM change_log").fetchone()
    assert persons is not None and changes is not None
    return int(persons[0]), int(changes[0])


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def _report(results: dict[str, Any], args: argparse.Namespace) -> list[dict[str, Any]]:
    """Print the table; return the targets with their verdicts."""
    print(
        f"\nRead API benchmark, {args.pupils:,} pupils (2D, seed {args.seed}): "
        f"{results['persons']:,} persons, {results['feed_entries']:,} feed entries, PostgreSQL"
    )
    print(
        f"throughput: wrk closed loop, {args.connections} connections, {args.warmup:g} s warm-up "
        f"+ {args.seconds:g} s; latency: open loop at half the real rate, "
        f"{args.latency_connections} keep-alive connections, {args.seconds:g} s"
    )
    header = (
        f"{'case':30} {'workers':>7} {'real req/s':>11} {'bare req/s':>11} {'real/bare':>9} "
        f"{'rate/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'errors':>7}"
    )
    print("\n" + header)
    targets: list[dict[str, Any]] = []
    for figures in results["cases"]:
        latency = figures["latency"]
        non_ok = sum(v for k, v in latency["statuses"].items() if k != "200")
        errors = figures["real"]["errors"] + figures["bare"]["errors"] + non_ok
        errors += latency["unanswered"] + len(latency["failures"])
        print(
            f"{figures['label']:30} {figures['workers']:>7} {figures['real']['rps']:>11,.1f} "
            f"{figures['bare']['rps']:>11,.1f} {figures['ratio']:>9.3f} {latency['rate']:>8,.1f} "
            f"{_ms(latency['p50_ms']):>7} {_ms(latency['p99_ms']):>7} {errors:>7}"
        )
        name = f"{figures['label']}, {figures['workers']} worker(s)"
        if _case(figures["case"]).ratio_target is not None:
            targets.append(
                {
                    "target": f"{name}: real/bare >= {RATIO_TARGET}",
                    "value": figures["ratio"],
                    "pass": figures["ratio"] >= RATIO_TARGET and errors == 0,
                }
            )
        p99 = latency["p99_ms"]
        targets.append(
            {
                "target": f"{name}: p99 <= {P99_TARGET_MS:g} ms at {latency['rate']:,.0f}/s",
                "value": p99,
                "pass": p99 is not None and p99 <= P99_TARGET_MS and errors == 0,
            }
        )

    if results["cases"]:
        _report_cpu(results)
    if "ndjson_all" in results:
        targets.extend(_report_exports(results))
    if "token_overhead" in results:
        targets.extend(report_token_overhead(results["token_overhead"]))
    if "flowlog_overhead" in results:
        targets.extend(report_flowlog_overhead(results["flowlog_overhead"]))
    print("\ntargets")
    for target in targets:
        value = target["value"]
        shown = "-" if value is None else f"{value:,.3f}"
        print(f"  {target['target']:70} {shown:>12}  {_verdict(target['pass'])}")
    return targets


def _report_cpu(results: dict[str, Any]) -> None:
    print(
        f"\nCPU, cores of {results['cores']}{'':13} {'workers':>7} | saturation, real: "
        f"{'api':>5} {'pg':>5} {'wrk':>5} {'other':>5} {'PG conns':>8} | bare: {'api':>5} "
        f"{'wrk':>5} | half rate, real: {'api':>5} {'pg':>5} {'PG conns':>8}"
    )
    for figures in results["cases"]:
        real, bare = figures["real"]["cpu"], figures["bare"]["cpu"]
        half = figures["latency"]["cpu"]
        print(
            f"{figures['label']:30} {figures['workers']:>7} | {'':16}{real['server']:5.2f} "
            f"{real['postgres']:5.2f} {real['children']:5.2f} {real['other']:5.2f} "
            f"{figures['real']['pg_sessions']:>8} | {'':6}{bare['server']:5.2f} "
            f"{bare['children']:5.2f} | {'':16}{half['server']:5.2f} {half['postgres']:5.2f} "
            f"{figures['latency']['pg_sessions']:>8}"
        )
    print(
        "(pg: every postgres process, exited backends included; PG conns: sessions opened on "
        "the bench database\n during the measurement; other: the rest of the machine, busy "
        f"{results['machine_busy_before']:.2f} cores before the bench started anything)"
    )


def _report_exports(results: dict[str, Any]) -> list[dict[str, Any]]:
    targets: list[dict[str, Any]] = []
    small, full = results["ndjson_subset"], results["ndjson_all"]
    print(
        f"\n{'NDJSON export, 1 worker':30} {'persons':>9} {'seconds':>8} {'persons/s':>10} "
        f"{'RSS MB before':>13} {'peak':>7} {'after':>7}  cores: {'api':>5} {'pg':>5} "
        f"{'client':>6}"
    )
    for label, export in ((f"?limit={SUBSET}", small), ("all persons", full)):
        print(
            f"{label:30} {export['lines']:>9,} {export['seconds']:>8.2f} "
            f"{export['persons_per_s']:>10,.0f} {export['rss_before_mb']:>13.1f} "
            f"{export['rss_peak_mb']:>7.1f} {export['rss_after_mb']:>7.1f}         "
            f"{export['cpu']['server']:5.2f} {export['cpu']['postgres']:5.2f} "
            f"{export['cpu']['children']:6.2f}"
        )
    peak_ratio = full["rss_peak_mb"] / small["rss_peak_mb"]
    complete = full["status"] == 200 and full["lines"] == results["persons"]
    scale = full["lines"] / max(small["lines"], 1)
    print(
        f"peak RSS all / {SUBSET:,}: {peak_ratio:.3f} for {scale:,.0f}x the persons; "
        f"export complete: {complete} ({full['lines']:,} lines, "
        f"{results['persons']:,} persons in the database)"
    )
    targets.append(
        {
            "target": f"NDJSON export >= {EXPORT_TARGET:,} persons/s",
            "value": full["persons_per_s"],
            "pass": full["persons_per_s"] >= EXPORT_TARGET and complete,
        }
    )
    targets.append(
        {
            "target": f"NDJSON flat memory: peak RSS all / {SUBSET:,} <= {FLAT_TARGET}",
            "value": peak_ratio,
            "pass": peak_ratio <= FLAT_TARGET,
        }
    )
    return targets


def _case(key: str) -> Case:
    return next(c for c in CASES if c.key == key)


def run(args: argparse.Namespace, stack: contextlib.ExitStack) -> dict[str, Any]:
    started = time.perf_counter()
    scratch = args.workdir / f"api-{args.pupils}"
    scratch.mkdir(parents=True, exist_ok=True)
    database_url = args.database_url or (
        f"postgresql://postgres@127.0.0.1:5432/aiguillage_bench_api_{args.pupils}"
    )
    marker = prepare_database(
        database_url, args.workdir, pupils=args.pupils, seed=args.seed, fresh=args.fresh
    )
    persons, feed_entries = _counts(database_url)
    dropped = _empty_flow_log(database_url)
    print(f"flow log emptied ({dropped:,} entries of earlier runs)", flush=True)
    if args.prepare_only:
        print(f"database ready: {persons:,} persons, {feed_entries:,} feed entries")
        return {"database": marker, "persons": persons, "feed_entries": feed_entries}
    busy = machine_busy()
    cores = psutil.cpu_count() or 0
    print(f"machine busy before measuring: {busy:.2f} of {cores} cores", flush=True)
    results: dict[str, Any] = {
        "cores": cores,
        "machine_busy_before": busy,
        "pupils": args.pupils,
        "seed": args.seed,
        "database": marker,
        "persons": persons,
        "feed_entries": feed_entries,
        "cases": [],
    }
    print("measuring ...", flush=True)
    manifest: Path | None = None
    sessions = stack.enter_context(SessionCounter(database_url))
    sections = set(args.sections)
    for workers in args.workers if sections & {"cases", "flowlog"} else []:
        with _real_server(database_url, workers, scratch, f"{workers}w") as real:
            if manifest is None:
                paths = _paths(real.base, scratch, marker, args.seed)
                for key, listed in paths.items():
                    (scratch / f"{key}.paths").write_text("\n".join(listed) + "\n", "utf-8")
                manifest = _write_bare_manifest(real.base, scratch, paths)
                results["bare_routes"] = json.loads(manifest.read_text("utf-8"))["routes"]
            if "cases" not in sections:
                break
            with _bare_server(manifest, workers, scratch) as bare:
                for case in CASES:
                    figures = _measure_case(case, workers, (real, bare), sessions, scratch, args)
                    results["cases"].append(figures)
    if "auth" in sections:
        print("  token validation and access rules, 1 worker ...", flush=True)
        results["token_overhead"] = measure_token_overhead(
            database_url,
            scratch,
            lambda env: _real_server(database_url, 1, scratch, "auth", env),
            seconds=args.auth_seconds,
            connections=args.connections,
            seed=args.seed,
        )
    if "flowlog" in sections:
        print("  flow log, 1 worker ...", flush=True)
        results["flowlog_overhead"] = measure_flowlog_overhead(
            database_url,
            scratch,
            scratch / "persons_page.paths",
            lambda: _real_server(database_url, 1, scratch, "flowlog"),
            lambda: _variant_server(database_url, scratch, "_nolog_app", "API without flow log"),
            lambda: _variant_server(database_url, scratch, "_floor_app", "API, floor entry"),
            seconds=args.auth_seconds,
            connections=args.connections,
        )
    if "export" in sections:
        print("  NDJSON exports ...", flush=True)
        results["ndjson_subset"] = _export(
            database_url, scratch, f"?limit={SUBSET}", "ndjson-subset"
        )
        results["ndjson_all"] = _export(database_url, scratch, "", "ndjson-all")
    results["targets"] = _report(results, args)
    results["wall_s"] = time.perf_counter() - started
    print(f"\nbench wall time: {results['wall_s']:.0f} s")
    return results


def _stop(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pupils", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--fresh", action="store_true", help="rebuild the database")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument(
        "--prepare-only", action="store_true", help="build or check the database, then stop"
    )
    parser.add_argument("--workdir", type=Path, default=ROOT / "bench" / "out")
    parser.add_argument(
        "--database-url",
        help="its name must contain 'bench' (default: aiguillage_bench_api_<pupils> on "
        "postgres@127.0.0.1:5432)",
    )
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--seconds", type=float, default=8.0, help="per measurement")
    parser.add_argument("--warmup", type=float, default=2.0, help="before each wrk measurement")
    parser.add_argument("--connections", type=int, default=8, help="wrk connections")
    parser.add_argument(
        "--auth-seconds",
        type=float,
        default=2.0,
        help="per run of the token overhead (20 runs in all, see bench/_api_auth.py)",
    )
    parser.add_argument("--latency-connections", type=int, default=16)
    parser.add_argument(
        "--sections",
        nargs="+",
        choices=["cases", "auth", "flowlog", "export"],
        default=["cases", "auth", "flowlog", "export"],
        help="what to measure (default: everything)",
    )
    args = parser.parse_args()

    if shutil.which("wrk") is None:
        print("wrk not found: apt-get install wrk", file=sys.stderr)
        raise SystemExit(1)
    # Ctrl-C raises KeyboardInterrupt even when started from a shell that ignores SIGINT.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGHUP, _stop)
    try:
        with contextlib.ExitStack() as stack:
            results = run(args, stack)
    except KeyboardInterrupt:
        print("\ninterrupted: stopping the servers", file=sys.stderr)
        raise SystemExit(130) from None
    finally:
        stop_all()
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
