"""From claims to a principal of the store: EduConnect, guichet agent, clients."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import text

from annuaire.auth import AccessRules, PrincipalKind
from annuaire.auth.principal import StaffRole, Unauthenticated, principal_from_claims

from .conftest import Api

BASE = {"sub": "s-1", "client_id": "broker", "iss": "x", "aud": "a", "exp": 0, "iat": 0, "jti": "j"}


def one(api: Api, sql: str) -> Any:
    with api.engine.connect() as connection:
        return connection.execute(text(sql)).first()


def resolve(api: Api, profile: str, claims: dict[str, Any]) -> Any:
    principal = principal_from_claims(profile, "test", {**BASE, **claims})
    with api.engine.connect() as connection:
        return AccessRules().resolve(connection, principal)


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
        {"FrEduCtPersonAffiliation": "eleve2d", "FrEduCtRefId": f"{{AAF}}9|x|{key}"},
    )
    assert ok.kind is PrincipalKind.PUPIL and ok.person_id == person
    _, guardian_key = join_key_of(api, "SELECT guardian_id FROM guardianship")
    with pytest.raises(Unauthenticated):
        resolve(
            api,
            "educonnect",
            {"FrEduCtPersonAffiliation": "eleve2d", "FrEduCtRefId": f"{{AAF}}9|x|{guardian_key}"},
        )


def test_the_fredu_vecteur_fallback_needs_a_unique_exact_match(api: Api) -> None:
    row = one(
        api,
        "SELECT g.guardian_id, p.usage_name, p.first_name, e.value, s.uai FROM guardianship g "
        "JOIN person p ON p.id = g.guardian_id "
        "JOIN external_id e ON e.entity_id = g.pupil_id AND e.type = 'siecle:ELEVE_ID' "
        "JOIN role r ON r.person_id = g.pupil_id JOIN structure s ON s.id = r.structure_id "
        "WHERE g.legal ORDER BY e.value LIMIT 1",
    )
    guardian, last, first, pupil_ref, uai = row
    vector = f"2|{last}|{first}|{pupil_ref}|{uai}"
    claims = {"FrEduCtPersonAffiliation": "resp2d", "FrEduVecteur": vector}
    assert resolve(api, "educonnect", claims).person_id == uuid.UUID(str(guardian))
    wrong = {**claims, "FrEduVecteur": f"2|{last}X|{first}|{pupil_ref}|{uai}"}
    with pytest.raises(Unauthenticated, match="exactly one"):
        resolve(api, "educonnect", wrong)


def test_a_guichet_agent_token_gives_structures_and_a_staff_role(api: Api) -> None:
    row = one(
        api,
        "SELECT p.id, p.email, s.uai FROM person p JOIN role r ON r.person_id = p.id "
        "JOIN structure s ON s.id = r.structure_id WHERE r.role = 'teacher' "
        "AND p.email IS NOT NULL ORDER BY p.email LIMIT 1",
    )
    person, email, uai = row
    claims = {
        "email": email.upper(),
        "FrEduRne": [f"{uai}$UAJ$PU$ENS${uai}$T3$LYC$3000", "0999999Z$UAJ$PU$ENS$x$T3$LYC$3000"],
    }
    principal = resolve(api, "guichet_agent", claims)
    assert principal.kind is PrincipalKind.STAFF and principal.staff_role is StaffRole.TEACHER
    assert principal.person_id == uuid.UUID(str(person))
    # a structure the annuaire does not give this person is dropped
    assert principal.structures == frozenset({uai})
    head = resolve(api, "guichet_agent", {**claims, "FrEduFonctAdm": "DIR"})
    assert head.staff_role is StaffRole.HEAD
    with pytest.raises(Unauthenticated):
        resolve(api, "guichet_agent", {"email": "nobody@example.invalid"})
