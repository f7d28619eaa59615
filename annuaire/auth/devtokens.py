"""Development tokens: bearer tokens shaped like the real issuers', for a person or a client.

``aiguillage dev-token --as guardian:<person id>`` (or ``pupil:``, ``staff:``, ``client:``) mints
a token signed by a local key, so that the API can be tried as anyone in the database without
an EduConnect broker or a guichet agent. Contract:

- The key is a private ES256 JWK in ``settings.dev_key_file``, created on first use (0600);
  its public JWKS is written next to it (``<key stem>.jwks.json``).
- Each kind of token has its own issuer, named after the profile that reads its claims:
  ``urn:aiguillage:dev:educonnect`` (guardians and pupils), ``urn:aiguillage:dev:guichet_agent``
  (staff), ``urn:aiguillage:dev:client_credentials`` (API clients). The claim
  ``aiguillage_profile`` repeats the profile. ``aud`` is ``settings.api_audience``, header
  ``typ: at+jwt``, and every token has ``sub``, ``jti``, ``iat``, ``nbf``, ``exp`` and
  ``client_id`` (``dev-token`` for people, the client's id for clients).
- The claims are the upstream ones, built from the database the way the identity provider would
  know them: EduConnect ``FrEduCtPersonAffiliation``, ``FrEduCtRefId`` (one ``{AAF}`` value per
  AAF join key of the person, académie code taken from the import scope) and ``FrEduCtId``; guichet
  agent ``email``, ``FrEduRne``, ``FrEduRneResp`` and ``FrEduFonctAdm``; for a client its
  ``scope``. A person or client the issuer could not know (no join key, no e-mail, no such
  role, revoked client) is refused with :class:`BadInput`.
- :func:`dev_issuers` declares the three issuers to the API only in the development environment
  with ``dev_tokens`` on; :func:`mint_dev_token` refuses to run in production.
"""

from __future__ import annotations

import enum
import hashlib
import secrets
import time
import uuid
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import Connection, Engine, Row, select

from annuaire.errors import BadInput, Refused
from annuaire.schema import (
    ExternalId,
    Guardianship,
    ImportRun,
    Person,
    Role,
    RoleKind,
    Status,
    Structure,
)
from annuaire.settings import DEV_ISSUER_PREFIX, IssuerSettings, Settings
from annuaire.store.changes import structures_list

from . import _jose
from .clients import active_client
from .issuing import jwks_file_of, load_or_create_key, publish_jwks

__all__ = [
    "DEV_CLIENT_ID",
    "DevTokenKind",
    "dev_issuer_name",
    "dev_issuer_url",
    "dev_issuers",
    "dev_jwks_file",
    "mint_dev_token",
    "parse_subject",
]

Profile = Literal["educonnect", "guichet_agent", "client_credentials"]

#: ``client_id`` of the tokens minted for people (a real broker names the vendor app).
DEV_CLIENT_ID = "dev-token"
_MAX_LIFETIME_S = 86_400
_STAFF_ROLES = (RoleKind.STAFF, RoleKind.TEACHER, RoleKind.HEAD, RoleKind.DIRECTOR)
_HEAD_ROLES = (RoleKind.HEAD, RoleKind.DIRECTOR)
#: Function put in ``FrEduRne`` when the source gave none.
_DEFAULT_FUNCTION = {
    RoleKind.HEAD: "DIR",
    RoleKind.DIRECTOR: "DIR",
    RoleKind.TEACHER: "ENS",
    RoleKind.STAFF: "ADF",
}


class DevTokenKind(enum.StrEnum):
    GUARDIAN = "guardian"
    PUPIL = "pupil"
    STAFF = "staff"
    CLIENT = "client"


_PROFILES: dict[DevTokenKind, Profile] = {
    DevTokenKind.GUARDIAN: "educonnect",
    DevTokenKind.PUPIL: "educonnect",
    DevTokenKind.STAFF: "guichet_agent",
    DevTokenKind.CLIENT: "client_credentials",
}
_ALL_PROFILES: tuple[Profile, ...] = ("educonnect", "guichet_agent", "client_credentials")


def dev_issuer_url(kind: DevTokenKind) -> str:
    """The ``iss`` of the development tokens of this kind."""
    return f"urn:aiguillage:dev:{_PROFILES[kind]}"


def dev_issuer_name(profile: str) -> str:
    """The name of the development issuer of a claim profile (``dev-client-credentials``)."""
    return DEV_ISSUER_PREFIX + profile.replace("_", "-")


