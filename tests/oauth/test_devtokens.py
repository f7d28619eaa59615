"""``aiguillage dev-token`` and ``aiguillage clients``: token shapes per kind, and where they
are refused, against a small imported académie (both degrees) on both backends."""

from __future__ import annotations

import json
import re
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select, text
from typer.testing import CliRunner

from annuaire.auth import _jose
from annuaire.auth.clients import create_client, revoke_client
from annuaire.auth.devtokens import (
    DevTokenKind,
    dev_issuer_url,
    dev_issuers,
    dev_jwks_file,
    mint_dev_token,
    parse_subject,
)
from annuaire.auth.principal import principal_from_claims
from annuaire.cli import app
from annuaire.errors import BadInput, Refused
from annuaire.importing import import_aaf
from annuaire.schema import ExternalId
from annuaire.settings import Settings, get_settings
from connectors.sample import generate_academie
from tests.conftest import ENT_ACTIVITY, Store

FRE_DU_RNE = re.compile(r"^[0-9]{7}[A-Z]\$UAJ\$PU\$[A-Z]+\$[0-9]{7}[A-Z]\$T3\$LYC\$3000$")


def _dev_settings(store: Store, tmp_path: Path, **update: Any) -> Settings:
    return store.settings.model_copy(
        update={"dev_key_file": tmp_path / "dev" / "dev-key.json", **update}
    )


def _person(engine: Engine, where: str) -> str:
    """The id of the first person matching ``where`` (SQL on ``person p``), as a UUID string."""
    with engine.connect() as connection:
        value = connection.execute(
            text(f"SELECT p.id FROM person p WHERE {where} ORDER BY p.id")
        ).scalar()
    assert value is not None, where
    return str(uuid.UUID(str(value)))


def _join_key(engine: Engine, person_id: str) -> str:
    ids = ExternalId.__table__  # type: ignore[attr-defined]
    with engine.connect() as connection:
        return str(
            connection.execute(
                select(ids.c.value).where(
                    ids.c.entity_id == uuid.UUID(person_id),
                    ids.c.type == "aaf:ENTPersonJointure",
                )
            ).scalar_one()
        )


def _claims(settings: Settings, token: str) -> dict[str, Any]:
    header = _jose.read_header(token)
    assert header["typ"] == "at+jwt" and header["alg"] == "ES256"
    (key,) = json.loads(dev_jwks_file(settings).read_text())["keys"]
    assert key["kid"] == header["kid"] and "d" not in key
    claims = _jose.verify(token, key, "ES256")
    assert claims["aud"] == settings.api_audience
    assert claims["exp"] - claims["iat"] == 600 and claims["nbf"] == claims["iat"]
    assert claims["jti"] and claims["sub"]
    return claims


