"""``POST /oauth/token`` and ``GET /oauth/jwks.json`` through the real app, on both backends."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import httpx
import pytest
from sqlalchemy import text

from annuaire.api import create_app
from annuaire.auth import _jose
from annuaire.auth.clients import CLIENT_ASSERTION_TYPE, create_client, revoke_client
from annuaire.auth.issuing import (
    DEFAULT_SIGNING_KEY_FILE,
    SigningKeyUnavailable,
    hub_jwks,
    signing_key,
)
from annuaire.settings import Settings
from tests.conftest import ENT_ACTIVITY

from .conftest import TOKEN_URL, OAuthApi, assertion, serve

UAIS = ["0289029M"]
CORE, DEMO, TIMETABLE = (
    "roster-core.readonly",
    "roster-demographics.readonly",
    "timetable.readonly",
)
FORM = {"content-type": "application/x-www-form-urlencoded"}


def _basic(client_id: str, secret: str) -> dict[str, str]:
    raw = f"{quote_plus(client_id)}:{quote_plus(secret)}".encode()
    return {"authorization": "Basic " + base64.b64encode(raw).decode()}


def _secret_client(api: OAuthApi, scopes: list[str] | None = None) -> tuple[str, str]:
    client, secret = create_client(
        api.store.engine, "ENT", UAIS, scopes or [CORE, TIMETABLE], activity=ENT_ACTIVITY
    )
    assert secret is not None
    return client.client_id, secret


def _token(api: OAuthApi, data: dict[str, str], headers: dict[str, str] | None = None) -> Any:
    return api.client.post("/oauth/token", data=data, headers=headers)


def _verified(api: OAuthApi, token: str) -> dict[str, Any]:
    header = _jose.read_header(token)
    jwks = api.client.get("/oauth/jwks.json")
    assert jwks.status_code == 200 and jwks.headers["cache-control"] == "max-age=300"
    (key,) = [k for k in jwks.json()["keys"] if k["kid"] == header["kid"]]
    assert "d" not in key
    return _jose.verify(token, key, "ES256")


def _refused(response: httpx.Response, status: int, error: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["content-type"] == "application/json"
    body: dict[str, Any] = response.json()
    assert body["error"] == error and body["error_description"]
    return body


def test_basic_authentication_gets_an_rfc9068_token(api: OAuthApi) -> None:
    client_id, secret = _secret_client(api)
    response = _token(api, {"grant_type": "client_credentials"}, _basic(client_id, secret))
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["pragma"] == "no-cache"
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "scope"}
    assert body["token_type"] == "Bearer" and body["expires_in"] == 600
    assert body["scope"] == f"{CORE} {TIMETABLE}"  # no scope asked: the whole contract

    token = body["access_token"]
    header = _jose.read_header(token)
    assert header["typ"] == "at+jwt" and header["alg"] == "ES256" and header["kid"]
    claims = _verified(api, token)
    assert set(claims) == {
        "iss", "aud", "sub", "client_id", "iat", "nbf", "exp", "jti", "scope"
    }  # fmt: skip
    assert claims["iss"] == "urn:aiguillage:hub" and claims["aud"] == "urn:aiguillage:api"
    assert claims["sub"] == claims["client_id"] == client_id
    assert claims["nbf"] == claims["iat"] and claims["exp"] - claims["iat"] == 600
    assert claims["scope"] == body["scope"]
    second = _token(api, {"grant_type": "client_credentials"}, _basic(client_id, secret))
    assert _verified(api, second.json()["access_token"])["jti"] != claims["jti"]


def test_secret_in_the_body_and_scope_intersection(api: OAuthApi) -> None:
    client_id, secret = _secret_client(api)
    creds = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}
    asked = _token(api, {**creds, "scope": f"{TIMETABLE} {DEMO}"})
    assert asked.status_code == 200 and asked.json()["scope"] == TIMETABLE
    assert _verified(api, asked.json()["access_token"])["scope"] == TIMETABLE
    assert _token(api, {**creds, "scope": ""}).json()["scope"] == f"{CORE} {TIMETABLE}"
    _refused(_token(api, {**creds, "scope": DEMO}), 400, "invalid_scope")
    _refused(_token(api, {**creds, "scope": "roster-full.readonly"}), 400, "invalid_scope")


def test_private_key_jwt(api: OAuthApi) -> None:
    key = _jose.generate_es256_jwk("vendor-2026")
    client, _ = create_client(
        api.store.engine, "Key", UAIS, [CORE], _jose.public_jwk(key), activity=ENT_ACTIVITY
    )
    base = {"grant_type": "client_credentials", "client_assertion_type": CLIENT_ASSERTION_TYPE}
    signed = assertion(key, client.client_id)
    ok = _token(api, {**base, "client_assertion": signed, "client_id": client.client_id})
    assert ok.status_code == 200, ok.text
    assert _verified(api, ok.json()["access_token"])["client_id"] == client.client_id

    _refused(_token(api, {**base, "client_assertion": signed}), 401, "invalid_client")  # replay
    for bad in (
        assertion(key, client.client_id, aud="https://other.example/oauth/token"),
        assertion(key, client.client_id, exp_in=-300),
        assertion(_jose.generate_es256_jwk("vendor-2026"), client.client_id),
    ):
        _refused(_token(api, {**base, "client_assertion": bad}), 401, "invalid_client")
    other_id = {"client_id": "ent-other", "client_assertion": assertion(key, client.client_id)}
    _refused(_token(api, {**base, **other_id}), 401, "invalid_client")
    wrong_type = {**base, "client_assertion_type": "urn:x", "client_assertion": signed}
    _refused(_token(api, wrong_type), 400, "invalid_request")


def test_invalid_client_is_a_401_with_a_basic_challenge(api: OAuthApi) -> None:
    client_id, secret = _secret_client(api)
    grant = {"grant_type": "client_credentials"}
    cases = [
        _token(api, grant, _basic(client_id, secret + "x")),
        _token(api, grant, _basic("ent-unknown", secret)),
        _token(api, grant, {"authorization": "Basic !!!"}),
        _token(api, grant, {"authorization": "Bearer abc"}),
        _token(api, {**grant, "client_id": "ent-unknown", "client_secret": secret}),
        _token(api, grant),
        _token(api, {**grant, "client_id": client_id}),
    ]
    for response in cases:
        body = _refused(response, 401, "invalid_client")
        assert body["error_description"] == "client authentication failed"
        assert response.headers["www-authenticate"].startswith("Basic realm=")


def test_a_client_id_with_a_control_character_is_an_invalid_client(api: OAuthApi) -> None:
    """No client id holds a control character (RFC 6749 A.1): one in HTTP Basic, in the
    body or in an assertion's ``sub`` is a failed authentication (PostgreSQL refuses NUL in
    text: it is never looked up), and so is an assertion whose ``jti`` holds one."""
    grant = {"grant_type": "client_credentials"}
    key = _jose.generate_es256_jwk("vendor-key")
    client, _ = create_client(
        api.store.engine, "Key", UAIS, [CORE], _jose.public_jwk(key), activity=ENT_ACTIVITY
    )
    by_assertion = {**grant, "client_assertion_type": CLIENT_ASSERTION_TYPE}
    cases = [
        _token(api, grant, _basic("ent-\x00", "secret")),
        _token(api, grant, _basic("ent-\n", "secret")),
        _token(api, {**grant, "client_id": "\x00", "client_secret": "x"}),
        _token(api, {**by_assertion, "client_assertion": assertion(key, "ent-\x00")}),
        _token(
            api, {**by_assertion, "client_assertion": assertion(key, client.client_id, jti="a\x00")}
        ),
    ]
    for response in cases:
        body = _refused(response, 401, "invalid_client")
        assert body["error_description"] == "client authentication failed"
        assert response.headers["www-authenticate"].startswith("Basic realm=")
    fine = assertion(key, client.client_id)
    assert _token(api, {**by_assertion, "client_assertion": fine}).status_code == 200


def test_a_revoked_client_is_refused_at_once(api: OAuthApi) -> None:
    client_id, secret = _secret_client(api)
    grant = {"grant_type": "client_credentials"}
    assert _token(api, grant, _basic(client_id, secret)).status_code == 200
    revoke_client(api.store.engine, client_id)
    _refused(_token(api, grant, _basic(client_id, secret)), 401, "invalid_client")


def test_a_client_whose_activity_left_the_register_gets_no_token(api: OAuthApi) -> None:
    """A contract names its processing activity when it is made; if the register no longer
    holds that activity for ENT clients (retired, or its fiche changed), no token is issued."""
    client_id, secret = _secret_client(api)
    grant = {"grant_type": "client_credentials"}
    assert _token(api, grant, _basic(client_id, secret)).status_code == 200
    with api.store.engine.begin() as connection:
        connection.execute(
            text("UPDATE api_client SET activity = 'portail-familles' WHERE client_id = :c"),
            {"c": client_id},
        )
    body = _refused(_token(api, grant, _basic(client_id, secret)), 400, "unauthorized_client")
    assert "portail-familles" in body["error_description"]


def test_malformed_requests(api: OAuthApi) -> None:
    client_id, secret = _secret_client(api)
    basic = _basic(client_id, secret)
    _refused(_token(api, {"grant_type": "password"}, basic), 400, "unsupported_grant_type")
    _refused(_token(api, {"grant_type": "authorization_code"}), 400, "unsupported_grant_type")
    _refused(_token(api, {}, basic), 400, "invalid_request")
    post = api.client.post
    cases = [
        post("/oauth/token", json={"grant_type": "client_credentials"}, headers=basic),
        post(
            "/oauth/token",
            content="grant_type=client_credentials&grant_type=client_credentials",
            headers={**FORM, **basic},
        ),
        post("/oauth/token?grant_type=client_credentials", content="", headers={**FORM, **basic}),
        post("/oauth/token", content="grant_type=%ff", headers={**FORM, **basic}),
        post("/oauth/token", content="a" * 20_000, headers={**FORM, **basic}),
        _token(
            api,
            {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret},
            basic,
        ),
        _token(api, {"grant_type": "client_credentials", "client_secret": secret}),
    ]
    for response in cases:
        _refused(response, 400, "invalid_request")


def test_production_without_a_key_answers_503(api: OAuthApi) -> None:
    settings = api.settings.model_copy(
        update={"environment": "production", "signing_key_file": None}
    )
    client_id, secret = _secret_client(api)
    for production in serve(api.store, settings):
        response = _token(
            production, {"grant_type": "client_credentials"}, _basic(client_id, secret)
        )
        _refused(response, 503, "temporarily_unavailable")
        assert production.client.get("/oauth/jwks.json").json() == {"keys": []}
    assert api.settings.signing_key_file is not None
    absent = api.settings.signing_key_file.with_name("absent-signing-key.json")
    missing = settings.model_copy(update={"signing_key_file": absent})
    with pytest.raises(SigningKeyUnavailable):
        signing_key(missing)  # production never creates a key


def test_development_creates_the_key_once_owner_only(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = settings.signing_key_file
    assert path is not None and not path.exists()
    first = signing_key(settings)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert first["kid"].startswith("hub-") and first["crv"] == "P-256"
    assert signing_key(settings) == first
    assert hub_jwks(settings) == {"keys": [_jose.public_jwk(first)]}

    monkeypatch.chdir(tmp_path)
    default = settings.model_copy(update={"signing_key_file": None, "environment": "development"})
    created = signing_key(default)
    assert (tmp_path / DEFAULT_SIGNING_KEY_FILE).exists() and created["kid"] != first["kid"]

    path.write_text('{"kty": "oct", "k": "c2VjcmV0"}')
    with pytest.raises(SigningKeyUnavailable, match="private EC JWK"):
        signing_key(settings)


def test_the_openapi_document_describes_the_oauth_endpoints(settings: Settings) -> None:
    app = create_app(settings)
    document = app.openapi()
    token = document["paths"]["/oauth/token"]["post"]
    assert token["operationId"] == "requestToken" and token["summary"] and token["description"]
    body = token["requestBody"]["content"]["application/x-www-form-urlencoded"]
    assert body["schema"]["properties"]["grant_type"]["enum"] == ["client_credentials"]
    assert set(body["examples"]) == {"client_secret_basic", "client_secret_post", "private_key_jwt"}
    assert set(token["responses"]) == {"200", "400", "401", "500", "503"}
    for status in ("400", "401", "503"):
        content = token["responses"][status]["content"]["application/json"]
        assert content["schema"]["$ref"].endswith("/OAuthError") and content["examples"]
    assert "WWW-Authenticate" in token["responses"]["401"]["headers"]
    ok = token["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    assert ok.endswith("/TokenResponse")
    jwks = document["paths"]["/oauth/jwks.json"]["get"]
    assert jwks["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/JsonWebKeySet"
    )
    schemas = document["components"]["schemas"]
    for name in ("TokenResponse", "OAuthError", "JsonWebKey", "JsonWebKeySet"):
        assert schemas[name]["examples"], name


def test_an_assertion_for_another_server_is_refused_whatever_the_host_header(
    api: OAuthApi,
) -> None:
    """The audiences an assertion may name are the hub's, never ones the request makes up: an
    assertion the client signed for another authorization server (its token endpoint at
    ``/oauth/token`` too) is refused even when the request's Host names that server."""
    key = _jose.generate_es256_jwk("vendor-2026")
    client, _ = create_client(
        api.store.engine, "Key", UAIS, [CORE], _jose.public_jwk(key), activity=ENT_ACTIVITY
    )
    base = {"grant_type": "client_credentials", "client_assertion_type": CLIENT_ASSERTION_TYPE}
    elsewhere = "http://as.other.example/oauth/token"
    replayed = _token(
        api,
        {**base, "client_assertion": assertion(key, client.client_id, aud=elsewhere)},
        {"host": "as.other.example"},
    )
    _refused(replayed, 401, "invalid_client")
    # The hub's own names still work, whatever the Host.
    for aud in (TOKEN_URL, api.settings.token_issuer_url):
        ok = _token(api, {**base, "client_assertion": assertion(key, client.client_id, aud=aud)})
        assert ok.status_code == 200, (aud, ok.text)
