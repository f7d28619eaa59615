"""``aiguillage serve`` as a real uvicorn server in a subprocess, for the tests that need one."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests._personal_data_guard import record_output

AIGUILLAGE = str(Path(sys.executable).with_name("aiguillage"))
#: How long a server may take to answer /health, and to stop on SIGTERM.
START_S = 30.0
STOP_S = 20.0


@dataclass
class Served:
    base: str
    process: subprocess.Popen[str]
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


@contextlib.contextmanager
def running_server(
    database_url: str,
    keys: Path,
    *,
    workers: int,
    name: str,
    settings: dict[str, str] | None = None,
) -> Iterator[Served]:
    """The hub served on ``database_url`` (development settings, dev tokens on, keys created in
    ``keys``, and ``settings``: environment variables) until the block ends; then it must stop
    on SIGTERM within :data:`STOP_S`, and what it printed goes to the personal-data guard under
    ``name``."""
    port = free_port()
    env = {
        **os.environ,
        "AIGUILLAGE_DATABASE_URL": database_url,
        "AIGUILLAGE_API_ACCESS_LOG": "false",
        "AIGUILLAGE_ENVIRONMENT": "development",
        "AIGUILLAGE_DEV_TOKENS": "true",
        "AIGUILLAGE_DEV_KEY_FILE": str(keys / "dev-key.json"),
        "AIGUILLAGE_SIGNING_KEY_FILE": str(keys / "signing-key.json"),
        **(settings or {}),
    }
    server = subprocess.Popen(
        [AIGUILLAGE, "serve", "--port", str(port), "--workers", str(workers)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    printed: list[str] = []
    reader = threading.Thread(target=printed.extend, args=(server.stdout,), daemon=True)
    reader.start()
    served = Served(f"http://127.0.0.1:{port}", server, printed)
    stopped = False
    try:
        deadline = time.monotonic() + START_S
        while True:
            try:
                if httpx.get(f"{served.base}/health").status_code == 200:
                    break
            except httpx.TransportError:
                assert server.poll() is None, "the server stopped:\n" + "".join(printed)
                assert time.monotonic() < deadline, f"no answer after {START_S:.0f} s"
                time.sleep(0.2)
        yield served
    finally:
        server.terminate()
        try:
            server.wait(timeout=STOP_S)
            stopped = True
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        reader.join(timeout=STOP_S)
        output = "".join(printed)
        record_output(name, output)
    assert stopped, f"{name} did not stop within {STOP_S:.0f} s of SIGTERM"
    assert "Traceback" not in output, output[output.index("Traceback") :][:4000]
