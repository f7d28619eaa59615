"""The answer to an access request (art. 15(1)(c)): who received a person's data."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from annuaire.cli import app
from annuaire.errors import BadInput
from annuaire.registre.flowlog import FlowRecord
from annuaire.registre.person import person_report, resolve_person
from annuaire.registre.runtime import Registre, open_registre
from annuaire.registre.vocabulary import DataCategory, FlowKind, Operation, RecipientKind
from annuaire.schema import EntityKind
from annuaire.settings import get_settings
from annuaire.store.engine import write_transaction
from annuaire.sync import Scope, apply_run, hub_id, purge
from tests.annuaire import toy
from tests.conftest import Store


@pytest.fixture
def registre(store: Store) -> Registre:
    return open_registre(store.settings, store.engine)


@pytest.fixture
def command(store: Store, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Run ``aiguillage registre ...`` against ``store``."""
    monkeypatch.setenv("AIGUILLAGE_DATABASE_URL", store.settings.database_url)
    get_settings.cache_clear()
    yield lambda *args: CliRunner().invoke(app, ["registre", *args])
    get_settings.cache_clear()


def _read_by(
    registre: Registre, kind: RecipientKind, reader: uuid.UUID, pupil: uuid.UUID
) -> FlowRecord:
    """A read of ``pupil`` by a person, as the API journals it: the actor is the reader's
    pseudonym, the client id the identity broker's application that carried the token."""
    flow = FlowKind.API_EDUCONNECT if kind is RecipientKind.GUARDIAN else FlowKind.API_GUICHET_AGENT
    return FlowRecord(
        flow=flow,
        operation=Operation.READ,
        activity=registre.activity_id(flow),
        actor_kind=kind,
        actor=registre.keys.pseudonym(reader),
        client_id="portail-ent",
        target="GET /v1/persons",
        categories={DataCategory.IDENTITY_NAME},
        subjects=[pupil],
    )


def test_each_person_who_read_is_a_recipient_of_their_own(store: Store, registre: Registre) -> None:
    """Two guardians and a teacher read a pupil through one broker application: the report
    names each reader by pseudonym, never the application's client id (nor a client's name
    that happens to match it), so that three readers are not told as one."""
    pupil, mother, father, teacher = (uuid.uuid4() for _ in range(4))
    records = [
        _read_by(registre, RecipientKind.GUARDIAN, mother, pupil),
        _read_by(registre, RecipientKind.GUARDIAN, father, pupil),
        _read_by(registre, RecipientKind.GUARDIAN, mother, pupil),
        _read_by(registre, RecipientKind.STAFF, teacher, pupil),
    ]
    with write_transaction(store.engine) as connection:
        registre.log.append_many(connection, records)
    with store.engine.connect() as connection:
        report = person_report(
            connection,
            registre.keys,
            pupil,
            retention_months=12,
            client_names={"portail-ent": "Éditeur ENT Exemple"},
        )
    pseudonym = registre.keys.pseudonym
    assert [(f.recipient_kind, f.recipient, f.recipient_name) for f in report.flows] == [
        (RecipientKind.GUARDIAN, pseudonym(mother), None),
        (RecipientKind.GUARDIAN, pseudonym(father), None),
        (RecipientKind.GUARDIAN, pseudonym(mother), None),
        (RecipientKind.STAFF, pseudonym(teacher), None),
    ]
    assert [(r.recipient, r.flows) for r in report.recipients] == [
        (pseudonym(mother), 2),
        (pseudonym(father), 1),
        (pseudonym(teacher), 1),
    ]


def test_a_person_purged_from_the_store_is_found_by_their_aaf_join_key(
    store: Store, registre: Registre, command: Any
) -> None:
    """A pupil leaves, is purged from the store after the delay, and asks within the log's
    retention who received their data: the DPO names them by the join key the académie gives
    (`aaf:ENTPersonJointure:…`), and the report holds the imports that collected their data,
    the one that saw them leave and the purge that deleted them."""
    scope = Scope("aaf", academie="077", degree="2d")

    def run(items: Any) -> None:
        apply_run(store.engine, scope, items, mode="complet", settings=store.settings)

    run(toy.academie(range(10)))
    run(toy.academie(n for n in range(10) if n != 5))
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=91)
    assert purge(store.engine, store.settings, now=later)["person"] == 2
    left = hub_id(scope.key, EntityKind.PERSON, "P5")
    answer = command("person", "aaf:ENTPersonJointure:P5", "--format", "json")
    assert answer.exit_code == 0, answer.output
    report = orjson.loads(answer.stdout)
    assert report["person_id"] == str(left)
    assert [(f["flow"], f["operation"], f["recipient"]) for f in report["flows"]] == [
        ("import", "collect", "import aaf"),
        ("import", "collect", "import aaf"),
        ("import", "delete", "purge"),
    ]
    with store.engine.connect() as connection:
        with pytest.raises(BadInput, match="no person"):  # nothing of theirs in the log
            resolve_person(connection, "aaf:ENTPersonJointure:P99", registre.keys)
        with pytest.raises(BadInput, match="no person"):  # an INE cannot be traced back
            resolve_person(connection, "ine:0000000005X", registre.keys)