def dev_jwks_file(settings: Settings) -> Path:
    """Where the public JWKS of the development key is written."""
    return jwks_file_of(settings.dev_key_file)


def _dev_key(settings: Settings) -> dict[str, Any]:
    key = load_or_create_key(settings.dev_key_file, create=True, kid_prefix="dev-")
    publish_jwks(key, settings.dev_key_file)
    return key


def dev_issuers(settings: Settings) -> list[IssuerSettings]:
    """The development issuers the API trusts: none unless environment is development and
    dev_tokens is on (then the key and its JWKS file exist when this returns)."""
    if settings.environment != "development" or not settings.dev_tokens:
        return []
    _dev_key(settings)
    jwks_file = dev_jwks_file(settings).resolve()
    return [
        IssuerSettings(
            name=dev_issuer_name(profile),
            issuer=f"urn:aiguillage:dev:{profile}",
            jwks_file=jwks_file,
            audiences=[settings.api_audience],
            algorithms=["ES256"],
            profile=profile,
            jwks_ttl_s=60,
        )
        for profile in _ALL_PROFILES
    ]


def parse_subject(text: str) -> tuple[DevTokenKind, str]:
    """``guardian:<id>`` -> (GUARDIAN, id); BadInput for anything else."""
    kind, colon, subject = text.partition(":")
    if not colon or not subject or kind not in {k.value for k in DevTokenKind}:
        kinds = "|".join(k.value for k in DevTokenKind)
        raise BadInput(f"expected {kinds}:<id>, got {text!r}")
    return DevTokenKind(kind), subject


# -- claims from the database ----------------------------------------------------------------

_PERSONS = Person.__table__  # type: ignore[attr-defined]
_ROLES = Role.__table__  # type: ignore[attr-defined]
_STRUCTURES = Structure.__table__  # type: ignore[attr-defined]
_EXTERNAL_IDS = ExternalId.__table__  # type: ignore[attr-defined]
_GUARDIANSHIPS = Guardianship.__table__  # type: ignore[attr-defined]


def _person_id(subject: str) -> uuid.UUID:
    try:
        return uuid.UUID(subject)
    except ValueError:
        raise BadInput(f"{subject!r} is not a hub person id (a UUID)") from None


def _active_person(connection: Connection, person_id: uuid.UUID, column: Any) -> Row[Any]:
    """The active person's ``column`` (a row), or a ``BadInput`` naming the id."""
    row = connection.execute(
        select(column).where(_PERSONS.c.id == person_id, _PERSONS.c.status == Status.ACTIVE.value)
    ).first()
    if row is None:
        raise BadInput(f"no active person {person_id}")
    return row


def _educonnect_claims(engine: Engine, kind: DevTokenKind, person_id: uuid.UUID) -> dict[str, Any]:
    with engine.connect() as connection:
        person = _active_person(connection, person_id, _PERSONS.c.structures)
        if kind is DevTokenKind.PUPIL:
            has_role = connection.execute(
                select(_ROLES.c.id).where(
                    _ROLES.c.person_id == person_id,
                    _ROLES.c.role == RoleKind.PUPIL.value,
                    _ROLES.c.status == Status.ACTIVE.value,
                )
            ).first()
        else:
            has_role = connection.execute(
                select(_GUARDIANSHIPS.c.id).where(
                    _GUARDIANSHIPS.c.guardian_id == person_id,
                    _GUARDIANSHIPS.c.status == Status.ACTIVE.value,
                )
            ).first()
        if has_role is None:
            raise BadInput(f"person {person_id} is not a {kind.value}")
        join_keys = connection.execute(
            select(_EXTERNAL_IDS.c.scope, _EXTERNAL_IDS.c.value)
            .where(
                _EXTERNAL_IDS.c.entity_type == "person",
                _EXTERNAL_IDS.c.entity_id == person_id,
                _EXTERNAL_IDS.c.type == "aaf:ENTPersonJointure",
            )
            .order_by(_EXTERNAL_IDS.c.scope, _EXTERNAL_IDS.c.value)
        ).all()
        # The académie of each scope, as its import runs recorded it (the last one wins): a
        # per-school scope names its UAI, not its académie.
        runs = ImportRun.__table__  # type: ignore[attr-defined]
        academies = {
            scope: academie
            for scope, academie in connection.execute(
                select(runs.c.scope, runs.c.academie)
                .where(runs.c.scope.in_({scope for scope, _ in join_keys}))
                .where(runs.c.academie.is_not(None))
                .order_by(runs.c.started_at)
            )
        }
        uais = structures_list(person.structures)
        degrees = set(
            connection.execute(
                select(_STRUCTURES.c.degree).where(_STRUCTURES.c.uai.in_(uais))
            ).scalars()
        )
    if not join_keys:
        raise BadInput(
            f"person {person_id} has no aaf:ENTPersonJointure: EduConnect could not name it"
        )
    degree = "1d" if degrees == {"1d"} else "2d"
    affiliation = ("eleve" if kind is DevTokenKind.PUPIL else "resp") + degree
    ref_ids = [
        f"{{AAF}}{academies.get(scope) or _academie(scope)}|dev|{value}"
        for scope, value in join_keys
    ]
    return {
        "FrEduCtPersonAffiliation": affiliation,
        "FrEduCtRefId": ref_ids,
        "FrEduCtId": hashlib.sha384(f"aiguillage-dev:{person_id}".encode()).hexdigest(),
    }


