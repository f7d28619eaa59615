"""API clients: registration, revocation, and authentication at the token endpoint.

A client is registered with a contract (UAIs, scopes, and the processing activity of the
register it runs under: one that claims ``api-client`` and declares every data category its
scopes open) and exactly one way to authenticate:

- a **secret** (``client_secret_basic`` / ``client_secret_post``): 256 random bits, shown once
  by :func:`create_client`; only a salted scrypt hash is stored, as
  ``scrypt$n=<N>,r=<r>,p=<p>$<salt>$<hash>`` (base64url) so that the cost can be raised later
  without invalidating older hashes. The secret is random, not a password: scrypt is defence in
  depth should the table leak, so its cost is kept moderate (a token request pays it once).
- a **public key** (``private_key_jwt``, RFC 7523 §2.2): the client signs a short-lived
  assertion; the key's algorithm is pinned at registration, never taken from the assertion.

Contract of the authentication functions (both raise :class:`InvalidClient`, whose ``reason`` is
for the server log only; callers answer ``invalid_client`` without saying why):

- :func:`authenticate_secret` does the same work whether the client exists, is revoked, has no
  secret, or the secret is wrong (one database read, one scrypt, a constant-time comparison).
- :func:`authenticate_assertion` requires ``iss`` = ``sub`` = client id, ``aud`` naming the token
  endpoint, ``exp`` at most :data:`MAX_ASSERTION_LIFETIME_S` ahead, and a ``jti`` used once: the
  ``jti`` is stored in the ``client_assertion_use`` table until the assertion expires, so a
  replay is refused whichever API worker receives it.
- A revoked client is refused from the moment :func:`revoke_client` commits: every
  authentication and :func:`active_client` read the database, nothing is cached.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from annuaire.encoding import b64url_decode, b64url_encode
from annuaire.errors import AiguillageError, BadInput
from annuaire.registre.activities import Activity
from annuaire.registre.vocabulary import ActivityStatus, DataCategory, FlowKind
from annuaire.schema import ApiClient, ClientAssertionUse, ClientScope, utcnow
from annuaire.schema.uai import has_uai_shape
from annuaire.settings import reserved_issuer_name
from annuaire.store import write_transaction

from . import _jose

__all__ = [
    "CLIENT_ASSERTION_TYPE",
    "MAX_ASSERTION_LIFETIME_S",
    "InvalidClient",
    "active_client",
    "authenticate_assertion",
    "authenticate_secret",
    "contract_refusal",
    "create_client",
    "hash_secret",
    "list_clients",
    "opened_categories",
    "revoke_client",
    "verify_secret",
]

CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#: Longest validity an assertion may claim (``exp`` - now): assertions are made per request.
MAX_ASSERTION_LIFETIME_S = 300
_MAX_SECRET_CHARS = 512
_MAX_JTI_CHARS = 255
_MAX_CLIENT_ID_CHARS = 64
#: C0 controls and DEL: in no client id nor jti (RFC 6749 A.1: client ids are VSCHARs).
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1
_SCRYPT_MAXMEM = 64 * 1024 * 1024
_CURVE_ALGORITHMS = {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})

_CLIENTS = ApiClient.__table__  # type: ignore[attr-defined]
_USES = ClientAssertionUse.__table__  # type: ignore[attr-defined]


class InvalidClient(AiguillageError):
    """Client authentication failed; ``reason`` says why, for the log only."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# -- secrets ---------------------------------------------------------------------------------


def _scrypt(secret: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        secret.encode("utf-8", "surrogatepass"),
        salt=salt,
        n=n,
        r=r,
        p=p,
        dklen=32,
        maxmem=_SCRYPT_MAXMEM,
    )


def hash_secret(secret: str) -> str:
    """The storable hash of ``secret``: scrypt, a fresh 16-byte salt, parameters included."""
    salt = secrets.token_bytes(16)
    digest = _scrypt(secret, salt, _SCRYPT_N, _SCRYPT_R, _SCRYPT_P)
    params = f"n={_SCRYPT_N},r={_SCRYPT_R},p={_SCRYPT_P}"
    return f"scrypt${params}${b64url_encode(salt)}${b64url_encode(digest)}"


