"""specs/openapi.json documents every operation, parameter, response and error, with examples.

(The committed file equals the generated one: tests/annuaire/test_store.py checks all of specs/.)
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from annuaire.api.listing import NDJSON
from annuaire.api.problems import PROBLEM_MEDIA_TYPE, ProblemType
from annuaire.auth.access import DEMOGRAPHICS
from annuaire.schema.client import ClientScope
from tests.conftest import PROJECT_ROOT

DOCUMENT: dict[str, Any] = json.loads((PROJECT_ROOT / "specs" / "openapi.json").read_text())
#: /oauth/* speaks OAuth 2.0 (a POST, RFC 6749 error JSON): tests/oauth checks its document.
OPERATIONS = [
    (path, method, operation)
    for path, item in DOCUMENT["paths"].items()
    for method, operation in item.items()
    if not path.startswith("/oauth/")
]


def test_operations_are_named_summarised_and_described() -> None:
    ids = [op["operationId"] for _, _, op in OPERATIONS]
    assert len(ids) == len(set(ids))
    for path, method, op in OPERATIONS:
        assert method == "get", f"{path} is read-only"
        assert op.get("summary") and op.get("description"), path
        assert op.get("tags"), path


@pytest.mark.parametrize(
    ("path", "method", "op"), OPERATIONS, ids=[o[2]["operationId"] for o in OPERATIONS]
)
def test_parameters_have_descriptions_and_examples(
    path: str, method: str, op: dict[str, Any]
) -> None:
    for param in op.get("parameters", []):
        schema = param["schema"]
        enum = "enum" in schema or any("$ref" in s or "enum" in s for s in schema.get("anyOf", []))
        typed = schema.get("type") == "boolean" or any(
            s.get("type") == "boolean" for s in schema.get("anyOf", [])
        )
        assert param.get("description"), f"{path} {param['name']}"
        assert enum or typed or param.get("examples") or schema.get("examples"), (
            f"{path} {param['name']}"
        )


@pytest.mark.parametrize(
    ("path", "method", "op"), OPERATIONS, ids=[o[2]["operationId"] for o in OPERATIONS]
)
def test_errors_are_problems_with_an_example_per_type(
    path: str, method: str, op: dict[str, Any]
) -> None:
    responses = op["responses"]
    assert "422" not in responses
    assert "500" in responses
    assert ("401" in responses) == path.startswith("/v1/")
    for status, response in responses.items():
        if status[0] in "45":
            content = response["content"]
            assert list(content) == [PROBLEM_MEDIA_TYPE], (path, status)
            assert content[PROBLEM_MEDIA_TYPE]["schema"]["$ref"].endswith("/Problem")
            for name, example in content[PROBLEM_MEDIA_TYPE]["examples"].items():
                kind = ProblemType[name.upper().replace("-", "_")]
                assert example["value"]["type"] == kind.uri and str(kind.status) == status


def test_collections_document_the_ndjson_export_and_their_headers() -> None:
    for path, _, op in OPERATIONS:
        if any(p["name"] == "cursor" for p in op.get("parameters", [])):
            ok = op["responses"]["200"]
            assert NDJSON in ok["content"] and "application/json" in ok["content"], path
            assert "Link" in ok["headers"], path
        if path.endswith("/{id}"):
            assert "ETag" in op["responses"]["200"]["headers"] and "304" in op["responses"]


def test_a_collection_sends_x_feed_cursor_where_the_contract_says_so(api: Any) -> None:
    """The first page of every collection carries ``X-Feed-Cursor`` exactly when the contract
    lists it (import runs have no feed entries: neither)."""
    collections = [
        path
        for path, method, op in OPERATIONS
        if method == "get" and any(p["name"] == "cursor" for p in op.get("parameters", []))
    ]
    assert "/v1/import-runs" in collections and "/v1/persons" in collections
    for path in collections:
        declared = "X-Feed-Cursor" in DOCUMENT["paths"][path]["get"]["responses"]["200"]["headers"]
        sent = "x-feed-cursor" in api.client.get(path, params={"limit": 1}).headers
        assert sent == declared, path


def _validator(name: str) -> Draft202012Validator:
    schema = {"$ref": f"#/components/schemas/{name}", "components": DOCUMENT["components"]}
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


@pytest.mark.parametrize("name", sorted(DOCUMENT["components"]["schemas"]))
def test_component_examples_validate_against_their_schema(name: str) -> None:
    schema = DOCUMENT["components"]["schemas"][name]
    if "enum" in schema or name == "InvalidParam":
        return
    assert schema.get("examples") or name == "Problem", f"{name} has no example"
    for example in schema.get("examples", []):
        errors = sorted(_validator(name).iter_errors(example), key=str)
        assert not errors, f"{name}: {errors[0].message}"


def test_problem_examples_validate() -> None:
    validator = _validator("Problem")
    for _, _, op in OPERATIONS:
        for status, response in op["responses"].items():
            for example in (
                response.get("content", {}).get(PROBLEM_MEDIA_TYPE, {}).get("examples", {}).values()
            ):
                assert not list(validator.iter_errors(example["value"])), status


def test_the_contract_says_how_to_authenticate_and_what_every_response_carries() -> None:
    schemes = DOCUMENT["components"]["securitySchemes"]
    assert schemes["bearer"] == {**schemes["bearer"], "type": "http", "scheme": "bearer"}
    flow = schemes["clientCredentials"]["flows"]["clientCredentials"]
    assert flow["tokenUrl"] == "/oauth/token"
    assert set(flow["scopes"]) == {scope.value for scope in ClientScope}
    for path, item in DOCUMENT["paths"].items():
        for method, operation in item.items():
            needs_token = path.startswith("/v1/")
            assert ("security" in operation) == needs_token, (method, path)
            for status, response in operation["responses"].items():
                headers = response.get("headers", {})
                assert "X-Request-Id" in headers, (method, path, status)
                assert ("WWW-Authenticate" in headers) == (status == "401"), (path, status)


def test_restricted_properties_are_the_demographics() -> None:
    person = DOCUMENT["components"]["schemas"]["PersonPublic"]["properties"]
    assert {name for name, schema in person.items() if "x-restricted" in schema} == DEMOGRAPHICS


def test_served_objects_validate_against_the_contract(api: Any) -> None:
    for path, _, op in OPERATIONS:
        if "{" in path or path == "/health":
            continue
        schema_ref = op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
        paged = any(p["name"] == "limit" for p in op.get("parameters", []))
        body = api.client.get(path, params={"limit": 50} if paged else {}).json()
        errors = list(_validator(schema_ref.rsplit("/", 1)[-1]).iter_errors(body))
        assert not errors, f"{path}: {errors[0].message} at {list(errors[0].absolute_path)}"


_PAGES = [
    (name, schema)
    for name, schema in DOCUMENT["components"]["schemas"].items()
    if name.endswith("Page") and "items" in schema.get("properties", {})
]


@pytest.mark.parametrize(("name", "schema"), _PAGES, ids=[n for n, _ in _PAGES])
def test_a_page_example_s_next_is_a_cursor_of_that_collection(
    name: str, schema: dict[str, Any]
) -> None:
    """An editor copies the example's ``next`` into a test of their client: it must be a cursor
    the operation accepts (of its own collection, for no filter), not one it refuses."""
    from annuaire.api.cursors import decode_cursor, filters_fingerprint
    from annuaire.api.resources import RESOURCES
    from annuaire.api.routers.changes import feed_position

    example = schema["examples"][0]
    item = schema["properties"]["items"]["items"]["$ref"].rsplit("/", 1)[-1]
    if name == "FeedPage":
        assert feed_position(example["next"]) == example["items"][-1]["seq"]
        return
    resource = next(r for r in RESOURCES.values() if r.public.__name__ == item)
    key = decode_cursor(example["next"], resource.name, filters_fingerprint({}))
    assert resource.parse_key(key)
    assert key == [str(example["items"][-1][column]) for column in resource.order]


def test_the_import_runs_page_says_newest_first() -> None:
    page = DOCUMENT["components"]["schemas"]["ImportRunPage"]["description"]
    assert "newest first" in page and "hub-id order" not in page


def test_a_503_says_when_to_retry_and_a_304_carries_its_tag() -> None:
    """The hub sends ``Retry-After`` with every 503 (a busy store, unreachable token keys) and
    the ``ETag`` again with a 304: a client generated from the contract should see both."""
    for path, method, op in OPERATIONS:
        responses = op["responses"]
        if "503" in responses:
            assert "Retry-After" in responses["503"].get("headers", {}), (path, method)
        if "304" in responses:
            assert "ETag" in responses["304"].get("headers", {}), (path, method)
