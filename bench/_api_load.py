"""Load generators of the API benchmark, run by bench/api.py as child processes.

    python bench/_api_load.py open-loop --port P --paths FILE --rate R --duration S [--warmup S]
    python bench/_api_load.py ndjson --url URL

Each prints one JSON line on stdout.

``open-loop`` sends GET requests at a fixed rate, whatever the server does: request *k* is due at
``start + k / rate`` and its latency is measured from that due time, not from when a connection
was free to send it. Requests go over a fixed pool of persistent keep-alive connections; when
every connection is busy, due requests wait in a queue and that wait counts in their latency
(no coordinated omission, unlike a closed loop whose latencies at saturation mostly measure its
own queue). Responses are read by ``Content-Length`` (the measured routes never chunk).

``ndjson`` streams one URL with ``Accept: application/x-ndjson`` and counts the lines.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path
from typing import Any

__all__ = ["open_loop", "stream_ndjson"]

_NDJSON = "application/x-ndjson"


async def _read_response(reader: asyncio.StreamReader) -> int:
    """Read one HTTP/1.1 response with a Content-Length body; return its status."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
            break
    if length:
        await reader.readexactly(length)
    return status


async def open_loop(
    port: int,
    paths: list[str],
    rate: float,
    duration: float,
    warmup: float,
    connections: int,
    host: str = "127.0.0.1",
) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    requests = [
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: application/json\r\n\r\n".encode()
        for path in paths
    ]
    due_queue: asyncio.Queue[tuple[float, int] | None] = asyncio.Queue()
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    failures: list[str] = []
    total = int(rate * (warmup + duration))
    start = loop.time() + 0.2
    measured_from = start + warmup

    async def client() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while (item := await due_queue.get()) is not None:
                due, k = item
                writer.write(requests[k % len(requests)])
                try:
                    status = await _read_response(reader)
                except (OSError, asyncio.IncompleteReadError, ValueError) as error:
                    failures.append(repr(error))
                    return
                if due >= measured_from:
                    latencies.append(loop.time() - due)
                    statuses[status] = statuses.get(status, 0) + 1
        finally:
            writer.close()

    clients = [asyncio.create_task(client()) for _ in range(connections)]
    for k in range(total):
        due = start + k / rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        due_queue.put_nowait((due, k))
    sent_by = loop.time()
    for _ in clients:
        due_queue.put_nowait(None)
    # A server far behind the rate would keep the queue busy for long: bound the drain.
    _, pending = await asyncio.wait(clients, timeout=max(10.0, duration))
    for task in pending:
        task.cancel()
    unanswered = due_queue.qsize() + len(pending)
    latencies.sort()

    def percentile(p: float) -> float | None:
        if not latencies:
            return None
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000

    return {
        "rate": rate,
        "duration_s": duration,
        "connections": connections,
        "scheduled": total,
        "measured": len(latencies),
        "achieved_rate": len(latencies) / duration,
        "send_lag_ms": max(0.0, sent_by - (start + (total - 1) / rate)) * 1000,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "failures": failures[:5],
        "unanswered": unanswered,
        "p50_ms": percentile(0.50),
        "p90_ms": percentile(0.90),
        "p99_ms": percentile(0.99),
        "max_ms": latencies[-1] * 1000 if latencies else None,
    }


def stream_ndjson(url: str) -> dict[str, Any]:
    import httpx

    lines = size = 0
    started = time.perf_counter()
    first_byte: float | None = None
    with (
        httpx.Client(timeout=httpx.Timeout(60.0)) as client,
        client.stream("GET", url, headers={"Accept": _NDJSON}) as response,
    ):
        status = response.status_code
        media_type = response.headers.get("content-type", "")
        for chunk in response.iter_bytes(1 << 16):
            if first_byte is None:
                first_byte = time.perf_counter() - started
            lines += chunk.count(b"\n")
            size += len(chunk)
    return {
        "status": status,
        "content_type": media_type,
        "lines": lines,
        "bytes": size,
        "seconds": time.perf_counter() - started,
        "first_byte_s": first_byte,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    modes = parser.add_subparsers(dest="mode", required=True)
    fixed = modes.add_parser("open-loop")
    fixed.add_argument("--port", type=int, required=True)
    fixed.add_argument("--paths", type=Path, required=True, help="one request path a line")
    fixed.add_argument("--rate", type=float, required=True, help="requests per second")
    fixed.add_argument("--duration", type=float, default=8.0)
    fixed.add_argument("--warmup", type=float, default=1.0)
    fixed.add_argument("--connections", type=int, default=16)
    export = modes.add_parser("ndjson")
    export.add_argument("--url", required=True)
    args = parser.parse_args()

    if args.mode == "ndjson":
        print(json.dumps(stream_ndjson(args.url)))
        return
    paths = args.paths.read_text(encoding="utf-8").split()
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass
    figures = asyncio.run(
        open_loop(args.port, paths, args.rate, args.duration, args.warmup, args.connections)
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