def test_a_join_key_of_two_scopes_names_both_hub_ids(store: Store, registre: Registre) -> None:
    """A teacher of two schools delivered one export per school is one person per scope: once
    both are purged, the join key is ambiguous and the answer lists the hub ids to ask for."""
    scopes = [Scope("aaf", uai=uai, degree="2d") for uai in ("0770001A", "0770002B")]
    for scope in scopes:
        apply_run(
            store.engine, scope, toy.academie(range(3)), mode="complet", settings=store.settings
        )
        apply_run(
            store.engine,
            scope,
            toy.academie([]),
            mode="complet",
            settings=store.settings,
            allow_mass_removal=True,
        )
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=91)
    purge(store.engine, store.settings, now=later)
    ids = sorted(str(hub_id(s.key, EntityKind.PERSON, "P1")) for s in scopes)
    with store.engine.connect() as connection, pytest.raises(BadInput) as refused:
        resolve_person(connection, "aaf:ENTPersonJointure:P1", registre.keys)
    assert "2 persons" in str(refused.value)
    assert all(i in str(refused.value) for i in ids)


def test_the_report_says_from_when_the_log_holds_flows(store: Store, registre: Registre) -> None:
    """The answer covers what the log holds, which is not the declared retention: a log not
    purged yet goes back further, a young one less far. The report gives the time of the
    oldest entry kept, whoever it concerns (a person with no flow is answered since then)."""
    pupil, guardian = uuid.uuid4(), uuid.uuid4()
    now = dt.datetime.now(dt.UTC)
    oldest = now - dt.timedelta(days=430)
    with write_transaction(store.engine) as connection:
        registre.log.append(
            connection,
            _read_by(registre, RecipientKind.GUARDIAN, guardian, uuid.uuid4()),
            now=oldest,
        )
        registre.log.append(
            connection, _read_by(registre, RecipientKind.GUARDIAN, guardian, pupil), now=now
        )
    with store.engine.connect() as connection:
        report = person_report(
            connection, registre.keys, pupil, retention_months=12, client_names={}
        )
        nobody = person_report(
            connection, registre.keys, uuid.uuid4(), retention_months=12, client_names={}
        )
    assert report.log_since == nobody.log_since == oldest
    assert len(report.flows) == 1 and nobody.flows == []


def test_a_person_is_reported_the_data_categories_that_concern_them_not_those_of_others(
    store: Store, registre: Registre, tmp_path: Path
) -> None:
    """An import's entry names every person it wrote and the categories of all of them: the
    staff's functions are professional data, but a guardian's report must not say that the
    import collected professional data about them, nor a teacher's that it collected their
    relations. Each person's flows keep the categories that concern them; a person the store
    no longer holds keeps the entry's (what they were is gone with them)."""
    from sqlalchemy import text as sql

    from annuaire.importing import import_aaf
    from connectors.sample import generate_academie

    folder = tmp_path / "academie"
    generate_academie(folder, pupils=30, seed=5)
    import_aaf(store.engine, store.settings, [folder])
    with store.engine.connect() as connection:
        guardian, teacher, pupil = (
            uuid.UUID(str(connection.execute(sql(query)).scalars().first()))
            for query in (
                "SELECT guardian_id FROM guardianship WHERE guardian_id NOT IN "
                "(SELECT person_id FROM role WHERE role <> 'guardian')",
                "SELECT person_id FROM role WHERE role = 'teacher' AND person_id NOT IN "
                "(SELECT guardian_id FROM guardianship)",
                "SELECT pupil_id FROM guardianship",
            )
        )
        reports = {
            who: person_report(
                connection, registre.keys, person, retention_months=12, client_names={}
            )
            for who, person in (("guardian", guardian), ("teacher", teacher), ("pupil", pupil))
        }
    imported = {
        who: [f for f in r.flows if f.flow is FlowKind.IMPORT] for who, r in reports.items()
    }
    assert all(len(flows) == 1 for flows in imported.values())
    categories = {who: set(flows[0].data_categories) for who, flows in imported.items()}
    identity = {DataCategory.IDENTIFIERS, DataCategory.IDENTITY_NAME}
    assert identity <= categories["guardian"] and DataCategory.RELATIONS in categories["guardian"]
    assert not {DataCategory.PROFESSIONAL, DataCategory.SCHOOLING} & categories["guardian"]
    assert DataCategory.PROFESSIONAL in categories["teacher"]
    assert DataCategory.RELATIONS not in categories["teacher"]
    assert {DataCategory.SCHOOLING, DataCategory.RELATIONS} <= categories["pupil"]
    assert DataCategory.PROFESSIONAL not in categories["pupil"]
    assert reports["guardian"].recipients[0].data_categories == sorted(categories["guardian"])
    assert reports["guardian"].person_categories is not None
    assert DataCategory.PROFESSIONAL not in reports["guardian"].person_categories
    # Gone from the store: the entry's categories, all of them.
    gone = uuid.uuid4()
    with write_transaction(store.engine) as connection:
        registre.log.append(
            connection,
            FlowRecord(
                flow=FlowKind.IMPORT,
                operation=Operation.COLLECT,
                activity=registre.activity_id(FlowKind.IMPORT),
                actor_kind=RecipientKind.IMPORT_JOB,
                actor="import aaf",
                target="import aaf",
                categories={DataCategory.PROFESSIONAL, DataCategory.RELATIONS},
                subjects=[gone],
            ),
        )
    with store.engine.connect() as connection:
        report = person_report(
            connection, registre.keys, gone, retention_months=12, client_names={}
        )
    assert report.person_categories is None
    assert report.flows[0].data_categories == [DataCategory.PROFESSIONAL, DataCategory.RELATIONS]
