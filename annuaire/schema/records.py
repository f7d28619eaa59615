"""The contract between connectors and the annuaire: neutral records and source warnings.

A connector reads a foreign format and yields a stream of :class:`NeutralRecord` (one entity of
the neutral schema, with the provenance of the bytes it came from) interleaved with
:class:`SourceWarning` (something the operator should know about, never fatal by itself).
The sync engine consumes that stream; it never sees XML, and a connector never sees a database.

Identity inside a stream
    Every record names its ``kind`` and a ``key`` that is unique for that kind within the import
    scope (for AAF: the join key, namespaced by the connector when needed). The hub id of the
    entity is derived from (scope, kind, key), so a record can reference another one with
    ``Ref(kind, key)`` before, after or without the referenced record being in the same stream.

Ownership (delta semantics)
    ``owner`` is a :class:`Ref` to the source record that carries this entity, for example the
    pupil record that carries the pupil's enrollments and guardianships. When the owner record
    itself comes in a delta (``add`` or ``modify``), it is a full replacement: entities of that
    owner that the new version no longer yields leave. A ``delete`` of an owner makes the owner
    and everything it owns leave. ``owner`` defaults to the record itself; an entity derived from
    many records (a 1D class seen in pupil records) keeps that default.

    A connector yields the entities a record carries after that record. An owner given twice in
    one stream (a person in two chunks of a delivery) is replaced by its last record, with what
    it carries: the entities yielded between an earlier record of that owner and its last one
    are the earlier version's and are not written; those yielded after its last record (a
    pupil's guardianships, which AAF gives in a later file) count as the last version's.

Operations
    ``add`` and ``modify`` write the record (a full replacement of its owner, above); ``delete``
    makes the owner leave. ``ensure`` is for an entity the source knows only in part (a class
    seen in the few pupil records of a delta): it is created if the store does not hold it, made
    active again if it was leaving, and otherwise left as stored, content and owner alike, so
    that a partial view never overwrites what a complete one said.

Content
    ``data`` holds column values of the neutral table for ``kind`` (see ``annuaire.schema``):
    plain JSON-able values, ``datetime.date`` and lists. ``refs`` maps a reference column to a
    :class:`Ref` (or a list of them, stored as a list of hub ids). The content hash that makes
    re-imports cheap is computed by the sync engine over data, refs, external ids, structures
    and owner, never provenance.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "EntityKind",
    "NeutralRecord",
    "Provenance",
    "RecordOp",
    "Ref",
    "SourceWarning",
    "StreamItem",
]


class EntityKind(enum.StrEnum):
    """The neutral entity families, in the order an import applies them."""

    STRUCTURE = "structure"
    SUBJECT = "subject"
    LEVEL = "level"
    CLASS = "class"
    GROUP = "group"
    PERSON = "person"
    ROLE = "role"
    ENROLLMENT = "enrollment"
    GUARDIANSHIP = "guardianship"


RecordOp = Literal["add", "modify", "delete", "ensure"]


@dataclass(frozen=True, slots=True)
class Ref:
    """A reference to another entity of the same import scope, by kind and source key."""

    kind: EntityKind
    key: str


@dataclass(frozen=True, slots=True)
class Provenance:
    """Where a record came from: enough for an operator to open the file at the right line."""

    file: str
    line: int | None = None
    record_id: str | None = None

    def where(self) -> str:
        parts = [self.file]
        if self.line is not None:
            parts.append(f"line {self.line}")
        if self.record_id is not None:
            parts.append(f"record {self.record_id}")
        return ", ".join(parts)


@dataclass(slots=True)
class NeutralRecord:
    kind: EntityKind
    key: str
    data: dict[str, Any] = field(default_factory=dict)
    refs: dict[str, Ref | list[Ref] | None] = field(default_factory=dict)
    external_ids: tuple[tuple[str, str], ...] = ()
    #: UAIs of the structures this entity belongs to (feeds the change log and access rules);
    #: ``None`` when this source run cannot tell (a delta without the records that would say):
    #: the store then keeps what it has.
    structures: tuple[str, ...] | None = ()
    owner: Ref | None = None
    op: RecordOp = "add"
    provenance: Provenance | None = None
    #: True when ``structures`` are some of the entity's UAIs, not all of them (a guardian of
    #: whose pupils a delta shows only some): the store adds them to the UAIs it has.
    structures_floor: bool = False

    @property
    def ref(self) -> Ref:
        return Ref(self.kind, self.key)

    @property
    def owner_ref(self) -> Ref:
        return self.owner if self.owner is not None else Ref(self.kind, self.key)

    @property
    def owner_key(self) -> str:
        """The owner as stored in the ``owner_key`` column: ``kind:key``."""
        owner = self.owner_ref
        return f"{owner.kind.value}:{owner.key}"


@dataclass(frozen=True, slots=True)
class SourceWarning:
    """A non-fatal finding about the input: a dangling reference, an unknown attribute, ..."""

    code: str
    message: str
    provenance: Provenance | None = None

    def __str__(self) -> str:
        where = f"{self.provenance.where()}: " if self.provenance else ""
        return f"{where}{self.message} [{self.code}]"


StreamItem = NeutralRecord | SourceWarning
