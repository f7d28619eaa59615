"""Errors are RFC 9457 problems with a stable type; bad input is a 400 naming it, never a 500."""

from __future__ import annotations

from typing import Any

import anyio
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from annuaire.api import create_app
from annuaire.api.cursors import decode_cursor, encode_cursor
from annuaire.settings import Settings

from .conftest import Api, TestClient

PROBLEM_MEMBERS = {"type", "title", "status", "detail", "instance", "request_id"}


def problem(response: Any, status: int, kind: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert set(body) >= PROBLEM_MEMBERS
    assert body["type"] == f"urn:aiguillage:problem:{kind}"
    assert body["status"] == status
    assert body["request_id"] == response.headers["x-request-id"]
    return body


@pytest.mark.parametrize(
    ("query", "kind", "named"),
    [
        ("colour=red", "unknown-parameter", "colour"),
        ("limit=1&limit=2", "invalid-parameter", "limit"),
        ("structure=0771991W&structure=0770203C", "invalid-parameter", "structure"),
        ("limit=0", "invalid-parameter", "limit"),
        ("limit=1001", "invalid-parameter", "limit"),
        ("limit=ten", "invalid-parameter", "limit"),
        ("role=wizard", "invalid-parameter", "role"),
        ("structure=0771991", "invalid-parameter", "structure"),
        ("status=gone", "invalid-parameter", "status"),
        ("modifiedSince=yesterday", "invalid-parameter", "modifiedSince"),
        ("modifiedSince=1700000000", "invalid-parameter", "modifiedSince"),
        ("modifiedSince=2026-09-01", "invalid-parameter", "modifiedSince"),
        ("modifiedSince=2026-09-01T00:00:00", "invalid-parameter", "modifiedSince"),
        ("modifiedSince=2026-02-30T00:00:00Z", "invalid-parameter", "modifiedSince"),
        ("class=abc", "invalid-parameter", "class"),
        ("externalId=nocolon", "invalid-parameter", "externalId"),
        ("fields=id,shoe_size", "unknown-field", "fields"),
        ("fields=,", "unknown-field", "fields"),
        ("cursor=%27%20OR%201%3D1--", "invalid-cursor", "cursor"),
        ("cursor=WzEsInBlcnNvbnMiLCIiLFsiJyBPUiAxPTEiXV0", "invalid-cursor", "cursor"),
    ],
)
def test_bad_queries_are_400_problems_naming_the_parameter(
    api: Api, query: str, kind: str, named: str
) -> None:
    body = problem(api.client.get(f"/v1/persons?{query}"), 400, kind)
    assert named in {p["name"] for p in body["invalid_params"]}
    assert named in body["detail"] or kind == "invalid-parameter"


def test_a_query_of_thousands_of_unknown_fields_is_not_echoed_whole(api: Api) -> None:
    """A 400 names the first unknown fields, each cut, and counts the others: a 40 KB query
    of made-up names got them all back in the detail and in ``invalid_params`` (300 KB)."""
    names = [f"made_up_{n:05d}" for n in range(3_000)] + ["x" * 500]
    body = problem(
        api.client.get("/v1/persons", params={"fields": ",".join(names)}), 400, "unknown-field"
    )
    assert "'made_up_00000'" in body["detail"] and "and 2,991 more" in body["detail"]
    assert len(body["invalid_params"]) == 10
    assert all(p["name"] == "fields" for p in body["invalid_params"])
    assert len(orjson.dumps(body)) < 4_000


@pytest.mark.parametrize(
    ("path", "named"),
    [
        ("/v1/classes?code=%00", "code"),
        ("/v1/groups?code=3A%00", "code"),
        ("/v1/structures?academie=%00", "academie"),
        ("/v1/persons?externalId=ine:%00", "externalId"),
        ("/v1/persons?externalId=%00:%00", "externalId"),
        ("/v1/import-runs?scope=%00", "scope"),
        ("/v1/import-runs?source=aaf%00", "source"),
        ("/v1/subjects?code=%1F", "code"),
        ("/v1/levels?code=a%0Ab", "code"),
        ("/v1/persons?fields=id%7F", "fields"),
        ("/v1/changes?after=%00", "after"),
        ("/v1/persons?limit=1&cursor=%00", "cursor"),
    ],
)
def test_a_control_character_in_a_query_value_is_a_400_naming_it(
    api: Api, path: str, named: str
) -> None:
    """No parameter takes a control character; PostgreSQL refuses NUL in text, so one that
    reached a query would fail it (500): it is refused first, on every backend alike."""
    body = problem(api.client.get(path), 400, "invalid-parameter")
    assert [p["name"] for p in body["invalid_params"]] == [named]
    assert "control character" in body["detail"]


def test_feed_cursor_errors(api: Api) -> None:
    page_cursor = api.client.get("/v1/persons", params={"limit": 1}).json()["next"]
    body = problem(
        api.client.get("/v1/changes", params={"after": page_cursor}), 400, "invalid-cursor"
    )
    assert body["invalid_params"][0]["name"] == "after"
    problem(api.client.get("/v1/changes", params={"after": "123"}), 400, "invalid-cursor")
    problem(api.client.get("/v1/changes", params={"entityType": "pet"}), 400, "invalid-parameter")
    # Positions a cursor could carry but this API never issued: a digit that is no ASCII digit,
    # a number beyond any sequence, a position past the end of the feed (another database's).
    end = int(
        decode_cursor(api.client.get("/v1/changes/cursor").json()["cursor"], "changes", "")[0]
    )
    for position in ("²", "9" * 20, str(end + 1)):
        forged = encode_cursor("changes", "", [position])
        body = problem(
            api.client.get("/v1/changes", params={"after": forged}), 400, "invalid-cursor"
        )
        assert body["invalid_params"][0]["name"] == "after"
    assert (
        api.client.get(
            "/v1/changes", params={"after": encode_cursor("changes", "", [str(end)])}
        ).json()["items"]
        == []
    )


def test_an_unexpected_error_is_a_500_problem_with_its_request_id(api: Api) -> None:
    app = create_app(
        Settings(
            database_url=api.settings.database_url,
            environment="test",
            signing_key_file=api.settings.signing_key_file,
        ),
        api.engine,
    )

    def fail() -> None:
        raise RuntimeError("boom")

    app.add_api_route("/boom", fail)
    with TestClient(app, raise_server_exceptions=False) as client:
        body = problem(
            client.get("/boom", headers={"X-Request-Id": "req-500"}), 500, "internal-error"
        )
    assert body["request_id"] == "req-500"


def test_not_acceptable_not_found_and_method(api: Api) -> None:
    problem(api.client.get("/v1/persons", headers={"Accept": "text/csv"}), 406, "not-acceptable")
    problem(api.client.get("/v1/people"), 404, "not-found")
    problem(api.client.post("/v1/persons", json={}), 405, "method-not-allowed")
    ok = api.client.get("/v1/persons", headers={"Accept": "application/json;q=0.9, */*;q=0.1"})
    assert ok.status_code == 200
    # The type of highest q is served (JSON on a tie), never one of q=0.
    for accept, served in (
        ("application/x-ndjson;q=0, application/json", "application/json"),
        ("application/json, application/x-ndjson;q=0.1", "application/json"),
        ("application/json;q=0.5, application/x-ndjson", "application/x-ndjson"),
        ("*/*;q=0.2, application/x-ndjson;q=0.1", "application/json"),
    ):
        response = api.client.get("/v1/structures", params={"limit": 1}, headers={"Accept": accept})
        assert response.headers["content-type"].startswith(served), accept
    problem(
        api.client.get("/v1/persons", headers={"Accept": "application/json;q=0"}),
        406,
        "not-acceptable",
    )


def test_a_request_id_is_echoed_or_made(api: Api) -> None:
    given_id = api.client.get("/health", headers={"X-Request-Id": "abc-123"})
    assert given_id.headers["x-request-id"] == "abc-123"
    hostile_id = ("a b\u00e9" * 40).encode("latin-1")
    hostile = api.client.get("/health", headers={"X-Request-Id": hostile_id})
    assert len(hostile.headers["x-request-id"]) == 16


def test_production_without_issuers_refuses_every_request(api: Api) -> None:
    settings = Settings(database_url=api.settings.database_url, environment="production")
    with TestClient(create_app(settings, api.engine)) as client:
        body = problem(client.get("/v1/persons"), 401, "unauthorized")
        assert "bearer token" in body["detail"]
        assert client.get("/v1/persons").headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "query",
    ["foo=1", "limit=1&limit=2", "limit=ten", "code=%00", "structure=0771991W&colour=red"],
)
def test_without_a_token_any_request_is_a_401_whatever_it_asks(api: Api, query: str) -> None:
    """Who is calling comes first: a caller without a token learns nothing of the parameters
    an endpoint takes (a 400 listing them) before authenticating."""
    settings = Settings(database_url=api.settings.database_url, environment="production")
    with TestClient(create_app(settings, api.engine)) as client:
        response = client.get(f"/v1/persons?{query}")
        body = problem(response, 401, "unauthorized")
        assert "invalid_params" not in body
        assert response.headers["www-authenticate"].startswith("Bearer")


