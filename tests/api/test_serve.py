"""``aiguillage serve``: a real uvicorn server (two workers) whose printed examples work."""

from __future__ import annotations

import shlex
import subprocess
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
from tests.api._server import Served, running_server


@dataclass
class WithExamples:
    server: Served
    #: The example requests the server printed before it started.
    examples: list[str]
    #: The store it serves.
    database_url: str

    @property
    def base(self) -> str:
        return self.server.base


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, academie: Path) -> Iterator[WithExamples]:
    url = f"sqlite:///{tmp_path_factory.mktemp('serve') / 'served.db'}"
    settings = Settings(database_url=url)
    engine = make_engine(settings)
    upgrade(engine)
    import_aaf(engine, settings, [academie])
    engine.dispose()
    keys = tmp_path_factory.mktemp("keys")
    name = "aiguillage serve (tests/api/test_serve.py)"
    with running_server(url, keys, workers=2, name=name) as server:
        deadline = time.monotonic() + 10
        while len(examples := _examples(server)) < 4:  # printed before uvicorn starts
            assert time.monotonic() < deadline, "the server printed no examples"
            time.sleep(0.1)
        yield WithExamples(server, examples, url)


def _examples(server: Served) -> list[str]:
    return [line.strip() for line in list(server.output) if line.strip().startswith("curl ")]


def test_the_printed_examples_work_as_printed(served: WithExamples) -> None:
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


def test_two_workers_serve_concurrent_requests(served: WithExamples) -> None:
    with httpx.Client(base_url=served.base) as client:
        first = client.get("/v1/persons", params={"limit": 1000, "fields": "id"}).json()
        ids = [p["id"] for p in first["items"]]
    import concurrent.futures

    def fetch(person_id: str) -> int:
        return httpx.get(f"{served.base}/v1/persons/{person_id}").status_code

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(fetch, ids[:200]))
    assert statuses == [200] * min(200, len(ids))


def test_the_hubs_own_log_records_reach_the_servers_output(served: WithExamples) -> None:
    """A refused token is logged at INFO with its request id, in every worker (uvicorn
    configures only its own loggers: without the hub's, INFO records were dropped)."""
    for attempt in range(4):  # two workers: each answers some of the requests
        request_id = f"forged-token-{attempt}"
        answer = httpx.get(
            f"{served.base}/v1/persons",
            headers={"Authorization": "Bearer not.a.token", "X-Request-Id": request_id},
        )
        assert answer.status_code == 401
        assert served.server.printed(f"token refused (request {request_id})"), request_id


def _next_link(base: str) -> str:
    with httpx.Client(base_url=base) as client:
        answer = client.get(
            "/v1/persons", params={"limit": 1}, headers={"X-Forwarded-Proto": "https"}
        )
    assert answer.status_code == 200, answer.text
    return answer.headers["link"]


def test_behind_a_tls_proxy_on_the_same_host_links_say_https(served: WithExamples) -> None:
    """A proxy on the same host (127.0.0.1, believed by default) terminates TLS: the ``Link`` a
    client follows is the https URL it called, not the proxy's plain http hop."""
    assert _next_link(served.base).startswith("<https://127.0.0.1:")


def test_a_proxy_the_settings_do_not_name_is_not_believed(
    tmp_path: Path, served: WithExamples
) -> None:
    """With ``AIGUILLAGE_API_FORWARDED_ALLOW_IPS`` naming another proxy, a request from
    127.0.0.1 claiming https is not believed: the ``Link`` keeps the scheme of the connection."""
    name = "aiguillage serve, another proxy (tests/api/test_serve.py)"
    with running_server(
        served.database_url,
        tmp_path,
        workers=1,
        name=name,
        settings={"AIGUILLAGE_API_FORWARDED_ALLOW_IPS": "192.0.2.10"},
    ) as other:
        assert _next_link(other.base).startswith("<http://127.0.0.1:")
