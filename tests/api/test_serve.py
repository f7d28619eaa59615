"""``aiguillage serve``: a real uvicorn server (two workers) whose printed examples work."""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson
import pytest

from annuaire.importing import import_aaf
from annuaire.settings import Settings
from annuaire.store import make_engine
from annuaire.store.migrate import upgrade
from tests._personal_data_guard import record_output

AIGUILLAGE = str(Path(sys.executable).with_name("aiguillage"))


@dataclass
class Served:
    base: str
    examples: list[str]
    #: What the server printed so far (read by a thread while it runs).
    output: list[str]

    def printed(self, text: str, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(text in line for line in list(self.output)):
                return True
            time.sleep(0.1)
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, academie: Path) -> Iterator[Served]:
    url = f"sqlite:///{tmp_path_factory.mktemp('serve') / 'served.db'}"
    settings = Settings(database_url=url)
    engine = make_engine(settings)
    upgrade(engine)
    import_aaf(engine, settings, [academie])
    engine.dispose()
    port = free_port()
    keys = tmp_path_factory.mktemp("keys")
    env = {
        **os.environ,
        "AIGUILLAGE_DATABASE_URL": url,
        "AIGUILLAGE_API_ACCESS_LOG": "false",
        "AIGUILLAGE_ENVIRONMENT": "development",
        "AIGUILLAGE_DEV_TOKENS": "true",
        "AIGUILLAGE_DEV_KEY_FILE": str(keys / "dev-key.json"),
        "AIGUILLAGE_SIGNING_KEY_FILE": str(keys / "signing-key.json"),
    }
    server = subprocess.Popen(
        [AIGUILLAGE, "serve", "--port", str(port), "--workers", "2"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert server.stdout is not None
    base = f"http://127.0.0.1:{port}"
    printed: list[str] = []
    reader: threading.Thread | None = None
    try:
        examples: list[str] = []
        while len(examples) < 4:  # printed before uvicorn starts
            line = server.stdout.readline()
            printed.append(line)
            assert line, "the server stopped before printing its examples"
            if line.strip().startswith("curl "):
                examples.append(line.strip())
        reader = threading.Thread(target=printed.extend, args=(server.stdout,), daemon=True)
        reader.start()
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/health").status_code == 200:
                    break
            except httpx.TransportError:
                assert server.poll() is None and time.monotonic() < deadline, "server down"
                time.sleep(0.2)
        yield Served(base, examples, printed)
    finally:
        server.terminate()
        server.wait(timeout=20)
        if reader is not None:
            reader.join(timeout=20)
        output = "".join(printed)
        record_output("aiguillage serve (tests/api/test_serve.py)", output)
    assert "Traceback" not in output


def test_the_printed_examples_work_as_printed(served: Served) -> None:
    assert all(served.base in line for line in served.examples)
    for line in served.examples:
        result = subprocess.run(shlex.split(line), capture_output=True, check=True, timeout=30)
        body = result.stdout.strip()
        if "Bearer" in line:  # as a guardian: themself and their children only
            seen = orjson.loads(body)["items"]
            assert 2 <= len(seen) <= 6 and any(
                r["role"] == "pupil" for p in seen for r in p["roles"]
            )
        elif "x-ndjson" in line:
            rows = [orjson.loads(x) for x in body.splitlines()]
            assert rows and all(set(r) == {"id", "code", "label"} for r in rows)
        else:
            page = orjson.loads(body)
            assert page["items"], line


def test_two_workers_serve_concurrent_requests(served: Served) -> None:
    with httpx.Client(base_url=served.base) as client:
        first = client.get("/v1/persons", params={"limit": 1000, "fields": "id"}).json()
        ids = [p["id"] for p in first["items"]]
    import concurrent.futures

    def fetch(person_id: str) -> int:
        return httpx.get(f"{served.base}/v1/persons/{person_id}").status_code

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(fetch, ids[:200]))
    assert statuses == [200] * min(200, len(ids))


def test_the_hubs_own_log_records_reach_the_servers_output(served: Served) -> None:
    """A refused token is logged at INFO with its request id, in every worker (uvicorn
    configures only its own loggers: without the hub's, INFO records were dropped)."""
    for attempt in range(4):  # two workers: each answers some of the requests
        request_id = f"forged-token-{attempt}"
        answer = httpx.get(
            f"{served.base}/v1/persons",
            headers={"Authorization": "Bearer not.a.token", "X-Request-Id": request_id},
        )
        assert answer.status_code == 401
        assert served.printed(f"token refused (request {request_id})"), request_id
