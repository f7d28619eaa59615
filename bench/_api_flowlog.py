"""What the RGPD flow log costs a page read (a section of bench/api.py).

Two servers of one worker each on the same database: the real one (``aiguillage serve``), which
writes the flow entry of every page (chain lock, HMAC, the entry with its 100 pseudonyms, commit)
before answering, and the same app with its flow log removed (bench/_nolog_app.py: the only
difference is ``app.state.registre = None``; production code has no switch for it). Both
answer the same requests, case (a) of bench/api.py: ``GET /v1/persons?limit=100&cursor=C``
round-robin over 200 cursors spread over the table, as the operator; the bodies must be
byte-identical. Rounds of one run of each server, ``seconds`` each, in ABBA order (a drift of
the machine weighs on both), after a 1 s warm-up of each. The issue bounds what the log *adds to
the request time* (at most 15 %): in a closed loop of ``connections`` the mean time of a request
is ``connections / req/s``, so the overhead is req/s without the log / req/s with it - 1
(:func:`bench._api_support.added_time`), over all rounds. The
entries the section wrote are counted (entries and subject rows per second), and the chain is
verified afterwards with ``aiguillage registre verify`` logic: every entry written under load
must chain.

A third server runs in the same rounds (orders rotate: each server is first, middle and last
as often): bench/_floor_app.py, where the page's own statement inserts one row naming the
persons it serves, in the same transaction and round trip, and nothing else of the log remains.
What it adds is the floor under what any durable entry written before the page is served can
add here, whatever the design of the log; the section prints it beside the real figure.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psycopg

from bench._api_support import Server, added_time, run_wrk

__all__ = [
    "FLOOR_TABLE",
    "FLOWLOG_TARGET",
    "measure_flowlog_overhead",
    "report_flowlog_overhead",
]

FLOWLOG_TARGET = 0.15
ROUNDS = 6
SERVERS = ("logged", "unlogged", "floor")
#: The scratch table bench/_floor_app.py writes its rows to (dropped with the flow log).
FLOOR_TABLE = "bench_flow_floor"


def _log_size(database_url: str) -> tuple[int, int, int]:
    """Entries, persons they name, lists of persons stored."""
    with psycopg.connect(database_url) as connection:

        def count(query: str) -> int:
            row = connection.execute(query).fetchone()
            return int(row[0]) if row else 0

        return (
            count("SELECT coalesce(max(seq), 0) FROM flow_entry"),
            count("SELECT coalesce(sum(persons), 0) FROM flow_entry"),
            count("SELECT count(*) FROM flow_subject_set"),
        )


def _floor_rows(database_url: str) -> int:
    with psycopg.connect(database_url) as connection:
        row = connection.execute(
            f"SELECT count(*) FROM {FLOOR_TABLE} WHERE cardinality(persons) = 100"
        ).fetchone()
        return int(row[0]) if row else 0


def _identical(real: Server, others: list[Server], paths: list[str]) -> list[str]:
    differing = []
    with httpx.Client(timeout=60.0, headers={"Accept": "application/json"}) as client:
        for path in paths:
            served = client.get(real.base + path)
            if served.status_code != 200 or any(
                client.get(other.base + path).content != served.content for other in others
            ):
                differing.append(path)
    return differing


def _orders() -> list[tuple[str, ...]]:
    """Each round's order: rotations of :data:`SERVERS`, forwards then backwards (ABC, CBA,
    BCA, ACB, CAB, BAC): every server runs first, middle and last equally often."""
    rotations = [SERVERS[i:] + SERVERS[:i] for i in range(len(SERVERS))]
    return [r if index % 2 == 0 else r[::-1] for index, r in enumerate(rotations * 2)][:ROUNDS]


def measure_flowlog_overhead(
    database_url: str,
    scratch: Path,
    paths: Path,
    real_server: Callable[[], Server],
    unlogged_server: Callable[[], Server],
    floor_server: Callable[[], Server],
    *,
    seconds: float,
    connections: int,
) -> dict[str, Any]:
    from annuaire.registre.keys import load_keys
    from annuaire.registre.verify import verify_log
    from annuaire.settings import Settings
    from annuaire.store.engine import make_engine

    listed = paths.read_text("utf-8").split()
    with real_server() as real, unlogged_server() as unlogged, floor_server() as floor:
        servers = {"logged": real, "unlogged": unlogged, "floor": floor}
        differing = _identical(real, [unlogged, floor], listed[:50])
        for server in servers.values():
            run_wrk(server.port, paths, 1.0, connections, scratch)
        before, floor_before = _log_size(database_url), _floor_rows(database_url)
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in SERVERS}
        for order in _orders():
            for name in order:
                server = servers[name]
                figures = run_wrk(server.port, paths, seconds, connections, scratch, server.pid)
                runs[name].append(figures)
        after, floor_after = _log_size(database_url), _floor_rows(database_url)
    settings = Settings(database_url=database_url, environment="development")
    engine = make_engine(settings)
    try:
        with engine.connect() as connection:
            verification = verify_log(connection, load_keys(settings))
    finally:
        engine.dispose()
    logged_rps = _rps(runs["logged"])
    unlogged_rps = _rps(runs["unlogged"])
    floor_rps = _rps(runs["floor"])
    logged_seconds = sum(r["duration_us"] for r in runs["logged"]) / 1e6
    return {
        "paths": len(listed),
        "identical": not differing,
        "differing": differing,
        "seconds_per_run": seconds,
        "connections": connections,
        "logged_rps": logged_rps,
        "unlogged_rps": unlogged_rps,
        "overhead": added_time(unlogged_rps, logged_rps),
        "overhead_rounds": [
            added_time(b["rps"], a["rps"])
            for a, b in zip(runs["logged"], runs["unlogged"], strict=True)
        ],
        "logged_ms": 1000 / logged_rps * connections,
        "unlogged_ms": 1000 / unlogged_rps * connections,
        "floor_rps": floor_rps,
        "floor_overhead": added_time(unlogged_rps, floor_rps),
        "floor_rounds": [
            added_time(b["rps"], a["rps"])
            for a, b in zip(runs["floor"], runs["unlogged"], strict=True)
        ],
        "floor_rows_written": floor_after - floor_before,
        "floor_requests": sum(r["requests"] for r in runs["floor"]),
        "entries_written": after[0] - before[0],
        "subject_rows_written": after[1] - before[1],
        "lists_stored": after[2],
        "entries_per_s": (after[0] - before[0]) / max(logged_seconds, 1e-9),
        "errors": sum(r["errors"] for rs in runs.values() for r in rs),
        "verified": verification.ok,
        "verification": verification.summary(),
        "runs": runs,
    }


def _rps(runs: list[dict[str, Any]]) -> float:
    return sum(r["requests"] for r in runs) / (sum(r["duration_us"] for r in runs) / 1e6)


def report_flowlog_overhead(flow: dict[str, Any]) -> list[dict[str, Any]]:
    """Print the section's table; return its target."""
    same = "byte-identical" if flow["identical"] else "DIFFERENT: " + ", ".join(flow["differing"])
    print(
        f"\nFlow log (RGPD), 1 worker, page of 100 persons: bodies with the log, without it and "
        f"with the floor entry {same}; wrk {flow['connections']} connections, {ROUNDS} rounds of "
        f"{flow['seconds_per_run']:g} s per server, orders rotated"
    )
    spread = [100 * o for o in flow["overhead_rounds"]]
    print(
        f"  without the log {flow['unlogged_rps']:,.0f} req/s ({flow['unlogged_ms']:.2f} ms/req), "
        f"with it {flow['logged_rps']:,.0f} req/s ({flow['logged_ms']:.2f} ms/req): request time "
        f"+{100 * flow['overhead']:.1f} % (rounds {min(spread):.1f} to {max(spread):.1f} %), "
        f"{flow['errors']} errors"
    )
    floor = [100 * o for o in flow["floor_rounds"]]
    print(
        f"  floor (bench/_floor_app.py: the page's own statement inserts one row, no pseudonyms, "
        f"no chain) {flow['floor_rps']:,.0f} req/s: request time "
        f"+{100 * flow['floor_overhead']:.1f} % (rounds {min(floor):.1f} to {max(floor):.1f} %); "
        f"{flow['floor_rows_written']:,} rows of 100 persons, "
        f"{flow['floor_requests']:,} requests"
    )
    print(
        f"  written under load: {flow['entries_written']:,} entries "
        f"({flow['entries_per_s']:,.0f}/s) naming {flow['subject_rows_written']:,} persons "
        f"in {flow['lists_stored']:,} distinct lists of persons; "
        f"{flow['verification']}"
    )
    return [
        {
            "target": "flow log: page-read request time + <= 15 %",
            "value": flow["overhead"],
            "pass": flow["overhead"] <= FLOWLOG_TARGET and flow["verified"] and flow["identical"],
        }
    ]
