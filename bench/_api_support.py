"""Plumbing of the API benchmark: its PostgreSQL database, server processes, wrk, RSS sampling.

- :func:`prepare_database` gives the URL of a database holding the seeded académie, importing
  it only when the database's marker (a ``COMMENT ON DATABASE``: seed, pupils, degree, a hash of
  the sample generator's sources, the schema head) differs from what is asked; when only the
  schema head moved, it migrates the database in place (``aiguillage db upgrade``) instead. It
  only ever creates, migrates or drops the one database it is given, whose name must contain
  ``bench``.
- :class:`Server` runs a uvicorn server in its own process group; :func:`stop_all` ends every
  server still running (bench/api.py calls it on exit, error, Ctrl-C or SIGTERM).
- :func:`run_wrk` drives wrk (closed loop) round-robin over a file of request paths.
- :class:`RssSampler` follows a process's resident memory from a thread; :class:`CpuMeter`
  splits the CPU used during a measurement between the server, PostgreSQL, the load generator
  and everything else on the machine (other workloads skew the figures: it shows when).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

__all__ = [
    "BENCH",
    "ROOT",
    "CpuMeter",
    "RssSampler",
    "Server",
    "SessionCounter",
    "free_port",
    "machine_busy",
    "prepare_database",
    "run_wrk",
    "stop_all",
]

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
_BIN = Path(sys.executable).parent


# -- database ---------------------------------------------------------------------------------


def _generator_fingerprint() -> str:
    """Hash of the sample generator's code and word lists: a new generator, a new académie."""
    digest = hashlib.sha256()
    package = ROOT / "connectors" / "sample"
    for path in sorted(package.rglob("*")):
        if path.is_file() and path.suffix in (".py", ".txt", ".json", ".csv"):
            digest.update(str(path.relative_to(package)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _schema_head() -> str:
    from annuaire.store.migrate import head_revision

    return head_revision() or "none"


def _sample_folder(workdir: Path, pupils: int, seed: int) -> Path:
    """The generated Complet, shared with bench/aaf_import.py when seeds agree."""
    from connectors.sample import generate_academie

    folder = workdir / f"complet-{pupils}"
    manifest = folder / ".sample-manifest.json"
    if manifest.exists():
        base = json.loads(manifest.read_text(encoding="utf-8"))["base"]
        if (base["pupils"], base["seed"], base["degree"]) == (pupils, seed, "2d"):
            return folder
        folder = workdir / f"complet-{pupils}-seed{seed}"
        manifest = folder / ".sample-manifest.json"
    if not manifest.exists():
        if folder.exists():  # an interrupted generation: its manifest is written last
            shutil.rmtree(folder)
        print(f"generating {pupils:,} pupils (seed {seed}) into {folder} ...", flush=True)
        generate_academie(folder, pupils=pupils, seed=seed, degree="2d")
    return folder


def _admin_conninfo(url: str) -> tuple[str, str]:
    """(conninfo of the server's ``postgres`` database, name of the bench database)."""
    params = conninfo_to_dict(url)
    name = str(params.get("dbname") or "")
    if "bench" not in name:
        raise SystemExit(f"refusing to manage database {name!r}: its name must contain 'bench'")
    params["dbname"] = "postgres"
    return make_conninfo(**{k: str(v) for k, v in params.items() if v is not None}), name


def _marker(admin: psycopg.Connection[Any], name: str) -> str | None:
    row = admin.execute(
        "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s",
        (name,),
    ).fetchone()
    if row is None:
        return None
    return str(row[0] or "")


def prepare_database(
    url: str, workdir: Path, *, pupils: int, seed: int, fresh: bool
) -> dict[str, Any]:
    """Make ``url`` hold the seeded 2D académie; return its marker (plus ``reused``)."""
    wanted = {
        "pupils": pupils,
        "seed": seed,
        "degree": "2d",
        "generator": _generator_fingerprint(),
        "schema": _schema_head(),
    }
    marker = json.dumps(wanted, sort_keys=True)
    conninfo, name = _admin_conninfo(url)
    with psycopg.connect(conninfo, autocommit=True) as admin:
        found = _marker(admin, name)
        if found == marker and not fresh:
            print(f"reusing database {name} ({pupils:,} pupils, seed {seed})", flush=True)
            return {**wanted, "reused": True}
        older = _older_schema(found, wanted)
        if older is not None and not fresh and _upgrade_schema(url, workdir, pupils, older):
            _set_marker(admin, name, marker)
            return {**wanted, "reused": True, "upgraded_from": older}
        reason = "--fresh" if fresh else ("new" if found is None else "marker differs")
        print(f"building database {name} ({reason}) ...", flush=True)
        ident = sql.Identifier(name)
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(ident))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(ident))

    folder = _sample_folder(workdir, pupils, seed)
    env = {**os.environ, "AIGUILLAGE_DATABASE_URL": url}
    log = workdir / f"api-import-{pupils}.log"
    started = time.perf_counter()
    with log.open("w", encoding="utf-8") as output:
        for argv in (["db", "upgrade"], ["import", "aaf", str(folder)]):
            subprocess.run(
                [str(_BIN / "aiguillage"), *argv],
                check=True,
                env=env,
                cwd=ROOT,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
    print(f"imported in {time.perf_counter() - started:.0f} s (log: {log})", flush=True)
    with psycopg.connect(url, autocommit=True) as database:
        # What autovacuum would have done by the time a real API serves this data.
        database.execute("VACUUM ANALYZE")
    with psycopg.connect(conninfo, autocommit=True) as admin:
        _set_marker(admin, name, marker)
    return {**wanted, "reused": False}


def _set_marker(admin: psycopg.Connection[Any], name: str, marker: str) -> None:
    admin.execute(
        sql.SQL("COMMENT ON DATABASE {} IS {}").format(sql.Identifier(name), sql.Literal(marker))
    )


def _older_schema(found: str | None, wanted: dict[str, Any]) -> str | None:
    """The schema revision of a database that differs from ``wanted`` by its schema only."""
    try:
        marker = json.loads(found or "")
    except ValueError:
        return None
    if not isinstance(marker, dict) or set(marker) != set(wanted):
        return None
    if any(marker[k] != v for k, v in wanted.items() if k != "schema"):
        return None
    return str(marker["schema"])


def _upgrade_schema(url: str, workdir: Path, pupils: int, older: str) -> bool:
    """Migrate the académie to the schema head in place, as a deployment would; False if not.

    The data stay those the import wrote; only a migration that fails (a revision the code
    does not descend from) makes the caller rebuild the database.
    """
    name = conninfo_to_dict(url).get("dbname")
    print(f"upgrading the schema of database {name} from {older} (data kept) ...", flush=True)
    log = workdir / f"api-upgrade-{pupils}.log"
    with log.open("w", encoding="utf-8") as output:
        done = subprocess.run(
            [str(_BIN / "aiguillage"), "db", "upgrade"],
            env={**os.environ, "AIGUILLAGE_DATABASE_URL": url},
            cwd=ROOT,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    if done.returncode != 0:
        print(f"schema upgrade failed (log: {log}): rebuilding", flush=True)
        return False
    return True


# -- servers ----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


_RUNNING: set[Server] = set()


@dataclass(eq=False)
class Server:
    """One uvicorn server (and its workers) in its own process group."""

    name: str
    argv: list[str]
    port: int
    log: Path
    env: Mapping[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, ready_path: str, workers: int, timeout: float = 60.0) -> Server:
        with self.log.open("wb") as output:
            self.process = subprocess.Popen(
                self.argv,
                env={**os.environ, **self.env},
                cwd=ROOT,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        _RUNNING.add(self)
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=5.0) as client:
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(f"{self.name} exited: see {self.log}")
                try:
                    if client.get(self.base + ready_path).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{self.name} not ready after {timeout:.0f} s: {self.log}")
                time.sleep(0.1)
            # With several workers the first answer proves one of them only.
            while workers > 1 and len(self.workers()) < workers:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{self.name}: {workers} workers did not come up")
                time.sleep(0.1)
        return self

    def workers(self) -> list[psutil.Process]:
        """The processes serving requests: the server itself, or its worker children."""
        parent = psutil.Process(self.pid)
        children = [c for c in parent.children() if "spawn_main" in " ".join(c.cmdline())]
        return children or [parent]

    def stop(self) -> None:
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            except ProcessLookupError:
                pass
        _RUNNING.discard(self)

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


def stop_all() -> None:
    for server in list(_RUNNING):
        server.stop()


# -- wrk --------------------------------------------------------------------------------------

_WRK_SCRIPT = """\
-- Round-robin over the request paths of a file (one a line), then a JSON summary.
-- args: paths file, start offset, optional file of extra headers ("Name: value" lines).
local paths, count, next_index = {}, 0, 0
local headers = {["Accept"] = "application/json"}

function init(args)
  for line in io.lines(args[1]) do
    if #line > 0 then
      count = count + 1
      paths[count] = line
    end
  end
  next_index = tonumber(args[2] or "0") % count
  if args[3] then
    for line in io.lines(args[3]) do
      local name, value = line:match("^([^:]+):%s*(.-)%s*$")
      if name then headers[name] = value end
    end
  end
end

function request()
  next_index = next_index % count + 1
  return wrk.format("GET", paths[next_index], headers)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"bytes":%d,"connect":%d,"read":%d,"write":%d,' ..
    '"status":%d,"timeout":%d,"latency_p50_us":%d,"latency_p99_us":%d}\\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write,
    e.status, e.timeout, latency:percentile(50), latency:percentile(99)))
end
"""


def added_time(without_rps: float, with_rps: float) -> float:
    """What a feature adds to the request time, as a share of the request time without it: in a
    closed loop of a fixed number of connections a request takes ``connections / req/s``, so
    this is ``without / with - 1`` (``1 - with / without``, the share of throughput lost, reads
    lower: 18 % lost is 22 % added)."""
    return without_rps / with_rps - 1


def run_wrk(
    port: int,
    paths: Path,
    seconds: float,
    connections: int,
    script_dir: Path,
    server_pid: int | None = None,
    headers: Path | None = None,
) -> dict[str, Any]:
    """Closed-loop saturation: ``connections`` keep-alive connections, one wrk thread.

    ``headers`` names a file of ``Name: value`` lines sent with every request (besides
    ``Accept: application/json``), e.g. an ``Authorization`` header.
    """
    script = script_dir / "round_robin.lua"
    if not script.exists() or script.read_text(encoding="utf-8") != _WRK_SCRIPT:
        script.write_text(_WRK_SCRIPT, encoding="utf-8")
    argv = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{seconds:g}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        f"http://127.0.0.1:{port}",
        "--",
        str(paths),
        str(os.getpid() % 997),
        *([] if headers is None else [str(headers)]),
    ]
    with CpuMeter(server_pid) as meter:
        output = subprocess.run(argv, check=True, capture_output=True, text=True)
    figures: dict[str, Any] = json.loads(output.stdout.strip().splitlines()[-1])
    figures["cpu"] = meter.figures
    seconds_run = figures["duration_us"] / 1e6
    figures["rps"] = figures["requests"] / seconds_run
    figures["errors"] = sum(figures[k] for k in ("connect", "read", "write", "status", "timeout"))
    return figures


# -- memory -----------------------------------------------------------------------------------


class RssSampler:
    """Samples the resident set size of one process every ``interval`` seconds, from a thread."""

    def __init__(self, pid: int, interval: float = 0.02) -> None:
        self._process = psutil.Process(pid)
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.samples: list[int] = []

    def rss(self) -> int:
        return int(self._process.memory_info().rss)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.samples.append(self.rss())
            except psutil.Error:
                return
            self._stop.wait(self._interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def peak(self) -> int:
        return max(self.samples, default=0)


def _cpu_seconds(processes: list[psutil.Process]) -> dict[int, float]:
    seconds: dict[int, float] = {}
    for process in processes:
        with contextlib.suppress(psutil.Error):
            times = process.cpu_times()
            seconds[process.pid] = times.user + times.system
    return seconds


@dataclass(frozen=True)
class _CpuSnapshot:
    at: float
    server: dict[int, float]
    postgres: dict[int, float]
    #: CPU of the postgres backends that exited and were reaped (the postmaster's children).
    postgres_gone: float
    machine: float
    children: float


def _postgres_processes() -> tuple[list[psutil.Process], float]:
    processes = [p for p in psutil.process_iter(["name", "ppid"]) if p.info["name"] == "postgres"]
    pids = {p.pid for p in processes}
    gone = 0.0
    for process in processes:
        if process.info["ppid"] not in pids:  # a postmaster
            with contextlib.suppress(psutil.Error):
                times = process.cpu_times()
                gone += times.children_user + times.children_system
    return processes, gone


class CpuMeter:
    """Cores used during a block by a server's process tree, PostgreSQL, our children, the rest.

    PostgreSQL is every ``postgres`` process of the machine (the bench's backends and anybody
    else's), including backends that started and exited meanwhile (a connection pool that
    closes and reopens connections costs PostgreSQL a process each time); "children" are the
    processes this one ran to completion meanwhile (wrk, the load generator); "other" is what
    the machine used beyond those.
    """

    def __init__(self, server_pid: int | None) -> None:
        self._server_pid = server_pid
        self.figures: dict[str, float] = {}

    def _snapshot(self) -> _CpuSnapshot:
        tree: list[psutil.Process] = []
        if self._server_pid is not None:
            root = psutil.Process(self._server_pid)
            tree = [root, *root.children(recursive=True)]
        postgres, postgres_gone = _postgres_processes()
        machine = psutil.cpu_times()
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return _CpuSnapshot(
            at=time.perf_counter(),
            server=_cpu_seconds(tree),
            postgres=_cpu_seconds(postgres),
            postgres_gone=postgres_gone,
            machine=machine.user + machine.nice + machine.system + machine.irq + machine.softirq,
            children=usage.ru_utime + usage.ru_stime,
        )

    def __enter__(self) -> CpuMeter:
        self._before = self._snapshot()
        return self

    def __exit__(self, *_: object) -> None:
        after, before = self._snapshot(), self._before
        elapsed = after.at - before.at

        def used(now: dict[int, float], then: dict[int, float]) -> float:
            # A process born meanwhile counts from zero; one that died is counted below.
            return sum(v - then.get(pid, 0.0) for pid, v in now.items())

        server = used(after.server, before.server) / elapsed
        # Exited backends: the postmaster's children total grew by their whole life, of which
        # the part before the first snapshot was already counted.
        died = sum(v for pid, v in before.postgres.items() if pid not in after.postgres)
        postgres_seconds = used(after.postgres, before.postgres)
        postgres_seconds += after.postgres_gone - before.postgres_gone - died
        postgres = max(0.0, postgres_seconds) / elapsed
        machine = (after.machine - before.machine) / elapsed
        children = (after.children - before.children) / elapsed
        self.figures = {
            "server": server,
            "postgres": postgres,
            "children": children,
            "machine": machine,
            "other": max(0.0, machine - server - postgres - children),
        }


class SessionCounter:
    """Sessions ever opened on one database (``pg_stat_database.sessions``), read on demand.

    PostgreSQL publishes a backend's count within about a second (at once when it exits);
    this counter's own connection is opened once, before anything is measured.
    """

    def __init__(self, url: str) -> None:
        self._connection = psycopg.connect(url, autocommit=True)

    def count(self) -> int:
        row = self._connection.execute(
            "SELECT sessions FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()
        return int(row[0]) if row else 0

    def __enter__(self) -> SessionCounter:
        return self

    def __exit__(self, *_: object) -> None:
        self._connection.close()


def machine_busy(seconds: float = 2.0) -> float:
    """Cores the machine keeps busy while the bench runs nothing."""
    with CpuMeter(None) as meter:
        time.sleep(seconds)
    return meter.figures["machine"]
