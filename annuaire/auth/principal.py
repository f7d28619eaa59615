"""The calling principal of an API request, read from a validated token's claims.

Three claim profiles, one per kind of issuer (IDENTITY.md §2, §3, §6):

- ``educonnect`` (pupils and guardians): ``FrEduCtPersonAffiliation`` (``eleve1d|2d``,
  ``resp1d|2d``) says which; the person is found **only** through the ``{AAF}`` values of
  ``FrEduCtRefId`` (``{AAF}<académie>|<field>|<ENTPersonJointure>``), joined to the typed
  external id ``aaf:ENTPersonJointure`` of the import scopes of that académie (join keys are
  unique within an académie's annuaire only): an académie no import run recorded is refused.
  Several distinct ``{AAF}`` identities are refused (rights are never merged implicitly).
  ``FrEduVecteur`` (``profil|nom|prénom|idEleve|UAI``) is accepted as a fallback when no
  ``{AAF}`` value is present, from an issuer configured for it only (``fredu_vecteur``, off by
  default: IDENTITY.md §2.6): it names the pupil by its SIECLE id and the guardian by exact
  names among that pupil's legal guardians, which is ambiguous for homonyms, so any match that
  is not unique is refused. ``FrEduCtId`` is kept as the external id ``educonnect:FrEduCtId``
  of the person it resolved to, unless it is longer than an external id holds (it is then
  not kept, and the login goes on). Only an active person (one the source still gives) is
  found.
- ``guichet_agent`` (staff): the person is the one whose AAF ``mail`` is the token's ``email``
  (or ``ctemail``); structures come from ``FrEduRne`` and ``FrEduRneResp``; ``FrEduFonctAdm=DIR``
  or any ``FrEduRneResp`` makes a head of school (of the ``FrEduRneResp`` structures when
  there are any), a teaching function only (``ENS``) a teacher, anything else administrative
  staff. Resolution keeps what the annuaire agrees with: a head's or an administrative
  agent's structures where it gives them an active role other than teacher; a teacher's
  where it gives them any active role (see annuaire.auth.access).
- ``client_credentials`` (ENT vendors): ``client_id`` names a client whose contract (structures,
  scopes) is in the database; the token's ``scope`` is intersected with the contract.

A principal built here is *unresolved* (it names the person by claims); the access rules
resolve it against the store in the request's own connection (annuaire.auth.access). A claim
that finds a person or a contract and holds a control character is refused here
(``claim_type``): no such value has one, and PostgreSQL refuses NUL in text.

Without a token the API knows one more principal, the *operator*, who sees everything: granted
only outside production and only while no token issuer is configured (the embedded demo, the
tests). Anything else without a valid token is a 401.
"""

from __future__ import annotations

import enum
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from fastapi import Request

from annuaire.schema import academie_code

__all__ = [
    "Principal",
    "PrincipalKind",
    "StaffRole",
    "Unauthenticated",
    "current_principal",
    "principal_from_claims",
]


#: C0 controls and DEL: in no claim that finds a person or a contract (PostgreSQL refuses NUL
#: in text, and no such value has one).
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class PrincipalKind(enum.StrEnum):
    OPERATOR = "operator"
    CLIENT = "client"
    GUARDIAN = "guardian"
    PUPIL = "pupil"
    STAFF = "staff"


class StaffRole(enum.StrEnum):
    HEAD = "head"
    ADMIN = "admin"
    TEACHER = "teacher"


class Unauthenticated(Exception):
    """No acceptable credentials: the API answers 401 (``reason`` is a stable code)."""

    def __init__(self, message: str, reason: str = "invalid_token") -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Principal:
    kind: PrincipalKind
    #: Stable, pseudonymous identifier of the caller: the token's ``sub`` (or the client id).
    subject: str
    #: OAuth scopes granted (``roster-core.readonly``...); for people, empty.
    scopes: frozenset[str] = field(default_factory=frozenset)
    client_id: str | None = None
    #: The issuer's name (settings), for the logs and the register.
    issuer: str | None = None
    #: How the person is named by the claims (unresolved principals): (académie, join key).
    join_keys: tuple[tuple[str, str], ...] = ()
    vector: tuple[str, ...] = ()
    email: str | None = None
    educonnect_id: str | None = None
    #: UAIs: a client's contract, a staff member's structures.
    structures: frozenset[str] = field(default_factory=frozenset)
    #: A guichet agent's ``FrEduRneResp`` UAIs: the structures they head.
    responsible: frozenset[str] = field(default_factory=frozenset)
    staff_role: StaffRole | None = None
    #: A client's contract: the register activity it runs under.
    activity: str | None = None
    #: Set once resolved against the store.
    person_id: uuid.UUID | None = None
    resolved: bool = False

    @classmethod
    def operator(cls) -> Principal:
        return cls(PrincipalKind.OPERATOR, "operator", resolved=True)

    @property
    def unrestricted(self) -> bool:
        return self.kind is PrincipalKind.OPERATOR

    def resolved_as(self, **changes: Any) -> Principal:
        return replace(self, resolved=True, **changes)


def _values(claims: Mapping[str, Any], name: str) -> list[str]:
    value = claims.get(name)
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    if not all(isinstance(v, str) and not _CONTROL.search(v) for v in items):
        raise Unauthenticated(
            f"claim {name} must be text or a list of text, without control characters",
            "claim_type",
        )
    return [v for v in items if v]


