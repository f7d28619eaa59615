"""Who received a person's data, and when: the answer to an access request (GDPR art. 15(1)(c)).

The person is named by hub id, or by a typed external id (``aaf:ENTPersonJointure:1234``,
resolved through the store while the person is in it). A person the store no longer holds (left,
then purged) is still found by their AAF join key while the log names them: an AAF person's hub
id derives from the import scope and the join key (AAF.md: ``identifier/id`` is the join key),
so each scope the AAF imports ran on gives one candidate, kept if the log holds its pseudonym.

The person's pseudonym is recomputed with the log's key and matched against the subjects of
every entry the log still holds (the retention of the flow log bounds how far back the answer
goes, and the report says so).

Data categories per person
    An entry records the categories of the flow as a whole, once, for all the persons it names:
    an import that wrote staff and guardians says "professional", a page of ``/v1/persons``
    with teachers and pupils too. A person's report lists, for each flow, only those of the
    entry's categories that can concern that person, from what the store holds of them
    (:func:`person_categories`): identifiers, identity, contact and connection data always;
    professional data with a staff role (teacher, staff, head, director); schooling with a
    pupil's role or an enrollment; relations with a guardianship, as guardian or pupil. Leaving
    rows count until they are purged.

    Why at report time rather than in the entry: the categories of each person would have to
    be written with the entry, and a first import names every person of an académie (300,000
    and more) in one list that is already its largest part; the alternatives (a list per set
    of categories, a byte per person) grow every import's entry, its HMAC input and the
    statements that compute them, to serve a question asked a few times a year. The store
    answers it in three indexed look-ups. The cost is that the answer follows what the store
    holds now: a person whose role was purged (a teacher who left, still a guardian) loses
    "professional" on the older flows that collected it. A person the store no longer holds at
    all keeps the entry's categories unnarrowed (``person_categories`` is null), which may name
    categories of other persons of the flow, never fewer than were carried.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Connection, bindparam, func, select, text

from annuaire.errors import BadInput
from annuaire.schema import TABLES, EntityKind, ExternalId, ImportRun, RoleKind, as_utc

from .flowlog import ENTRY
from .keys import RegistreKeys
from .vocabulary import DataCategory, FlowKind, Operation, RecipientKind

__all__ = [
    "PersonFlow",
    "PersonReport",
    "RecipientSummary",
    "person_categories",
    "person_report",
    "resolve_person",
]

_EXTERNAL = ExternalId.__table__  # type: ignore[attr-defined]
_RUNS = ImportRun.__table__  # type: ignore[attr-defined]
#: The external id that is also the source key of an AAF person (their hub id derives from it).
_AAF_JOIN_KEY = "aaf:ENTPersonJointure"
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
    log_retention_months: int = Field(
        description="Retention the register declares for the log: `registre purge` deletes "
        "older entries (by whole checkpoint windows)."
    )
    log_since: dt.datetime | None = Field(
        description="Time of the oldest entry the log holds (UTC), whoever it concerns: the "
        "answer covers the flows since then, which may be more or less than the retention "
        "(a log not purged yet, a young one). Null when the log is empty."
    )
    person_categories: list[DataCategory] | None = Field(
        default=None,
        description="The data categories that can concern this person, from what the store "
        "holds of them (identifiers, identity, contact, connection; professional with a staff "
        "role; schooling with a pupil's role or an enrollment; relations with a "
        "guardianship): each flow lists its entry's categories among these only, an entry "
        "naming the categories of all the persons of its flow. Null when the store no longer "
        "holds the person: the flows list their entries' categories, unnarrowed.",
    )
    recipients: list[RecipientSummary]
    flows: list[PersonFlow]


def resolve_person(
    connection: Connection, reference: str, keys: RegistreKeys | None = None
) -> uuid.UUID:
    """A hub id, or the person carrying the typed external id ``type:value``; with ``keys``,
    also a person gone from the store whose AAF join key the log still names (see above)."""
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
    found = [
        uuid.UUID(str(row[0]))
        for row in connection.execute(
            select(_EXTERNAL.c.entity_id)
            .where(
                _EXTERNAL.c.entity_type == "person",
                _EXTERNAL.c.type == kind,
                _EXTERNAL.c.value == value,
            )
            .distinct()
        )
    ]
    where = "in the store"
    if not found and keys is not None and kind == _AAF_JOIN_KEY:
        found, where = _gone(connection, keys, value), "in the store nor in the flow log"
    if len(found) != 1:
        what = "no person" if not found else f"{len(found)} persons"
        ids = f" ({', '.join(sorted(map(str, found)))})" if found else ""
        raise BadInput(f"{what}{ids} with the external id {reference!r} {where}; give the hub id")
    return found[0]


def _gone(connection: Connection, keys: RegistreKeys, join_key: str) -> list[uuid.UUID]:
    """The hub ids the AAF imports gave (or would give) ``join_key`` that the log names."""
    # Imported here: annuaire.sync imports this package (its runs write flow entries).
    from annuaire.sync import hub_id

    scopes = connection.execute(
        select(_RUNS.c.scope).where(_RUNS.c.source == "aaf").distinct().order_by(_RUNS.c.scope)
    ).scalars()
    candidates = {
        keys.pseudonym(p): p for p in {hub_id(s, EntityKind.PERSON, join_key) for s in scopes}
    }
    named = _named(connection, list(candidates)) if candidates else set()
    return sorted(candidates[p] for p in named)


def _named(connection: Connection, pseudonyms: list[str]) -> set[str]:
    """Those of ``pseudonyms`` that a list of persons of the log holds, in one statement (a
    delivery per school makes hundreds of scopes; on SQLite, one scan of the lists)."""
    if connection.dialect.name == "postgresql":
        query = (
            "SELECT p FROM unnest(CAST(:pseudonyms AS text[])) AS p WHERE EXISTS "
            "(SELECT 1 FROM flow_subject_set WHERE subjects @> ARRAY[p])"
        )
        found = connection.execute(text(query), {"pseudonyms": pseudonyms})
    else:
        query = (
            "SELECT DISTINCT json_each.value FROM flow_subject_set, "
            "json_each(flow_subject_set.subjects) WHERE json_each.value IN :pseudonyms"
        )
        found = connection.execute(
            text(query).bindparams(bindparam("pseudonyms", expanding=True)),
            {"pseudonyms": pseudonyms},
        )
    return {str(row[0]) for row in found}


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
    concerning = person_categories(connection, person_id)

    def categories(row: Any) -> list[DataCategory]:
        carried = [DataCategory(c) for c in row.categories]
        return carried if concerning is None else [c for c in carried if c in concerning]

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
            data_categories=categories(row),
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
        log_since=_oldest(connection),
        person_categories=None if concerning is None else sorted(concerning),
        recipients=_by_recipient(flows),
        flows=flows,
    )


_PERSONS = TABLES[EntityKind.PERSON].__table__  # type: ignore[attr-defined]
_ROLES = TABLES[EntityKind.ROLE].__table__  # type: ignore[attr-defined]
_ENROLLMENTS = TABLES[EntityKind.ENROLLMENT].__table__  # type: ignore[attr-defined]
_GUARDIANSHIPS = TABLES[EntityKind.GUARDIANSHIP].__table__  # type: ignore[attr-defined]
#: What any person's data may be, whatever they are.
_ANYONE = frozenset(
    {
        DataCategory.IDENTIFIERS,
        DataCategory.IDENTITY_NAME,
        DataCategory.IDENTITY_BIRTH_DATE,
        DataCategory.CONTACT,
        DataCategory.CONNECTION,
    }
)
_PROFESSIONAL_ROLES = frozenset(
    {RoleKind.TEACHER, RoleKind.STAFF, RoleKind.HEAD, RoleKind.DIRECTOR}
)


def person_categories(
    connection: Connection, person_id: uuid.UUID
) -> frozenset[DataCategory] | None:
    """The data categories that can concern ``person_id``, from what the store holds of them
    (leaving rows included); None when it holds no such person (see the module docstring)."""
    held = connection.execute(select(_PERSONS.c.id).where(_PERSONS.c.id == person_id)).first()
    if held is None:
        return None
    found = set(_ANYONE)
    roles = set(
        connection.execute(
            select(_ROLES.c.role).where(_ROLES.c.person_id == person_id).distinct()
        ).scalars()
    )
    if roles & _PROFESSIONAL_ROLES:
        found.add(DataCategory.PROFESSIONAL)
    enrolled = connection.execute(
        select(_ENROLLMENTS.c.id).where(_ENROLLMENTS.c.person_id == person_id).limit(1)
    ).first()
    if RoleKind.PUPIL in roles or enrolled is not None:
        found.add(DataCategory.SCHOOLING)
    related = connection.execute(
        select(_GUARDIANSHIPS.c.id)
        .where(
            (_GUARDIANSHIPS.c.guardian_id == person_id) | (_GUARDIANSHIPS.c.pupil_id == person_id)
        )
        .limit(1)
    ).first()
    if related is not None:
        found.add(DataCategory.RELATIONS)
    return frozenset(found)


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


def _oldest(connection: Connection) -> dt.datetime | None:
    oldest = connection.execute(select(func.min(ENTRY.c.occurred_at))).scalar()
    return None if oldest is None else as_utc(oldest)  # SQLite gives it naive


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
