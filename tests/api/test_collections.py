"""Collections: keyset pages, filters, fields=, NDJSON export, against the generated académie."""

from __future__ import annotations

import re
import uuid
from typing import Any

import orjson
import pytest
from sqlalchemy import func, select

from annuaire.api.resources import RESOURCES
from annuaire.schema import Enrollment, ExternalId, Person, Role, Structure

from .conftest import Api

COLLECTIONS = [name for name in RESOURCES]


def walk(api: Api, path: str, **params: Any) -> list[dict[str, Any]]:
    """Every item of a collection, page by page, checking the envelope on the way."""
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = api.client.get(path, params=query)
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) == {"items", "next"}
        items.extend(body["items"])
        cursor = body["next"]
        if cursor is None:
            assert "link" not in response.headers
            return items
        assert f"cursor={cursor}" in response.headers["link"]
        assert response.headers["link"].endswith('>; rel="next"')


def count(api: Api, model: Any, *where: Any) -> int:
    table = model.__table__
    with api.engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(table).where(*where)).scalar()


@pytest.mark.parametrize("name", COLLECTIONS)
def test_walking_a_collection_serves_every_row_once_in_id_order(api: Api, name: str) -> None:
    resource = RESOURCES[name]
    items = walk(api, f"/v1/{name}", limit=97)
    with api.engine.connect() as connection:
        stored = connection.execute(select(func.count()).select_from(resource.table)).scalar()
    assert stored and len(items) == stored
    ids = [item["id"] for item in items]
    assert len(set(ids)) == len(ids)
    if not resource.descending:
        assert ids == sorted(ids)
    assert all(set(item) == set(resource.fields) for item in items)


def test_the_default_page_is_100_and_limit_is_capped(api: Api) -> None:
    assert len(api.client.get("/v1/persons").json()["items"]) == 100
    assert len(api.client.get("/v1/persons?limit=1000").json()["items"]) == min(
        1000, count(api, Person)
    )
    assert api.client.get("/v1/persons?limit=1001").status_code == 400


def test_person_embeds_roles_and_external_ids(api: Api) -> None:
    pupils = walk(api, "/v1/persons", role="pupil", limit=1000)
    assert len(pupils) == count(
        api, Person, Person.id.in_(select(Role.person_id).where(Role.role == "pupil"))
    )
    for pupil in pupils:
        assert any(r["role"] == "pupil" and r["structure_uai"] for r in pupil["roles"])
        assert {"type", "value"} <= set(pupil["external_ids"][0])
        assert "aaf:ENTPersonJointure" in {e["type"] for e in pupil["external_ids"]}
    # A pupil's role says their MEF and their options, as the roles collection does.
    stored = {
        (str(role.person_id), role.level_code, tuple(role.subject_codes))
        for role in walk_rows(api, Role, Role.role == "pupil")
    }
    embedded = {
        (pupil["id"], r["level_code"], tuple(r["subject_codes"]))
        for pupil in pupils
        for r in pupil["roles"]
        if r["role"] == "pupil"
    }
    served = {
        (r["person_id"], r["level_code"], tuple(r["subject_codes"]))
        for r in walk(api, "/v1/roles", role="pupil", limit=1000)
    }
    assert embedded == stored == served
    assert all(level for _, level, _ in stored) and any(codes for _, _, codes in stored)


def walk_rows(api: Api, model: Any, *where: Any) -> list[Any]:
    with api.engine.connect() as connection:
        return list(connection.execute(select(model).where(*where)))


def test_filters_narrow_to_what_they_name(api: Api) -> None:
    structures = walk(api, "/v1/structures", limit=1000)
    college = next(s for s in structures if s["kind"] == "college")
    uai = college["uai"]
    staff = walk(api, "/v1/persons", structure=uai, role="teacher")
    assert staff
    assert all(
        any(r["structure_uai"] == uai and r["role"] == "teacher" for r in p["roles"]) for p in staff
    )

    classes = walk(api, "/v1/classes", structure=uai)
    assert classes and all(c["structure_id"] == college["id"] for c in classes)
    members = walk(api, "/v1/persons", **{"class": classes[0]["id"]})
    enrolled = count(
        api,
        Person,
        Person.id.in_(
            select(Enrollment.person_id).where(Enrollment.class_id == uuid.UUID(classes[0]["id"]))
        ),
    )
    assert len(members) == enrolled > 0

    one = members[0]
    typed = next(e for e in one["external_ids"] if e["type"] == "aaf:ENTPersonJointure")
    found = walk(api, "/v1/persons", externalId=f"{typed['type']}:{typed['value']}")
    assert [p["id"] for p in found] == [one["id"]]

    by_uai = walk(api, "/v1/structures", uai=uai)
    assert [s["id"] for s in by_uai] == [college["id"]]
    assert walk(api, "/v1/structures", externalId=f"uai:{uai}")[0]["id"] == college["id"]

    enrollments = walk(api, "/v1/enrollments", person=one["id"])
    assert enrollments and all(e["person_id"] == one["id"] for e in enrollments)
    guardianships = (
        walk(api, "/v1/guardianships", pupil=one["id"])
        if any(r["role"] == "pupil" for r in one["roles"])
        else []
    )
    assert all(g["pupil_id"] == one["id"] for g in guardianships)


