"""Tokens through the whole API: the hub's token endpoint, dev tokens, an external issuer."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import text

from annuaire.api import create_app
from annuaire.auth import _jose
from annuaire.auth.clients import create_client, revoke_client
from annuaire.auth.devtokens import DevTokenKind, mint_dev_token
from annuaire.auth.issuing import load_or_create_key
from annuaire.errors import ConfigurationError
from annuaire.settings import IssuerSettings, Settings
from tests.auth.conftest import JwksServer
from tests.conftest import ENT_ACTIVITY

from .conftest import Api, TestClient, legal_guardian_vector


def settings_for(api: Api, tmp_path: Path, **changes: object) -> Settings:
    return api.settings.model_copy(
        update={
            "signing_key_file": tmp_path / "hub-key.json",
            "dev_key_file": tmp_path / "dev-key.json",
            **changes,
        }
    )


@pytest.fixture
def client_app(fresh_api: Api, tmp_path: Path) -> Iterator[tuple[TestClient, Api, Settings]]:
    settings = settings_for(fresh_api, tmp_path, environment="production")
    assert settings.signing_key_file is not None
    load_or_create_key(settings.signing_key_file, create=True)  # what an operator provisions
    app = create_app(settings)
    with TestClient(app) as client:
        yield client, fresh_api, settings
    app.state.engine.dispose()


def educonnect_bearer(
    broker: IssuerSettings, key: dict[str, Any], jti: str, **identity: Any
) -> dict[str, str]:
    """The Authorization header of a token from ``broker``, signed with ``key``: a guardian's,
    unless ``identity`` (FrEduCtRefId, FrEduVecteur, FrEduCtId...) says otherwise."""
    now = int(time.time())
    claims = {
        "iss": broker.issuer,
        "aud": "urn:aiguillage:api",
        "sub": "pairwise-1",
        "client_id": "ent-app",
        "iat": now,
        "exp": now + 300,
        "jti": jti,
        "FrEduCtPersonAffiliation": ["resp2d"],
        **identity,
    }
    return {"Authorization": f"Bearer {_jose.sign(claims, key)}"}


def a_college(api: Api) -> str:
    with api.engine.connect() as connection:
        return str(
            connection.execute(
                text("SELECT uai FROM structure WHERE kind = 'college' ORDER BY uai")
            ).scalar()
        )


def test_an_ent_client_reads_its_contract_then_is_revoked_at_once(
    client_app: tuple[TestClient, Api, Settings],
) -> None:
    client, api, _ = client_app
    uai = a_college(api)
    ent, secret = create_client(
        api.engine, "ENT test", [uai], ["roster-core.readonly"], activity=ENT_ACTIVITY
    )
    assert client.get("/v1/persons").status_code == 401  # production: a token is required
    basic = base64.b64encode(f"{ent.client_id}:{secret}".encode()).decode()
    issued = client.post(
        "/oauth/token",
        content="grant_type=client_credentials",
        headers={
            "Authorization": f"Basic {basic}",
            "Content-Type": "application/x-www-form-urlencoded",
        },
    )
    assert issued.status_code == 200, issued.text
    bearer = {"Authorization": f"Bearer {issued.json()['access_token']}"}
    persons = client.get("/v1/persons", params={"limit": 1000}, headers=bearer).json()["items"]
    assert persons
    assert all(
        any(r["structure_uai"] == uai for r in p["roles"]) or p["roles"] == [] for p in persons
    )
    assert all("birth_date" not in p for p in persons)
    other = client.get("/v1/structures", params={"limit": 1000}, headers=bearer).json()["items"]
    assert {s["uai"] for s in other} == {uai}

    revoke_client(api.engine, ent.client_id)
    refused = client.get("/v1/persons", headers=bearer)
    assert refused.status_code == 401
    assert 'error="invalid_token"' in refused.headers["www-authenticate"]


def test_forged_and_foreign_tokens_are_refused(
    client_app: tuple[TestClient, Api, Settings],
) -> None:
    client, _, _ = client_app
    stranger = _jose.generate_es256_jwk("hub-1")
    now = int(time.time())
    claims = {
        "iss": "urn:aiguillage:hub",
        "aud": "urn:aiguillage:api",
        "sub": "ent-x",
        "client_id": "ent-x",
        "iat": now,
        "exp": now + 300,
        "jti": "1",
        "scope": "roster-core.readonly",
    }
    for token in (_jose.sign(claims, stranger), "not.a.token", "e30.e30."):
        response = client.get("/v1/persons", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401
        assert response.json()["type"] == "urn:aiguillage:problem:unauthorized"
        assert token not in response.text


def test_dev_tokens_work_in_development_only(fresh_api: Api, tmp_path: Path) -> None:
    settings = settings_for(fresh_api, tmp_path, environment="development", dev_tokens=True)
    with fresh_api.engine.connect() as connection:
        guardian, pupil = connection.execute(
            text("SELECT guardian_id, pupil_id FROM guardianship WHERE legal ORDER BY guardian_id")
        ).first()
    guardian_id, pupil_id = str(uuid.UUID(str(guardian))), str(uuid.UUID(str(pupil)))
    token = mint_dev_token(fresh_api.engine, settings, DevTokenKind.GUARDIAN, guardian_id)
    bearer = {"Authorization": f"Bearer {token}"}
    app = create_app(settings)
    with TestClient(app) as client:
        seen = {p["id"] for p in client.get("/v1/persons", headers=bearer).json()["items"]}
        assert guardian_id in seen and pupil_id in seen
        everyone = client.get("/v1/persons", params={"limit": 1000}).json()["items"]
        assert len(everyone) > len(seen)  # without a token: open development access
    app.state.engine.dispose()
    production = create_app(settings.model_copy(update={"environment": "production"}))
    with TestClient(production) as client:
        assert client.get("/v1/persons", headers=bearer).status_code == 401
    production.state.engine.dispose()


def test_an_educonnect_broker_token_from_a_real_jwks_endpoint(
    fresh_api: Api, tmp_path: Path
) -> None:
    server = JwksServer()
    try:
        broker_key = _jose.generate_es256_jwk("broker-1")
        server.publish(_jose.public_jwk(broker_key))
        broker = IssuerSettings(
            name="educonnect-broker",
            issuer="https://broker.example.fr/realms/ent",
            jwks_uri=server.url,
            audiences=["urn:aiguillage:api"],
            algorithms=["ES256"],
            profile="educonnect",
        )
        settings = settings_for(
            fresh_api, tmp_path, environment="production", token_issuers=[broker]
        )
        with fresh_api.engine.connect() as connection:
            pupil, key = connection.execute(
                text(
                    "SELECT e.entity_id, e.value FROM external_id e JOIN role r "
                    "ON r.person_id = e.entity_id WHERE r.role = 'pupil' "
                    "AND e.type = 'aaf:ENTPersonJointure' ORDER BY e.value"
                )
            ).first()
        bearer = educonnect_bearer(
            broker,
            broker_key,
            "j-1",
            FrEduCtPersonAffiliation=["eleve2d"],
            FrEduCtRefId=[f"{{AAF}}99|x|{key}"],
        )
        app = create_app(settings)
        with TestClient(app) as client:
            persons = client.get("/v1/persons", headers=bearer).json()["items"]
            assert [p["id"] for p in persons] == [str(uuid.UUID(str(pupil)))]
            assert client.get("/v1/guardianships", headers=bearer).json()["items"] == []
            assert client.get("/v1/import-runs", headers=bearer).json()["items"] == []
        app.state.engine.dispose()
        assert server.requests == 1  # keys fetched once, then cached
    finally:
        server.stop()


def keyed_issuer(
    name: str, issuer: str, tmp_path: Path, profile: str, **options: Any
) -> tuple[IssuerSettings, dict[str, Any]]:
    """An issuer whose public key is in a JWKS file under ``tmp_path``, and its private key."""
    jwks = tmp_path / f"{name}.jwks.json"
    key = _jose.generate_es256_jwk(f"{name}-1")
    jwks.write_text(json.dumps({"keys": [_jose.public_jwk(key)]}))
    settings = IssuerSettings(
        name=name,
        issuer=issuer,
        jwks_file=jwks,
        audiences=["urn:aiguillage:api"],
        algorithms=["ES256"],
        profile=profile,  # type: ignore[arg-type]
        **options,
    )
    return settings, key


def _issuer(name: str, issuer: str, tmp_path: Path) -> IssuerSettings:
    return keyed_issuer(name, issuer, tmp_path, "client_credentials")[0]


@pytest.mark.parametrize(
    ("names", "refusal"),
    [
        (["hub"], "reserved"),
        (["dev-client-credentials"], "reserved"),
        (["dev-educonnect"], "reserved"),
        (["broker", "broker"], "two token issuers are named 'broker'"),
    ],
)
def test_an_issuer_cannot_take_the_name_of_the_hubs_own_or_of_another(
    api: Api, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, names: list[str], refusal: str
) -> None:
    """A client's contract is carried by the tokens of the issuer it is bound to, by name (the
    hub's own clients: ``hub``, and ``dev-client-credentials`` in development): an issuer
    taking such a name, or another's, would carry contracts that are not its clients'. The
    settings refuse it when loaded, and the API refuses to start with it."""
    issuers = [
        _issuer(name, f"https://as{i}.example.fr/", tmp_path) for i, name in enumerate(names)
    ]
    with pytest.raises(ValidationError, match=refusal):
        Settings(database_url=api.settings.database_url, token_issuers=issuers)
    config = tmp_path / "aiguillage.toml"
    config.write_text(
        "".join(
            f'[[token_issuers]]\nname = "{i.name}"\nissuer = "{i.issuer}"\n'
            f'jwks_file = "{i.jwks_file}"\naudiences = ["urn:aiguillage:api"]\n'
            'profile = "client_credentials"\n'
            for i in issuers
        )
    )
    monkeypatch.setenv("AIGUILLAGE_CONFIG", str(config))
    with pytest.raises(ValidationError, match=refusal):
        Settings()
    # Settings copied without validation reach the API, which refuses them all the same.
    unchecked = settings_for(api, tmp_path, environment="production", token_issuers=issuers)
    with pytest.raises(ConfigurationError, match=refusal):
        create_app(unchecked)


def test_an_educonnect_id_longer_than_the_store_holds_is_not_kept_and_the_login_goes_on(
    fresh_api: Api, tmp_path: Path
) -> None:
    """The person a broker token resolves to keeps its ``FrEduCtId`` as an external id. A
    value longer than an external id holds (255 characters; EduConnect's are 96) is not
    kept: the person is found by the AAF join key alone, and every read answers as usual
    (PostgreSQL refused the write, and each request was a 500)."""
    broker, broker_key = keyed_issuer(
        "educonnect-broker", "https://broker.example.fr/realms/ent", tmp_path, "educonnect"
    )
    settings = settings_for(fresh_api, tmp_path, environment="production", token_issuers=[broker])
    with fresh_api.engine.connect() as connection:
        guardian, key = connection.execute(
            text(
                "SELECT e.entity_id, e.value FROM external_id e JOIN guardianship g "
                "ON g.guardian_id = e.entity_id WHERE g.legal "
                "AND e.type = 'aaf:ENTPersonJointure' ORDER BY e.value"
            )
        ).first()
    guardian = str(uuid.UUID(str(guardian)))

    def token(educonnect_id: str) -> dict[str, str]:
        return educonnect_bearer(
            broker,
            broker_key,
            f"j-{len(educonnect_id)}",
            FrEduCtRefId=[f"{{AAF}}99|x|{key}"],
            FrEduCtId=educonnect_id,
        )

    def kept() -> list[str]:
        with fresh_api.engine.connect() as connection:
            return sorted(
                connection.execute(
                    text("SELECT value FROM external_id WHERE type = 'educonnect:FrEduCtId'")
                ).scalars()
            )

    app = create_app(settings)
    with TestClient(app) as client:
        bearer = token("ab" * 128)  # 256 characters
        ndjson = {**bearer, "Accept": "application/x-ndjson"}
        assert client.get("/v1/persons", headers=bearer).status_code == 200
        assert client.get(f"/v1/persons/{guardian}", headers=bearer).status_code == 200
        assert client.head(f"/v1/persons/{guardian}", headers=bearer).status_code == 200
        assert client.get("/v1/persons", headers=ndjson).status_code == 200
        assert client.get("/v1/changes", headers=bearer).status_code == 200
        assert kept() == []
        # A value the store holds is kept, by the first read (here an export) that finds it.
        usable = "cd" * 48
        exported = client.get("/v1/persons", headers={**token(usable), "Accept": ndjson["Accept"]})
        assert exported.status_code == 200
        assert kept() == [usable]
    app.state.engine.dispose()


def test_the_fredu_vecteur_is_read_from_the_issuers_configured_for_it_only(
    fresh_api: Api, tmp_path: Path
) -> None:
    """A token naming a guardian by FrEduVecteur alone finds them through an issuer whose
    ``fredu_vecteur`` is on; the same claims from an issuer left at the default are a 401."""
    keys, brokers = {}, []
    for name, accepts in (("vector-broker", True), ("plain-broker", False)):
        broker, keys[name] = keyed_issuer(
            name, f"https://{name}.example.fr", tmp_path, "educonnect", fredu_vecteur=accepts
        )
        brokers.append(broker)
    settings = settings_for(fresh_api, tmp_path, environment="production", token_issuers=brokers)
    guardian, last, first, pupil_ref, uai = legal_guardian_vector(fresh_api)

    def bearer(broker: IssuerSettings) -> dict[str, str]:
        vector = f"2|{last}|{first}|{pupil_ref}|{uai}"
        return educonnect_bearer(broker, keys[broker.name], f"j-{broker.name}", FrEduVecteur=vector)

    app = create_app(settings)
    with TestClient(app) as client:
        found = client.get(f"/v1/persons/{uuid.UUID(str(guardian))}", headers=bearer(brokers[0]))
        assert found.status_code == 200
        refused = client.get("/v1/persons", headers=bearer(brokers[1]))
        assert refused.status_code == 401
        assert "fredu_vecteur" in refused.json()["detail"]
    app.state.engine.dispose()
