"""Every route that serves personal data writes its flow entry (annuaire.registre).

The routes come from the committed contract (specs/openapi.json): a new route is exercised here
without anyone listing it. Each GET operation is called with real ids; when the answer carries
the id, a name or a birth date of a person of the store, the log must hold exactly one new entry
for that request (same request id), naming those persons (by pseudonym) and the categories of the
fields served; when it carries none, it must hold no new entry. Nothing personal is in the log.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text

from annuaire.api.listing import EXPORT_PART
from annuaire.auth import Principal, PrincipalKind, current_principal
from annuaire.registre import writer as writer_module
from annuaire.registre.flowlog import ENTRY, SUBJECT_SET, entries_query, entry_row
from annuaire.registre.runtime import open_registre
from annuaire.registre.vocabulary import DataCategory
from annuaire.schema import Person
from annuaire.store.engine import write_transaction
from tests.api.conftest import Api
from tests.conftest import ENT_ACTIVITY, PROJECT_ROOT

CONTRACT = json.loads((PROJECT_ROOT / "specs" / "openapi.json").read_text(encoding="utf-8"))
GETS = [
    (path, op)
    for path, item in CONTRACT["paths"].items()
    for method, op in item.items()
    if method == "get"
]
_PERSON = Person.__table__  # type: ignore[attr-defined]
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _persons(api: Api) -> dict[str, tuple[str, ...]]:
    """Hub id -> the personal values the answers may carry (names, birth date)."""
    with api.engine.connect() as connection:
        rows = connection.execute(
            select(_PERSON.c.id, _PERSON.c.usage_name, _PERSON.c.first_name, _PERSON.c.birth_date)
        ).all()
    return {
        str(row.id): tuple(
            v for v in (row.usage_name, row.first_name, row.birth_date and str(row.birth_date)) if v
        )
        for row in rows
    }


def _last_seq(api: Api) -> int:
    with api.engine.connect() as connection:
        return int(
            connection.execute(text("SELECT coalesce(max(seq), 0) FROM flow_entry")).scalar_one()
        )


def _entries_after(api: Api, seq: int) -> list[dict[str, Any]]:
    with api.engine.connect() as connection:
        rows = connection.execute(entries_query().where(ENTRY.c.seq > seq).order_by(ENTRY.c.seq))
        entries = [entry_row(r) for r in rows]
    for entry in entries:
        assert entry["subjects"] == sorted(set(entry["subjects"]))
        entry["subjects"] = set(entry["subjects"])
    return entries


def _an_id(client: TestClient, collection: str) -> str:
    return client.get(collection, params={"limit": 1, "fields": "id"}).json()["items"][0]["id"]


def _request(api: Api, path: str, op: dict[str, Any]) -> tuple[str, dict[str, str]]:
    """A concrete URL and query for the operation: real ids, a page of 20 where pages exist."""
    params = {p["name"] for p in op.get("parameters", []) if p["in"] == "query"}
    query = {"limit": "20"} if "limit" in params else {}
    if "{id}" in path:
        collection = path.split("/{id}")[0]
        if collection == "/v1/registre/persons":
            collection = "/v1/persons"
        path = path.replace("{id}", _an_id(api.client, collection))
    return path, query


def _carried(body: str, persons: dict[str, tuple[str, ...]]) -> tuple[set[str], bool]:
    """Ids of the persons whose id appears in ``body``, and whether any name or birth date of a
    person does (names are shared by several persons: they say "personal", not whose)."""
    ids = {i for i in _UUID.findall(body) if i in persons}
    values = {v for vs in persons.values() for v in vs if len(v) >= 4}
    quoted = {m for m in re.findall(r'"([^"]{4,})"', body)}
    return ids, bool(values & quoted)


@pytest.mark.parametrize(("path", "op"), GETS, ids=[op["operationId"] for _, op in GETS])
def test_every_route_serving_personal_data_logs_it(api: Api, path: str, op: dict[str, Any]) -> None:
    persons = _persons(api)
    keys = open_registre(api.settings, api.engine).keys
    url, query = _request(api, path, op)
    before = _last_seq(api)
    response = api.client.get(url, params=query)
    assert response.status_code == 200, (url, response.text[:300])
    carried, named = _carried(response.text, persons)
    entries = _entries_after(api, before)
    if path.startswith("/v1/registre"):
        # The DPO's reading of the log is itself logged, whatever it carries.
        (entry,) = entries
        assert (entry["flow"], entry["operation"]) == ("registre", "log_access")
        return
    if not carried and not named:
        # Logging more than needed is allowed (import runs: warnings name source records),
        # naming persons that were not served is not.
        assert all(e["persons"] == 0 for e in entries), f"{path}: {entries}"
        return
    assert len(entries) == 1, f"{path}: served personal data with {len(entries)} entries"
    (entry,) = entries
    assert entry["request_id"] == response.headers["x-request-id"]
    assert entry["flow"] == "api-operator" and entry["operation"] == "read"
    assert entry["outcome"] == "success" and entry["target"] == f"GET {path}"
    assert entry["categories"]
    # Every person whose id the answer carries is named in the entry, by pseudonym only.
    assert {keys.pseudonym(uuid.UUID(p)) for p in carried} <= entry["subjects"]
    assert entry["persons"] == len(entry["subjects"])


def test_an_export_logs_every_person_it_streams(api: Api) -> None:
    keys = open_registre(api.settings, api.engine).keys
    before = _last_seq(api)
    response = api.client.get(
        "/v1/persons",
        params={"fields": "id,birth_date"},
        headers={"Accept": "application/x-ndjson"},
    )
    streamed = {json.loads(line)["id"] for line in response.text.splitlines()}
    entries = _entries_after(api, before)
    assert len(entries) == -(-len(streamed) // EXPORT_PART)  # one per part
    assert all(e["operation"] == "export" for e in entries)
    assert sum(e["persons"] for e in entries) == len(streamed)
    assert set().union(*(e["subjects"] for e in entries)) == {
        keys.pseudonym(uuid.UUID(p)) for p in streamed
    }
    assert all(e["categories"] == ["identifiers", "identity.birth_date"] for e in entries)


def test_a_large_export_logs_each_part_before_sending_it(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("annuaire.api.listing.EXPORT_PART", 150)
    keys = open_registre(api.settings, api.engine).keys
    before = _last_seq(api)
    response = api.client.get(
        "/v1/guardianships", params={"limit": 700}, headers={"Accept": "application/x-ndjson"}
    )
    lines = [json.loads(line) for line in response.text.splitlines()]
    entries = _entries_after(api, before)
    assert len(lines) == 700 and len(entries) == 5  # 4 parts of 150, one of 100
    assert {e["request_id"] for e in entries} == {response.headers["x-request-id"]}
    assert all(e["operation"] == "export" for e in entries)
    served = {p for line in lines for p in (line["guardian_id"], line["pupil_id"])}
    assert set().union(*(e["subjects"] for e in entries)) == {
        keys.pseudonym(uuid.UUID(p)) for p in served
    }


def test_narrowed_fields_log_only_their_categories(api: Api) -> None:
    before = _last_seq(api)
    api.client.get("/v1/persons", params={"limit": 3, "fields": "id,first_name"})
    (entry,) = _entries_after(api, before)
    assert entry["categories"] == ["identifiers", "identity.name"]


def test_a_person_s_roles_are_logged_as_professional_and_schooling_data(api: Api) -> None:
    """Roles say a staff member's functions and a pupil's MEF and options."""
    before = _last_seq(api)
    api.client.get("/v1/persons", params={"limit": 3, "fields": "id,roles"})
    api.client.get("/v1/roles", params={"limit": 3, "fields": "id,subject_codes"})
    persons, roles = _entries_after(api, before)
    assert persons["categories"] == ["identifiers", "professional", "schooling"]
    assert roles["categories"] == ["schooling"]


def test_a_family_reads_roles_as_schooling_data(api: Api) -> None:
    """A guardian sees themself and their pupils: the roles served are pupils' schooling, and
    logged so, within what the families' fiche declares (no professional data)."""
    app = api.client.app
    with api.engine.connect() as connection:
        (guardian,) = connection.execute(
            text("SELECT guardian_id FROM guardianship WHERE legal ORDER BY id LIMIT 1")
        ).one()
    guardian = uuid.UUID(str(guardian))
    principal = Principal(PrincipalKind.GUARDIAN, str(guardian), person_id=guardian, resolved=True)
    app.dependency_overrides[current_principal] = lambda: principal  # type: ignore[attr-defined]
    try:
        before = _last_seq(api)
        persons = api.client.get("/v1/persons", params={"fields": "id,roles"})
        roles = api.client.get("/v1/roles")
    finally:
        app.dependency_overrides.clear()  # type: ignore[attr-defined]
    assert any(p["roles"] for p in persons.json()["items"])
    assert {r["role"] for r in roles.json()["items"]} == {"pupil"}
    entries = _entries_after(api, before)
    assert [e["categories"] for e in entries] == [
        ["identifiers", "schooling"],
        ["identifiers", "schooling"],
    ]
    (activity,) = {e["activity"] for e in entries}
    declared = app.state.registre.config.activity(activity).data_categories  # type: ignore[attr-defined]
    assert {"identifiers", "schooling"} <= {str(c) for c in declared}
    assert "professional" not in {str(c) for c in declared}