def verify_secret(secret: str, stored: str) -> bool:
    """Whether ``secret`` matches ``stored`` (constant-time comparison of the digests)."""
    try:
        scheme, params, salt_text, digest_text = stored.split("$")
        values = dict(item.split("=", 1) for item in params.split(","))
        n, r, p = int(values["n"]), int(values["r"]), int(values["p"])
        salt, expected = b64url_decode(salt_text), b64url_decode(digest_text)
    except (ValueError, KeyError):
        return False
    if scheme != "scrypt" or not (2 <= n <= 2**20 and 1 <= r <= 32 and 1 <= p <= 16):
        return False
    return hmac.compare_digest(_scrypt(secret, salt, n, r, p), expected)


@functools.cache
def _decoy_hash() -> str:
    # Verified when there is no real hash to check, so that a missing client costs the same.
    return hash_secret(secrets.token_urlsafe(32))


# -- registration ----------------------------------------------------------------------------


def _checked_structures(structures: Iterable[str]) -> list[str]:
    uais = sorted(set(structures))
    bad = [uai for uai in uais if not has_uai_shape(uai)]
    if bad:
        raise BadInput(f"not a UAI (7 digits and a capital letter): {', '.join(bad)}")
    if not uais:
        raise BadInput("a client's contract covers at least one structure (UAI)")
    return uais


#: The data categories each scope opens (see annuaire.auth.access for the fields).
SCOPE_CATEGORIES: dict[ClientScope, frozenset[DataCategory]] = {
    ClientScope.ROSTER_CORE: frozenset(
        {
            DataCategory.IDENTIFIERS,
            DataCategory.IDENTITY_NAME,
            DataCategory.PROFESSIONAL,
            DataCategory.SCHOOLING,
            DataCategory.RELATIONS,
        }
    ),
    ClientScope.ROSTER_DEMOGRAPHICS: frozenset(
        {DataCategory.IDENTITY_BIRTH_DATE, DataCategory.CONTACT}
    ),
    ClientScope.TIMETABLE: frozenset({DataCategory.SCHOOLING}),
}


def opened_categories(scopes: Iterable[str]) -> frozenset[DataCategory]:
    """The data categories ``scopes`` open (an unknown scope opens none)."""
    opened: set[DataCategory] = set()
    for scope in scopes:
        if scope in _SCOPE_VALUES:
            opened |= SCOPE_CATEGORIES[ClientScope(scope)]
    return frozenset(opened)


def undeclared_categories(activity: Activity, scopes: Iterable[str]) -> list[str]:
    """The data categories ``scopes`` open that ``activity``'s fiche does not declare."""
    return sorted(opened_categories(scopes) - set(activity.data_categories))


def contract_refusal(
    client_activities: Mapping[str, Activity],
    client_id: str | None,
    activity_id: str | None,
    scopes: Iterable[str],
) -> str | None:
    """Why nothing may be served under a client's contract now (None: it may): its activity
    is not, or no longer, one of the register's for ENT clients, or its scopes open data
    categories the activity's fiche no longer declares (a fiche narrowed after the contract)."""
    activity = client_activities.get(activity_id) if activity_id else None
    if activity is None:
        return (
            f"the contract of client {client_id} names no processing activity of the register "
            f"that covers ENT clients ({activity_id or 'none'})"
        )
    undeclared = undeclared_categories(activity, scopes)
    if undeclared:
        return (
            f"the scopes of client {client_id} open data categories that activity "
            f"{activity.id} no longer declares: {', '.join(undeclared)}"
        )
    return None


