"""Single resources: same representation as in lists, ETag / If-None-Match, 404s."""

from __future__ import annotations

import uuid

import pytest

from annuaire.api.resources import RESOURCES

from .conftest import Api


@pytest.mark.parametrize("name", list(RESOURCES))
def test_one_object_is_served_as_in_its_collection(api: Api, name: str) -> None:
    listed = api.client.get(f"/v1/{name}", params={"limit": 3}).json()["items"]
    assert listed
    for item in listed:
        response = api.client.get(f"/v1/{name}/{item['id']}")
        assert response.status_code == 200
        assert response.json() == item


def test_etag_and_if_none_match(api: Api) -> None:
    person = api.client.get("/v1/persons", params={"limit": 1}).json()["items"][0]
    path = f"/v1/persons/{person['id']}"
    first = api.client.get(path)
    etag = first.headers["etag"]
    assert etag.startswith('"') and etag.endswith('"')
    assert api.client.get(path).headers["etag"] == etag  # stable

    not_modified = api.client.get(path, headers={"If-None-Match": etag})
    assert not_modified.status_code == 304
    assert not_modified.content == b""
    assert not_modified.headers["etag"] == etag
    for header in (f'"other", {etag}', f"W/{etag}", "*"):
        assert api.client.get(path, headers={"If-None-Match": header}).status_code == 304
    assert api.client.get(path, headers={"If-None-Match": '"other"'}).status_code == 200

    narrowed = api.client.get(path, params={"fields": "id,usage_name"})
    assert narrowed.json() == {"id": person["id"], "usage_name": person["usage_name"]}
    assert narrowed.headers["etag"] != etag


def test_the_etag_changes_when_the_object_does(fresh_api: Api, academie_delta) -> None:  # type: ignore[no-untyped-def]
    from annuaire.importing import import_aaf

    before = {
        p["id"]: fresh_api.client.get(f"/v1/persons/{p['id']}").headers["etag"]
        for p in fresh_api.client.get("/v1/persons", params={"limit": 1000}).json()["items"][::5]
    }
    import_aaf(fresh_api.engine, fresh_api.settings, [academie_delta], allow_mass_removal=True)
    changed = 0
    for person_id, etag in before.items():
        now = fresh_api.client.get(f"/v1/persons/{person_id}")
        conditional = fresh_api.client.get(
            f"/v1/persons/{person_id}", headers={"If-None-Match": etag}
        )
        if now.headers["etag"] == etag:
            assert conditional.status_code == 304
        else:
            changed += 1
            assert conditional.status_code == 200
    assert changed > 0


def test_unknown_and_malformed_ids(api: Api) -> None:
    missing = api.client.get(f"/v1/persons/{uuid.uuid4()}")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert missing.json()["type"] == "urn:aiguillage:problem:not-found"
    # an id of another kind is not a person
    structure = api.client.get("/v1/structures", params={"limit": 1}).json()["items"][0]
    assert api.client.get(f"/v1/persons/{structure['id']}").status_code == 404
    malformed = api.client.get("/v1/persons/not-a-uuid")
    assert malformed.status_code == 400
    assert malformed.json()["invalid_params"][0]["name"] == "id"


def test_what_caches_are_told(api: Api) -> None:
    """Personal data: no shared cache keeps an answer, a client's own cache revalidates it (a
    304 keeps saying so); a collection's answer depends on ``Accept`` and says it. The contract
    and its docs page stay cacheable, the token endpoint keeps its ``no-store``. The contract
    declares both headers where they are sent."""
    person = api.client.get("/v1/persons", params={"limit": 1}).json()["items"][0]
    single = api.client.get(f"/v1/persons/{person['id']}")
    not_modified = api.client.get(
        f"/v1/persons/{person['id']}", headers={"If-None-Match": single.headers["etag"]}
    )
    assert not_modified.status_code == 304
    page = api.client.get("/v1/persons", params={"limit": 2})
    export = api.client.get("/v1/persons", headers={"Accept": "application/x-ndjson"})
    feed = api.client.get("/v1/changes", params={"limit": 2})
    missing = api.client.get(f"/v1/persons/{uuid.uuid4()}")
    for answer in (single, not_modified, page, export, feed, missing):
        assert answer.headers["cache-control"] == "private, no-cache", answer.request.url
    assert page.headers["vary"] == export.headers["vary"] == "Accept"
    assert "vary" not in single.headers
    contract = api.client.get("/v1/openapi.json")
    assert "private" not in contract.headers.get("cache-control", "")
    token = api.client.post("/oauth/token", data={"grant_type": "client_credentials"})
    assert token.headers["cache-control"] == "no-store"

    paths = contract.json()["paths"]
    persons, one = paths["/v1/persons"]["get"], paths["/v1/persons/{id}"]["get"]
    assert set(persons["responses"]["200"]["headers"]) >= {"Cache-Control", "Vary"}
    assert "Cache-Control" in one["responses"]["304"]["headers"]
    assert "Vary" not in one["responses"]["200"]["headers"]
