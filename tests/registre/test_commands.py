"""``aiguillage registre export``, ``person`` and ``purge`` run against a real store, on both
backends: what they refuse, what they log, and what a concurrent writer does to them."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import Connection, func, select
from typer.testing import CliRunner, Result

from annuaire.cli import app
from annuaire.encoding import b64url_encode
from annuaire.registre import person as person_module
from annuaire.registre import verify as verify_module
from annuaire.registre.flowlog import ENTRY, FlowLog
from annuaire.registre.runtime import open_registre
from annuaire.settings import get_settings
from annuaire.store import make_engine
from annuaire.store.engine import write_transaction
from tests.conftest import Store

from .flowlog_support import import_record, reset_log

BASE = dt.datetime(2026, 3, 1, 8, 0, tzinfo=dt.UTC)


@pytest.fixture
def command(store: Store, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Run ``aiguillage registre ...`` against ``store``."""
    monkeypatch.setenv("AIGUILLAGE_DATABASE_URL", store.settings.database_url)
    get_settings.cache_clear()

    def run(*args: str) -> Result:
        return CliRunner().invoke(app, ["registre", *args])

    yield run
    get_settings.cache_clear()


def write_log(store: Store, count: int, *, every: int = 3) -> FlowLog:
    registre = open_registre(store.settings, store.engine)
    reset_log(store.engine, BASE)
    log = FlowLog(registre.keys, registre.log.versions, checkpoint_every=every)
    for n in range(count):
        with write_transaction(store.engine) as connection:
            log.append(connection, import_record(n), now=BASE + dt.timedelta(seconds=n))
    return log


def log_accesses(store: Store) -> int:
    with store.engine.connect() as connection:
        query = select(func.count()).where(ENTRY.c.operation == "log_access")
        return int(connection.execute(query).scalar_one())