def test_dev_tokens_carry_the_claims_of_each_upstream(
    academie_store: Store, tmp_path: Path
) -> None:
    engine = academie_store.engine
    settings = _dev_settings(academie_store, tmp_path)
    in_1d = "p.structures = (SELECT '|' || uai || '|' FROM structure WHERE kind = 'ecole')"
    in_2d = "p.structures = (SELECT '|' || uai || '|' FROM structure WHERE kind = 'college')"
    pupil_2d = _person(
        engine, f"{in_2d} AND p.id IN (SELECT person_id FROM role WHERE role = 'pupil')"
    )
    guardian_1d = _person(engine, f"{in_1d} AND p.id IN (SELECT guardian_id FROM guardianship)")
    guardian_2d = _person(engine, f"{in_2d} AND p.id IN (SELECT guardian_id FROM guardianship)")
    head = _person(engine, "p.id IN (SELECT person_id FROM role WHERE role = 'head')")
    teacher = _person(
        engine,
        f"{in_2d} AND p.email IS NOT NULL AND p.id IN "
        "(SELECT person_id FROM role WHERE role = 'teacher' AND function_code = 'ENS')",
    )

    pupil = _claims(settings, mint_dev_token(engine, settings, DevTokenKind.PUPIL, pupil_2d))
    assert pupil["iss"] == "urn:aiguillage:dev:educonnect"
    assert pupil["aiguillage_profile"] == "educonnect"
    assert pupil["sub"] == pupil_2d and pupil["client_id"] == "dev-token"
    assert pupil["FrEduCtPersonAffiliation"] == "eleve2d"
    (ref,) = pupil["FrEduCtRefId"]
    assert ref.startswith("{AAF}099|") and ref.split("|")[2] == _join_key(engine, pupil_2d)
    assert re.fullmatch(r"[0-9a-f]{96}", pupil["FrEduCtId"])
    again = _claims(settings, mint_dev_token(engine, settings, DevTokenKind.PUPIL, pupil_2d))
    assert again["FrEduCtId"] == pupil["FrEduCtId"] and again["jti"] != pupil["jti"]

    resp_1d = _claims(
        settings, mint_dev_token(engine, settings, DevTokenKind.GUARDIAN, guardian_1d)
    )
    assert resp_1d["FrEduCtPersonAffiliation"] == "resp1d"
    resp_2d = _claims(
        settings, mint_dev_token(engine, settings, DevTokenKind.GUARDIAN, guardian_2d)
    )
    assert resp_2d["FrEduCtPersonAffiliation"] == "resp2d"
    assert all(v.startswith("{AAF}099|") for v in resp_2d["FrEduCtRefId"])

    staff = _claims(settings, mint_dev_token(engine, settings, DevTokenKind.STAFF, teacher))
    assert staff["iss"] == "urn:aiguillage:dev:guichet_agent"
    assert staff["aiguillage_profile"] == "guichet_agent"
    assert staff["email"].endswith("@ac-sandbox.invalid")
    assert staff["FrEduRne"] and all(FRE_DU_RNE.match(v) for v in staff["FrEduRne"])
    assert all("$ENS$" in v for v in staff["FrEduRne"]) and "FrEduFonctAdm" not in staff
    principal = _claims(settings, mint_dev_token(engine, settings, DevTokenKind.STAFF, head))
    assert principal["FrEduFonctAdm"] == "DIR" and any("$DIR$" in v for v in principal["FrEduRne"])

    client, _ = create_client(
        engine, "ENT", ["0289029M"], ["roster-core.readonly"], activity=ENT_ACTIVITY
    )
    machine = _claims(
        settings, mint_dev_token(engine, settings, DevTokenKind.CLIENT, client.client_id)
    )
    assert machine["iss"] == "urn:aiguillage:dev:client_credentials"
    assert machine["sub"] == machine["client_id"] == client.client_id
    assert machine["scope"] == "roster-core.readonly"
    assert "FrEduCtRefId" not in machine and "email" not in machine

    key_file = settings.dev_key_file
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert dev_jwks_file(settings) == key_file.with_name("dev-key.jwks.json")


def test_a_pupil_of_a_per_school_delivery_gets_their_academie_in_their_ref_id(
    clients_store: Store, tmp_path: Path
) -> None:
    """A per-school scope is named by its UAI (``aaf:0691670R:2d``): the académie EduConnect
    names the pupil with is the one the import runs recorded, which the token's principal
    accepts (a numeric académie) and reads the pupil's join key from."""
    engine = clients_store.engine
    folder = tmp_path / "0691670R"
    generate_academie(folder, pupils=20, seed=5, academie="0691670R", academie_code="10")
    (run,) = import_aaf(engine, clients_store.settings, [folder])
    assert run.scope.key == "aaf:0691670R:2d"
    settings = _dev_settings(clients_store, tmp_path)
    pupil = _person(engine, "p.id IN (SELECT person_id FROM role WHERE role = 'pupil')")
    claims = _claims(settings, mint_dev_token(engine, settings, DevTokenKind.PUPIL, pupil))
    assert claims["FrEduCtRefId"] == [f"{{AAF}}010|dev|{_join_key(engine, pupil)}"]
    principal = principal_from_claims("educonnect", "dev", claims)
    assert principal.join_keys == (("010", _join_key(engine, pupil)),)


