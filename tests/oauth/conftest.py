"""Fixtures of the OAuth tests: a store with no clients, the API with the token endpoint, keys.

The shared ``store`` fixture empties the entity tables on PostgreSQL but not the client tables,
so ``clients_store`` does. Every key file lives under the test's tmp_path.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete

from annuaire.api import create_app
from annuaire.auth import _jose
from annuaire.importing import import_aaf
from annuaire.schema import ApiClient, ClientAssertionUse
from annuaire.settings import Settings
from connectors.sample import generate_academie
from tests.conftest import Store

TOKEN_URL = "http://testserver/oauth/token"


@pytest.fixture
def clients_store(store: Store) -> Store:
    with store.engine.begin() as connection:
        connection.execute(delete(ClientAssertionUse.__table__))  # type: ignore[attr-defined]
        connection.execute(delete(ApiClient.__table__))  # type: ignore[attr-defined]
    return store


@pytest.fixture
def settings(clients_store: Store, tmp_path: Path) -> Settings:
    return clients_store.settings.model_copy(
        update={
            "signing_key_file": tmp_path / "keys" / "signing-key.json",
            "dev_key_file": tmp_path / "keys" / "dev-key.json",
            "token_endpoint_url": TOKEN_URL,
        }
    )


@dataclass
class OAuthApi:
    client: TestClient
    store: Store
    settings: Settings


def serve(store: Store, settings: Settings) -> Iterator[OAuthApi]:
    app = create_app(settings, engine=store.engine)
    with TestClient(app) as client:
        yield OAuthApi(client, store, settings)


@pytest.fixture
def api(clients_store: Store, settings: Settings) -> Iterator[OAuthApi]:
    yield from serve(clients_store, settings)


def assertion(
    key: dict[str, Any],
    client_id: str,
    *,
    aud: str | list[str] = TOKEN_URL,
    exp_in: float | None = 60,
    jti: str | None = "fresh",
    **extra: Any,
) -> str:
    """A client assertion (RFC 7523) signed with ``key``; ``jti="fresh"`` draws a new one."""
    now = time.time()
    claims: dict[str, Any] = {"iss": client_id, "sub": client_id, "aud": aud, "iat": int(now)}
    if exp_in is not None:
        claims["exp"] = int(now + exp_in)
    if jti is not None:
        claims["jti"] = uuid.uuid4().hex if jti == "fresh" else jti
    claims.update(extra)
    return _jose.sign(claims, key, typ="JWT")


@pytest.fixture(scope="session")
def academie(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("oauth-academie") / "complet"
    generate_academie(out, pupils=200, seed=3, degree="both")
    return out


@pytest.fixture
def academie_store(clients_store: Store, academie: Path) -> Store:
    import_aaf(clients_store.engine, clients_store.settings, [academie])
    return clients_store
