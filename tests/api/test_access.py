"""Access rules, checked against an oracle computed in Python from the same data.

For random principals (guardians, pupils, teachers, heads of school, ENT clients) and random
objects, the API serves an object if and only if the oracle says the principal may see it —
in single reads, in lists, in the NDJSON export and in the feed — and 404 otherwise. The
principal is injected already resolved (token validation has its own tests); what is under
test here is the rules the query layer applies.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import insert, select, text, update

from annuaire.api import create_app
from annuaire.auth import Principal, PrincipalKind, current_principal
from annuaire.auth.access import CORE_SCOPE, DEMOGRAPHICS, DEMOGRAPHICS_SCOPE
from annuaire.auth.principal import StaffRole
from annuaire.schema import Enrollment, Person, Role, Structure
from tests.conftest import ENT_ACTIVITY

from .conftest import Api, TestClient


@dataclass
class World:
    """The académie as plain Python sets, to compute who may see what."""

    persons: dict[str, str] = field(default_factory=dict)  # id -> "|UAI|..."
    structures: dict[str, str] = field(default_factory=dict)  # id -> uai
    roles: dict[str, tuple[str, str, str]] = field(
        default_factory=dict
    )  # id -> person, struct, role
    classes: dict[str, str] = field(default_factory=dict)  # id -> structures text
    groups: dict[str, str] = field(default_factory=dict)
    enrollments: dict[str, tuple[str, str | None, str | None, str]] = field(default_factory=dict)
    guardianships: dict[str, tuple[str, str, bool]] = field(default_factory=dict)
    structures_of: dict[str, str] = field(default_factory=dict)  # any id -> "|UAI|..."
    #: Ids of the rows the source no longer gives (``tobedeleted``): they grant nothing.
    leaving: set[str] = field(default_factory=set)


def load_world(api: Api) -> World:
    world = World()

    def rows(sql: str) -> list[Any]:
        with api.engine.connect() as connection:
            return list(connection.execute(text(sql)))

    def norm(value: Any) -> str:
        return str(uuid.UUID(str(value)))

    for pid, structures in rows("SELECT id, structures FROM person"):
        world.persons[norm(pid)] = structures
    for sid, uai, structures in rows("SELECT id, uai, structures FROM structure"):
        world.structures[norm(sid)] = uai
        world.structures_of[norm(sid)] = structures
    for rid, pid, sid, role, structures in rows(
        "SELECT id, person_id, structure_id, role, structures FROM role"
    ):
        world.roles[norm(rid)] = (norm(pid), norm(sid), role)
        world.structures_of[norm(rid)] = structures
    for table, target in (("school_class", world.classes), ("pupil_group", world.groups)):
        for cid, structures in rows(f"SELECT id, structures FROM {table}"):
            target[norm(cid)] = structures
            world.structures_of[norm(cid)] = structures
    for eid, pid, cid, gid, role, structures in rows(
        "SELECT id, person_id, class_id, group_id, role, structures FROM enrollment"
    ):
        world.enrollments[norm(eid)] = (
            norm(pid),
            norm(cid) if cid else None,
            norm(gid) if gid else None,
            role,
        )
        world.structures_of[norm(eid)] = structures
    for gid, guardian, pupil, legal, structures in rows(
        "SELECT id, guardian_id, pupil_id, legal, structures FROM guardianship"
    ):
        world.guardianships[norm(gid)] = (norm(guardian), norm(pupil), bool(legal))
        world.structures_of[norm(gid)] = structures
    world.structures_of.update(world.persons)
    for table in ("role", "enrollment", "guardianship"):
        world.leaving |= {
            norm(i) for (i,) in rows(f"SELECT id FROM {table} WHERE status <> 'active'")
        }
    return world


def expected(world: World, who: Principal) -> dict[str, set[str]]:
    """resource -> ids the principal may see, by the rules written in plain words."""
    out: dict[str, set[str]] = defaultdict(set)
    everything = {
        "persons": set(world.persons),
        "structures": set(world.structures),
        "roles": set(world.roles),
        "classes": set(world.classes),
        "groups": set(world.groups),
        "enrollments": set(world.enrollments),
        "guardianships": set(world.guardianships),
    }
    if who.kind is PrincipalKind.CLIENT and CORE_SCOPE not in who.scopes:
        return out
    if who.kind is PrincipalKind.CLIENT or (
        who.kind is PrincipalKind.STAFF and who.staff_role is not StaffRole.TEACHER
    ):
        for resource, ids in everything.items():
            out[resource] = {
                i for i in ids if any(f"|{u}|" in world.structures_of[i] for u in who.structures)
            }
        return out
    me = str(who.person_id)
    if who.kind is PrincipalKind.STAFF:
        # What they teach in the structures of their token (resolved against the annuaire).
        teaching = [
            (c, g)
            for e, (p, c, g, r) in world.enrollments.items()
            if p == me
            and r != "pupil"
            and e not in world.leaving
            and any(f"|{u}|" in world.structures_of[e] for u in who.structures)
        ]
        classes = {c for c, _ in teaching if c}
        groups = {g for _, g in teaching if g}
        people = {me} | {
            p
            for e, (p, c, g, _) in world.enrollments.items()
            if (c in classes or g in groups) and e not in world.leaving
        }
        out["persons"] = people
        out["classes"], out["groups"] = classes, groups
        out["roles"] = {r for r, (p, _, _) in world.roles.items() if p == me}
        out["enrollments"] = {
            e
            for e, (p, c, g, _) in world.enrollments.items()
            if p == me or c in classes or g in groups
        }
        out["structures"] = {
            s
            for r, (p, s, _) in world.roles.items()
            if p == me and world.structures[s] in who.structures and r not in world.leaving
        }
        return out
    if who.kind is PrincipalKind.GUARDIAN:
        pupils = {
            pu
            for i, (g, pu, legal) in world.guardianships.items()
            if g == me and legal and i not in world.leaving
        }
        mine = {me} | pupils
        out["guardianships"] = {
            i for i, (g, pu, legal) in world.guardianships.items() if g == me and pu in pupils
        }
    else:
        mine = {me}
    out["persons"] = mine
    out["roles"] = {r for r, (p, _, _) in world.roles.items() if p in mine}
    out["enrollments"] = {e for e, (p, _, _, _) in world.enrollments.items() if p in mine}
    # Their own roles and enrollments, leaving or not; what those reach, through active ones.
    active = [(p, c, g) for e, (p, c, g, _) in world.enrollments.items() if e not in world.leaving]
    out["classes"] = {c for p, c, _ in active if p in mine and c}
    out["groups"] = {g for p, _, g in active if p in mine and g}
    out["structures"] = {
        s for r, (p, s, _) in world.roles.items() if p in mine and r not in world.leaving
    }
    return out


class Caller:
    """The principal the app sees for the next requests."""

    principal: Principal = Principal.operator()

    def __call__(self) -> Principal:
        return self.principal


@pytest.fixture(scope="module")
def guarded(api: Api) -> Iterator[tuple[TestClient, Caller, World]]:
    caller = Caller()
    app = create_app(api.settings)
    app.dependency_overrides[current_principal] = caller
    with TestClient(app) as client:
        yield client, caller, load_world(api)
    app.state.engine.dispose()


def principals(world: World) -> st.SearchStrategy[Principal]:
    guardians = sorted({g for g, _, _ in world.guardianships.values()})
    # guardians with a link that is not legal representation: rare, so drawn on purpose
    contacts = sorted({g for g, _, legal in world.guardianships.values() if not legal})
    pupils = sorted({p for p, _, r in world.roles.values() if r == "pupil"})
    teachers = sorted({p for p, _, r in world.roles.values() if r == "teacher"})
    # A teacher's token names some of the structures the annuaire gives them (resolution).
    teaching_uais: dict[str, list[str]] = defaultdict(list)
    for p, s, _ in world.roles.values():
        if world.structures[s] not in teaching_uais[p]:
            teaching_uais[p].append(world.structures[s])
    uais = sorted(world.structures.values())

    def person(kind: PrincipalKind, ids: list[str], **extra: Any) -> st.SearchStrategy[Principal]:
        return st.sampled_from(ids).map(
            lambda pid: Principal(kind, pid, person_id=uuid.UUID(pid), resolved=True, **extra)
        )

    return st.one_of(
        person(PrincipalKind.GUARDIAN, guardians),
        person(PrincipalKind.GUARDIAN, contacts or guardians),
        person(PrincipalKind.PUPIL, pupils),
        st.sampled_from(teachers).flatmap(
            lambda pid: st.sets(st.sampled_from(teaching_uais[pid])).map(
                lambda chosen: Principal(
                    PrincipalKind.STAFF,
                    pid,
                    person_id=uuid.UUID(pid),
                    staff_role=StaffRole.TEACHER,
                    structures=frozenset(chosen),
                    resolved=True,
                )
            )
        ),
        st.builds(
            lambda chosen, role: Principal(
                PrincipalKind.STAFF,
                "head",
                structures=frozenset(chosen),
                staff_role=role,
                resolved=True,
            ),
            st.sets(st.sampled_from(uais), min_size=1, max_size=2),
            st.sampled_from([StaffRole.HEAD, StaffRole.ADMIN]),
        ),
        st.builds(
            lambda chosen, scopes: Principal(
                PrincipalKind.CLIENT,
                "ent-x",
                client_id="ent-x",
                structures=frozenset(chosen),
                scopes=frozenset(scopes),
                activity=ENT_ACTIVITY.id,
                resolved=True,
            ),
            st.sets(st.sampled_from(uais), max_size=3),
            st.sets(st.sampled_from([CORE_SCOPE, DEMOGRAPHICS_SCOPE]), min_size=0, max_size=2),
        ),
    )


ENTITY_TYPES = {
    "persons": "person",
    "structures": "structure",
    "roles": "role",
    "classes": "class",
    "groups": "group",
    "enrollments": "enrollment",
    "guardianships": "guardianship",
}
RESOURCES = ["persons", "structures", "roles", "classes", "groups", "enrollments", "guardianships"]


def act_as_someone(
    guarded: tuple[TestClient, Caller, World], data: st.DataObject
) -> tuple[TestClient, World, dict[str, set[str]], str]:
    """Draw a principal, make it the caller, and draw a resource to probe."""
    client, caller, world = guarded
    caller.principal = data.draw(principals(world))
    resource = data.draw(st.sampled_from(RESOURCES))
    return client, world, expected(world, caller.principal), resource


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_an_object_is_served_iff_the_rule_allows_it(
    guarded: tuple[TestClient, Caller, World], data: st.DataObject
) -> None:
    client, world, allowed, resource = act_as_someone(guarded, data)
    universe = sorted(getattr(world, resource))
    probe = data.draw(st.sampled_from(universe))
    if allowed[resource]:
        probe = data.draw(st.sampled_from([probe, *sorted(allowed[resource])[:5]]))
    response = client.get(f"/v1/{resource}/{probe}")
    assert response.status_code == (200 if probe in allowed[resource] else 404), resource
    if response.status_code == 404:
        assert response.json()["type"] == "urn:aiguillage:problem:not-found"


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_lists_exports_and_the_feed_serve_exactly_what_the_rule_allows(
    guarded: tuple[TestClient, Caller, World], data: st.DataObject
) -> None:
    client, _world, allowed, resource = act_as_someone(guarded, data)
    listed: set[str] = set()
    params = {"limit": 1000, "fields": "id"}
    while True:  # several pages when the principal sees more than 1,000 objects
        page = client.get(f"/v1/{resource}", params=params).json()
        listed |= {item["id"] for item in page["items"]}
        if page["next"] is None:
            break
        params = {**params, "cursor": page["next"]}
    assert listed == allowed[resource]
    exported = client.get(
        f"/v1/{resource}", params={"fields": "id"}, headers={"Accept": "application/x-ndjson"}
    )
    assert {orjson.loads(x)["id"] for x in exported.content.splitlines()} == allowed[resource]
    fed: set[str] = set()
    after = None
    while True:
        params = {"limit": 1000, "entityType": ENTITY_TYPES[resource]}
        page = client.get("/v1/changes", params={**params, **({"after": after} if after else {})})
        fed |= {e["entity_id"] for e in page.json()["items"]}
        if not page.json()["items"]:
            break
        after = page.json()["next"]
    assert fed == allowed[resource]


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_a_person_embeds_only_the_roles_the_rule_allows(
    guarded: tuple[TestClient, Caller, World], data: st.DataObject
) -> None:
    """A person document's ``roles`` are the person's roles that ``/v1/roles`` serves the
    caller: an ENT client sees no role at a structure outside its contract, a teacher no role
    of their pupils."""
    client, world, allowed, _resource = act_as_someone(guarded, data)
    visible_roles: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for role_id in allowed["roles"]:
        person, structure, role = world.roles[role_id]
        visible_roles[person].append((world.structures[structure], role))
    params: dict[str, Any] = {"limit": 1000, "fields": "id,roles"}
    while True:
        page = client.get("/v1/persons", params=params).json()
        for item in page["items"]:
            embedded = sorted((r["structure_uai"], r["role"]) for r in item["roles"])
            assert embedded == sorted(visible_roles[item["id"]]), item["id"]
        if page["next"] is None:
            break
        params = {**params, "cursor": page["next"]}


def test_filters_cannot_widen_the_rule(guarded: tuple[TestClient, Caller, World]) -> None:
    client, caller, world = guarded
    pupil = next(p for p, _, r in world.roles.values() if r == "pupil")
    caller.principal = Principal(
        PrincipalKind.PUPIL, pupil, person_id=uuid.UUID(pupil), resolved=True
    )
    for params in (
        {"status": "active"},
        {"structure": next(iter(world.structures.values()))},
        {"role": "pupil"},
        {"modifiedSince": "2000-01-01T00:00:00Z"},
    ):
        ids = {p["id"] for p in client.get("/v1/persons", params=params).json()["items"]}
        assert ids <= {pupil}


#: The filters of /v1/persons that go through another resource: parameter -> that resource.
THROUGH = {"structure": "roles", "role": "roles", "class": "enrollments", "group": "enrollments"}


def persons_through(world: World, allowed: dict[str, set[str]], name: str, value: str) -> set[str]:
    """The persons the caller may see that ``name=value`` selects through the roles or
    enrollments the caller may read (what /v1/roles and /v1/enrollments would tell)."""
    if THROUGH[name] == "roles":
        roles = [world.roles[r] for r in allowed["roles"]]
        matched = {
            p for p, s, r in roles if (world.structures[s] if name == "structure" else r) == value
        }
    else:
        enrollments = [world.enrollments[e] for e in allowed["enrollments"]]
        matched = {p for p, c, g, _ in enrollments if (c if name == "class" else g) == value}
    return matched & allowed["persons"]


def listed_ids(client: TestClient, path: str, params: dict[str, Any]) -> set[str]:
    ids: set[str] = set()
    params = {**params, "limit": 1000, "fields": "id"}
    while True:
        page = client.get(path, params=params)
        assert page.status_code == 200, page.text
        ids |= {item["id"] for item in page.json()["items"]}
        if page.json()["next"] is None:
            return ids
        params = {**params, "cursor": page.json()["next"]}


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_a_filter_through_roles_or_enrollments_tells_only_what_the_rule_allows(
    guarded: tuple[TestClient, Caller, World], data: st.DataObject
) -> None:
    """``/v1/persons?structure=&role=&class=&group=`` select persons through their roles and
    enrollments: only through those the caller may read, so a filter never reveals a role at a
    school outside an ENT's contract, nor a pupil's membership of a group their teacher does
    not teach."""
    client, world, allowed, _resource = act_as_someone(guarded, data)
    name = data.draw(st.sampled_from(sorted(THROUGH)))
    choices = {
        "structure": sorted(set(world.structures.values())),
        "role": sorted({r for _, _, r in world.roles.values()}),
        "class": sorted(world.classes),
        "group": sorted(world.groups),
    }[name]
    # Values the caller may read are the interesting ones: draw among them too.
    readable = sorted(
        {world.structures[world.roles[r][1]] for r in allowed["roles"]}
        if name == "structure"
        else {world.roles[r][2] for r in allowed["roles"]}
        if name == "role"
        else allowed["classes" if name == "class" else "groups"]
    )
    value = data.draw(st.sampled_from(choices + readable))
    served = listed_ids(client, "/v1/persons", {name: value})
    assert served == persons_through(world, allowed, name, value), (name, value)


def test_an_ent_client_learns_no_role_outside_its_contract_through_the_filters(
    fresh_api: Api,
) -> None:
    """A teacher of a collège who also teaches at an école (a multi-school AAF gives that):
    an ENT client of the collège reads the person and their collège role, and the filters do
    not tell it that they have a role at the école."""
    role_table, structure, person_table = (
        m.__table__  # type: ignore[attr-defined]
        for m in (Role, Structure, Person)
    )
    with fresh_api.engine.begin() as connection:
        college, ecole = (
            connection.execute(
                select(structure.c.uai).where(structure.c.kind == kind).order_by(structure.c.uai)
            ).scalar()
            for kind in ("college", "ecole")
        )
        ecole_id = connection.execute(
            select(structure.c.id).where(structure.c.uai == ecole)
        ).scalar()
        found = (
            connection.execute(
                select(role_table)
                .where(role_table.c.role == "teacher", role_table.c.structures == f"|{college}|")
                .order_by(role_table.c.id)
            )
            .mappings()
            .first()
        )
        assert found is not None, "the generated académie has collège teachers"
        role = {
            **found,
            "id": uuid.uuid4(),
            "structure_id": ecole_id,
            "structures": f"|{ecole}|",
            "source_key": found["source_key"] + "-ecole",
        }
        connection.execute(insert(role_table).values(**role))
        connection.execute(
            update(person_table)
            .where(person_table.c.id == role["person_id"])
            .values(structures=f"|{college}|{ecole}|")
        )
    person = str(uuid.UUID(str(role["person_id"])))
    app = create_app(fresh_api.settings)
    app.dependency_overrides[current_principal] = lambda: Principal(
        PrincipalKind.CLIENT,
        "ent-x",
        client_id="ent-x",
        structures=frozenset({college}),
        scopes=frozenset({CORE_SCOPE}),
        activity=ENT_ACTIVITY.id,
        resolved=True,
    )
    with TestClient(app) as client:
        document = client.get(f"/v1/persons/{person}").json()
        assert {r["structure_uai"] for r in document["roles"]} == {college}
        assert person in listed_ids(client, "/v1/persons", {"structure": college})
        assert person in listed_ids(client, "/v1/persons", {"role": "teacher"})
        assert listed_ids(client, "/v1/persons", {"structure": ecole}) == set()
        assert listed_ids(client, "/v1/persons", {"structure": ecole, "role": "teacher"}) == set()
    app.state.engine.dispose()


def test_a_teacher_learns_no_enrollment_it_may_not_read_through_the_filters(
    guarded: tuple[TestClient, Caller, World],
) -> None:
    """A pupil of a teacher's class is also in a group the teacher does not teach: the teacher
    reads the pupil, not that group nor that enrollment, and the filters say no more."""
    client, caller, world = guarded
    pupils_of: dict[str, set[str]] = defaultdict(set)
    groups_of: dict[str, set[str]] = defaultdict(set)
    for p, c, g, r in world.enrollments.values():
        if c and r == "pupil":
            pupils_of[c].add(p)
        if g:
            groups_of[p].add(g)
    teacher, pupil, group, structures = next(
        (t, p, g, world.structures_of[e])
        for e, (t, c, _, r) in sorted(world.enrollments.items())
        if c and r in ("teacher", "head_teacher")
        for p in sorted(pupils_of[c])
        for g in sorted(groups_of[p] - groups_of[t])
    )
    caller.principal = Principal(
        PrincipalKind.STAFF,
        teacher,
        person_id=uuid.UUID(teacher),
        staff_role=StaffRole.TEACHER,
        structures=frozenset(u for u in structures.split("|") if u),
        resolved=True,
    )
    assert client.get(f"/v1/persons/{pupil}").status_code == 200
    assert client.get(f"/v1/groups/{group}").status_code == 404
    assert all(
        e["group_id"] != group
        for e in client.get("/v1/enrollments", params={"person": pupil}).json()["items"]
    )
    assert pupil not in listed_ids(client, "/v1/persons", {"group": group})
    # Nor a pupil's roles (a teacher reads only their own): no pupil through role=pupil.
    assert listed_ids(client, "/v1/persons", {"role": "pupil"}) == set()
    assert teacher in listed_ids(client, "/v1/persons", {"role": "teacher"})


NOMENCLATURES = {"subjects": "subject", "levels": "level"}


@pytest.mark.parametrize("who", ["client", "client-without-core", "head", "admin", "teacher"])
def test_the_feed_carries_the_subjects_and_levels_the_caller_may_read(
    guarded: tuple[TestClient, Caller, World], who: str
) -> None:
    """Subjects and levels belong to no structure (their entries name none): whoever may read
    /v1/subjects and /v1/levels reads their entries in the feed, structure-wide principals too."""
    client, caller, world = guarded
    uais = frozenset(sorted(set(world.structures.values()))[:1])
    teacher = next(p for p, _, r in world.roles.values() if r == "teacher")

    def ent_client(scope: str) -> Principal:
        return Principal(
            PrincipalKind.CLIENT,
            "ent-x",
            client_id="ent-x",
            structures=uais,
            scopes=frozenset({scope}),
            activity=ENT_ACTIVITY.id,
            resolved=True,
        )

    caller.principal = {
        "client": ent_client(CORE_SCOPE),
        "client-without-core": ent_client(DEMOGRAPHICS_SCOPE),
        "head": Principal(
            PrincipalKind.STAFF, "h", structures=uais, staff_role=StaffRole.HEAD, resolved=True
        ),
        "admin": Principal(
            PrincipalKind.STAFF, "a", structures=uais, staff_role=StaffRole.ADMIN, resolved=True
        ),
        "teacher": Principal(
            PrincipalKind.STAFF,
            teacher,
            person_id=uuid.UUID(teacher),
            staff_role=StaffRole.TEACHER,
            structures=uais,
            resolved=True,
        ),
    }[who]
    for resource, entity_type in NOMENCLATURES.items():
        readable = listed_ids(client, f"/v1/{resource}", {})
        assert bool(readable) == (who != "client-without-core"), resource
        fed: set[str] = set()
        params: dict[str, Any] = {"limit": 1000, "entityType": entity_type}
        while page := client.get("/v1/changes", params=params).json():
            if not page["items"]:
                break
            fed |= {e["entity_id"] for e in page["items"]}
            params["after"] = page["next"]
        assert fed == readable, resource


def test_fields_beyond_scope_are_refused(guarded: tuple[TestClient, Caller, World]) -> None:
    client, caller, world = guarded
    uais = frozenset(world.structures.values())
    caller.principal = Principal(
        PrincipalKind.CLIENT,
        "ent-x",
        client_id="ent-x",
        structures=uais,
        scopes=frozenset({CORE_SCOPE}),
        activity=ENT_ACTIVITY.id,
        resolved=True,
    )
    person = client.get("/v1/persons", params={"limit": 5}).json()["items"][0]
    assert not DEMOGRAPHICS & set(person)
    refused = client.get("/v1/persons", params={"fields": "id,birth_date"})
    assert refused.status_code == 400
    assert refused.json()["type"] == "urn:aiguillage:problem:unknown-field"
    caller.principal = Principal(
        PrincipalKind.CLIENT,
        "ent-x",
        client_id="ent-x",
        structures=uais,
        scopes=frozenset({CORE_SCOPE, DEMOGRAPHICS_SCOPE}),
        activity=ENT_ACTIVITY.id,
        resolved=True,
    )
    assert "birth_date" in client.get("/v1/persons", params={"limit": 5}).json()["items"][0]
    assert client.get("/v1/import-runs").json()["items"] == []


def test_the_kits_shape_check_allows_what_the_caller_may_not_read(
    guarded: tuple[TestClient, Caller, World],
) -> None:
    """A client without the demographics scope gets persons without them: the kit's shape
    check accepts that (they are ``x-restricted`` in the contract), and nothing else missing."""
    import json

    from annuaire.conformance._http import Deployment
    from annuaire.conformance._shape import check_shape
    from tests.conftest import PROJECT_ROOT

    client, caller, world = guarded
    caller.principal = Principal(
        PrincipalKind.CLIENT,
        "ent-x",
        client_id="ent-x",
        structures=frozenset(world.structures.values()),
        scopes=frozenset({CORE_SCOPE}),
        activity=ENT_ACTIVITY.id,
        resolved=True,
    )
    document = json.loads((PROJECT_ROOT / "specs" / "openapi.json").read_text())
    deployment = Deployment(str(client.base_url))
    deployment.client.close()
    deployment.client = client
    findings = check_shape(deployment, document)
    assert findings is not None and findings.failures == [], findings.failures
    person = document["components"]["schemas"]["PersonPublic"]["properties"]
    del person["phone_work"]["x-restricted"]  # the check reads the contract it is given
    findings = check_shape(deployment, document)
    assert findings is not None
    assert any("lacks documented phone_work" in f for f in findings.failures), findings.failures


def test_a_contact_who_is_not_a_legal_guardian_sees_only_themself(
    guarded: tuple[TestClient, Caller, World],
) -> None:
    client, caller, world = guarded
    links = [(g, p) for g, p, legal in world.guardianships.values() if not legal]
    assert links, "the generated académie has non-legal contacts"
    legal_pupils = {p for g, p, legal in world.guardianships.values() if legal}
    guardian, pupil = next(
        (g, p)
        for g, p in links
        if not any(gg == g and pp == p and lg for gg, pp, lg in world.guardianships.values())
    )
    caller.principal = Principal(
        PrincipalKind.GUARDIAN, guardian, person_id=uuid.UUID(guardian), resolved=True
    )
    assert client.get(f"/v1/persons/{pupil}").status_code == 404
    visible = {p["id"] for p in client.get("/v1/persons", params={"limit": 1000}).json()["items"]}
    assert pupil not in visible and guardian in visible
    assert visible - {guardian} <= legal_pupils


def served(client: TestClient, resource: str, ident: str) -> dict[str, bool]:
    """Whether each way of reading ``resource`` serves the object ``ident``."""
    exported = client.get(
        f"/v1/{resource}", params={"fields": "id"}, headers={"Accept": "application/x-ndjson"}
    )
    assert exported.status_code == 200
    fed = client.get(
        "/v1/changes", params={"limit": 1000, "entityType": ENTITY_TYPES[resource]}
    ).json()["items"]
    return {
        "single": client.get(f"/v1/{resource}/{ident}").status_code == 200,
        "head": client.head(f"/v1/{resource}/{ident}").status_code == 200,
        "list": ident in listed_ids(client, f"/v1/{resource}", {}),
        "export": ident in {orjson.loads(x)["id"] for x in exported.content.splitlines()},
        "feed": ident in {e["entity_id"] for e in fed},
    }


@pytest.mark.parametrize("who", ["guardian", "pupil"])
def test_a_leaving_enrollment_or_role_grants_no_read_of_its_class_group_or_structure(
    fresh_api: Api, who: str
) -> None:
    """A pupil's enrollments in a class and a group and their role at a school are leaving
    (``tobedeleted``: the source no longer gives them). The pupil, and a guardian whose only
    link to that class, group and school is this pupil, no longer read them — not in a
    single read, a HEAD, a list, an export nor the feed — but still read the leaving
    enrollments and role themselves (an ENT must learn that they leave)."""
    world = load_world(fresh_api)
    legal = defaultdict(set)
    for guardian, pupil, is_legal in world.guardianships.values():
        if is_legal:
            legal[guardian].add(pupil)

    def family(pupil: str) -> tuple[str, set[str]]:
        """The principal's person id and the persons whose rows they read, for ``pupil``."""
        if who == "pupil":
            return pupil, {pupil}
        guardian = sorted(g for g, children in legal.items() if pupil in children)[0]
        return guardian, {guardian} | legal[guardian]

    def linked(ids: set[str]) -> tuple[set[str | None], set[str | None], set[str]]:
        enrolled = [(c, g) for e, (p, c, g, _) in world.enrollments.items() if p in ids]
        roles = {s for _, (p, s, _) in world.roles.items() if p in ids}
        return {c for c, _ in enrolled}, {g for _, g in enrolled}, roles

    pupils = sorted(
        p
        for p, _, r in world.roles.values()
        if r == "pupil" and any(p in c for c in legal.values())
    )
    for pupil in pupils:
        me, mine = family(pupil)
        enrollments = {e: (c, g) for e, (p, c, g, _) in world.enrollments.items() if p == pupil}
        roles = {r: s for r, (p, s, _) in world.roles.items() if p == pupil}
        others = linked(mine - {pupil})
        own = linked({pupil})
        classes = {c for c, _ in enrollments.values() if c} - others[0]
        groups = {g for _, g in enrollments.values() if g} - others[1]
        structures = set(roles.values()) - others[2]
        if classes and groups and structures and len(own[2]) == len(roles):
            break
    else:
        pytest.fail(
            "no pupil of the generated académie has a class, a group and a school of their own"
        )
    enrollment_table, role_table = (m.__table__ for m in (Enrollment, Role))  # type: ignore[attr-defined]
    app = create_app(fresh_api.settings)
    app.dependency_overrides[current_principal] = lambda: Principal(
        PrincipalKind.GUARDIAN if who == "guardian" else PrincipalKind.PUPIL,
        me,
        person_id=uuid.UUID(me),
        resolved=True,
    )
    targets = [
        *(("classes", c) for c in sorted(classes)),
        *(("groups", g) for g in sorted(groups)),
        *(("structures", s) for s in sorted(structures)),
    ]
    with TestClient(app) as client:
        for resource, ident in targets:  # what the active links grant
            assert all(served(client, resource, ident).values()), (resource, ident)
        with fresh_api.engine.begin() as connection:
            for table, ids in ((enrollment_table, enrollments), (role_table, roles)):
                connection.execute(
                    update(table)
                    .where(table.c.id.in_([uuid.UUID(i) for i in ids]))
                    .values(status="tobedeleted")
                )
        for resource, ident in targets:
            assert not any(served(client, resource, ident).values()), (resource, ident)
        for resource, ids in (("enrollments", enrollments), ("roles", roles)):
            for ident in ids:
                assert served(client, resource, ident)["single"], (resource, ident)
        assert served(client, "persons", pupil)["single"]
    app.state.engine.dispose()