def test_an_empty_answer_or_a_304_writes_nothing(api: Api) -> None:
    person = _an_id(api.client, "/v1/persons")
    etag = api.client.get(f"/v1/persons/{person}").headers["etag"]
    before = _last_seq(api)
    assert (
        api.client.get(f"/v1/persons/{person}", headers={"If-None-Match": etag}).status_code == 304
    )
    assert api.client.get("/v1/persons", params={"structure": "0000000A"}).json()["items"] == []
    assert api.client.get(f"/v1/persons/{uuid.uuid4()}").status_code == 404
    assert _entries_after(api, before) == []


def test_a_client_read_names_the_client_and_its_contract(api: Api) -> None:
    app = api.client.app
    uais = sorted({s for s in _an_object(api, "/v1/structures", "uai")})
    principal = Principal(
        PrincipalKind.CLIENT,
        "ent-flows",
        client_id="ent-flows",
        structures=frozenset(uais),
        scopes=frozenset({"roster-core.readonly"}),
        activity=ENT_ACTIVITY.id,
        resolved=True,
    )
    app.dependency_overrides[current_principal] = lambda: principal  # type: ignore[attr-defined]
    try:
        person = _an_id(api.client, "/v1/persons")
        before = _last_seq(api)
        assert api.client.get("/v1/persons", params={"limit": 5}).status_code == 200
        principal_without = Principal(
            PrincipalKind.CLIENT,
            "ent-none",
            client_id="ent-none",
            structures=frozenset(uais),
            scopes=frozenset({"roster-core.readonly"}),
            activity="portail-familles",  # a fiche that does not cover ENT clients
            resolved=True,
        )
        app.dependency_overrides[current_principal] = lambda: principal_without  # type: ignore[attr-defined]
        refused = api.client.get("/v1/persons", params={"limit": 5})
        # Refused on every route, personal data or not, and before any 304.
        others = [
            api.client.get(path).status_code
            for path in ("/v1/structures", "/v1/classes", "/v1/subjects", "/v1/changes/cursor")
        ] + [api.client.get(f"/v1/persons/{person}", headers={"If-None-Match": "*"}).status_code]
    finally:
        app.dependency_overrides.clear()  # type: ignore[attr-defined]
    (entry,) = _entries_after(api, before)
    assert (entry["flow"], entry["activity"], entry["client_id"], entry["actor"]) == (
        "api-client",
        ENT_ACTIVITY.id,
        "ent-flows",
        "ent-flows",
    )
    assert entry["scopes"] == ["roster-core.readonly"]
    assert set(entry["structures"]) <= set(uais) and entry["structures"]
    assert refused.status_code == 403
    assert refused.json()["type"] == "urn:aiguillage:problem:forbidden"
    assert others == [403] * 5


