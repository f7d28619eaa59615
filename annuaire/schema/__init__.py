"""The neutral schema v1: SQLModel tables, their public models, and the record contract.

One module per family. Tables are ``X``; what the API returns is ``XPublic``. The mapping
``TABLES`` says which table stores each :class:`EntityKind`.
"""

from __future__ import annotations

from sqlmodel import SQLModel

from ._columns import NOT_ACTIVE
from ._tracked import Status, Tracked, TrackedPublic, as_utc, utcnow
from .client import (
    ApiClient,
    ApiClientPublic,
    ClientAssertionUse,
    ClientAuthMethod,
    ClientScope,
)
from .grouping import Group, GroupPublic, SchoolClass, SchoolClassPublic
from .membership import (
    Enrollment,
    EnrollmentPublic,
    EnrollmentRole,
    Guardianship,
    GuardianshipPublic,
    Relation,
    Role,
    RoleKind,
    RolePublic,
    RoleSummary,
)
from .nomenclature import Level, LevelPublic, Subject, SubjectPublic
from .person import EDUCONNECT_ID_ONLY, ExternalId, ExternalIdPublic, Person, PersonPublic
from .records import (
    EntityKind,
    NeutralRecord,
    Provenance,
    RecordOp,
    Ref,
    SourceWarning,
    StreamItem,
)
from .registre import (
    FlowChain,
    FlowCheckpoint,
    FlowEntry,
    FlowPurge,
    FlowSubjectSet,
    ProcessingActivity,
)
from .run import (
    ChangeEntry,
    ChangeEntryPublic,
    ChangeOp,
    ImportRun,
    ImportRunPublic,
    RunOutcome,
    academie_code,
)
from .structure import Structure, StructureKind, StructurePublic

__all__ = [
    "EDUCONNECT_ID_ONLY",
    "NOT_ACTIVE",
    "PERSON_COLUMNS",
    "PUBLIC_MODELS",
    "REFERENCES",
    "TABLES",
    "ApiClient",
    "ApiClientPublic",
    "ChangeEntry",
    "ChangeEntryPublic",
    "ChangeOp",
    "ClientAssertionUse",
    "ClientAuthMethod",
    "ClientScope",
    "Enrollment",
    "EnrollmentPublic",
    "EnrollmentRole",
    "EntityKind",
    "ExternalId",
    "ExternalIdPublic",
    "FlowChain",
    "FlowCheckpoint",
    "FlowEntry",
    "FlowPurge",
    "FlowSubjectSet",
    "Group",
    "GroupPublic",
    "Guardianship",
    "GuardianshipPublic",
    "ImportRun",
    "ImportRunPublic",
    "Level",
    "LevelPublic",
    "NeutralRecord",
    "Person",
    "PersonPublic",
    "ProcessingActivity",
    "Provenance",
    "RecordOp",
    "Ref",
    "Relation",
    "Role",
    "RoleKind",
    "RolePublic",
    "RoleSummary",
    "RunOutcome",
    "SQLModel",
    "SchoolClass",
    "SchoolClassPublic",
    "SourceWarning",
    "Status",
    "StreamItem",
    "Structure",
    "StructureKind",
    "StructurePublic",
    "Subject",
    "SubjectPublic",
    "Tracked",
    "TrackedPublic",
    "academie_code",
    "as_utc",
    "utcnow",
]

TABLES: dict[EntityKind, type[Tracked]] = {
    EntityKind.STRUCTURE: Structure,
    EntityKind.SUBJECT: Subject,
    EntityKind.LEVEL: Level,
    EntityKind.CLASS: SchoolClass,
    EntityKind.GROUP: Group,
    EntityKind.PERSON: Person,
    EntityKind.ROLE: Role,
    EntityKind.ENROLLMENT: Enrollment,
    EntityKind.GUARDIANSHIP: Guardianship,
}

#: Public models exported as JSON Schemas to specs/schema/ (name -> model).
PUBLIC_MODELS: dict[str, type[SQLModel]] = {
    "Structure": StructurePublic,
    "Person": PersonPublic,
    "ExternalId": ExternalIdPublic,
    "Role": RolePublic,
    "Class": SchoolClassPublic,
    "Group": GroupPublic,
    "Enrollment": EnrollmentPublic,
    "Guardianship": GuardianshipPublic,
    "Subject": SubjectPublic,
    "Level": LevelPublic,
    "ImportRun": ImportRunPublic,
    "Change": ChangeEntryPublic,
}

#: Reference columns of each entity kind and the kind they point to (checked after each run).
REFERENCES: dict[EntityKind, dict[str, EntityKind]] = {
    EntityKind.STRUCTURE: {"parent_id": EntityKind.STRUCTURE},
    EntityKind.CLASS: {"structure_id": EntityKind.STRUCTURE},
    EntityKind.GROUP: {"structure_id": EntityKind.STRUCTURE},
    EntityKind.ROLE: {"person_id": EntityKind.PERSON, "structure_id": EntityKind.STRUCTURE},
    EntityKind.ENROLLMENT: {
        "person_id": EntityKind.PERSON,
        "structure_id": EntityKind.STRUCTURE,
        "class_id": EntityKind.CLASS,
        "group_id": EntityKind.GROUP,
    },
    EntityKind.GUARDIANSHIP: {"guardian_id": EntityKind.PERSON, "pupil_id": EntityKind.PERSON},
}
#: The reference columns naming persons, of each kind that has some: the persons a written or
#: purged row of that kind is about (the flow log's).
PERSON_COLUMNS: dict[EntityKind, tuple[str, ...]] = {
    kind: persons
    for kind, columns in REFERENCES.items()
    if (persons := tuple(c for c, target in columns.items() if target is EntityKind.PERSON))
}
