"""Who received a person's data, and when: the answer to an access request (GDPR art. 15(1)(c)).

The person is named by hub id, or by a typed external id (``aaf:ENTPersonJointure:1234``,
resolved through the store while the person is in it). Their pseudonym is recomputed with the
log's key and matched against the subjects of every entry the log still holds (the retention
of the flow log bounds how far back the answer goes, and the report says so).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Connection, select, text

from annuaire.errors import BadInput
from annuaire.schema import ExternalId

from .flowlog import ENTRY
from .keys import RegistreKeys
from .vocabulary import DataCategory, FlowKind, Operation, RecipientKind

__all__ = ["PersonFlow", "PersonReport", "RecipientSummary", "person_report", "resolve_person"]

_EXTERNAL = ExternalId.__table__  # type: ignore[attr-defined]
_FROZEN = ConfigDict(frozen=True)


class PersonFlow(BaseModel):
    """One flow that concerned the person."""

    model_config = _FROZEN

    seq: int = Field(description="Sequence number of the flow-log entry.")
    occurred_at: dt.datetime
    flow: FlowKind
    operation: Operation
    activity: str = Field(description="Register fiche (activity id) the flow ran under.")
    activity_version: int
    recipient_kind: RecipientKind
    recipient: str | None = Field(
        description="Client id, import job, or the pseudonym of the person who read."
    )
    recipient_name: str | None = Field(description="Name of the client, when a client.")
    data_categories: list[DataCategory]
    structures: list[str]
    outcome: str
    request_id: str | None


class RecipientSummary(BaseModel):
    """The flows of the person's data to one recipient."""

    model_config = _FROZEN

    recipient_kind: RecipientKind
    recipient: str | None
    recipient_name: str | None
    flows: int
    first_at: dt.datetime
    last_at: dt.datetime
    data_categories: list[DataCategory]


class PersonReport(BaseModel):
    model_config = _FROZEN

    person_id: uuid.UUID
    pseudonym: str = Field(description="How the flow log names the person.")
    generated_at: dt.datetime
    log_retention_months: int = Field(description="The log goes back this far at most.")
    recipients: list[RecipientSummary]
    flows: list[PersonFlow]


def resolve_person(connection: Connection, reference: str) -> uuid.UUID:
    """A hub id, or the person carrying the typed external id ``type:value``."""
    try:
        return uuid.UUID(reference)
    except ValueError:
        pass
    kind, _, value = reference.rpartition(":")
    if not kind or not value:
        raise BadInput(
            f"{reference!r} is neither a hub id (UUID) nor an external id "
            "(type:value, e.g. aaf:ENTPersonJointure:1234)"
        )
    found = connection.execute(
        select(_EXTERNAL.c.entity_id)
        .where(
            _EXTERNAL.c.entity_type == "person",
            _EXTERNAL.c.type == kind,
            _EXTERNAL.c.value == value,
        )
        .distinct()
    ).all()
    if len(found) != 1:
        what = "no person" if not found else f"{len(found)} persons"
        raise BadInput(f"{what} with the external id {reference!r} in the store; give the hub id")
    return uuid.UUID(str(found[0][0]))


def person_report(
    connection: Connection,
    keys: RegistreKeys,
    person_id: uuid.UUID,
    *,
    retention_months: int,
    client_names: Mapping[str, str],
    now: dt.datetime | None = None,
) -> PersonReport:
    pseudonym = keys.pseudonym(person_id)
    rows = connection.execute(
        select(ENTRY).where(_concerns(connection, pseudonym)).order_by(ENTRY.c.seq)
    ).all()
    flows = [
        PersonFlow(
            seq=row.seq,
            occurred_at=row.occurred_at,
            flow=FlowKind(row.flow),
            operation=Operation(row.operation),
            activity=row.activity,
            activity_version=row.activity_version,
            recipient_kind=RecipientKind(row.actor_kind),
            recipient=_recipient(row),
            recipient_name=client_names.get(row.client_id) if _by_client(row) else None,
            data_categories=[DataCategory(c) for c in row.categories],
            structures=list(row.structures),
            outcome=row.outcome,
            request_id=row.request_id,
        )
        for row in rows
    ]
    return PersonReport(
        person_id=person_id,
        pseudonym=pseudonym,
        generated_at=now or dt.datetime.now(dt.UTC),
        log_retention_months=retention_months,
        recipients=_by_recipient(flows),
        flows=flows,
    )


#: Recipients that are people: the entry's actor is their pseudonym; its client id names the
#: application that carried their token (an identity broker's relying party), not a recipient.
_PEOPLE = frozenset(
    {RecipientKind.GUARDIAN, RecipientKind.PUPIL, RecipientKind.STAFF, RecipientKind.DPO}
)


def _by_client(row: Any) -> bool:
    return bool(row.client_id) and RecipientKind(row.actor_kind) not in _PEOPLE


def _recipient(row: Any) -> str | None:
    """The client id of an ENT client, the job of an import, the pseudonym of a person."""
    return str(row.client_id) if _by_client(row) else row.actor


def _concerns(connection: Connection, pseudonym: str) -> Any:
    """Entries whose persons include ``pseudonym``: the lists that hold it (GIN index on
    PostgreSQL, a scan of the distinct lists on SQLite), then the entries naming those lists."""
    if connection.dialect.name == "postgresql":
        lists = "SELECT digest FROM flow_subject_set WHERE subjects @> ARRAY[:pseudonym]::text[]"
    else:
        lists = (
            "SELECT digest FROM flow_subject_set, json_each(flow_subject_set.subjects) "
            "WHERE json_each.value = :pseudonym"
        )
    return text(f"flow_entry.subject_set IN ({lists})").bindparams(pseudonym=pseudonym)


def _by_recipient(flows: Iterable[PersonFlow]) -> list[RecipientSummary]:
    groups: dict[tuple[str, str | None], list[PersonFlow]] = {}
    for flow in flows:
        groups.setdefault((flow.recipient_kind.value, flow.recipient), []).append(flow)
    return [
        RecipientSummary(
            recipient_kind=group[0].recipient_kind,
            recipient=group[0].recipient,
            recipient_name=group[0].recipient_name,
            flows=len(group),
            first_at=group[0].occurred_at,
            last_at=group[-1].occurred_at,
            data_categories=sorted({c for f in group for c in f.data_categories}),
        )
        for group in groups.values()
    ]