def test_a_path_with_a_trailing_slash_is_not_found_not_redirected(api: Api) -> None:
    for path in ("/v1/persons/", "/v1/changes/", "/v1/changes/cursor/"):
        response = api.client.get(path, follow_redirects=False)
        problem(response, 404, "not-found")
        assert "location" not in response.headers


_names = st.sampled_from(
    [
        "limit",
        "cursor",
        "fields",
        "status",
        "modifiedSince",
        "structure",
        "role",
        "class",
        "group",
        "externalId",
        "code",
        "academie",
        "scope",
        "source",
        "colour",
        "after",
        "",
    ]
)
_values = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["0", "-1", "1000", "1e9", "null", "[]", "%00", "'--", "2026-13-45", "\x00"]),
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    query=st.lists(st.tuples(_names, _values), max_size=4),
    path=st.sampled_from(
        [
            "/v1/persons",
            "/v1/structures",
            "/v1/changes",
            "/v1/import-runs",
            "/v1/groups",
            "/v1/classes",
            "/v1/subjects",
        ]
    ),
)
def test_no_query_string_makes_a_server_error(
    api: Api, query: list[tuple[str, str]], path: str
) -> None:
    response = api.client.get(path, params=query)
    assert response.status_code in (200, 400), response.text
    if response.status_code == 400:
        problem(response, 400, response.json()["type"].rsplit(":", 1)[-1])


