"""What token validation and the access rules cost a read (a section of bench/api.py).

An API client whose contract is one collège (the collège of median size, scopes
``roster-core.readonly`` and ``roster-demographics.readonly``: the fields the operator reads)
gets an access token minted with the hub's signing key, a key file under the bench's scratch
folder given to the server too. One worker of the real server then answers the SAME requests
with and without that token:

  (a) ``GET /v1/persons?structure=<UAI>&limit=100&cursor=C``, round-robin over every page of
      the collège;
  (b) ``GET /v1/persons/{id}``, round-robin over persons of the collège (up to 1,000, random).

Without a token (development, no issuer configured) the server serves the operator; with it, it
finds the token in its validation cache (the first request with the token, timed apart, read the
key file and verified the signature: JWKS and token caches are warm), resolves the client in the
request's connection (one small query) and ANDs the contract's row rule to every query. Every
measured request is first made both ways: the bodies must be the same, or the two variants would
not do the same work; but for the roles a person holds at other structures than the contract's,
which the client's rule leaves out of its person documents (compared as JSON, once those roles
are taken out of the operator's body).

Each pair: a 1 s wrk warm-up of each variant, then rounds of one run of each variant, ``seconds``
each, in the order plain/token, token/plain, plain/token... (ABBA: a drift of the machine weighs
on both variants alike; short runs, many rounds: on a small machine runs of the same variant
differ by several %), with the CPU split as for the other cases: 6 rounds for the page read,
4 for the single read. Overhead = what the token adds to the request time (plain req/s / token
req/s - 1, :func:`bench._api_support.added_time`) over all rounds (the spread of the rounds' own
overheads is shown too); the target (< 10 %) is on the page read.
The client is deleted at the end, also on error or Ctrl-C; clients an interrupted run left
(same name) are deleted before.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import orjson
import psycopg

from bench._api_support import Server, added_time, run_wrk

__all__ = ["AUTH_TARGET", "measure_token_overhead", "report_token_overhead", "server_env"]

AUTH_TARGET = 0.10
CLIENT_NAME = "bench/api.py token overhead"
SCOPES = ("roster-core.readonly", "roster-demographics.readonly")
PERSON_IDS = 1000
PAGE_ROUNDS, PERSON_ROUNDS = 6, 4
LIFETIME_S = 3600  # the longest the hub mints: one token covers the whole section


def server_env(scratch: Path) -> dict[str, str]:
    """What the server needs to trust the bench's tokens: the same signing key file."""
    return {
        "AIGUILLAGE_SIGNING_KEY_FILE": str((scratch / "signing-key.json").resolve()),
        "AIGUILLAGE_ACCESS_TOKEN_LIFETIME_S": str(LIFETIME_S),
    }


def _settings(database_url: str, scratch: Path) -> Any:
    from annuaire.settings import Settings

    return Settings(
        database_url=database_url,
        environment="development",
        signing_key_file=Path(server_env(scratch)["AIGUILLAGE_SIGNING_KEY_FILE"]),
        access_token_lifetime_s=LIFETIME_S,
    )