def _an_object(api: Api, collection: str, field: str) -> list[str]:
    items = api.client.get(collection, params={"limit": 2, "fields": f"id,{field}"}).json()
    return [item[field] for item in items["items"]]


def test_a_contract_whose_fiche_no_longer_declares_its_data_is_refused(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A contract's scopes were checked against its activity's fiche when it was made; a fiche
    narrowed since (birth date and contact data dropped) refuses what the scopes would open,
    on every route, and the refusal names the categories."""
    app = api.client.app
    registre = app.state.registre  # type: ignore[attr-defined]
    declared = registre.client_activities[ENT_ACTIVITY.id]
    narrowed = declared.model_copy(
        update={
            "data_categories": [
                c
                for c in declared.data_categories
                if c not in (DataCategory.IDENTITY_BIRTH_DATE, DataCategory.CONTACT)
            ]
        }
    )
    monkeypatch.setitem(registre.client_activities, ENT_ACTIVITY.id, narrowed)
    with api.engine.connect() as connection:
        uais = list(
            connection.execute(text("SELECT uai FROM structure WHERE uai IS NOT NULL")).scalars()
        )

    def client(*scopes: str) -> Principal:
        return Principal(
            PrincipalKind.CLIENT,
            "ent-narrowed",
            client_id="ent-narrowed",
            structures=frozenset(uais),
            scopes=frozenset(scopes),
            activity=ENT_ACTIVITY.id,
            resolved=True,
        )

    try:
        app.dependency_overrides[current_principal] = lambda: client(  # type: ignore[attr-defined]
            "roster-core.readonly"
        )
        assert api.client.get("/v1/persons", params={"limit": 2}).status_code == 200
        app.dependency_overrides[current_principal] = lambda: client(  # type: ignore[attr-defined]
            "roster-core.readonly", "roster-demographics.readonly"
        )
        refused = [api.client.get(p) for p in ("/v1/persons", "/v1/structures")]
    finally:
        app.dependency_overrides.clear()  # type: ignore[attr-defined]
    assert [r.status_code for r in refused] == [403, 403]
    detail = refused[0].json()["detail"]
    assert "contact" in detail and "identity.birth_date" in detail


def test_the_log_holds_no_name_nor_birth_date(api: Api) -> None:
    api.client.get("/v1/persons", params={"limit": 50})
    persons = _persons(api)
    values = {v for vs in persons.values() for v in vs if len(v) >= 4}
    with api.engine.connect() as connection:
        rows = (
            connection.execute(select(ENTRY)).all() + connection.execute(select(SUBJECT_SET)).all()
        )
    text_of_log = "\n".join(json.dumps(dict(r._mapping), default=str) for r in rows)
    assert any(getattr(r, "subjects", None) for r in rows)
    assert rows and not [v for v in values if v in text_of_log]
    assert not [p for p in persons if p in text_of_log]  # hub ids neither: pseudonyms only


def test_dpo_endpoints_are_reserved_and_answer_access_requests(api: Api) -> None:
    app = api.client.app
    registre = app.state.registre  # type: ignore[attr-defined]
    person = _an_id(api.client, "/v1/persons")
    api.client.get(f"/v1/persons/{person}")  # a flow about this person, as the operator
    staff = Principal(PrincipalKind.STAFF, "sub-1", email="prof@example.fr", resolved=False)
    dpo = Principal(PrincipalKind.STAFF, "sub-2", email=registre.config.dpo.accounts[0])
    try:
        app.dependency_overrides[current_principal] = lambda: staff  # type: ignore[attr-defined]
        refused = api.client.get("/v1/registre")
        app.dependency_overrides[current_principal] = lambda: dpo  # type: ignore[attr-defined]
        before = _last_seq(api)
        report = api.client.get(f"/v1/registre/persons/{person}/flows")
        register = api.client.get("/v1/registre", params={"verify": "true"})
    finally:
        app.dependency_overrides.clear()  # type: ignore[attr-defined]
    assert refused.status_code == 403
    assert report.status_code == 200 and register.status_code == 200
    flows = report.json()["flows"]
    assert all(f["seq"] <= before for f in flows)  # the access itself is logged after
    assert any(f["flow"] == "api-operator" and f["operation"] == "read" for f in flows)
    assert register.json()["flow_log"]["verified"] is True
    access, listing = _entries_after(api, before)
    assert access["actor_kind"] == "dpo" and access["flow"] == "registre"
    assert access["subjects"] == {registre.keys.pseudonym(uuid.UUID(person))}
    assert access["actor"] == registre.keys.pseudonym_of_text("sub-2")
    assert listing["operation"] == "log_access" and listing["persons"] == 0
    generated = dt.datetime.fromisoformat(register.json()["generated_at"])
    assert generated.tzinfo is not None


def test_a_request_whose_entry_cannot_be_written_in_time_is_a_503_to_retry(
    fresh_api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While another transaction holds what the log's writer needs (on SQLite, an import holds
    the write lock for its whole run), a request waits for its entry, then fails with a 503 and
    a Retry-After, serving nothing; the same request succeeds once the lock is released."""
    monkeypatch.setattr(writer_module, "WRITE_TIMEOUT_S", 0.5)
    api = fresh_api
    with write_transaction(api.engine) as holder:  # SQLite: BEGIN IMMEDIATE
        if api.backend == "postgres":
            holder.execute(text("SELECT last_seq FROM flow_chain FOR UPDATE"))
        busy = api.client.get("/v1/persons", params={"limit": 2})
    assert busy.status_code == 503, busy.text
    assert busy.headers["retry-after"] == "30"
    problem = busy.json()
    assert problem["type"] == "urn:aiguillage:problem:unavailable" and problem["status"] == 503
    assert "retry later" in problem["detail"]
    again = api.client.get("/v1/persons", params={"limit": 2})
    assert again.status_code == 200 and len(again.json()["items"]) == 2
