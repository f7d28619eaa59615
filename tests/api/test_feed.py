"""The change feed, and paging while imports commit between two pages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import func, select

from annuaire.importing import import_aaf
from annuaire.schema import ChangeEntry

from .conftest import Api


def read_feed(
    api: Api, after: str | None = None, limit: int = 1000, **filters: Any
) -> tuple[list[dict[str, Any]], str]:
    entries: list[dict[str, Any]] = []
    cursor = after
    while True:
        params = {"limit": limit, **filters, **({"after": cursor} if cursor else {})}
        response = api.client.get("/v1/changes", params=params)
        assert response.status_code == 200, response.text
        body = response.json()
        entries.extend(body["items"])
        if not body["items"]:
            assert body["next"] == cursor or cursor is None
            return entries, body["next"]
        cursor = body["next"]


def export(api: Api, path: str = "/v1/persons") -> dict[str, dict[str, Any]]:
    response = api.client.get(path, headers={"Accept": "application/x-ndjson"})
    return {row["id"]: row for row in map(orjson.loads, response.content.splitlines())}


def test_the_feed_serves_the_change_log_in_order(api: Api) -> None:
    entries, _ = read_feed(api, limit=73)
    with api.engine.connect() as connection:
        stored = connection.execute(
            select(func.count()).select_from(ChangeEntry.__table__)
        ).scalar()
    assert len(entries) == stored
    seqs = [e["seq"] for e in entries]
    assert seqs == sorted(set(seqs))
    assert read_feed(api, limit=1000)[0] == entries
    assert {e["op"] for e in entries} == {"create"}

    persons, _ = read_feed(api, entityType="person")
    assert persons and all(e["entity_type"] == "person" for e in persons)
    uai = entries[0]["structures"][0]
    local, _ = read_feed(api, structure=uai)
    assert local and all(uai in e["structures"] for e in local)


def test_an_empty_page_keeps_the_cursor(api: Api) -> None:
    head = api.client.get("/v1/changes/cursor").json()["cursor"]
    body = api.client.get("/v1/changes", params={"after": head}).json()
    assert body == {"items": [], "next": head}


def test_after_an_import_the_feed_names_every_changed_person(
    fresh_api: Api, academie_delta: Path
) -> None:
    api = fresh_api
    before = export(api)
    head = api.client.get("/v1/changes/cursor").json()["cursor"]
    import_aaf(api.engine, api.settings, [academie_delta], allow_mass_removal=True)
    after = export(api)
    entries, _ = read_feed(api, after=head)
    fed = {e["entity_id"] for e in entries if e["entity_type"] == "person"}
    changed = {pid for pid in before.keys() | after.keys() if before.get(pid) != after.get(pid)}
    # roles are embedded in persons: a changed role is a changed person, fed as a role entry
    roles_of = {e["entity_id"] for e in entries if e["entity_type"] == "role"}
    fed_roles = {
        pid
        for pid in changed
        if any(
            r
            for r in api.client.get("/v1/roles", params={"person": pid}).json()["items"]
            if r["id"] in roles_of
        )
    }
    assert changed and changed <= fed | fed_roles

    leaving = [e for e in entries if e["op"] == "leave" and e["entity_type"] == "person"]
    assert leaving, "the delta removes people: the feed must carry tombstones"
    for tombstone in leaving:
        person = api.client.get(f"/v1/persons/{tombstone['entity_id']}").json()
        assert person["status"] == "tobedeleted" and person["leaving_since"]


def test_paging_while_an_import_commits_misses_and_repeats_nothing(
    fresh_api: Api, academie_delta: Path
) -> None:
    api = fresh_api
    before = set(export(api))
    feed_before, _ = read_feed(api)
    served: list[str] = []
    cursor = None
    pages = 0
    feed_cursor: str | None = None
    feed_served: list[int] = []
    while True:
        body = api.client.get(
            "/v1/persons", params={"limit": 40, **({"cursor": cursor} if cursor else {})}
        ).json()
        served += [p["id"] for p in body["items"]]
        feed_page = api.client.get(
            "/v1/changes", params={"limit": 97, **({"after": feed_cursor} if feed_cursor else {})}
        ).json()
        feed_served += [e["seq"] for e in feed_page["items"]]
        feed_cursor = feed_page["next"]
        pages += 1
        if pages == 5:  # an import commits between two pages
            import_aaf(api.engine, api.settings, [academie_delta], allow_mass_removal=True)
        cursor = body["next"]
        if cursor is None:
            break
    rest, _ = read_feed(api, after=feed_cursor)
    feed_served += [e["seq"] for e in rest]
    after = set(export(api))
    assert len(served) == len(set(served)), "a person was served twice"
    assert (before & after) <= set(served), "a person present throughout was missed"
    assert len(feed_served) == len(set(feed_served))
    assert feed_served == [e["seq"] for e in read_feed(api)[0]]
    assert len(feed_served) > len(feed_before)


def test_each_kind_in_the_feed_is_read_at_the_collection_its_description_names(api: Api) -> None:
    """An integrator follows ``entity_type`` to ``/v1/{collection}/{entity_id}``: the contract
    names the collection of each kind, and the first entry of each kind is served there."""
    from annuaire.schema import EntityKind
    from annuaire.schema.run import FEED_COLLECTIONS

    assert set(FEED_COLLECTIONS) == {kind.value for kind in EntityKind}
    paths = api.client.get("/v1/openapi.json").json()["paths"]
    described = api.client.get("/v1/openapi.json").json()["components"]["schemas"]
    description = described["ChangeEntryPublic"]["properties"]["entity_type"]["description"]
    first: dict[str, str] = {}
    for entry in read_feed(api)[0]:
        first.setdefault(entry["entity_type"], entry["entity_id"])
    assert set(first) == set(FEED_COLLECTIONS)  # the académie has every kind
    for kind, collection in FEED_COLLECTIONS.items():
        assert f"`{kind}` at `/v1/{collection}`" in description
        assert f"/v1/{collection}/{{id}}" in paths, collection
        answer = api.client.get(f"/v1/{collection}/{first[kind]}")
        assert answer.status_code == 200, (kind, answer.text)
        assert answer.json()["id"] == first[kind]
