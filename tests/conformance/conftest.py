"""A small generated académie imported once, and real servers (uvicorn subprocesses) over it.

Everything goes through the ``aiguillage`` command, as an operator would do it: ``sample
academie`` writes the complet and two successive deltas, ``db upgrade`` and ``import aaf``
fill a SQLite template once per session. Each server gets its own copy of the template, so a
test that mutates its data (the kit's ``--mutate-command``) leaves the others alone.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests._personal_data_guard import record_output

PROJECT_ROOT = Path(__file__).resolve().parents[2]
AIGUILLAGE = [sys.executable, "-m", "annuaire"]
PUPILS = 400
SEED = 21
#: Deltas generated in sequence (each from the previous state), applied one per mutation.
DELTAS = 2


@dataclass(frozen=True)
class Academie:
    complet: Path
    deltas: list[Path]
    template: Path


@dataclass(frozen=True)
class Server:
    base_url: str
    database_url: str
    folder: Path


def aiguillage(*args: str, database_url: str | None = None) -> str:
    """Run the ``aiguillage`` command; its output, or a test failure showing it."""
    env = dict(os.environ)
    if database_url is not None:
        env["AIGUILLAGE_DATABASE_URL"] = database_url
    done = subprocess.run(
        [*AIGUILLAGE, *args], env=env, cwd=PROJECT_ROOT, capture_output=True, text=True
    )
    record_output(f"aiguillage {args[0]} stderr (tests/conformance)", done.stderr)
    assert done.returncode == 0, f"aiguillage {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="session")
def academie(tmp_path_factory: pytest.TempPathFactory) -> Academie:
    root = tmp_path_factory.mktemp("conformance")
    complet = root / "complet"
    aiguillage(
        "sample", "academie", "--out", str(complet), "--pupils", str(PUPILS),
        "--seed", str(SEED), "--degree", "2d",
    )  # fmt: skip
    deltas, previous = [], complet
    for number in range(1, DELTAS + 1):
        delta = root / f"delta{number}"
        aiguillage(
            "sample", "academie", "--out", str(delta), "--delta-from", str(previous),
            "--seed", str(SEED + number),
        )  # fmt: skip
        deltas.append(delta)
        previous = delta
    template = root / "template.db"
    url = f"sqlite:///{template}"
    aiguillage("db", "upgrade", database_url=url)
    aiguillage("import", "aaf", str(complet), database_url=url)
    return Academie(complet, deltas, template)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def copy_database(template: Path, target: Path) -> str:
    with (
        contextlib.closing(sqlite3.connect(template)) as source,
        contextlib.closing(sqlite3.connect(target)) as copy,
    ):
        source.backup(copy)
    return f"sqlite:///{target}"


@contextlib.contextmanager
def serve(folder: Path, database_url: str, command: list[str]) -> Iterator[Server]:
    """Run ``command`` (a uvicorn server on ``{port}``) until /health answers; stop it after."""
    port = free_port()
    env = {
        **os.environ,
        "AIGUILLAGE_DATABASE_URL": database_url,
        "AIGUILLAGE_API_ACCESS_LOG": "false",
        "AIGUILLAGE_ENVIRONMENT": "test",
        "AIGUILLAGE_SIGNING_KEY_FILE": str(folder / "hub-key.json"),
    }
    log = folder / "server.log"
    with log.open("wb") as output:
        server = subprocess.Popen(
            [part.format(port=port) for part in command],
            env=env,
            cwd=PROJECT_ROOT,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert server.poll() is None, f"the server stopped:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"no /health after 30 s:\n{log.read_text()}"
            try:
                if httpx.get(f"{base_url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        yield Server(base_url, database_url, folder)
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        record_output(f"server {' '.join(command[2:4])} (tests/conformance)", log.read_bytes())


def served_copy(academie: Academie, folder: Path, command: list[str]) -> Iterator[Server]:
    url = copy_database(academie.template, folder / "served.db")
    with serve(folder, url, command) as server:
        yield server


@pytest.fixture(scope="module")
def conforming(tmp_path_factory: pytest.TempPathFactory, academie: Academie) -> Iterator[Server]:
    """``aiguillage serve`` over its own copy of the académie."""
    folder = tmp_path_factory.mktemp("conforming")
    yield from served_copy(academie, folder, [*AIGUILLAGE, "serve", "--port", "{port}"])


@dataclass(frozen=True)
class ClientServer:
    server: Server
    token: str


@pytest.fixture(scope="module")
def with_client(
    tmp_path_factory: pytest.TempPathFactory, academie: Academie
) -> Iterator[ClientServer]:
    """``aiguillage serve`` over its own copy of the académie, and the token of an ENT client
    whose contract is the académie's school, from the hub's ``/oauth/token`` as an editor gets
    it."""
    folder = tmp_path_factory.mktemp("with-client")
    url = copy_database(academie.template, folder / "served.db")
    uai = _first_uai(url)
    added = aiguillage(
        "clients", "add", "--name", "conformance", "--structure", uai,
        "--scope", "roster-core.readonly", "--activity", "alimentation-ent",
        database_url=url,
    )  # fmt: skip
    client_id = re.search(r"client_id: (\S+)", added)
    secret = re.search(r"client_secret: (\S+)", added)
    assert client_id and secret, added
    with serve(folder, url, [*AIGUILLAGE, "serve", "--port", "{port}"]) as server:
        issued = httpx.post(
            f"{server.base_url}/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=(client_id[1], secret[1]),
        )
        assert issued.status_code == 200, issued.text
        yield ClientServer(server, issued.json()["access_token"])


def _first_uai(database_url: str) -> str:
    path = database_url.removeprefix("sqlite:///")
    with contextlib.closing(sqlite3.connect(path)) as connection:
        return str(connection.execute("SELECT uai FROM structure ORDER BY uai").fetchone()[0])


def served_broken(
    factory: pytest.TempPathFactory, academie: Academie, app: str
) -> Iterator[Server]:
    """The app ``app`` of ``broken_app.py`` (a factory's name) under uvicorn, over its own copy
    of the académie."""
    folder = factory.mktemp(app)
    command = [
        sys.executable, "-m", "uvicorn", f"tests.conformance.broken_app:{app}",
        "--factory", "--port", "{port}", "--no-access-log", "--app-dir", str(PROJECT_ROOT),
    ]  # fmt: skip
    yield from served_copy(academie, folder, command)


def _broken_server(name: str, doc: str) -> Any:
    """The module fixture ``name``: ``served_broken`` of ``broken_app.create_<name>_app``
    (``doc`` says its defect)."""

    def serve(tmp_path_factory: pytest.TempPathFactory, academie: Academie) -> Iterator[Server]:
        yield from served_broken(tmp_path_factory, academie, f"create_{name}_app")

    serve.__doc__ = doc
    return pytest.fixture(scope="module", name=name)(serve)


broken = _broken_server("broken", "Problems served as application/json.")
renaming = _broken_server("renaming", "A person's ``usage_name`` served renamed.")
repeating = _broken_server("repeating", "Feed pages past seq 2,000 repeat an entry.")
overlapping = _broken_server(
    "overlapping",
    "Each page of /v1/persons repeats the last person of the page before.",
)
uncached = _broken_server("uncached", "If-None-Match ignored.")
shouting = _broken_server("shouting", "``status`` served outside its enum.")
forgetful = _broken_server("forgetful", "A change feed without its update entries.")
get_only = _broken_server("get_only", "HEAD refused.")
role_renaming = _broken_server(
    "role_renaming",
    "A member of a person's ``roles[]`` items served renamed.",
)
redirecting = _broken_server(
    "redirecting", "Trailing slashes redirected; a 405's Allow without HEAD."
)
unfiltered = _broken_server("unfiltered", "``modifiedSince`` ignored on /v1/persons.")
relative_instance = _broken_server(
    "relative_instance",
    "Problems whose ``instance`` leaves out the ``/v1`` of the request path.",
)


def mutate_command(server: Server, academie: Academie) -> str:
    """A shell command applying the next delta of the series to the server's database."""
    (server.folder / "next-delta").write_text("0")
    counter = shlex.quote(str(server.folder / "next-delta"))
    deltas = " ".join(shlex.quote(str(d)) for d in academie.deltas)
    python = shlex.quote(sys.executable)
    return (
        f"set -e; n=$(cat {counter}); echo $((n + 1)) > {counter}; "
        f"set -- {deltas}; shift $n; "
        f"AIGUILLAGE_DATABASE_URL={shlex.quote(server.database_url)} "
        f'{python} -m annuaire import aaf "$1" --allow-mass-removal'
    )