def test_dev_tokens_refuse_what_the_issuer_could_not_know(
    academie_store: Store, tmp_path: Path
) -> None:
    engine = academie_store.engine
    settings = _dev_settings(academie_store, tmp_path)
    pupil = _person(engine, "p.id IN (SELECT person_id FROM role WHERE role = 'pupil')")
    no_mail = _person(
        engine, "p.email IS NULL AND p.id IN (SELECT person_id FROM role WHERE role = 'teacher')"
    )
    unknown = "00000000-0000-0000-0000-000000000000"
    client, _ = create_client(
        engine, "ENT", ["0289029M"], ["roster-core.readonly"], activity=ENT_ACTIVITY
    )
    revoke_client(engine, client.client_id)
    cases = [
        (DevTokenKind.GUARDIAN, pupil, "not a guardian"),
        (DevTokenKind.STAFF, pupil, "no staff, teacher or head role"),
        (DevTokenKind.STAFF, no_mail, "no e-mail"),
        (DevTokenKind.PUPIL, unknown, "no active person"),
        (DevTokenKind.PUPIL, "not-a-uuid", "not a hub person id"),
        (DevTokenKind.CLIENT, client.client_id, "no active API client"),
    ]
    for kind, subject, message in cases:
        with pytest.raises(BadInput, match=message):
            mint_dev_token(engine, settings, kind, subject)
    with pytest.raises(BadInput, match="lifetime"):
        mint_dev_token(engine, settings, DevTokenKind.PUPIL, pupil, lifetime_s=0)
    production = settings.model_copy(update={"environment": "production"})
    with pytest.raises(Refused, match="never minted in production"):
        mint_dev_token(engine, production, DevTokenKind.PUPIL, pupil)


def test_subjects_parse_by_kind() -> None:
    assert parse_subject("staff:abc") == (DevTokenKind.STAFF, "abc")
    assert parse_subject("client:ent-x:y") == (DevTokenKind.CLIENT, "ent-x:y")
    for bad in ("teacher:abc", "pupil:", "pupil", ""):
        with pytest.raises(BadInput, match="guardian\\|pupil\\|staff\\|client"):
            parse_subject(bad)


def test_dev_issuers_exist_only_in_development_with_dev_tokens(tmp_path: Path) -> None:
    base = Settings(
        database_url="sqlite://", dev_key_file=tmp_path / "dev-key.json", dev_tokens=True
    )
    issuers = dev_issuers(base.model_copy(update={"environment": "development"}))
    assert [i.profile for i in issuers] == ["educonnect", "guichet_agent", "client_credentials"]
    assert [i.issuer for i in issuers] == [
        dev_issuer_url(DevTokenKind.GUARDIAN),
        dev_issuer_url(DevTokenKind.STAFF),
        dev_issuer_url(DevTokenKind.CLIENT),
    ]
    assert len({i.name for i in issuers}) == 3
    for issuer in issuers:
        assert issuer.audiences == [base.api_audience] and issuer.algorithms == ["ES256"]
        assert issuer.jwks_file is not None and issuer.jwks_file.is_absolute()
        assert json.loads(issuer.jwks_file.read_text())["keys"][0]["kty"] == "EC"
    assert dev_issuers(base.model_copy(update={"environment": "production"})) == []
    assert dev_issuers(base.model_copy(update={"environment": "test"})) == []
    assert (
        dev_issuers(base.model_copy(update={"environment": "development", "dev_tokens": False}))
        == []
    )


