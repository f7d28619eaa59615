"""From claims to a principal of the store: EduConnect, guichet agent, clients."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from annuaire.auth import AccessRules, Principal, PrincipalKind, current_principal
from annuaire.auth.principal import StaffRole, Unauthenticated, principal_from_claims
from annuaire.importing import import_aaf
from annuaire.registre.vocabulary import FlowKind
from annuaire.settings import IssuerSettings
from annuaire.store.engine import one_snapshot

from .conftest import Api, legal_guardian_vector

BASE = {"sub": "s-1", "client_id": "broker", "iss": "x", "aud": "a", "exp": 0, "iat": 0, "jti": "j"}


def one(api: Api, sql: str) -> Any:
    with api.engine.connect() as connection:
        return connection.execute(text(sql)).first()


def resolve(api: Api, profile: str, claims: dict[str, Any], *, fredu_vecteur: bool = False) -> Any:
    principal = principal_from_claims(
        profile, "test", {**BASE, **claims}, fredu_vecteur=fredu_vecteur
    )
    with api.engine.connect() as connection:
        return AccessRules().resolve(connection, principal)


def sql_id(api: Api, value: Any) -> str:
    """A hub id as the backend stores it, for SQL text."""
    ident = uuid.UUID(str(value))
    return ident.hex if api.backend == "sqlite" else str(ident)


def staff_member(api: Api, role: str, also: str = "") -> Any:
    """(person id, e-mail, UAI) of the first staff member with ``role`` and an e-mail."""
    return one(
        api,
        "SELECT p.id, p.email, s.uai FROM person p JOIN role r ON r.person_id = p.id "
        f"JOIN structure s ON s.id = r.structure_id WHERE r.role = '{role}' "
        f"AND p.email IS NOT NULL {also}ORDER BY p.email LIMIT 1",
    )


def join_key_of(api: Api, person_sql: str) -> tuple[uuid.UUID, str]:
    row = one(
        api,
        "SELECT e.entity_id, e.value FROM external_id e WHERE e.type = 'aaf:ENTPersonJointure' "
        f"AND e.entity_id IN ({person_sql}) ORDER BY e.value LIMIT 1",
    )
    return uuid.UUID(str(row[0])), row[1]


def test_an_educonnect_guardian_is_found_by_the_aaf_join_key_only(api: Api) -> None:
    person, key = join_key_of(api, "SELECT guardian_id FROM guardianship WHERE legal")
    claims = {
        "FrEduCtPersonAffiliation": ["resp2d"],
        "FrEduCtRefId": [f"{{AAF}}99|x|{key}", "ECT1234"],
        "FrEduCtId": "ab" * 48,
    }
    principal = resolve(api, "educonnect", claims)
    assert principal.kind is PrincipalKind.GUARDIAN and principal.person_id == person
    kept = one(
        api,
        "SELECT count(*) FROM external_id WHERE type = 'educonnect:FrEduCtId' "
        f"AND value = '{'ab' * 48}'",
    )
    assert kept[0] == 1
    resolve(api, "educonnect", claims)  # a second login keeps one row
    assert one(api, "SELECT count(*) FROM external_id WHERE type = 'educonnect:FrEduCtId'")[0] == 1


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"FrEduCtPersonAffiliation": "resp2d", "FrEduCtRefId": "{AAF}99|x|nobody"}, "identity"),
        ({"FrEduCtPersonAffiliation": "resp2d", "FrEduCtRefId": "{AAF}99|x"}, "identity"),
        ({"FrEduCtPersonAffiliation": "resp2d", "FrEduCtRefId": "ECT-ENT-1"}, "identity"),
        ({"FrEduCtPersonAffiliation": "teacher", "FrEduCtRefId": "{AAF}99|x|1"}, "identity"),
        ({"FrEduCtPersonAffiliation": "resp2d", "FrEduCtRefId": 5}, "claim_type"),
    ],
)
def test_educonnect_refusals(api: Api, claims: dict[str, Any], reason: str) -> None:
    with pytest.raises(Unauthenticated) as refused:
        resolve(api, "educonnect", claims)
    assert refused.value.reason == reason


def test_a_claim_with_a_control_character_finds_no_one(api: Api) -> None:
    """The claims that find a person or a contract hold no control character (no AAF value,
    e-mail or client id has one, and PostgreSQL refuses NUL in text): such a token is refused
    before any query, even from a trusted issuer."""
    _, key = join_key_of(api, "SELECT guardian_id FROM guardianship WHERE legal")
    guardian = {"FrEduCtPersonAffiliation": "resp2d", "FrEduCtRefId": f"{{AAF}}99|x|{key}"}
    cases: list[tuple[str, dict[str, Any]]] = [
        ("educonnect", {**guardian, "FrEduCtRefId": "{AAF}99|x|\x00"}),
        ("educonnect", {**guardian, "FrEduCtId": "ab\x00"}),
        ("educonnect", {**guardian, "FrEduCtPersonAffiliation": ["resp2d\x00"]}),
        (
            "educonnect",
            {"FrEduCtPersonAffiliation": "resp2d", "FrEduVecteur": "1|A\x00|B|123|0771991W"},
        ),
        ("guichet_agent", {"email": "agent\x00@ac-creteil.fr", "FrEduRne": "0771991W$UAJ$PU$ENS"}),
        ("guichet_agent", {"email": "agent@ac-creteil.fr", "FrEduRne": "0771991W\x7f"}),
        ("client_credentials", {"client_id": "ent-\x00"}),
    ]
    for profile, claims in cases:
        with pytest.raises(Unauthenticated) as refused:
            resolve(api, profile, claims, fredu_vecteur=True)
        assert refused.value.reason == "claim_type", (profile, claims)
    assert resolve(api, "educonnect", guardian).kind is PrincipalKind.GUARDIAN


def test_several_aaf_identities_are_never_merged(api: Api) -> None:
    guardian, first = join_key_of(api, "SELECT guardian_id FROM guardianship WHERE legal")
    hex_id = guardian.hex if api.backend == "sqlite" else str(guardian)
    _, second = join_key_of(
        api, f"SELECT guardian_id FROM guardianship WHERE guardian_id <> '{hex_id}'"
    )
    assert first != second
    claims = {
        "FrEduCtPersonAffiliation": "resp2d",
        "FrEduCtRefId": [f"{{AAF}}99|x|{first}", f"{{AAF}}99|y|{second}"],
    }
    with pytest.raises(Unauthenticated, match="never merged"):
        resolve(api, "educonnect", claims)


def test_a_pupil_token_must_name_a_pupil(api: Api) -> None:
    person, key = join_key_of(api, "SELECT person_id FROM role WHERE role = 'pupil'")
    ok = resolve(
        api,
        "educonnect",
        {"FrEduCtPersonAffiliation": "eleve2d", "FrEduCtRefId": f"{{AAF}}99|x|{key}"},
    )
    assert ok.kind is PrincipalKind.PUPIL and ok.person_id == person
    _, guardian_key = join_key_of(api, "SELECT guardian_id FROM guardianship")
    with pytest.raises(Unauthenticated):
        resolve(
            api,
            "educonnect",
            {"FrEduCtPersonAffiliation": "eleve2d", "FrEduCtRefId": f"{{AAF}}99|x|{guardian_key}"},
        )


def test_the_fredu_vecteur_fallback_needs_a_unique_exact_match(api: Api) -> None:
    guardian, last, first, pupil_ref, uai = legal_guardian_vector(api)
    vector = f"2|{last}|{first}|{pupil_ref}|{uai}"
    claims = {"FrEduCtPersonAffiliation": "resp2d", "FrEduVecteur": vector}
    found = resolve(api, "educonnect", claims, fredu_vecteur=True)
    assert found.person_id == uuid.UUID(str(guardian))
    wrong = {**claims, "FrEduVecteur": f"2|{last}X|{first}|{pupil_ref}|{uai}"}
    with pytest.raises(Unauthenticated, match="exactly one"):
        resolve(api, "educonnect", wrong, fredu_vecteur=True)
    # The UAI is matched literally: a wildcard names no school (it would name them all).
    for pattern in ("%", "_______", f"{uai[:3]}%"):
        anywhere = {**claims, "FrEduVecteur": f"2|{last}|{first}|{pupil_ref}|{pattern}"}
        with pytest.raises(Unauthenticated, match="exactly one"):
            resolve(api, "educonnect", anywhere, fredu_vecteur=True)


def test_the_fredu_vecteur_is_refused_unless_its_issuer_accepts_it(api: Api) -> None:
    """IDENTITY.md §2.6: the name-matched fallback only where a customer requires it."""
    _, *fields = legal_guardian_vector(api)
    claims = {"FrEduCtPersonAffiliation": "resp2d", "FrEduVecteur": "2|" + "|".join(fields)}
    assert resolve(api, "educonnect", claims, fredu_vecteur=True).person_id is not None
    with pytest.raises(Unauthenticated, match="fredu_vecteur setting") as refused:
        resolve(api, "educonnect", claims)
    assert refused.value.reason == "identity"
    with pytest.raises(ValueError, match="educonnect profile's option"):
        IssuerSettings(
            name="agents",
            issuer="https://agents.example.fr",
            jwks_file=Path("keys.json"),
            audiences=["urn:aiguillage:api"],
            profile="guichet_agent",
            fredu_vecteur=True,
        )


def test_a_guichet_agent_token_gives_structures_and_a_staff_role(api: Api) -> None:
    person, email, uai = staff_member(api, "teacher")
    claims = {
        "email": email.upper(),
        "FrEduRne": [f"{uai}$UAJ$PU$ENS${uai}$T3$LYC$3000", "0999999Z$UAJ$PU$ENS$x$T3$LYC$3000"],
    }
    principal = resolve(api, "guichet_agent", claims)
    assert principal.kind is PrincipalKind.STAFF and principal.staff_role is StaffRole.TEACHER
    assert principal.person_id == uuid.UUID(str(person))
    # a structure the annuaire does not give this person is dropped
    assert principal.structures == frozenset({uai})
    # A DIR token gives a head's rights only where the annuaire agrees: this person is a
    # teacher there, and is resolved as one.
    head = resolve(api, "guichet_agent", {**claims, "FrEduFonctAdm": "DIR"})
    assert (head.staff_role, head.structures) == (StaffRole.TEACHER, frozenset({uai}))
    with pytest.raises(Unauthenticated):
        resolve(api, "guichet_agent", {"email": "nobody@example.invalid"})


def claims_of(email: str, rne: list[str]) -> dict[str, Any]:
    return {"email": email, "FrEduRne": rne}


def test_a_head_has_structure_wide_rights_only_where_token_and_annuaire_agree(
    api: Api,
) -> None:
    """``FrEduRneResp`` names the structures an agent heads: structure-wide rights there only,
    and only where the annuaire gives them an active role other than teacher."""
    _, email, uai = staff_member(api, "head")
    other = one(api, f"SELECT uai FROM structure WHERE uai <> '{uai}' ORDER BY uai LIMIT 1")[0]
    rne = [f"{u}$UAJ$PU$DIR${u}$T3$LYC$3000" for u in (uai, other)]
    head = resolve(api, "guichet_agent", {**claims_of(email, rne), "FrEduRneResp": uai})
    assert (head.staff_role, head.structures) == (StaffRole.HEAD, frozenset({uai}))
    elsewhere = resolve(api, "guichet_agent", {**claims_of(email, rne), "FrEduRneResp": other})
    assert elsewhere.structures == frozenset()  # they head no structure there


def test_a_teacher_sees_what_they_teach_in_the_structures_of_their_token(api: Api) -> None:
    """A teacher token naming a structure where the annuaire gives them no role resolves to no
    structure: none of their classes is visible through it."""
    teacher, email, uai = staff_member(
        api,
        "teacher",
        "AND EXISTS (SELECT 1 FROM enrollment e WHERE e.person_id = p.id AND e.role = 'teacher') ",
    )
    elsewhere = one(
        api,
        "SELECT uai FROM structure WHERE uai NOT IN (SELECT s.uai FROM role r JOIN structure s "
        f"ON s.id = r.structure_id WHERE r.person_id = '{sql_id(api, teacher)}') "
        "AND uai IS NOT NULL ORDER BY uai LIMIT 1",
    )[0]
    claims = {"email": email, "FrEduRne": [f"{uai}$UAJ$PU$ENS${uai}$T3$LYC$3000"]}
    at_school = resolve(api, "guichet_agent", claims)
    elsewhere_claims = {"email": email, "FrEduRne": [f"{elsewhere}$UAJ$PU$ENS$x$T3$LYC$3000"]}
    away = resolve(api, "guichet_agent", elsewhere_claims)
    assert away.structures == frozenset()
    assert read_as(api, at_school, "/v1/classes?limit=1000") == 200
    app = api.client.app
    for principal, expect_some in ((at_school, True), (away, False)):
        app.dependency_overrides[current_principal] = lambda p=principal: p  # type: ignore[attr-defined]
        try:
            classes = api.client.get("/v1/classes", params={"limit": 1000}).json()["items"]
            persons = api.client.get("/v1/persons", params={"limit": 1000}).json()["items"]
        finally:
            app.dependency_overrides.clear()  # type: ignore[attr-defined]
        assert bool(classes) is expect_some
        assert {p["id"] for p in persons} >= {str(uuid.UUID(str(teacher)))}
        if not expect_some:
            assert len(persons) == 1


# -- identities are an académie's; what leaves the source grants nothing ----------------------


def educonnect_guardian(code: str, key: str) -> dict[str, Any]:
    return {"FrEduCtPersonAffiliation": "resp2d", "FrEduCtRefId": f"{{AAF}}{code}|x|{key}"}


def test_a_join_key_is_resolved_within_the_academie_the_token_names(
    fresh_api: Api, academie: Path
) -> None:
    """AAF join keys are unique within one académie's annuaire only: the same files imported
    for académie 10 give the same keys to other persons. The token's académie code picks one
    (``99`` and ``099`` alike); an académie that no import run recorded is refused."""
    api = fresh_api
    person, key = join_key_of(api, "SELECT guardian_id FROM guardianship WHERE legal")
    import_aaf(api.engine, api.settings, [academie], academie="10")
    assert resolve(api, "educonnect", educonnect_guardian("99", key)).person_id == person
    assert resolve(api, "educonnect", educonnect_guardian("099", key)).person_id == person
    other = resolve(api, "educonnect", educonnect_guardian("10", key)).person_id
    assert other != person
    assert (
        one(api, f"SELECT scope FROM person WHERE id = '{sql_id(api, other)}'")[0] == "aaf:010:2d"
    )
    with pytest.raises(Unauthenticated, match="no import of académie 011") as refused:
        resolve(api, "educonnect", educonnect_guardian("11", key))
    assert refused.value.reason == "identity"


def set_status(api: Api, table: str, where: str, status: str = "tobedeleted") -> None:
    with api.engine.begin() as connection:
        changed = connection.execute(text(f"UPDATE {table} SET status = '{status}' WHERE {where}"))
        assert changed.rowcount >= 1


def read_as(api: Api, principal: Principal, path: str) -> int:
    app = api.client.app
    app.dependency_overrides[current_principal] = lambda: principal  # type: ignore[attr-defined]
    try:
        return api.client.get(path).status_code
    finally:
        app.dependency_overrides.clear()  # type: ignore[attr-defined]


def test_a_leaving_person_cannot_sign_in(fresh_api: Api) -> None:
    """A guardian whose person the source no longer gives (``tobedeleted`` until the purge)
    is no longer resolved, by join key or by FrEduVecteur; a pupil whose pupil role is
    leaving is not a pupil."""
    api = fresh_api
    person, key = join_key_of(api, "SELECT guardian_id FROM guardianship WHERE legal")
    claims = educonnect_guardian("99", key)
    assert resolve(api, "educonnect", claims).person_id == person
    set_status(api, "person", f"id = '{sql_id(api, person)}'")
    with pytest.raises(Unauthenticated, match="no active person"):
        resolve(api, "educonnect", claims)

    pupil, pupil_key = join_key_of(api, "SELECT person_id FROM role WHERE role = 'pupil'")
    pupil_claims = {
        "FrEduCtPersonAffiliation": "eleve2d",
        "FrEduCtRefId": f"{{AAF}}99|x|{pupil_key}",
    }
    assert resolve(api, "educonnect", pupil_claims).person_id == pupil
    set_status(api, "role", f"person_id = '{sql_id(api, pupil)}' AND role = 'pupil'")
    with pytest.raises(Unauthenticated, match="affiliation"):
        resolve(api, "educonnect", pupil_claims)


def test_a_leaving_guardianship_role_or_teaching_link_grants_nothing(fresh_api: Api) -> None:
    """Rights come from what the source still gives: a guardian whose legal link to a pupil
    is leaving no longer reads that pupil; a head whose role is leaving is no staff member; a
    teacher whose teaching link to a class is leaving no longer reads its pupils."""
    api = fresh_api
    guardian, pupil = one(
        api,
        "SELECT guardian_id, pupil_id FROM guardianship g WHERE legal AND NOT EXISTS ("
        "SELECT 1 FROM guardianship o WHERE o.pupil_id = g.pupil_id AND o.id <> g.id) "
        "ORDER BY id LIMIT 1",
    ) or one(api, "SELECT guardian_id, pupil_id FROM guardianship WHERE legal ORDER BY id LIMIT 1")
    as_guardian = Principal(
        PrincipalKind.GUARDIAN, "g", person_id=uuid.UUID(str(guardian)), resolved=True
    )
    path = f"/v1/persons/{uuid.UUID(str(pupil))}"
    assert read_as(api, as_guardian, path) == 200
    set_status(
        api,
        "guardianship",
        f"guardian_id = '{sql_id(api, guardian)}' AND pupil_id = '{sql_id(api, pupil)}'",
    )
    assert read_as(api, as_guardian, path) == 404
    assert read_as(api, as_guardian, f"/v1/persons/{uuid.UUID(str(guardian))}") == 200

    head, email, uai = staff_member(api, "head")
    claims = {"email": email, "FrEduRne": [f"{uai}$UAJ$PU$DIR${uai}$T3$LYC$3000"]}
    assert resolve(api, "guichet_agent", claims).structures == frozenset({uai})
    set_status(api, "role", f"person_id = '{sql_id(api, head)}'")
    with pytest.raises(Unauthenticated, match="no staff member"):
        resolve(api, "guichet_agent", claims)

    teacher, class_id, uais = one(
        api,
        "SELECT person_id, class_id, structures FROM enrollment WHERE role = 'teacher' "
        "AND class_id IS NOT NULL ORDER BY id LIMIT 1",
    )
    (classmate,) = one(
        api,
        f"SELECT person_id FROM enrollment WHERE class_id = '{sql_id(api, class_id)}' "
        "AND role = 'pupil' ORDER BY id LIMIT 1",
    )
    as_teacher = Principal(
        PrincipalKind.STAFF,
        "t",
        person_id=uuid.UUID(str(teacher)),
        staff_role=StaffRole.TEACHER,
        structures=frozenset(u for u in uais.split("|") if u),
        resolved=True,
    )
    path = f"/v1/persons/{uuid.UUID(str(classmate))}"
    assert read_as(api, as_teacher, path) == 200
    set_status(
        api,
        "enrollment",
        f"person_id = '{sql_id(api, teacher)}' AND class_id = '{sql_id(api, class_id)}'",
    )
    shared = one(
        api,
        "SELECT count(*) FROM enrollment t JOIN enrollment p ON p.group_id = t.group_id "
        f"WHERE t.person_id = '{sql_id(api, teacher)}' AND t.status = 'active' "
        f"AND p.person_id = '{sql_id(api, classmate)}'",
    )[0]
    assert read_as(api, as_teacher, path) == (200 if shared else 404)


def test_two_first_logins_at_once_keep_one_educonnect_id(fresh_api: Api) -> None:
    """Two requests sign one person in for the first time at once: one keeps the person's
    ``FrEduCtId`` while the other's snapshot, taken before (an export reads one snapshot),
    does not show it yet. The other request goes on, neither failing (SQLite refused its
    write on a stale snapshot: a 500) nor keeping the id a second time."""
    person, key = join_key_of(fresh_api, "SELECT guardian_id FROM guardianship WHERE legal")
    claims = {
        "FrEduCtPersonAffiliation": "resp2d",
        "FrEduCtRefId": f"{{AAF}}99|x|{key}",
        "FrEduCtId": "ef" * 48,
    }
    principal = principal_from_claims("educonnect", "test", {**BASE, **claims})
    with fresh_api.engine.connect() as connection:
        late = one_snapshot(connection)
        late.begin()
        late.execute(text("SELECT count(*) FROM external_id")).scalar()  # its snapshot
        assert resolve(fresh_api, "educonnect", claims).person_id == person  # the other one
        assert AccessRules().resolve(late, principal).person_id == person
        # The request reads on after its login.
        assert late.execute(text("SELECT count(*) FROM person")).scalar()
        late.rollback()
    kept = one(
        fresh_api,
        "SELECT count(*) FROM external_id WHERE type = 'educonnect:FrEduCtId' "
        f"AND entity_id = '{sql_id(fresh_api, person)}'",
    )
    assert kept[0] == 1


def test_simultaneous_first_logins_keep_one_educonnect_id_each(
    fresh_api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    """Several requests sign the same person in for the first time at the very same moment,
    for several persons: each person keeps their ``FrEduCtId`` once, and the requests that
    lose the race do nothing rather than fail to write it. On PostgreSQL each request looks
    again in READ COMMITTED and sees no row of the others until they commit: only the unique
    index on these ids keeps them from all writing it."""
    logins, persons = 6, 12
    with fresh_api.engine.connect() as connection:
        guardians = connection.execute(
            text(
                "SELECT e.entity_id, min(e.value) FROM external_id e WHERE e.entity_id IN "
                "(SELECT guardian_id FROM guardianship WHERE legal) "
                "AND e.type = 'aaf:ENTPersonJointure' GROUP BY e.entity_id "
                "ORDER BY min(e.value) LIMIT :n"
            ),
            {"n": persons},
        ).all()
    assert len(guardians) == persons
    engine = fresh_api.client.app.state.engine  # the app's own, as requests use it
    start = threading.Barrier(logins)

    def first_login(key: str, value: str) -> uuid.UUID | None:
        claims = {
            "FrEduCtPersonAffiliation": "resp2d",
            "FrEduCtRefId": f"{{AAF}}99|x|{key}",
            "FrEduCtId": value,
        }
        principal = principal_from_claims("educonnect", "test", {**BASE, **claims})
        with engine.connect() as connection:
            start.wait(timeout=30)
            return AccessRules().resolve(connection, principal).person_id

    with ThreadPoolExecutor(logins) as pool:
        for number, (person, key) in enumerate(guardians):
            value = f"{number:02x}" * 48
            found = list(pool.map(first_login, [key] * logins, [value] * logins))
            assert found == [uuid.UUID(str(person))] * logins
    kept = one(
        fresh_api,
        "SELECT count(*), count(DISTINCT entity_id) FROM external_id "
        "WHERE type = 'educonnect:FrEduCtId'",
    )
    assert tuple(kept) == (persons, persons)
    assert [r.getMessage() for r in caplog.records if "not kept" in r.getMessage()] == []


def test_keeping_a_first_login_s_educonnect_id_is_a_logged_collection(fresh_api: Api) -> None:
    """The ``FrEduCtId`` a first login keeps is an identifier collected from EduConnect: it is
    written with a flow entry (collect, under the activity claiming ``api-educonnect``), in the
    same transaction, and the person's access report lists it; a later login, which keeps
    nothing, writes none."""
    from annuaire.registre.flowlog import ENTRY
    from annuaire.registre.verify import verify_log

    app = fresh_api.client.app
    registre = app.state.registre  # type: ignore[attr-defined]
    person, key = join_key_of(fresh_api, "SELECT guardian_id FROM guardianship WHERE legal")
    claims = {
        "FrEduCtPersonAffiliation": "resp2d",
        "FrEduCtRefId": f"{{AAF}}99|x|{key}",
        "FrEduCtId": "cd" * 48,
    }
    principal = principal_from_claims("educonnect", "test", {**BASE, **claims})
    app.dependency_overrides[current_principal] = lambda: principal  # type: ignore[attr-defined]
    try:
        for _ in range(2):  # a first login, then another
            assert fresh_api.client.get("/v1/persons").status_code == 200
    finally:
        app.dependency_overrides.clear()  # type: ignore[attr-defined]
    with fresh_api.engine.connect() as connection:
        collected = connection.execute(
            ENTRY.select().where(ENTRY.c.operation == "collect", ENTRY.c.flow != "import")
        ).all()
        report = registre.person_report(connection, person)
        assert verify_log(connection, registre.keys).ok
    (entry,) = collected
    assert (entry.flow, entry.activity, entry.actor_kind) == (
        "api-educonnect",
        registre.activity_id(FlowKind.API_EDUCONNECT),
        "guardian",
    )
    assert list(entry.categories) == ["identifiers"] and entry.persons == 1
    assert entry.actor == registre.keys.pseudonym(person)
    kept = [f for f in report.flows if f.operation == "collect" and f.flow == "api-educonnect"]
    assert [(f.seq, f.data_categories) for f in kept] == [(entry.seq, ["identifiers"])]
