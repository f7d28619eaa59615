"""Who is what where: roles in structures, enrollments in classes and groups, guardianships."""

from __future__ import annotations

import datetime as dt
import enum
import uuid

from sqlalchemy import JSON
from sqlmodel import Field, SQLModel

from ._columns import tracked_table_args
from ._tracked import Tracked, TrackedPublic

__all__ = [
    "Enrollment",
    "EnrollmentBase",
    "EnrollmentPublic",
    "EnrollmentRole",
    "Guardianship",
    "GuardianshipBase",
    "GuardianshipPublic",
    "Relation",
    "Role",
    "RoleBase",
    "RoleKind",
    "RolePublic",
    "RoleSummary",
]


class RoleKind(enum.StrEnum):
    PUPIL = "pupil"
    GUARDIAN = "guardian"
    TEACHER = "teacher"
    STAFF = "staff"
    HEAD = "head"
    DIRECTOR = "director"


class RoleBase(SQLModel):
    person_id: uuid.UUID = Field(index=True)
    structure_id: uuid.UUID = Field(index=True)
    role: str = Field(max_length=16, description="One of " + ", ".join(RoleKind))
    function_code: str | None = Field(default=None, max_length=16)
    function_label: str | None = Field(default=None, max_length=128)
    discipline_code: str | None = Field(default=None, max_length=16)
    discipline_label: str | None = Field(default=None, max_length=128)
    start_date: dt.date | None = None
    end_date: dt.date | None = None
    level_code: str | None = Field(
        default=None,
        max_length=32,
        description="A pupil's MEF (2D, `ENTEleveMEF`) or level (1D, `ENTEleveNiveau`): a "
        "code of `/v1/levels`.",
        schema_extra={"examples": ["10310019110"]},
    )
    subject_codes: list[str] = Field(
        default_factory=list,
        sa_type=JSON,
        description="A pupil's options, the subjects they follow (`ENTEleveCodeEnseignements`), "
        "in the source's order: codes of `/v1/subjects`. Empty for other roles.",
        schema_extra={"examples": [["030201", "030602"]]},
    )


class Role(RoleBase, Tracked, table=True):
    __tablename__ = "role"
    __table_args__ = tracked_table_args("role")


class RolePublic(RoleBase, TrackedPublic):
    """What a person is in a structure: pupil (with their MEF or level, and their options),
    teacher, staff, head, director (with the function and discipline codes of the source)."""


class RoleSummary(SQLModel):
    """A role as embedded in a person: the structure (id and UAI) and what the person is there."""

    structure_id: uuid.UUID
    structure_uai: str | None = Field(default=None, description="UAI of the structure.")
    role: str = Field(description="One of " + ", ".join(RoleKind))
    function_code: str | None = None
    function_label: str | None = None
    discipline_code: str | None = None
    discipline_label: str | None = None
    start_date: dt.date | None = None
    end_date: dt.date | None = None
    level_code: str | None = Field(default=None, description="A pupil's MEF or 1D level.")
    subject_codes: list[str] = Field(
        default_factory=list, description="A pupil's options (subject codes)."
    )
    status: str = Field(description="`active`, or `tobedeleted` once the role left its source.")


class EnrollmentRole(enum.StrEnum):
    PUPIL = "pupil"
    TEACHER = "teacher"
    HEAD_TEACHER = "head_teacher"


class EnrollmentBase(SQLModel):
    person_id: uuid.UUID = Field(index=True)
    structure_id: uuid.UUID | None = Field(default=None, index=True)
    class_id: uuid.UUID | None = Field(default=None, index=True)
    group_id: uuid.UUID | None = Field(default=None, index=True)
    role: str = Field(max_length=16, description="One of " + ", ".join(EnrollmentRole))
    subject_code: str | None = Field(default=None, max_length=16)
    start_date: dt.date | None = None
    end_date: dt.date | None = None


class Enrollment(EnrollmentBase, Tracked, table=True):
    __tablename__ = "enrollment"
    __table_args__ = tracked_table_args("enrollment")


class EnrollmentPublic(EnrollmentBase, TrackedPublic):
    """A person in a class or a group: as a pupil, as a teacher of a subject, or as head
    teacher."""


class Relation(enum.StrEnum):
    """One vocabulary for the old (1–7) and new (10–90) AAF relation codes."""

    MOTHER = "mother"
    FATHER = "father"
    TUTOR = "tutor"
    OTHER_RELATIVE = "other_relative"
    EDUCATOR = "educator"
    SOCIAL_SERVICES = "social_services"
    PUPIL_SELF = "pupil_self"
    OTHER = "other"
    UNKNOWN = "unknown"


class GuardianshipBase(SQLModel):
    guardian_id: uuid.UUID = Field(index=True)
    pupil_id: uuid.UUID = Field(index=True)
    relation: str = Field(max_length=24, description="One of " + ", ".join(Relation))
    relation_code: str | None = Field(default=None, max_length=8, description="Code as sent.")
    legal: bool | None = Field(default=None, description="Legal representative.")
    financial: bool | None = None
    contact: bool | None = None
    payment: bool | None = None
    residence: bool | None = Field(default=None, description="The pupil lives at this address.")


class Guardianship(GuardianshipBase, Tracked, table=True):
    __tablename__ = "guardianship"
    __table_args__ = tracked_table_args("guardianship")


class GuardianshipPublic(GuardianshipBase, TrackedPublic):
    """A guardian's link to a pupil, with the relation and the legal, financial, contact and
    payment flags."""