@pytest.fixture
def cli_env(
    academie_store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Store]:
    monkeypatch.setenv("AIGUILLAGE_DATABASE_URL", academie_store.settings.database_url)
    monkeypatch.setenv("AIGUILLAGE_ENVIRONMENT", "development")
    monkeypatch.setenv("AIGUILLAGE_DEV_TOKENS", "true")
    monkeypatch.setenv("AIGUILLAGE_DEV_KEY_FILE", str(tmp_path / "dev-key.json"))
    get_settings.cache_clear()
    yield academie_store
    get_settings.cache_clear()


def test_cli_clients_and_dev_token(
    cli_env: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = CliRunner()
    add = runner.invoke(
        app,
        ["clients", "add", "--name", "ENT Sandbox", "--structure", "0289029M",
         "--structure", "0898319J", "--scope", "roster-core.readonly",
         "--activity", ENT_ACTIVITY.id],
    )  # fmt: skip
    assert add.exit_code == 0, add.output
    client_id = re.search(r"client_id: (\S+)", add.stdout)
    secret = re.search(r"client_secret: (\S+)", add.stdout)
    assert client_id and secret
    key_file = tmp_path / "vendor.jwk.json"
    key_file.write_text(json.dumps(_jose.public_jwk(_jose.generate_es256_jwk("vendor-1"))))
    keyed = runner.invoke(
        app, ["clients", "add", "--name", "Keyed", "--structure", "0289029M",
              "--scope", "timetable.readonly", "--public-key", str(key_file),
              "--activity", ENT_ACTIVITY.id],
    )  # fmt: skip
    assert keyed.exit_code == 0 and "client_secret" not in keyed.stdout
    assert "vendor-1" in keyed.stdout
    bad = runner.invoke(
        app, ["clients", "add", "--name", "X", "--structure", "nope", "--scope", "x",
              "--activity", ENT_ACTIVITY.id],
    )  # fmt: skip
    assert bad.exit_code == 2 and "not a UAI" in bad.output
    elsewhere = runner.invoke(
        app, ["clients", "add", "--name", "X", "--structure", "0289029M",
              "--scope", "roster-core.readonly", "--activity", ENT_ACTIVITY.id,
              "--issuer", "nowhere", "--client-id", "vendor-1"],
    )  # fmt: skip
    assert elsewhere.exit_code == 2 and "no configured issuer 'nowhere'" in elsewhere.output
    # A contract runs under an activity of the register that covers ENT clients.
    for activity, expected in [
        ("nulle-part", "no activity 'nulle-part'"),
        ("portail-familles", "does not claim the flow 'api-client'"),
    ]:
        refused = runner.invoke(
            app, ["clients", "add", "--name", "X", "--structure", "0289029M",
                  "--scope", "roster-core.readonly", "--activity", activity],
        )  # fmt: skip
        assert refused.exit_code != 0 and expected in refused.output, refused.output

    listed = runner.invoke(app, ["clients", "list"], env={"COLUMNS": "250"})
    assert listed.exit_code == 0 and client_id[1] in listed.stdout
    assert secret[1] not in listed.stdout and "private_key_jwt" in listed.stdout

    token = runner.invoke(app, ["dev-token", "--as", f"client:{client_id[1]}", "--lifetime", "60"])
    assert token.exit_code == 0, token.output
    claims = _jose.read_payload(token.stdout.strip().splitlines()[0])
    assert claims["client_id"] == client_id[1] and claims["exp"] - claims["iat"] == 60

    revoked = runner.invoke(app, ["clients", "revoke", client_id[1]])
    assert revoked.exit_code == 0 and "revoked" in revoked.stdout
    refused = runner.invoke(app, ["dev-token", "--as", f"client:{client_id[1]}"])
    assert refused.exit_code == 2 and "no active API client" in refused.output
    assert runner.invoke(app, ["clients", "revoke", "ent-nobody"]).exit_code == 2

    monkeypatch.setenv("AIGUILLAGE_ENVIRONMENT", "production")
    get_settings.cache_clear()
    production = runner.invoke(app, ["dev-token", "--as", "pupil:x"])
    assert production.exit_code == 1 and "never minted in production" in production.output
