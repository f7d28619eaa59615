"""A client that goes away in the middle of an NDJSON export, against a real server.

The export holds a database snapshot (a transaction) and a read-ahead thread while it streams.
When the client is gone, both must be released at once: the transaction ends (PostgreSQL shows
no session "idle in transaction"), no more parts are logged, the server keeps serving and stops
on SIGTERM. Before, the export's generator was left to the garbage collector, which once ran
it in the read-ahead thread in the middle of a fetch: the connection stayed "idle in
transaction" for good and the server could not stop.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from sqlalchemy import text

from annuaire.api.listing import EXPORT_PART, NDJSON
from annuaire.importing import import_aaf
from annuaire.settings import Settings
from annuaire.store import make_engine
from annuaire.store.migrate import upgrade
from connectors.sample import generate_academie
from tests.api._server import Served, running_server
from tests.conftest import throwaway_pg_database

#: Enough persons (about 11,000, 8 MB of NDJSON) that the export cannot sit whole in the
#: sockets' buffers: the server is still streaming when the client leaves.
PUPILS = 4000


@pytest.fixture(scope="module")
def large_academie(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("large-academie") / "complet"
    generate_academie(out, pupils=PUPILS, seed=5, degree="2d")
    return out


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def exporting(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    large_academie: Path,
) -> Iterator[tuple[Served, str]]:
    tmp_path = tmp_path_factory.mktemp("export")
    database = (
        throwaway_pg_database()
        if request.param == "postgres"
        else contextlib.nullcontext(f"sqlite:///{tmp_path / 'export.db'}")
    )
    with database as url:
        settings = Settings(database_url=url)
        engine = make_engine(settings)
        upgrade(engine)
        import_aaf(engine, settings, [large_academie])
        engine.dispose()
        name = f"aiguillage serve (tests/api/test_export_disconnect.py, {request.param})"
        with running_server(url, tmp_path, workers=1, name=name) as server:
            yield server, url


def _cut_export(base: str, request_id: str, lines_wanted: int) -> int:
    """Ask for the NDJSON export with a small receive buffer, read ``lines_wanted`` lines (none:
    leave at once), then reset the connection (SO_LINGER 0); the lines read."""
    host, port = base.removeprefix("http://").split(":")
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.connect((host, int(port)))
        sock.sendall(
            b"GET /v1/persons HTTP/1.1\r\nHost: " + host.encode() + b"\r\n"
            b"Accept: application/x-ndjson\r\nX-Request-Id: " + request_id.encode() + b"\r\n\r\n"
        )
        received = b""
        while received.count(b"\n") < lines_wanted:
            chunk = sock.recv(65536)
            assert chunk, "the server ended the export before the client left"
            received += chunk
        return received.count(b"\n")


def _exported(server: Served) -> int:
    """The lines of a whole export of the persons' ids."""
    answer = httpx.get(
        f"{server.base}/v1/persons?fields=id", headers={"Accept": NDJSON}, timeout=60
    )
    assert answer.status_code == 200
    return answer.text.count("\n")


def _export_entries(url: str, request_id: str) -> int:
    engine = make_engine(Settings(database_url=url))
    try:
        with engine.connect() as connection:
            query = text(
                "SELECT count(*) FROM flow_entry WHERE request_id = :id AND operation = 'export'"
            )
            return int(connection.execute(query, {"id": request_id}).scalar_one())
    finally:
        engine.dispose()


def _idle_in_transaction(url: str) -> int:
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(url) as connection:
        row = connection.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s "
            "AND state = 'idle in transaction' AND pid <> pg_backend_pid()",
            (name,),
        ).fetchone()
    return int(row[0]) if row else 0


def _settled(read: Callable[[], int], timeout: float = 10.0) -> int:
    """The value ``read()`` returns once it stopped changing for a second."""
    deadline = time.monotonic() + timeout
    last, since = read(), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.2)
        now = read()
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= 1.0:
            return last
    raise AssertionError(f"still changing after {timeout:.0f} s: {last}")


@pytest.mark.parametrize("lines_read", [0, 2 * EXPORT_PART], ids=["at-once", "after-2-parts"])
def test_a_client_leaving_mid_export_releases_the_snapshot_and_stops_the_log(
    exporting: tuple[Served, str], lines_read: int
) -> None:
    server, url = exporting
    request_id = f"export-cut-after-{lines_read}"
    total = _exported(server)
    assert total > 8 * EXPORT_PART, "the académie is too small for this test"
    parts = -(-total // EXPORT_PART)

    read = _cut_export(server.base, request_id, lines_read)
    entries = _settled(lambda: _export_entries(url, request_id))
    # The parts the client read, the ones in the sockets' buffers, the one being logged.
    assert read // EXPORT_PART <= entries < parts
    if url.startswith("postgresql"):
        assert _settled(lambda: _idle_in_transaction(url)) == 0

    assert _exported(server) == total  # the server still serves whole exports