def _checked_activity(activity: Activity, scopes: list[str]) -> str:
    if activity.status is ActivityStatus.RETIRED:
        raise BadInput(f"activity {activity.id!r} is retired: no new contract may run under it")
    if FlowKind.API_CLIENT not in activity.flows:
        raise BadInput(
            f"activity {activity.id!r} does not claim the flow 'api-client' in the register: "
            "a client's contract must run under one that does"
        )
    undeclared = undeclared_categories(activity, scopes)
    if undeclared:
        raise BadInput(
            f"the scopes {', '.join(scopes)} open data categories that activity {activity.id!r} "
            f"does not declare: {', '.join(undeclared)}; declare them in the register or grant "
            "fewer scopes"
        )
    return activity.id


_SCOPE_VALUES = frozenset(scope.value for scope in ClientScope)


def _checked_scopes(scopes: Iterable[str]) -> list[str]:
    wanted = set(scopes)
    known = _SCOPE_VALUES
    unknown = sorted(wanted - known)
    if unknown:
        raise BadInput(f"unknown scope {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    if not wanted:
        raise BadInput("a client's contract grants at least one scope")
    return [scope.value for scope in ClientScope if scope.value in wanted]


def _thumbprint(key: dict[str, Any]) -> str:
    """RFC 7638 thumbprint of a public JWK (SHA-256, base64url)."""
    members = ("crv", "kty", "x", "y") if key["kty"] == "EC" else ("e", "kty", "n")
    canonical = "{" + ",".join(f'"{m}":"{key[m]}"' for m in members) + "}"
    return b64url_encode(hashlib.sha256(canonical.encode("ascii")).digest())


def _checked_public_jwk(key: Any) -> dict[str, Any]:
    """The client's public key, with ``alg`` pinned and a ``kid`` (its thumbprint if none)."""
    if not isinstance(key, dict):
        raise BadInput("the public key must be a JWK (a JSON object)")
    if _PRIVATE_MEMBERS & key.keys():
        raise BadInput("this JWK holds private or symmetric key material: give the public key")
    kty = key.get("kty")
    required = {"EC": ("crv", "x", "y"), "RSA": ("n", "e")}.get(str(kty))
    if required is None:
        raise BadInput(f"unsupported key type {kty!r}: use an EC (P-256) or RSA public key")
    missing = [m for m in required if not isinstance(key.get(m), str) or not key.get(m)]
    if missing:
        raise BadInput(f"the {kty} key lacks {', '.join(missing)}")
    if kty == "EC":
        default_alg = _CURVE_ALGORITHMS.get(key["crv"])
        if default_alg is None:
            raise BadInput(f"unsupported curve {key['crv']!r}: use P-256, P-384 or P-521")
    else:
        if len(b64url_decode(key["n"])) * 8 < 2048:
            raise BadInput("RSA keys shorter than 2048 bits are refused")
        default_alg = "RS256"
    alg = key.get("alg", default_alg)
    if _jose.ASYMMETRIC_ALGORITHMS.get(alg) != kty or (kty == "EC" and alg != default_alg):
        raise BadInput(f"algorithm {alg!r} does not fit this {kty} key")
    if key.get("use", "sig") != "sig":
        raise BadInput("the key's use must be sig")
    checked = dict(key, alg=alg)
    checked.setdefault("kid", _thumbprint(key))
    return checked


def create_client(
    engine: Engine,
    name: str,
    structures: Iterable[str],
    scopes: Iterable[str],
    public_jwk: dict[str, Any] | None = None,
    *,
    activity: Activity,
    issuer: str | None = None,
    client_id: str | None = None,
) -> tuple[ApiClient, str | None]:
    """Register a client; returns it and its secret (None for a key client), shown only once.

    With ``issuer`` (the name of a configured client-credentials issuer) and that issuer's
    ``client_id``, the contract is for a client that authenticates there: the hub keeps no
    secret nor key for it, and accepts its contract only in that issuer's tokens.

    Raises :class:`BadInput` for an empty name, a malformed UAI, an unknown scope, an activity
    that does not cover ENT clients or the scopes' data, a key that is not a usable public
    signing JWK, an issuer without a client id (or a client id without an issuer), a client
    id too long or with a control character, or an issuer named like one of the hub's own.
    """
    name = name.strip()
    if not name or len(name) > 255:
        raise BadInput("a client needs a name of 1 to 255 characters")
    uais, granted = _checked_structures(structures), _checked_scopes(scopes)
    activity_id = _checked_activity(activity, granted)
    if (issuer is None) != (client_id is None):
        raise BadInput("a client of another issuer needs both the issuer and its client id")
    if client_id is not None and (
        not 0 < len(client_id.strip()) <= _MAX_CLIENT_ID_CHARS or _CONTROL.search(client_id)
    ):
        raise BadInput(
            f"a client id has 1 to {_MAX_CLIENT_ID_CHARS} characters, none a control character"
        )
    if issuer is not None and reserved_issuer_name(issuer):
        raise BadInput(f"{issuer!r} names one of the hub's own issuers, not another issuer")
    if issuer is not None and public_jwk is not None:
        raise BadInput("a client of another issuer authenticates there: no key at the hub")
    key = None if public_jwk is None else _checked_public_jwk(public_jwk)
    secret = None if key is not None or issuer is not None else secrets.token_urlsafe(32)
    client = ApiClient(
        client_id=client_id.strip() if client_id else "ent-" + secrets.token_urlsafe(12),
        issuer=issuer,
        name=name,
        structures=uais,
        scopes=granted,
        activity=activity_id,
        created_at=utcnow(),
        secret_hash=None if secret is None else hash_secret(secret),
        public_jwk=key,
    )
    try:
        with write_transaction(engine) as connection:
            connection.execute(insert(_CLIENTS).values(**client.model_dump()))
    except IntegrityError:
        raise BadInput(f"client {client.client_id} is registered already") from None
    return client, secret


# -- reading and revoking --------------------------------------------------------------------


def _client(engine: Engine, client_id: str) -> ApiClient | None:
    """The client registered as ``client_id``; a text that cannot be a client id (too long,
    a control character: PostgreSQL refuses NUL in text) is never looked up."""
    if len(client_id) > _MAX_CLIENT_ID_CHARS or _CONTROL.search(client_id):
        return None
    with engine.connect() as connection:
        row = connection.execute(select(_CLIENTS).where(_CLIENTS.c.client_id == client_id)).first()
    return None if row is None else ApiClient.model_validate(dict(row._mapping))


def list_clients(engine: Engine, *, include_revoked: bool = True) -> list[ApiClient]:
    """Every registered client, oldest first."""
    query = select(_CLIENTS).order_by(_CLIENTS.c.created_at, _CLIENTS.c.client_id)
    if not include_revoked:
        query = query.where(_CLIENTS.c.revoked_at.is_(None))
    with engine.connect() as connection:
        return [ApiClient.model_validate(dict(r._mapping)) for r in connection.execute(query)]


def active_client(engine: Engine, client_id: str) -> ApiClient | None:
    """The client if it exists and is not revoked (read from the database at each call)."""
    client = _client(engine, client_id)
    return client if client is not None and client.active else None


def revoke_client(engine: Engine, client_id: str) -> ApiClient:
    """Revoke a client now (a second revocation keeps the first date). Unknown: BadInput."""
    with write_transaction(engine) as connection:
        connection.execute(
            update(_CLIENTS)
            .where(_CLIENTS.c.client_id == client_id, _CLIENTS.c.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        )
    client = _client(engine, client_id)
    if client is None:
        raise BadInput(f"no client {client_id!r}")
    return client


# -- authentication --------------------------------------------------------------------------


def authenticate_secret(engine: Engine, client_id: str, secret: str) -> ApiClient:
    """The active secret client ``client_id`` if ``secret`` is its secret, else InvalidClient."""
    client = _client(engine, client_id)
    stored = client.secret_hash if client is not None and client.secret_hash else None
    matches = verify_secret(secret[:_MAX_SECRET_CHARS], stored or _decoy_hash())
    if client is None:
        raise InvalidClient("unknown client")
    if stored is None:
        raise InvalidClient("this client authenticates with a key, not a secret")
    if not matches or len(secret) > _MAX_SECRET_CHARS:
        raise InvalidClient("wrong secret")
    if not client.active:
        raise InvalidClient("revoked client")
    return client


def _audiences(claims: dict[str, Any]) -> list[str]:
    aud = claims.get("aud")
    if isinstance(aud, str):
        return [aud]
    if isinstance(aud, list) and all(isinstance(a, str) for a in aud):
        return aud
    return []


def _number(claims: dict[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidClient(f"assertion claim {name} is not a number")
    return float(value)


def authenticate_assertion(
    engine: Engine,
    assertion: str,
    token_endpoint_url: str,
    *,
    also_accepted_audiences: Iterable[str] = (),
    leeway_s: int = 60,
    now: dt.datetime | None = None,
) -> ApiClient:
    """The active key client that signed ``assertion`` (RFC 7523 §3), else InvalidClient.

    ``aud`` must contain ``token_endpoint_url`` (or one of ``also_accepted_audiences``, e.g.
    the hub's issuer identifier). A valid assertion is consumed: its ``jti`` is refused until
    its ``exp``.
    """
    moment = now or utcnow()
    try:
        # Read unverified only to pick the key; the claims used are those verify() returns.
        unverified = _jose.read_payload(assertion)
        _jose.read_header(assertion)
    except _jose.JoseError as exc:
        raise InvalidClient(f"unreadable assertion: {exc}") from None
    client_id = unverified.get("sub")
    if not isinstance(client_id, str) or unverified.get("iss") != client_id:
        raise InvalidClient("assertion iss and sub must both be the client id")
    client = _client(engine, client_id)
    if client is None or client.public_jwk is None:
        raise InvalidClient("no key client with this id")
    if not client.active:
        raise InvalidClient("revoked client")
    try:
        claims = _jose.verify(assertion, client.public_jwk, client.public_jwk["alg"])
    except _jose.JoseError as exc:
        raise InvalidClient(f"assertion refused: {exc}") from None
    if claims.get("iss") != client_id or claims.get("sub") != client_id:
        raise InvalidClient("assertion iss and sub must both be the client id")
    accepted = {token_endpoint_url, *also_accepted_audiences}
    if not accepted & set(_audiences(claims)):
        raise InvalidClient(f"assertion aud is not this token endpoint ({token_endpoint_url})")
    timestamp = moment.timestamp()
    exp = _number(claims, "exp")
    if exp is None:
        raise InvalidClient("assertion without exp")
    if exp <= timestamp - leeway_s:
        raise InvalidClient("assertion expired")
    if exp > timestamp + MAX_ASSERTION_LIFETIME_S + leeway_s:
        raise InvalidClient(f"assertion valid longer than {MAX_ASSERTION_LIFETIME_S} s")
    for name in ("nbf", "iat"):
        value = _number(claims, name)
        if value is not None and value > timestamp + leeway_s:
            raise InvalidClient(f"assertion {name} is in the future")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not 1 <= len(jti) <= _MAX_JTI_CHARS or _CONTROL.search(jti):
        raise InvalidClient("assertion without a usable jti")
    expires = dt.datetime.fromtimestamp(exp + leeway_s, dt.UTC)
    _consume(engine, client_id, jti, expires, moment)
    return client


def _consume(
    engine: Engine, client_id: str, jti: str, expires: dt.datetime, now: dt.datetime
) -> None:
    try:
        with write_transaction(engine) as connection:
            # Forget the assertions that expired: their exp already refuses them.
            connection.execute(delete(_USES).where(_USES.c.expires_at < now))
            connection.execute(
                insert(_USES).values(client_id=client_id, jti=jti, expires_at=expires)
            )
    except IntegrityError:
        raise InvalidClient("assertion jti already used") from None