def _college(database_url: str) -> tuple[str, str, int]:
    """(UAI, name, persons with a role there) of the collège of median size."""
    with psycopg.connect(database_url) as connection:
        rows = connection.execute(
            "SELECT s.uai, min(s.name), count(DISTINCT r.person_id) FROM structure s "
            "JOIN role r ON r.structure_id = s.id WHERE s.kind = 'college' AND s.uai IS NOT NULL "
            "GROUP BY s.uai ORDER BY 3, 1"
        ).fetchall()
    if not rows:
        raise SystemExit("no collège in the bench database")
    uai, name, persons = rows[len(rows) // 2]
    return str(uai), str(name), int(persons)


@contextlib.contextmanager
def _bench_client(settings: Any, uai: str) -> Iterator[tuple[str, str]]:
    """(client id, access token) of a client whose contract is ``uai``; deleted on exit."""
    from sqlalchemy import delete

    from annuaire.auth.clients import create_client
    from annuaire.auth.issuing import mint_access_token
    from annuaire.registre.runtime import registre_config
    from annuaire.schema import ApiClient
    from annuaire.store.engine import make_engine

    table = ApiClient.__table__  # type: ignore[attr-defined]
    engine = make_engine(settings)
    try:
        with engine.begin() as connection:
            connection.execute(delete(table).where(table.c.name == CLIENT_NAME))
        activity = registre_config(settings).client_activities()[0]
        client, _secret = create_client(
            engine, CLIENT_NAME, structures=[uai], scopes=SCOPES, activity=activity
        )
        try:
            token, _lifetime = mint_access_token(settings, client)
            yield client.client_id, token
        finally:
            with engine.begin() as connection:
                connection.execute(delete(table).where(table.c.client_id == client.client_id))
    finally:
        engine.dispose()


def _walk(base: str, uai: str) -> tuple[list[str], list[str]]:
    """Every page path of the collège's persons, and their ids."""
    pages: list[str] = []
    ids: list[str] = []
    first = f"/v1/persons?structure={uai}&limit=100"
    path: str | None = first
    with httpx.Client(base_url=base, timeout=60.0) as client:
        while path is not None:
            pages.append(path)
            response = client.get(path)
            response.raise_for_status()
            body = orjson.loads(response.content)
            ids.extend(item["id"] for item in body["items"])
            path = f"{first}&cursor={body['next']}" if body["next"] else None
    return pages, ids


def _compare(base: str, paths: list[str], auth: Mapping[str, str], uai: str) -> list[str]:
    """The paths whose bodies differ with and without the token (or are not 200), once the
    operator's body is read as the client's rules serve it (``_as_the_contract_sees``)."""
    differing = []
    with httpx.Client(base_url=base, timeout=60.0, headers={"Accept": "application/json"}) as c:
        for path in paths:
            plain, token = c.get(path), c.get(path, headers=auth)
            if plain.status_code != 200 or token.status_code != 200:
                differing.append(f"{path}: {plain.status_code} / {token.status_code}")
            elif _as_the_contract_sees(plain.json(), uai) != token.json():
                differing.append(path)
    return differing


def _as_the_contract_sees(body: Any, uai: str) -> Any:
    """An operator's body as a client whose contract is ``uai`` is served it: a person's
    embedded roles at other structures left out (the client's rule on roles)."""
    for person in body.get("items", [body]):
        if "roles" in person:
            person["roles"] = [r for r in person["roles"] if r["structure_uai"] == uai]
    return body


def _first_use(base: str, path: str, auth: Mapping[str, str]) -> dict[str, float]:
    """Times of one request before the token was ever seen, with it (cold caches), then warm."""
    timings = {}
    with httpx.Client(base_url=base, timeout=60.0) as client:
        for name, headers in (("plain", {}), ("token_cold", auth), ("token_warm", auth)):
            started = time.perf_counter()
            client.get(path, headers=headers).raise_for_status()
            timings[f"{name}_ms"] = (time.perf_counter() - started) * 1000
    return timings


def _summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    requests = sum(run["requests"] for run in runs)
    seconds = sum(run["duration_us"] / 1e6 for run in runs)

    def cpu_ms(part: str) -> float:
        used = sum(run["cpu"][part] * run["duration_us"] / 1e6 for run in runs)
        return 1000 * used / max(requests, 1)

    return {
        "requests": requests,
        "seconds": seconds,
        "rps": requests / seconds,
        "rounds_rps": [run["rps"] for run in runs],
        "errors": sum(run["errors"] for run in runs),
        "api_cpu_ms": cpu_ms("server"),
        "pg_cpu_ms": cpu_ms("postgres"),
        "other_cores": sum(run["cpu"]["other"] * run["duration_us"] / 1e6 for run in runs)
        / seconds,
        "runs": runs,
    }


def _pair(
    server: Server,
    paths: Path,
    headers: Path,
    scratch: Path,
    *,
    seconds: float,
    connections: int,
    rounds: int,
) -> dict[str, Any]:
    variants = {"plain": None, "token": headers}
    for header_file in variants.values():
        run_wrk(server.port, paths, 1.0, connections, scratch, headers=header_file)
    runs: dict[str, list[dict[str, Any]]] = {"plain": [], "token": []}
    for index in range(rounds):
        for name in ("plain", "token") if index % 2 == 0 else ("token", "plain"):
            figures = run_wrk(
                server.port, paths, seconds, connections, scratch, server.pid, variants[name]
            )
            runs[name].append(figures)
    plain, token = _summary(runs["plain"]), _summary(runs["token"])
    pairs = zip(runs["plain"], runs["token"], strict=True)
    per_round = [added_time(p["rps"], t["rps"]) for p, t in pairs]
    return {
        "plain": plain,
        "token": token,
        "overhead": added_time(plain["rps"], token["rps"]),
        "overhead_rounds": per_round,
        "delta_ms": 1000 / token["rps"] - 1000 / plain["rps"],
    }


def measure_token_overhead(
    database_url: str,
    scratch: Path,
    start_server: Callable[[dict[str, str]], Server],
    *,
    seconds: float,
    connections: int,
    seed: int,
) -> dict[str, Any]:
    """The section's figures (see the module docstring)."""
    started = time.perf_counter()
    folder = scratch / "auth"
    folder.mkdir(exist_ok=True)
    settings = _settings(database_url, scratch)
    uai, name, persons = _college(database_url)
    with _bench_client(settings, uai) as (client_id, token), start_server(server_env(scratch)) as s:
        auth = {"Authorization": f"Bearer {token}"}
        header_file = folder / "token.headers"
        header_file.touch(mode=0o600)
        header_file.write_text(f"Authorization: Bearer {token}\n", encoding="utf-8")
        pages, ids = _walk(s.base, uai)
        rng = random.Random(seed)
        people = [f"/v1/persons/{i}" for i in rng.sample(ids, min(PERSON_IDS, len(ids)))]
        first_use = _first_use(s.base, pages[len(pages) // 2], auth)
        pairs: dict[str, dict[str, Any]] = {}
        for key, label, listed, rounds in (
            ("page", "(a) page of 100, one collège", pages, PAGE_ROUNDS),
            ("person", "(b) one person by id", people, PERSON_ROUNDS),
        ):
            differing = _compare(s.base, listed, auth, uai)
            paths = folder / f"{key}.paths"
            paths.write_text("\n".join(listed) + "\n", encoding="utf-8")
            figures = _pair(
                s,
                paths,
                header_file,
                folder,
                seconds=seconds,
                connections=connections,
                rounds=rounds,
            )
            pairs[key] = {
                "label": label,
                "requests_compared": len(listed),
                "differing": differing[:10],
                "identical": not differing,
                **figures,
            }
            print(
                f"  token {label:30} plain {figures['plain']['rps']:7,.0f}/s  token "
                f"{figures['token']['rps']:7,.0f}/s  overhead {100 * figures['overhead']:5.1f} %"
                f"  ({figures['delta_ms']:+.3f} ms/request)",
                flush=True,
            )
        header_file.unlink()
    return {
        "college": {"uai": uai, "name": name, "persons": persons},
        "client_id": client_id,
        "client_deleted": True,
        "scopes": list(SCOPES),
        "pages": len(pages),
        "persons_walked": len(ids),
        "first_use": first_use,
        "seconds_per_run": seconds,
        "connections": connections,
        "pairs": pairs,
        "wall_s": time.perf_counter() - started,
    }


def report_token_overhead(auth: dict[str, Any]) -> list[dict[str, Any]]:
    """Print the section's table; return its target."""
    college, pairs = auth["college"], auth["pairs"]
    print(
        f"\nToken validation + access rules, 1 worker: client with contract {college['uai']} "
        f"({college['name']}, {auth['persons_walked']:,} persons in {auth['pages']} pages), "
        f"scopes {' + '.join(auth['scopes'])}; wrk {auth['connections']} connections, "
        f"runs of {auth['seconds_per_run']:g} s in ABBA order"
    )
    for pair in pairs.values():
        same = "the same (roles outside the contract aside)" if pair["identical"] else "DIFFERENT"
        print(
            f"  {pair['label']}: bodies with and without the token {same} "
            f"({pair['requests_compared']:,} requests compared)"
            + ("" if pair["identical"] else f": {', '.join(pair['differing'])}")
        )
    first = auth["first_use"]
    print(
        f"  first request with the token (validation, cold JWKS and token caches): "
        f"{first['token_cold_ms']:.1f} ms; then {first['token_warm_ms']:.1f} ms; without: "
        f"{first['plain_ms']:.1f} ms"
    )
    print(
        f"\n{'case':30} {'plain req/s':>11} {'token req/s':>11} {'overhead':>8} "
        f"{'rounds':>11} {'ms/req plain':>12} {'token':>6} {'diff':>6} | CPU ms/req: "
        f"{'api':>5} {'+token':>6} {'pg':>5} {'+token':>6} {'errors':>7}"
    )
    for pair in pairs.values():
        plain, token = pair["plain"], pair["token"]
        spread = [100 * o for o in pair["overhead_rounds"]]
        print(
            f"{pair['label']:30} {plain['rps']:>11,.1f} {token['rps']:>11,.1f} "
            f"{100 * pair['overhead']:>7.1f}% {min(spread):>5.1f}..{max(spread):<4.1f} "
            f"{1000 / plain['rps']:>12.3f} {1000 / token['rps']:>6.3f} "
            f"{pair['delta_ms']:>+6.3f} | {'':12}{plain['api_cpu_ms']:>5.3f} "
            f"{token['api_cpu_ms']:>6.3f} {plain['pg_cpu_ms']:>5.3f} {token['pg_cpu_ms']:>6.3f} "
            f"{plain['errors'] + token['errors']:>7}"
        )
    print(
        "(overhead: the time the token adds, plain/token req/s - 1 over all runs; rounds: least "
        "and greatest overhead of one round (a run of each);\n ms/req: 1 / req/s of the "
        "saturated worker; CPU ms/req: "
        "cores used x time / requests; other load on the machine meanwhile: "
        f"{max(p[v]['other_cores'] for p in pairs.values() for v in ('plain', 'token')):.2f} "
        "cores at most)"
    )
    page = pairs["page"]
    errors = page["plain"]["errors"] + page["token"]["errors"]
    return [
        {
            "target": f"{page['label']}, token: 1 - token/plain req/s < {AUTH_TARGET:g}",
            "value": page["overhead"],
            "pass": page["overhead"] < AUTH_TARGET and page["identical"] and errors == 0,
        }
    ]
