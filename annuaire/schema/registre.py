"""Tables of the RGPD flow log and of the register's history (annuaire.registre writes them).

``flow_entry``       one row per data flow (an API response carrying personal data, an export, an
                     import, a DPO's access to the log), append-only, chained by HMAC: ``seq`` is
                     contiguous from 1, ``prev_hash`` is the ``entry_hash`` of ``seq - 1``. The
                     persons a flow concerned are named by ``subject_set``: the digest of the
                     sorted list of their pseudonyms (keyed hash of the hub id), whose list is
                     stored once in ``flow_subject_set`` however many entries name it. The HMAC
                     of an entry covers the list itself, not the digest.
``flow_subject_set`` one row per distinct list of persons: ``digest`` is the SHA-256 of the list
                     (compact JSON), ``subjects`` the list: a ``text[]`` with a GIN index on
                     PostgreSQL (without GIN's pending list, whose merges, paid by whichever
                     insert fills it, made the 99th percentile of a page read 110 ms with two API
                     workers), a JSON array on SQLite. A page read again, a class, a parent's
                     children: the same persons come back, and their list (its hundred index
                     keys) is written once, not once per flow. Lists no entry names any more go
                     with the purge that removed their last entry.
``flow_chain``       the head of the chain (one row): the lock every writer takes, the last
                     sequence and hash, the last checkpoint.
``flow_checkpoint``  signed (Ed25519) statements "entries first..last end with this hash",
                     chained by signature; kept when entries are purged, so what remains verifies.
``flow_purge``       evidence that retention was applied: up to which entry, when, how many rows.
``processing_activity``  every version of every register fiche the hub has run under.

No column holds a name, a birth date, a token or a payload: persons appear only as pseudonyms,
callers as client ids, token subjects' pseudonyms or job names. Times are UTC (naive columns).
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Index, Integer, Text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlmodel import Field, SQLModel

__all__ = [
    "FlowChain",
    "FlowCheckpoint",
    "FlowEntry",
    "FlowPurge",
    "FlowSubjectSet",
    "ProcessingActivity",
]


def _bigint(*, primary_key: bool = False, index: bool = False) -> Any:
    return Field(
        sa_column=Column(
            BigInteger().with_variant(Integer(), "sqlite"),
            primary_key=primary_key,
            autoincrement=False,
            nullable=False,
            index=index,
        )
    )


class FlowEntry(SQLModel, table=True):
    __tablename__ = "flow_entry"
    __table_args__ = (Index("ix_flow_entry_occurred_at", "occurred_at"),)

    seq: int = _bigint(primary_key=True)
    event_id: uuid.UUID
    occurred_at: dt.datetime
    request_id: str | None = Field(default=None, max_length=64)
    #: ``import``, ``api-client``, ``api-educonnect``... (annuaire.registre.FlowKind)
    flow: str = Field(max_length=32)
    #: ``collect``, ``read``, ``export``, ``delete``, ``purge``, ``log_access``
    operation: str = Field(max_length=16)
    #: Register fiche (activity id and version) the flow happens under.
    activity: str = Field(max_length=64)
    activity_version: int
    #: Who: ``client``, ``guardian``, ``pupil``, ``staff``, ``operator``, ``import_job``, ``dpo``.
    actor_kind: str = Field(max_length=16)
    #: The client id, the job, or the pseudonym of the person (never a name).
    actor: str | None = Field(default=None, max_length=128)
    client_id: str | None = Field(default=None, max_length=64)
    #: Scopes of the token (clients), for the contract in force.
    scopes: list[str] = Field(default_factory=list, sa_type=JSON)
    #: What was done: route template and method, or the import's source family.
    target: str = Field(max_length=255)
    #: Data categories actually carried (never values).
    categories: list[str] = Field(default_factory=list, sa_type=JSON)
    #: UAIs concerned.
    structures: list[str] = Field(default_factory=list, sa_type=JSON)
    persons: int
    #: The persons concerned: digest of their list in ``flow_subject_set`` (None: nobody).
    subject_set: str | None = Field(default=None, max_length=64, index=True)
    #: SHA-256 of what was sent or read (response body, source files), when known.
    payload_digest: str | None = Field(default=None, max_length=64)
    #: Imports: the source files and their SHA-256.
    source: dict[str, Any] | None = Field(default=None, sa_type=JSON)
    #: ``success``, ``failure``, ``refused``.
    outcome: str = Field(max_length=16)
    detail: str | None = Field(default=None, max_length=255)
    prev_hash: str = Field(max_length=64)
    entry_hash: str = Field(max_length=64)
    key_id: str = Field(max_length=32)


class FlowSubjectSet(SQLModel, table=True):
    __tablename__ = "flow_subject_set"
    __table_args__ = (
        # Who received a person's data: ``subjects @> ARRAY[pseudonym]`` (PostgreSQL only).
        Index(
            "ix_flow_subject_set_subjects",
            "subjects",
            postgresql_using="gin",
            postgresql_with={"fastupdate": "off"},
        ).ddl_if(dialect="postgresql"),
    )

    #: SHA-256 (hex) of ``subjects`` as compact JSON.
    digest: str = Field(primary_key=True, max_length=64)
    #: Pseudonyms of the persons, sorted, without repeats.
    subjects: list[str] = Field(
        sa_column=Column(JSON().with_variant(ARRAY(Text()), "postgresql"), nullable=False),
    )


class FlowChain(SQLModel, table=True):
    __tablename__ = "flow_chain"

    id: int = Field(primary_key=True)
    last_seq: int = _bigint()
    last_hash: str = Field(max_length=64)
    last_checkpoint_seq: int = _bigint()
    last_checkpoint_at: dt.datetime


class FlowCheckpoint(SQLModel, table=True):
    __tablename__ = "flow_checkpoint"

    id: int = Field(primary_key=True)
    first_seq: int = _bigint()
    last_seq: int = _bigint(index=True)
    head_hash: str = Field(max_length=64)
    previous_signature: str = Field(max_length=128)
    signature: str = Field(max_length=128)
    key_id: str = Field(max_length=32)
    signed_at: dt.datetime


class FlowPurge(SQLModel, table=True):
    __tablename__ = "flow_purge"

    id: int | None = Field(default=None, primary_key=True)
    #: Entries with ``seq <= up_to_seq`` are gone; the checkpoint ending there stays.
    up_to_seq: int = _bigint()
    checkpoint_id: int
    entries: int
    #: Person references (pseudonyms) the purged entries held.
    subjects: int
    cutoff: dt.datetime
    purged_at: dt.datetime
    operator: str = Field(max_length=128)


class ProcessingActivity(SQLModel, table=True):
    """One version of a register fiche, recorded when the hub first ran under it."""

    __tablename__ = "processing_activity"

    activity_id: str = Field(primary_key=True, max_length=64)
    version: int = Field(primary_key=True)
    digest: str = Field(max_length=64)
    document: dict[str, Any] = Field(sa_type=JSON)
    recorded_at: dt.datetime