def _academie(scope: str) -> str:
    # Import scopes are `source:académie-or-UAI:degree` (aaf:099:2d).
    parts = scope.split(":")
    if len(parts) != 3 or not parts[1]:
        raise BadInput(f"cannot read an académie code from the import scope {scope!r}")
    return parts[1]


def _guichet_agent_claims(engine: Engine, person_id: uuid.UUID) -> dict[str, Any]:
    with engine.connect() as connection:
        email = _active_person(connection, person_id, _PERSONS.c.email)
        roles = connection.execute(
            select(_ROLES.c.role, _ROLES.c.function_code, _STRUCTURES.c.uai)
            .join(_STRUCTURES, _STRUCTURES.c.id == _ROLES.c.structure_id)
            .where(
                _ROLES.c.person_id == person_id,
                _ROLES.c.role.in_([r.value for r in _STAFF_ROLES]),
                _ROLES.c.status == Status.ACTIVE.value,
                _STRUCTURES.c.uai.is_not(None),
            )
            .order_by(_STRUCTURES.c.uai, _ROLES.c.role)
        ).all()
    if not roles:
        raise BadInput(f"person {person_id} has no staff, teacher or head role in a structure")
    if not email.email:
        raise BadInput(f"person {person_id} has no e-mail: the guichet agent could not name it")
    assignments: list[str] = []
    for role, function_code, uai in roles:
        function = function_code or _DEFAULT_FUNCTION[RoleKind(role)]
        value = f"{uai}$UAJ$PU${function}${uai}$T3$LYC$3000"
        if value not in assignments:
            assignments.append(value)
    claims: dict[str, Any] = {"email": email.email, "FrEduRne": assignments}
    heads = sorted({uai for role, _, uai in roles if role in _HEAD_ROLES})
    if heads:
        claims["FrEduFonctAdm"] = "DIR"
        claims["FrEduRneResp"] = heads
    return claims


def _client_claims(engine: Engine, client_id: str) -> dict[str, Any]:
    client = active_client(engine, client_id)
    if client is None:
        raise BadInput(f"no active API client {client_id!r}")
    return {"client_id": client.client_id, "scope": " ".join(client.scopes)}


# -- minting ---------------------------------------------------------------------------------


def mint_dev_token(
    engine: Engine,
    settings: Settings,
    kind: DevTokenKind,
    subject: str,
    *,
    lifetime_s: int | None = None,
    now: float | None = None,
) -> str:
    """A development token for ``subject`` (a hub person id, or a client id for CLIENT)."""
    if settings.environment == "production":
        raise Refused("development tokens are never minted in production")
    lifetime = settings.access_token_lifetime_s if lifetime_s is None else lifetime_s
    if not 1 <= lifetime <= _MAX_LIFETIME_S:
        raise BadInput(f"the lifetime is 1 to {_MAX_LIFETIME_S} seconds")
    if kind is DevTokenKind.CLIENT:
        claims = _client_claims(engine, subject)
    elif kind is DevTokenKind.STAFF:
        claims = _guichet_agent_claims(engine, _person_id(subject))
    else:
        claims = _educonnect_claims(engine, kind, _person_id(subject))
    profile = _PROFILES[kind]
    issued_at = int(now if now is not None else time.time())
    claims = {
        "iss": dev_issuer_url(kind),
        "aud": settings.api_audience,
        "sub": str(_person_id(subject)) if kind is not DevTokenKind.CLIENT else subject,
        "client_id": DEV_CLIENT_ID,
        "iat": issued_at,
        "nbf": issued_at,
        "exp": issued_at + lifetime,
        "jti": secrets.token_urlsafe(16),
        "aiguillage_profile": profile,
        **claims,
    }
    return _jose.sign(claims, _dev_key(settings), typ="at+jwt")
