"""The key file: what a rotation keeps and drops, old files, malformed files, first use by
several processes at once, and the ``registre keys`` command's errors."""

from __future__ import annotations

import datetime as dt
import multiprocessing
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from annuaire.cli import app
from annuaire.errors import ConfigurationError
from annuaire.registre.keys import generate_key_file, load_keys
from annuaire.settings import Settings

CREATED = dt.datetime(2026, 9, 1, 6, 0, tzinfo=dt.UTC)
ROTATED = dt.datetime(2026, 10, 1, 6, 0, tzinfo=dt.UTC)


def settings_for(path: Path) -> Settings:
    return Settings(database_url="sqlite:///unused.db", environment="test", registre_key_file=path)


def read(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = orjson.loads(path.read_bytes())
    return document


def test_a_rotation_puts_new_keys_first_and_drops_the_private_part_of_the_retired_signing_key(
    tmp_path: Path,
) -> None:
    path = tmp_path / "keys.json"
    generate_key_file(path, now=CREATED)
    before = read(path)
    generate_key_file(path, rotate=True, now=ROTATED)
    after = read(path)
    assert after["pseudonym_key"] == before["pseudonym_key"]
    assert after["chain_keys"][1:] == before["chain_keys"]
    assert after["chain_keys"][0]["created"] == "2026-10-01T06:00:00Z"
    current, retired = after["signing_keys"]
    assert "d" in current and current["created"] == "2026-10-01T06:00:00Z"
    assert retired == {k: v for k, v in before["signing_keys"][0].items() if k != "d"}
    keys = load_keys(settings_for(path))
    assert keys.chain_key_id == after["chain_keys"][0]["id"]
    assert keys.signing_key_id == current["kid"] and keys.signing_key is not None
    assert set(keys.verify_keys) == {current["kid"], retired["kid"]}
    assert keys.chain_retired_at == {before["chain_keys"][0]["id"]: ROTATED}
    assert keys.signing_retired_at == {retired["kid"]: ROTATED}


def test_a_key_file_without_creation_dates_loads_and_rotates(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    generate_key_file(path)
    document = read(path)
    for key in (*document["chain_keys"], *document["signing_keys"]):
        del key["created"]
    # A file of before the dates: a second signing key retired with its private part still in.
    generate_key_file(tmp_path / "other.json")
    document["signing_keys"].append(read(tmp_path / "other.json")["signing_keys"][0])
    path.write_bytes(orjson.dumps(document))
    keys = load_keys(settings_for(path))
    assert keys.chain_retired_at == {} and keys.signing_retired_at == {}
    generate_key_file(path, rotate=True, now=ROTATED)
    rotated = read(path)
    assert [("d" in jwk) for jwk in rotated["signing_keys"]] == [True, False, False]
    keys = load_keys(settings_for(path))
    assert keys.chain_retired_at == {document["chain_keys"][0]["id"]: ROTATED}
    assert set(keys.signing_retired_at) == {k["kid"] for k in document["signing_keys"]}


def _valid(tmp_path: Path) -> dict[str, Any]:
    generate_key_file(tmp_path / "valid.json")
    return read(tmp_path / "valid.json")


MALFORMED = {
    "signing key not an object": lambda d: d.update(signing_keys=["s-1"]),
    "chain key not an object": lambda d: d.update(chain_keys=[42]),
    "signing keys not a list": lambda d: d.update(signing_keys={"kid": "s-1"}),
    "no chain key": lambda d: d.update(chain_keys=[]),
    "created not a time": lambda d: d["chain_keys"][0].update(created="yesterday"),
    "created without a zone": lambda d: d["signing_keys"][0].update(created="2026-09-01T06:00"),
}


@pytest.mark.parametrize("problem", sorted(MALFORMED))
def test_a_malformed_key_file_is_a_configuration_error(tmp_path: Path, problem: str) -> None:
    document = _valid(tmp_path)
    MALFORMED[problem](document)
    path = tmp_path / "keys.json"
    path.write_bytes(orjson.dumps(document))
    with pytest.raises(ConfigurationError, match=f"registre key file {path}"):
        load_keys(settings_for(path))


def _chain_key_id(path: str) -> str:
    return load_keys(settings_for(Path(path))).chain_key_id


def test_processes_starting_together_create_one_key_file_and_all_use_it(tmp_path: Path) -> None:
    path = tmp_path / "fresh" / "keys.json"
    context = multiprocessing.get_context("spawn")  # fresh interpreters, as workers start
    with context.Pool(8) as pool:
        used = pool.map(_chain_key_id, [str(path)] * 16)
    assert set(used) == {_chain_key_id(str(path))}
    assert [p.name for p in path.parent.iterdir()] == ["keys.json"]  # no temporary file left


def test_creating_a_key_file_that_exists_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    generate_key_file(path)
    first = path.read_bytes()
    with pytest.raises(FileExistsError):
        generate_key_file(path)
    assert path.read_bytes() == first


def _keys_command(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["registre", "keys", *args])
    return result.exit_code, result.stderr


@pytest.mark.parametrize(
    "content", [b"{", b"[]", b'{"format": "aiguillage-registre-keys/1", "signing_keys": [1]}']
)
def test_rotating_a_file_that_is_not_a_key_file_exits_2_with_one_line(
    tmp_path: Path, content: bytes
) -> None:
    path = tmp_path / "keys.json"
    path.write_bytes(content)
    code, stderr = _keys_command(str(path), "--rotate")
    assert code == 2, stderr
    assert stderr.count("\n") == 1 and f"registre key file {path}" in stderr
    assert path.read_bytes() == content


def test_rotating_a_folder_exits_2_with_one_line(tmp_path: Path) -> None:
    code, stderr = _keys_command(str(tmp_path), "--rotate")
    assert code == 2 and stderr.count("\n") == 1 and str(tmp_path) in stderr, stderr


def test_the_keys_command_creates_then_rotates(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    assert _keys_command(str(path))[0] == 0
    assert _keys_command(str(path))[0] == 1  # exists already
    rotated = CliRunner().invoke(app, ["registre", "keys", str(path), "--rotate"])
    assert rotated.exit_code == 0, rotated.stderr
    # The processes still running hold the retired keys: the operator is told to restart them.
    assert "restart every hub process" in " ".join(rotated.stdout.split())
    assert len(read(path)["chain_keys"]) == 2
