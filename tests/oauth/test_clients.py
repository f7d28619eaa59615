"""Registering, listing, revoking and authenticating API clients, on both backends."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
from typing import Any

import pytest
from sqlalchemy import select

from annuaire.auth import AccessRules, Principal, _jose
from annuaire.auth import clients as clients_module
from annuaire.auth.clients import (
    InvalidClient,
    active_client,
    authenticate_assertion,
    authenticate_secret,
    create_client,
    hash_secret,
    list_clients,
    revoke_client,
    verify_secret,
)
from annuaire.auth.principal import Unauthenticated, principal_from_claims
from annuaire.errors import BadInput
from annuaire.schema import ApiClientPublic, ClientAssertionUse, ClientAuthMethod
from tests.conftest import ENT_ACTIVITY, Store

from .conftest import TOKEN_URL, assertion

UAIS = ["0289029M", "0898319J"]
CORE, DEMO, TIMETABLE = (
    "roster-core.readonly",
    "roster-demographics.readonly",
    "timetable.readonly",
)


def test_a_client_round_trips_through_the_table(clients_store: Store) -> None:
    engine = clients_store.engine
    client, secret = create_client(
        engine,
        "  ENT Sandbox ",
        [UAIS[1], UAIS[0], UAIS[1]],
        [TIMETABLE, CORE],
        activity=ENT_ACTIVITY,
    )
    assert client.client_id.startswith("ent-") and len(client.client_id) == 20
    assert secret is not None and len(secret) >= 43
    (stored,) = list_clients(engine)
    assert stored.model_dump() == client.model_dump()
    assert stored.name == "ENT Sandbox"
    assert stored.structures == sorted(UAIS) and stored.scopes == [CORE, TIMETABLE]
    assert stored.secret_hash is not None and secret not in stored.secret_hash
    assert stored.created_at.tzinfo is not None and stored.revoked_at is None
    public = ApiClientPublic.of(stored)
    assert public.auth_method is ClientAuthMethod.SECRET and public.key_id is None
    assert not {"secret_hash", "public_jwk"} & set(public.model_dump())
    assert active_client(engine, client.client_id) == stored


def test_a_contract_is_carried_by_the_tokens_of_its_own_issuer_only(clients_store: Store) -> None:
    """A client of the hub's token endpoint is a client of the hub's tokens (and of dev tokens,
    trusted in development only); a client that a configured issuer authenticates is that
    issuer's: a token naming a client id is refused when another trusted issuer signed it."""
    engine = clients_store.engine
    hub_client, _ = create_client(engine, "ENT", UAIS, [CORE], activity=ENT_ACTIVITY)
    external, secret = create_client(
        engine,
        "Broker's ENT",
        UAIS[:1],
        [CORE],
        activity=ENT_ACTIVITY,
        issuer="broker",
        client_id="vendor-7",
    )
    assert secret is None and external.issuer == "broker"
    assert ApiClientPublic.of(external).auth_method is ClientAuthMethod.EXTERNAL_ISSUER

    def resolve(client_id: str, issuer: str) -> Principal:
        claims = {"sub": client_id, "client_id": client_id, "scope": CORE}
        principal = principal_from_claims("client_credentials", issuer, claims)
        with engine.connect() as connection:
            return AccessRules().resolve(connection, principal)

    assert resolve(hub_client.client_id, "hub").structures == frozenset(UAIS)
    assert resolve(hub_client.client_id, "dev-client-credentials").resolved
    assert resolve("vendor-7", "broker").structures == frozenset(UAIS[:1])
    for client_id, issuer in (
        (hub_client.client_id, "broker"),
        ("vendor-7", "hub"),
        ("vendor-7", "other-broker"),
    ):
        with pytest.raises(Unauthenticated, match="not a client of issuer"):
            resolve(client_id, issuer)
    with pytest.raises(InvalidClient):  # nothing to authenticate with at the hub
        authenticate_secret(engine, "vendor-7", "anything")
    for issuer, client_id in (("broker", None), (None, "vendor-8")):
        with pytest.raises(BadInput, match="both the issuer and its client id"):
            create_client(
                engine, "X", UAIS, [CORE], activity=ENT_ACTIVITY, issuer=issuer, client_id=client_id
            )
    with pytest.raises(BadInput, match="registered already"):
        create_client(
            engine, "Y", UAIS, [CORE], activity=ENT_ACTIVITY, issuer="broker", client_id="vendor-7"
        )
    for reserved in ("hub", "dev-client-credentials", "dev-anything"):
        with pytest.raises(BadInput, match="the hub's own issuers"):
            create_client(
                engine, "Z", UAIS, [CORE], activity=ENT_ACTIVITY, issuer=reserved, client_id="v-9"
            )