def test_export_verify_is_no_false_alarm_while_requests_append(
    store: Store, command: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = write_log(store, 6)
    read_entries = verify_module._entries

    def appended_meanwhile(connection: Connection) -> Iterator[dict[str, Any]]:
        for n in range(3):  # API requests' entries commit while the export reads the log
            with write_transaction(store.engine) as other:
                log.append(other, import_record(10 + n), now=BASE + dt.timedelta(minutes=1))
        return read_entries(connection)

    monkeypatch.setattr(verify_module, "_entries", appended_meanwhile)
    exported = command("export", "--verify")
    assert exported.exit_code == 0, exported.output
    summary = orjson.loads(exported.stdout)["flow_log"]
    assert summary["verified"] is True, summary["verification_message"]
    assert summary["entries"] == 6
    assert log_accesses(store) == 1  # its own entry, after the three appended meanwhile


def test_a_person_report_holds_no_writer_back_while_it_reads(
    store: Store, command: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``registre person`` reads the log as of one instant and takes the write lock for its
    own access entry only: an import or a request that commits while it reads is not made to
    wait (on SQLite, a writer would otherwise queue behind the whole read)."""
    log = write_log(store, 2)
    person = uuid.uuid4()
    with write_transaction(store.engine) as connection:
        log.append(
            connection,
            dataclasses.replace(import_record(5), subjects=[person]),
            now=BASE + dt.timedelta(minutes=5),
        )
    # A writer that gives up after 2 s instead of the default minute.
    impatient = make_engine(store.settings.model_copy(update={"sqlite_busy_timeout_s": 2.0}))
    summarised = person_module._by_recipient

    def committed_meanwhile(flows: Any) -> Any:
        with write_transaction(impatient) as other:
            log.append(other, import_record(20), now=BASE + dt.timedelta(minutes=10))
        return summarised(flows)

    monkeypatch.setattr(person_module, "_by_recipient", committed_meanwhile)
    try:
        reported = command("person", str(person), "--format", "json")
    finally:
        impatient.dispose()
    assert reported.exit_code == 0, reported.output
    report = orjson.loads(reported.stdout)
    assert [f["occurred_at"][:16] for f in report["flows"]] == ["2026-03-01T08:05"]
    with store.engine.connect() as connection:
        entries = connection.execute(
            select(ENTRY.c.target, ENTRY.c.operation).order_by(ENTRY.c.seq)
        )
        assert [tuple(e) for e in entries][-2:] == [
            ("import aaf 20", "collect"),  # committed while the report was read
            ("registre person", "log_access"),
        ]


def test_an_export_writes_its_file_and_logs_it(store: Store, command: Any, tmp_path: Path) -> None:
    write_log(store, 2)
    out = tmp_path / "out"
    out.mkdir()
    for format, output in (("json", out / "r.json"), ("csv", out / "csv")):
        exported = command("export", "--format", format, "--output", str(output))
        assert exported.exit_code == 0, exported.output
    assert orjson.loads((out / "r.json").read_bytes())["format"] == "aiguillage-registre/1"
    assert (out / "csv" / "organisation.csv").exists()
    assert sorted(p.name for p in out.iterdir()) == ["csv", "r.json"]  # nothing left aside
    assert not [p for p in (out / "csv").iterdir() if p.name.startswith(".")]
    assert log_accesses(store) == 2


def _unwritable(tmp_path: Path) -> dict[str, tuple[str, Path]]:
    (tmp_path / "a-file").write_text("kept")
    (tmp_path / "a-folder").mkdir()
    return {
        "json into a missing folder": ("json", tmp_path / "missing" / "r.json"),
        "html onto a folder": ("html", tmp_path / "a-folder"),
        "csv onto a file": ("csv", tmp_path / "a-file"),
        "csv under a file": ("csv", tmp_path / "a-file" / "csv"),
    }


@pytest.mark.parametrize(
    "case",
    ["json into a missing folder", "html onto a folder", "csv onto a file", "csv under a file"],
)
def test_an_export_that_cannot_be_written_exits_2_with_one_line_and_logs_nothing(
    store: Store, command: Any, tmp_path: Path, case: str
) -> None:
    write_log(store, 2)
    format, output = _unwritable(tmp_path)[case]
    exported = command("export", "--format", format, "--output", str(output))
    assert exported.exit_code == 2, exported.output
    assert exported.stderr.count("\n") == 1 and str(output) in exported.stderr, exported.stderr
    assert log_accesses(store) == 0
    assert (tmp_path / "a-file").read_text() == "kept"
    assert list((tmp_path / "a-folder").iterdir()) == []


def test_a_purge_sooner_than_the_declared_retention_is_refused(store: Store, command: Any) -> None:
    write_log(store, 4)
    declared = open_registre(store.settings, store.engine).config.flow_log.retention_months
    assert declared == 12
    refused = command("purge", "--months", "6")
    assert refused.exit_code == 2, refused.output
    assert refused.stderr.count("\n") == 1
    assert "--months 6" in refused.stderr and "12 months" in refused.stderr
    with store.engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(ENTRY)).scalar_one() == 4
    assert command("purge", "--months", "5").exit_code == 2  # below the bounds, as before
    done = command("purge", "--months", "12")
    assert done.exit_code == 0, done.output
    assert "retention 12 months" in done.stdout


def test_a_third_party_verifies_the_last_checkpoint_of_an_export_with_its_public_key(
    store: Store, command: Any, tmp_path: Path
) -> None:
    """The JSON register carries the last signed checkpoint: what the signature covers, the
    signature and the public key. A third party who holds the hub's public key (an auditor, the
    DPO keeping each export off the database host) checks it with an Ed25519 library and nothing
    of the hub: the log was sealed up to that entry with that hash at that time."""
    import base64

    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    def unpadded(text: str) -> bytes:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))

    write_log(store, 7, every=3)
    out = tmp_path / "registre.json"
    assert command("export", "--output", str(out)).exit_code == 0
    flow_log = orjson.loads(out.read_bytes())["flow_log"]
    sealed = flow_log["last_checkpoint"]
    public = sealed["public_key"]
    assert (public["kty"], public["crv"]) == ("OKP", "Ed25519") and "d" not in public
    key = Ed25519PublicKey.from_public_bytes(unpadded(public["x"]))
    key.verify(unpadded(sealed["signature"]), sealed["message"].encode())
    message = orjson.loads(sealed["message"])
    assert message["key_id"] == public["kid"]
    assert message["last_seq"] == flow_log["last_checkpoint_seq"] == 6
    with store.engine.connect() as connection:
        sixth = connection.execute(select(ENTRY.c.entry_hash).where(ENTRY.c.seq == 6)).scalar()
    assert message["head_hash"] == sixth
    forged = sealed["message"].replace('"last_seq":6', '"last_seq":7')
    with pytest.raises(InvalidSignature):
        key.verify(unpadded(sealed["signature"]), forged.encode())


def test_the_public_keys_printed_check_the_exports_checkpoint_and_sign_nothing(
    store: Store, command: Any, tmp_path: Path
) -> None:
    """``registre public-keys`` prints what a third party is handed: the signing keys' public
    parts, whose current one checks the checkpoint of an export; no private part, no chain or
    pseudonym key."""
    import base64

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    def unpadded(text: str) -> bytes:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))

    write_log(store, 4, every=3)
    out = tmp_path / "registre.json"
    assert command("export", "--output", str(out)).exit_code == 0
    sealed = orjson.loads(out.read_bytes())["flow_log"]["last_checkpoint"]
    printed = command("public-keys")
    assert printed.exit_code == 0, printed.output
    keys = orjson.loads(printed.stdout)["keys"]
    assert all(set(key) == {"kty", "crv", "kid", "x"} for key in keys)
    (signer,) = [key for key in keys if key["kid"] == sealed["public_key"]["kid"]]
    assert signer == sealed["public_key"]
    public = Ed25519PublicKey.from_public_bytes(unpadded(signer["x"]))
    public.verify(unpadded(sealed["signature"]), sealed["message"].encode())
    registre = open_registre(store.settings, store.engine)
    secrets = [*registre.keys.chain_keys.values(), registre.keys.pseudonym_key]
    assert registre.keys.signing_key is not None
    secrets.append(registre.keys.signing_key.private_bytes_raw())
    assert not any(b64url_encode(secret) in printed.stdout for secret in secrets)


def test_an_export_before_any_checkpoint_names_none(store: Store, command: Any) -> None:
    write_log(store, 2, every=3)
    answer = command("export")
    assert answer.exit_code == 0
    assert orjson.loads(answer.stdout)["flow_log"]["last_checkpoint"] is None


def test_every_client_contract_is_a_recipient_of_the_register_before_it_reads_anything(
    store: Store, command: Any, tmp_path: Path
) -> None:
    """Art. 30(1)(d): the fiche lists the ENT clients under contract — what they may read
    (structures, scopes, the data categories these open) — from the day the contract is made,
    not from their first read; a revoked one stays, dated."""
    from annuaire.auth.clients import create_client, revoke_client
    from tests.conftest import ENT_ACTIVITY

    write_log(store, 1)
    core, _ = create_client(
        store.engine, "ENT Lycées", ["0990001A"], ["roster-core.readonly"], activity=ENT_ACTIVITY
    )
    full, _ = create_client(
        store.engine,
        "ENT Collèges",
        ["0990002B", "0990003C"],
        ["roster-core.readonly", "roster-demographics.readonly"],
        activity=ENT_ACTIVITY,
    )
    revoke_client(store.engine, full.client_id)
    exported = command("export")
    assert exported.exit_code == 0, exported.output
    (sheet,) = [
        a for a in orjson.loads(exported.stdout)["activities"] if a["id"] == ENT_ACTIVITY.id
    ]
    assert sheet["observed_flows"] == []  # neither has read anything
    contracts = {c["client_id"]: c for c in sheet["client_contracts"]}
    assert set(contracts) == {core.client_id, full.client_id}
    assert contracts[core.client_id] | {"created_at": None} == {
        "client_id": core.client_id,
        "name": "ENT Lycées",
        "issuer": None,
        "structures": ["0990001A"],
        "scopes": ["roster-core.readonly"],
        "data_categories": [
            "identifiers",
            "identity.name",
            "professional",
            "relations",
            "schooling",
        ],
        "created_at": None,
        "revoked_at": None,
    }
    assert contracts[full.client_id]["structures"] == ["0990002B", "0990003C"]
    assert {"contact", "identity.birth_date"} <= set(contracts[full.client_id]["data_categories"])
    assert contracts[full.client_id]["revoked_at"] is not None
    others = [a for a in orjson.loads(exported.stdout)["activities"] if a["id"] != ENT_ACTIVITY.id]
    assert all(a["client_contracts"] == [] for a in others)
    html = tmp_path / "registre.html"
    assert command("export", "--format", "html", "--output", str(html)).exit_code == 0
    page = html.read_text(encoding="utf-8")
    assert "ENT Lycées" in page and core.client_id in page and "roster-core.readonly" in page
    csv_dir = tmp_path / "csv"
    assert command("export", "--format", "csv", "--output", str(csv_dir)).exit_code == 0
    fiche = (csv_dir / f"{ENT_ACTIVITY.id}.csv").read_text(encoding="utf-8-sig")
    assert "ENT Collèges" in fiche and "révoqué le" in fiche


def test_the_change_feed_read_through_the_cli_is_a_logged_consultation(
    store: Store, command: Any, tmp_path: Path
) -> None:
    """``aiguillage changes`` prints the hub ids of the persons a page names to the operator:
    a consultation, one flow entry per invocation (the operator's CLI as actor, the persons
    printed as subjects), committed before the page is printed."""
    from annuaire.importing import import_aaf
    from annuaire.registre.runtime import open_registre
    from connectors.sample import generate_academie

    folder = tmp_path / "academie"
    generate_academie(folder, pupils=10, seed=3)
    import_aaf(store.engine, store.settings, [folder])
    with store.engine.connect() as connection:
        before = int(connection.execute(select(func.max(ENTRY.c.seq))).scalar_one())
    printed = CliRunner().invoke(app, ["changes", "--after", "0", "--limit", "500"])
    assert printed.exit_code == 0, printed.output
    lines = [orjson.loads(line) for line in printed.stdout.splitlines()]
    persons = {uuid.UUID(e["entity_id"]) for e in lines if e["entity_type"] == "person"}
    assert persons
    registre = open_registre(store.settings, store.engine)
    with store.engine.connect() as connection:
        (entry,) = connection.execute(
            select(ENTRY.c.seq, ENTRY.c.actor_kind, ENTRY.c.actor, ENTRY.c.operation).where(
                ENTRY.c.seq > before
            )
        ).all()
        report = registre.person_report(connection, next(iter(persons)))
    assert (entry.actor_kind, entry.actor, entry.operation) == (
        "operator",
        "aiguillage changes",
        "read",
    )
    assert entry.seq in {f.seq for f in report.flows}
    # A page of structures only names no one: nothing to log. One naming a person: one entry.
    assert lines[0]["entity_type"] == "structure"
    assert CliRunner().invoke(app, ["changes", "--limit", "1"]).exit_code == 0
    seq = next(e["seq"] for e in lines if e["entity_type"] == "person")
    assert (
        CliRunner().invoke(app, ["changes", "--after", str(seq - 1), "--limit", "1"]).exit_code == 0
    )
    with store.engine.connect() as connection:
        assert connection.execute(select(func.count()).where(ENTRY.c.seq > before)).scalar() == 2


def test_a_purge_says_what_its_figures_count(store: Store, command: Any) -> None:
    """``registre purge`` prints the entries it deleted and how many times they named a person
    (each entry counts its persons; one named by two entries counts twice): it printed that
    figure as "subject rows", which are neither rows of the log nor distinct persons."""
    registre = open_registre(store.settings, store.engine)
    old = dt.datetime.now(dt.UTC) - dt.timedelta(days=500)  # past any retention allowed
    reset_log(store.engine, old)
    log = FlowLog(registre.keys, registre.log.versions, checkpoint_every=2)
    someone, other = uuid.uuid4(), uuid.uuid4()
    for n, subjects in enumerate([[someone, other], [someone]]):
        with write_transaction(store.engine) as connection:
            record = dataclasses.replace(import_record(n), subjects=subjects)
            log.append(connection, record, now=old + dt.timedelta(seconds=n))
    done = command("purge", "--months", "12")
    assert done.exit_code == 0, done.output
    printed = " ".join(done.stdout.split())
    assert "2 entries purged, naming a person 3 times in all" in printed, printed
    assert "subject rows" not in printed