def test_an_unknown_parameter_of_an_endpoint_taking_none_says_so(api: Api) -> None:
    response = api.client.get("/health", params={"zzz": "1"})
    assert response.status_code == 400
    detail = response.json()["detail"]
    assert detail == "unknown query parameter 'zzz'; this endpoint takes no query parameter"


def test_head_is_the_get_without_its_body(api: Api) -> None:
    """RFC 9110 §9.3.2: HEAD answers what GET would, status and headers, with no content."""
    listed = api.client.get("/v1/persons", params={"limit": 1})
    person = listed.json()["items"][0]["id"]
    for path, headers in (
        (f"/v1/persons/{person}", {}),
        ("/v1/persons?limit=2", {}),
        ("/v1/structures", {"Accept": "application/x-ndjson"}),  # a stream, stopped at once
        ("/health", {}),
    ):
        got = api.client.get(path, headers=headers)
        head = api.client.head(path, headers=headers)
        assert (head.status_code, head.content) == (got.status_code, b""), path
        assert got.content, path
        for name in ("content-type", "etag", "content-length", "cache-control"):
            assert head.headers.get(name) == got.headers.get(name), (path, name)
        assert head.headers["x-request-id"]
    etag = api.client.get(f"/v1/persons/{person}").headers["etag"]
    unchanged = api.client.head(f"/v1/persons/{person}", headers={"If-None-Match": etag})
    assert (unchanged.status_code, unchanged.content) == (304, b"")
    missing = api.client.head("/v1/persons?colour=red")
    assert (missing.status_code, missing.content) == (400, b"")
    # A method no route takes names HEAD with GET among those it does.
    refused = api.client.post("/v1/persons", json={})
    assert refused.status_code == 405 and refused.headers["allow"] == "GET, HEAD"


def test_head_without_a_token_is_a_401(api: Api) -> None:
    settings = Settings(database_url=api.settings.database_url, environment="production")
    with TestClient(create_app(settings, api.engine)) as client:
        response = client.head("/v1/persons")
    assert (response.status_code, response.content) == (401, b"")
    assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize("spec", ["2.0", "2.4"])  # Starlette stops a stream two ways
def test_head_sends_no_content_and_stops_a_stream(spec: str) -> None:
    """At the ASGI level (an HTTP client drops a HEAD's body whatever it gets): no byte of
    content is sent, and a streamed response is stopped at its first chunk."""
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse, StreamingResponse
    from starlette.routing import Route

    from annuaire.api.main import HeadAsGet

    produced: list[int] = []

    async def lines() -> Any:
        for n in range(1000):
            produced.append(n)
            yield f"{n}\n"
            await anyio.sleep(0)

    app = HeadAsGet(
        Starlette(
            routes=[
                Route("/text", lambda _: PlainTextResponse("x" * 100)),
                Route("/stream", lambda _: StreamingResponse(lines())),
            ]
        )
    )

    async def head(path: str) -> list[dict[str, Any]]:
        sent: list[dict[str, Any]] = []
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": spec},
            "method": "HEAD",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "headers": [],
            "http_version": "1.1",
            "scheme": "http",
            "server": ("test", 80),
            "client": ("test", 1),
            "root_path": "",
        }
        asked: list[bool] = []

        async def receive() -> dict[str, Any]:
            if asked:  # the client stays connected until the response ends
                await anyio.sleep_forever()
            asked.append(True)
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        with anyio.fail_after(10):
            await app(scope, receive, send)
        return sent

    text = anyio.run(head, "/text")
    assert text[0]["status"] == 200 and (b"content-length", b"100") in text[0]["headers"]
    assert [m.get("body") for m in text[1:]] == [b""]
    stream = anyio.run(head, "/stream")
    assert stream[0]["status"] == 200
    assert [m.get("body") for m in stream[1:]] == [b""]
    assert produced == [0]  # stopped at its first chunk, not run to its end and thrown away