def test_a_text_that_cannot_be_a_client_id_is_never_looked_up(clients_store: Store) -> None:
    """Too long, or with a control character (PostgreSQL refuses NUL in text): no client has
    that id, whatever the way it is presented, and none can be registered with it."""
    engine = clients_store.engine
    key = _jose.generate_es256_jwk("k")
    for client_id in ("ent-\x00", "ent-\x1f", "ent-\x7f", "e" * 65):
        assert active_client(engine, client_id) is None
        with pytest.raises(InvalidClient, match="unknown client"):
            authenticate_secret(engine, client_id, "secret")
        with pytest.raises(InvalidClient, match="no key client"):
            authenticate_assertion(engine, assertion(key, client_id), TOKEN_URL)
        with pytest.raises(BadInput, match="control character"):
            create_client(
                engine,
                "X",
                UAIS,
                [CORE],
                activity=ENT_ACTIVITY,
                issuer="broker",
                client_id=client_id,
            )
    client, _ = create_client(
        engine, "Key", UAIS, [CORE], _jose.public_jwk(key), activity=ENT_ACTIVITY
    )
    with pytest.raises(InvalidClient, match="without a usable jti"):
        authenticate_assertion(engine, assertion(key, client.client_id, jti="a\x00"), TOKEN_URL)
    assert list_clients(engine) == [client]


def test_a_key_client_has_no_secret_and_a_pinned_algorithm(clients_store: Store) -> None:
    key = _jose.generate_es256_jwk("k1")
    public = {k: v for k, v in _jose.public_jwk(key).items() if k not in ("alg", "kid")}
    client, secret = create_client(
        clients_store.engine, "Key", UAIS, [CORE], public, activity=ENT_ACTIVITY
    )
    assert secret is None and client.secret_hash is None
    (stored,) = list_clients(clients_store.engine)
    assert stored.public_jwk is not None and stored.public_jwk["alg"] == "ES256"
    assert stored.public_jwk["kid"]  # its RFC 7638 thumbprint
    assert ApiClientPublic.of(stored).auth_method is ClientAuthMethod.PRIVATE_KEY_JWT


@pytest.mark.parametrize(
    ("structures", "scopes", "jwk", "message"),
    [
        (["0289029m"], [CORE], None, "not a UAI"),
        (["289029M"], [CORE], None, "not a UAI"),
        ([], [CORE], None, "at least one structure"),
        (UAIS, ["roster-full.readonly"], None, "unknown scope"),
        (UAIS, [], None, "at least one scope"),
        (UAIS, [CORE], _jose.generate_es256_jwk("private"), "private"),
        (UAIS, [CORE], {"kty": "oct", "k": "c2VjcmV0"}, "private or symmetric"),
        (UAIS, [CORE], {"kty": "RSA", "n": "AQAB", "e": "AQAB"}, "shorter than 2048"),
        (UAIS, [CORE], {**_jose.public_jwk(_jose.generate_es256_jwk("k")), "alg": "RS256"}, "fit"),
    ],
)
def test_registration_refuses_a_bad_contract_or_key(
    clients_store: Store, structures: list[str], scopes: list[str], jwk: Any, message: str
) -> None:
    with pytest.raises(BadInput, match=message):
        create_client(clients_store.engine, "X", structures, scopes, jwk, activity=ENT_ACTIVITY)
    assert list_clients(clients_store.engine) == []


def test_secret_hashes_are_salted_scrypt_with_their_parameters() -> None:
    first, second = hash_secret("s3cret"), hash_secret("s3cret")
    assert first != second
    scheme, params, _salt, _digest = first.split("$")
    assert (scheme, params) == ("scrypt", "n=16384,r=8,p=1")
    assert verify_secret("s3cret", first) and verify_secret("s3cret", second)
    assert not verify_secret("s3cret ", first)
    assert not verify_secret("s3cret", "scrypt$n=2,r=1,p=1$x$y")  # malformed: refused
    assert not verify_secret("s3cret", "md5$" + first.split("$", 1)[1])


def test_secret_authentication_refuses_wrong_unknown_key_and_revoked(clients_store: Store) -> None:
    engine = clients_store.engine
    client, secret = create_client(engine, "ENT", UAIS, [CORE], activity=ENT_ACTIVITY)
    assert secret is not None
    assert authenticate_secret(engine, client.client_id, secret).client_id == client.client_id
    with pytest.raises(InvalidClient, match="wrong secret"):
        authenticate_secret(engine, client.client_id, secret + "x")
    with pytest.raises(InvalidClient, match="unknown client"):
        authenticate_secret(engine, "ent-nobody", secret)
    with pytest.raises(InvalidClient, match="unknown client"):
        authenticate_secret(engine, "x" * 5000, secret)
    key_client, _ = create_client(
        engine,
        "Key",
        UAIS,
        [CORE],
        _jose.public_jwk(_jose.generate_es256_jwk("k")),
        activity=ENT_ACTIVITY,
    )
    with pytest.raises(InvalidClient, match="with a key"):
        authenticate_secret(engine, key_client.client_id, secret)

    revoked = revoke_client(engine, client.client_id)
    assert revoked.revoked_at is not None
    with pytest.raises(InvalidClient, match="revoked"):
        authenticate_secret(engine, client.client_id, secret)
    assert active_client(engine, client.client_id) is None
    assert revoke_client(engine, client.client_id).revoked_at == revoked.revoked_at
    with pytest.raises(BadInput, match="no client"):
        revoke_client(engine, "ent-nobody")
    listed = {c.client_id: c for c in list_clients(engine, include_revoked=False)}
    assert list(listed) == [key_client.client_id]