def test_modified_since_and_status(api: Api) -> None:
    everyone = walk(api, "/v1/persons", limit=1000, fields="id,modified_at,status")
    latest = max(p["modified_at"] for p in everyone)
    recent = walk(api, "/v1/persons", modifiedSince=latest, limit=1000)
    assert recent and all(p["modified_at"] >= latest for p in recent)
    assert walk(api, "/v1/persons", modifiedSince="2999-01-01T00:00:00+02:00") == []
    active = walk(api, "/v1/persons", status="active", limit=1000)
    assert len(active) == sum(p["status"] == "active" for p in everyone)


def test_fields_narrows_and_always_keeps_id(api: Api) -> None:
    body = api.client.get("/v1/persons", params={"fields": "usage_name, roles", "limit": 5}).json()
    assert [list(item) for item in body["items"]] == [["id", "usage_name", "roles"]] * 5
    runs = api.client.get("/v1/import-runs", params={"fields": "outcome"}).json()["items"]
    assert runs and all(set(r) == {"id", "outcome"} for r in runs)


def test_the_import_runs_page_newest_first(api: Api) -> None:
    """Runs are ordered by their start, newest first, then id: a cursor of that order (an
    instant and a UUID) continues the list (it used to be refused as not issued here)."""
    everything = [r["id"] for r in api.client.get("/v1/import-runs").json()["items"]]
    assert len(everything) >= 2
    paged: list[str] = []
    params: dict[str, Any] = {"limit": 1}
    while True:
        response = api.client.get("/v1/import-runs", params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        paged += [r["id"] for r in page["items"]]
        if page["next"] is None:
            break
        params = {"limit": 1, "cursor": page["next"]}
    assert paged == everything


def test_a_cursor_only_works_with_the_filters_and_resource_it_was_issued_for(api: Api) -> None:
    first = api.client.get("/v1/persons", params={"limit": 5, "role": "pupil"}).json()
    cursor = first["next"]
    ok = api.client.get("/v1/persons", params={"limit": 5, "role": "pupil", "cursor": cursor})
    assert ok.status_code == 200
    # the page size and the fields may change between pages; the filters may not
    assert (
        api.client.get(
            "/v1/persons", params={"limit": 50, "role": "pupil", "fields": "id", "cursor": cursor}
        ).status_code
        == 200
    )
    for params, path in [
        ({"role": "teacher", "cursor": cursor}, "/v1/persons"),
        ({"cursor": cursor}, "/v1/persons"),
        ({"cursor": cursor}, "/v1/classes"),
    ]:
        response = api.client.get(path, params=params)
        assert response.status_code == 400
        assert response.json()["type"] == "urn:aiguillage:problem:invalid-cursor"


def test_ndjson_streams_the_whole_filtered_collection(api: Api) -> None:
    response = api.client.get(
        "/v1/persons", params={"role": "pupil"}, headers={"Accept": "application/x-ndjson"}
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-ndjson"
    assert response.headers["x-feed-cursor"]
    lines = [orjson.loads(line) for line in response.content.splitlines()]
    assert response.content.endswith(b"\n")
    assert lines == walk(api, "/v1/persons", role="pupil", limit=1000)

    limited = api.client.get(
        "/v1/structures",
        params={"limit": 3, "fields": "uai"},
        headers={"Accept": "application/x-ndjson"},
    )
    rows = [orjson.loads(line) for line in limited.content.splitlines()]
    assert len(rows) == 3 and all(set(r) == {"id", "uai"} for r in rows)


def test_ndjson_resumes_after_a_cursor(api: Api) -> None:
    first = api.client.get("/v1/persons", params={"limit": 10, "fields": "id"}).json()
    rest = api.client.get(
        "/v1/persons",
        params={"cursor": first["next"], "fields": "id"},
        headers={"Accept": "application/x-ndjson"},
    )
    assert rest.status_code == 200, rest.text
    rows = [orjson.loads(line) for line in rest.content.splitlines()]
    everyone = walk(api, "/v1/persons", limit=1000, fields="id")
    assert first["items"] + rows == everyone


def test_the_first_page_tells_where_the_feed_stands(api: Api) -> None:
    first = api.client.get("/v1/structures")
    head = api.client.get("/v1/changes/cursor").json()["cursor"]
    assert first.headers["x-feed-cursor"] == head
    assert "x-feed-cursor" not in api.client.get("/v1/import-runs").headers
    later = api.client.get(
        "/v1/persons", params={"cursor": api.client.get("/v1/persons").json()["next"]}
    )
    assert "x-feed-cursor" not in later.headers


def test_external_ids_are_served_as_stored(api: Api) -> None:
    structures = walk(api, "/v1/structures", limit=1000)
    served = sum(len(s["external_ids"]) for s in structures)
    assert served == count(api, ExternalId, ExternalId.entity_type == "structure")
    assert len(structures) == count(api, Structure)


INSTANT = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z$")
UUID_TEXT = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


@pytest.mark.parametrize("name", ["persons", "guardianships", "import-runs", "groups"])
def test_values_have_one_shape_on_every_backend(api: Api, name: str) -> None:
    """Instants in UTC with microseconds and Z, dashed lowercase UUIDs, real booleans."""
    items = api.client.get(f"/v1/{name}", params={"limit": 50}).json()["items"]
    assert items
    for item in items:
        for field in ("modified_at", "leaving_since", "started_at", "finished_at"):
            if item.get(field) is not None:
                assert INSTANT.match(item[field]), (field, item[field])
        for field, value in item.items():
            if field == "id" or field.endswith("_id"):
                assert value is None or UUID_TEXT.match(value), (field, value)
        for value in item.get("class_ids", []):
            assert UUID_TEXT.match(value)
        if name == "guardianships":
            assert all(item[f] in (True, False, None) for f in ("legal", "financial", "contact"))