def _text(claims: Mapping[str, Any], name: str) -> str | None:
    """A claim of one text value (None when absent or not text)."""
    values = _values(claims, name) if isinstance(claims.get(name), str) else []
    return values[0] if values else None


def _educonnect(claims: Mapping[str, Any], base: Principal, fredu_vecteur: bool) -> Principal:
    affiliations = {a.lower() for a in _values(claims, "FrEduCtPersonAffiliation")}
    if affiliations <= {"eleve1d", "eleve2d"} and affiliations:
        kind = PrincipalKind.PUPIL
    elif affiliations <= {"resp1d", "resp2d"} and affiliations:
        kind = PrincipalKind.GUARDIAN
    else:
        raise Unauthenticated(
            "FrEduCtPersonAffiliation must be eleve1d/eleve2d or resp1d/resp2d", "identity"
        )
    keys = []
    for value in _values(claims, "FrEduCtRefId"):
        if not value.startswith("{AAF}"):
            continue  # ECT... accounts have no AAF record
        fields = value[len("{AAF}") :].split("|")
        if len(fields) != 3 or not fields[0].isdigit() or not fields[2]:
            raise Unauthenticated(f"malformed {{AAF}} value in FrEduCtRefId: {value!r}", "identity")
        keys.append((academie_code(fields[0]), fields[2]))
    vector: tuple[str, ...] = ()
    if not keys:
        if not fredu_vecteur:
            raise Unauthenticated(
                "no {AAF} value in FrEduCtRefId: the person cannot be identified (this "
                "issuer's FrEduVecteur is not accepted: see its fredu_vecteur setting)",
                "identity",
            )
        vectors = _values(claims, "FrEduVecteur")
        if len(vectors) != 1 or len(vectors[0].split("|")) != 5:
            raise Unauthenticated(
                "no {AAF} value in FrEduCtRefId and no single FrEduVecteur: the person cannot "
                "be identified (names are never matched on their own)",
                "identity",
            )
        vector = tuple(vectors[0].split("|"))
        profile = vector[0]
        expected = {"1": PrincipalKind.GUARDIAN, "2": PrincipalKind.GUARDIAN}.get(
            profile, PrincipalKind.PUPIL if profile in ("3", "4") else None
        )
        if expected is not kind:
            raise Unauthenticated("FrEduVecteur profile disagrees with the affiliation", "identity")
    if len(set(keys)) > 1:
        raise Unauthenticated(
            "several AAF identities in FrEduCtRefId: rights are never merged; the identity "
            "provider must let the user choose one profile",
            "identity",
        )
    return replace(
        base,
        kind=kind,
        join_keys=tuple(dict.fromkeys(keys)),
        vector=vector,
        educonnect_id=_text(claims, "FrEduCtId"),
    )


def _guichet_agent(claims: Mapping[str, Any], base: Principal) -> Principal:
    emails = _values(claims, "email") or _values(claims, "ctemail")
    if len(emails) != 1:
        raise Unauthenticated("a guichet-agent token must carry one email", "identity")
    structures: set[str] = set()
    functions: set[str] = set()
    for value in _values(claims, "FrEduRne"):
        fields = value.split("$")
        structures.add(fields[0])
        if len(fields) > 3 and fields[3]:
            functions.add(fields[3].upper())
    responsible = set()
    for value in _values(claims, "FrEduRneResp"):
        uai = value.split("$")[0]
        if uai and uai.upper() != "X":
            responsible.add(uai)
    admin_function = (_values(claims, "FrEduFonctAdm") or [""])[0].upper()
    if admin_function == "DIR" or responsible:
        role = StaffRole.HEAD
    elif (functions and functions <= {"ENS"}) or admin_function == "ENS":
        role = StaffRole.TEACHER
    else:
        role = StaffRole.ADMIN
    return replace(
        base,
        kind=PrincipalKind.STAFF,
        email=emails[0].strip().lower(),
        structures=frozenset(u.upper() for u in structures | responsible if u),
        responsible=frozenset(u.upper() for u in responsible),
        staff_role=role,
    )


def _client(claims: Mapping[str, Any], base: Principal) -> Principal:
    scope = claims.get("scope", "")
    if not isinstance(scope, str):
        raise Unauthenticated("scope must be a space-separated string", "claim_type")
    return replace(base, kind=PrincipalKind.CLIENT, scopes=frozenset(scope.split()))


def principal_from_claims(
    profile: str, issuer_name: str, claims: Mapping[str, Any], *, fredu_vecteur: bool = False
) -> Principal:
    """An unresolved principal from a validated token (``claims`` already verified);
    ``fredu_vecteur``: the issuer's ``FrEduVecteur`` is accepted (``educonnect`` profile)."""
    base = Principal(
        PrincipalKind.CLIENT,
        subject=str(claims["sub"]),
        client_id=_text(claims, "client_id"),
        issuer=issuer_name,
    )
    if profile == "educonnect":
        return _educonnect(claims, base, fredu_vecteur)
    if profile == "guichet_agent":
        return _guichet_agent(claims, base)
    if profile == "client_credentials":
        if not base.client_id:
            raise Unauthenticated("a client token must carry client_id", "missing_claim")
        return _client(claims, base)
    raise Unauthenticated(f"unknown claim profile {profile!r}", "configuration")


async def current_principal(request: Request) -> Principal:
    authenticator = request.app.state.authenticator
    principal: Principal = await authenticator.principal(request)
    return principal