def test_secret_authentication_does_the_same_work_whatever_the_failure(
    clients_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = clients_store.engine
    client, secret = create_client(engine, "ENT", UAIS, [CORE], activity=ENT_ACTIVITY)
    key_client, _ = create_client(
        engine,
        "Key",
        UAIS,
        [CORE],
        _jose.public_jwk(_jose.generate_es256_jwk("k")),
        activity=ENT_ACTIVITY,
    )
    assert secret is not None
    clients_module._decoy_hash()  # computed once per process, before counting
    calls: list[int] = []
    real_scrypt = hashlib.scrypt

    def counting_scrypt(password: bytes, **kwargs: Any) -> bytes:
        calls.append(kwargs["n"])
        return real_scrypt(password, **kwargs)

    monkeypatch.setattr(clients_module.hashlib, "scrypt", counting_scrypt)
    attempts = [
        (client.client_id, secret),
        (client.client_id, "wrong"),
        ("ent-unknown", secret),
        (key_client.client_id, secret),
    ]
    for client_id, attempt in attempts:
        calls.clear()
        with contextlib.suppress(InvalidClient):
            authenticate_secret(engine, client_id, attempt)
        assert calls == [16384], client_id


def test_assertions_are_verified_and_single_use(clients_store: Store) -> None:
    engine = clients_store.engine
    key = _jose.generate_es256_jwk("vendor-key")
    client, _ = create_client(
        engine, "Key", UAIS, [CORE], _jose.public_jwk(key), activity=ENT_ACTIVITY
    )
    cid = client.client_id

    once = assertion(key, cid, jti="once")
    assert authenticate_assertion(engine, once, TOKEN_URL).client_id == cid
    with pytest.raises(InvalidClient, match="already used"):
        authenticate_assertion(engine, once, TOKEN_URL)
    with pytest.raises(InvalidClient, match="already used"):  # another token, same jti
        authenticate_assertion(engine, assertion(key, cid, jti="once"), TOKEN_URL)
    listed = assertion(key, cid, aud=["urn:other", TOKEN_URL])
    assert authenticate_assertion(engine, listed, TOKEN_URL).client_id == cid
    issuer_aud = assertion(key, cid, aud="urn:aiguillage:hub")
    assert authenticate_assertion(
        engine, issuer_aud, TOKEN_URL, also_accepted_audiences=["urn:aiguillage:hub"]
    )

    refused: dict[str, str] = {
        "aud is not": assertion(key, cid, aud="https://elsewhere.example/oauth/token"),
        "expired": assertion(key, cid, exp_in=-120),
        "longer than 300": assertion(key, cid, exp_in=3600),
        "without exp": assertion(key, cid, exp_in=None),
        "without a usable jti": assertion(key, cid, jti=None),
        "nbf is in the future": assertion(key, cid, nbf=int(dt.datetime.now().timestamp()) + 600),
        "iss and sub": assertion(key, cid, iss="ent-someone-else"),
        "does not verify": assertion(_jose.generate_es256_jwk("vendor-key"), cid),
        "no key client": assertion(key, "ent-unknown"),
        "unreadable": "not.a.jwt",
    }
    for reason, token in refused.items():
        with pytest.raises(InvalidClient, match=reason):
            authenticate_assertion(engine, token, TOKEN_URL)

    secret_client, _ = create_client(engine, "Secret", UAIS, [CORE], activity=ENT_ACTIVITY)
    with pytest.raises(InvalidClient, match="no key client"):
        authenticate_assertion(engine, assertion(key, secret_client.client_id), TOKEN_URL)
    revoke_client(engine, cid)
    with pytest.raises(InvalidClient, match="revoked"):
        authenticate_assertion(engine, assertion(key, cid), TOKEN_URL)


def test_used_jtis_are_forgotten_once_expired(clients_store: Store) -> None:
    engine = clients_store.engine
    key = _jose.generate_es256_jwk("k")
    client, _ = create_client(
        engine, "Key", UAIS, [CORE], _jose.public_jwk(key), activity=ENT_ACTIVITY
    )
    first = assertion(key, client.client_id, jti="a")
    authenticate_assertion(engine, first, TOKEN_URL)
    # The next assertion forgets the expired ones only: "a" is still refused.
    authenticate_assertion(engine, assertion(key, client.client_id, jti="a2"), TOKEN_URL)
    with pytest.raises(InvalidClient, match="already used"):
        authenticate_assertion(engine, first, TOKEN_URL)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    fresh = assertion(key, client.client_id, exp_in=3600 + 60, jti="b")
    authenticate_assertion(engine, fresh, TOKEN_URL, now=later)
    uses = ClientAssertionUse.__table__  # type: ignore[attr-defined]
    with engine.connect() as connection:
        jtis = connection.execute(select(uses.c.jti)).scalars().all()
    assert jtis == ["b"]
