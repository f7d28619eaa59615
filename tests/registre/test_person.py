"""The answer to an access request (art. 15(1)(c)): who received a person's data."""

from __future__ import annotations

import uuid

import pytest

from annuaire.registre.flowlog import FlowRecord
from annuaire.registre.person import person_report
from annuaire.registre.runtime import Registre, open_registre
from annuaire.registre.vocabulary import DataCategory, FlowKind, Operation, RecipientKind
from annuaire.store.engine import write_transaction
from tests.conftest import Store


@pytest.fixture
def registre(store: Store) -> Registre:
    return open_registre(store.settings, store.engine)


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
