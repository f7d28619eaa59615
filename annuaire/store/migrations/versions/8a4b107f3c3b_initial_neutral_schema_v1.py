"""Initial neutral schema v1: entities, external ids, import runs, change log.

Revision ID: 8a4b107f3c3b
Revises:
Create Date: 2026-11-28 20:55:48.661385
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "8a4b107f3c3b"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "change_log",
        sa.Column("entity_type", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("entity_id", sa.Uuid(), nullable=False),
        sa.Column("op", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
        sa.Column("at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("scope", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("run_id", sa.Uuid(), nullable=True),
        sa.Column("structures", sqlmodel.sql.sqltypes.AutoString(length=4000), nullable=False),
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            sa.Identity(always=False),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("seq"),
    )
    op.create_table(
        "enrollment",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("scope", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("source_key", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("owner_key", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("source", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("import_run_id", sa.Uuid(), nullable=True),
        sa.Column("content_hash", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("source_file", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
        sa.Column("source_record", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("leaving_since", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("modified_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("structures", sqlmodel.sql.sqltypes.AutoString(length=4000), nullable=False),
        sa.Column("person_id", sa.Uuid(), nullable=False),
        sa.Column("structure_id", sa.Uuid(), nullable=True),
        sa.Column("class_id", sa.Uuid(), nullable=True),
        sa.Column("group_id", sa.Uuid(), nullable=True),
        sa.Column("role", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("subject_code", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
        sa.Column("start_date", sa.Date(), nullable=True),
        sa.Column("end_date", sa.Date(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("scope", "source_key", name="uq_enrollment_scope_key"),
    )
    with op.batch_alter_table("enrollment", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_enrollment_class_id"), ["class_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_enrollment_group_id"), ["group_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_enrollment_modified_at"), ["modified_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_enrollment_person_id"), ["person_id"], unique=False)
        batch_op.create_index("ix_enrollment_scope_owner", ["scope", "owner_key"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_enrollment_structure_id"), ["structure_id"], unique=False
        )

    op.create_table(
        "external_id",
        sa.Column("type", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("value", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("entity_type", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("entity_id", sa.Uuid(), nullable=False),
        sa.Column("scope", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("external_id", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_external_id_entity_id"), ["entity_id"], unique=False)
        batch_op.create_index("ix_external_id_type_value", ["type", "value"], unique=False)

    op.create_table(
        "guardianship",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("scope", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("source_key", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("owner_key", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("source", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("import_run_id", sa.Uuid(), nullable=True),
        sa.Column("content_hash", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("source_file", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
        sa.Column("source_record", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("leaving_since", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("modified_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("structures", sqlmodel.sql.sqltypes.AutoString(length=4000), nullable=False),
        sa.Column("guardian_id", sa.Uuid(), nullable=False),
        sa.Column("pupil_id", sa.Uuid(), nullable=False),
        sa.Column("relation", sqlmodel.sql.sqltypes.AutoString(length=24), nullable=False),
        sa.Column("relation_code", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=True),
        sa.Column("legal", sa.Boolean(), nullable=True),
        sa.Column("financial", sa.Boolean(), nullable=True),
        sa.Column("contact", sa.Boolean(), nullable=True),
        sa.Column("payment", sa.Boolean(), nullable=True),
        sa.Column("residence", sa.Boolean(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("scope", "source_key", name="uq_guardianship_scope_key"),
    )
    with op.batch_alter_table("guardianship", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_guardianship_guardian_id"), ["guardian_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_guardianship_modified_at"), ["modified_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_guardianship_pupil_id"), ["pupil_id"], unique=False)
        batch_op.create_index("ix_guardianship_scope_owner", ["scope", "owner_key"], unique=False)

    op.create_table(
        "import_run",
        sa.Column("scope", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("source", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("academie", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("uai", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=True),
        sa.Column("degree", sqlmodel.sql.sqltypes.AutoString(length=2), nullable=True),
        sa.Column("mode", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
        sa.Column("files", sa.JSON(), nullable=False),
        sa.Column("started_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("finished_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("duration_s", sa.Float(), nullable=True),
        sa.Column("outcome", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("message", sqlmodel.sql.sqltypes.AutoString(length=4000), nullable=True),
        sa.Column("counts", sa.JSON(), nullable=False),
        sa.Column("warning_count", sa.Integer(), nullable=False),
        sa.Column("warnings", sa.JSON(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("import_run", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_import_run_scope"), ["scope"], unique=False)

    op.create_table(
        "level",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("scope", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("source_key", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("owner_key", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("source", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("import_run_id", sa.Uuid(), nullable=True),
        sa.Column("content_hash", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("source_file", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
        sa.Column("source_record", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("leaving_since", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("modified_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("structures", sqlmodel.sql.sqltypes.AutoString(length=4000), nullable=False),
        sa.Column("code", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("label", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("parent_code", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
        sa.Column("stat_code", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("scope", "source_key", name="uq_level_scope_key"),
    )
    with op.batch_alter_table("level", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_level_code"), ["code"], unique=False)
        batch_op.create_index(batch_op.f("ix_level_modified_at"), ["modified_at"], unique=False)
        batch_op.create_index("ix_level_scope_owner", ["scope", "owner_key"], unique=False)

    op.create_table(
        "person",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("scope", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("source_key", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("owner_key", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("source", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("import_run_id", sa.Uuid(), nullable=True),
        sa.Column("content_hash", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("source_file", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
        sa.Column("source_record", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("leaving_since", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("modified_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("structures", sqlmodel.sql.sqltypes.AutoString(length=4000), nullable=False),
        sa.Column("usage_name", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
        sa.Column("birth_name", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
        sa.Column("first_name", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
        sa.Column("other_first_names", sa.JSON(), nullable=False),
        sa.Column("birth_date", sa.Date(), nullable=True),
        sa.Column("civility", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=True),
        sa.Column("email", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
        sa.Column("phone_home", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("phone_mobile", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("phone_work", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("address_lines", sa.JSON(), nullable=False),
        sa.Column("postal_code", sqlmodel.sql.sqltypes.AutoString(length=10), nullable=True),
        sa.Column("city", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
        sa.Column("country", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("scope", "source_key", name="uq_person_scope_key"),
    )
    with op.batch_alter_table("person", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_person_modified_at"), ["modified_at"], unique=False)
        batch_op.create_index("ix_person_scope_owner", ["scope", "owner_key"], unique=False)

    op.create_table(
        "pupil_group",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("scope", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("source_key", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("owner_key", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("source", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("import_run_id", sa.Uuid(), nullable=True),
        sa.Column("content_hash", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("source_file", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
        sa.Column("source_record", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("leaving_since", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("modified_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("structures", sqlmodel.sql.sqltypes.AutoString(length=4000), nullable=False),
        sa.Column("structure_id", sa.Uuid(), nullable=False),
        sa.Column("code", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("label", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
        sa.Column("class_ids", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("scope", "source_key", name="uq_pupil_group_scope_key"),
    )
    with op.batch_alter_table("pupil_group", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_pupil_group_modified_at"), ["modified_at"], unique=False
        )
        batch_op.create_index("ix_pupil_group_scope_owner", ["scope", "owner_key"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_pupil_group_structure_id"), ["structure_id"], unique=False
        )

    op.create_table(
        "role",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("scope", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("source_key", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("owner_key", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("source", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("import_run_id", sa.Uuid(), nullable=True),
        sa.Column("content_hash", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("source_file", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
        sa.Column("source_record", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("leaving_since", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("modified_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("structures", sqlmodel.sql.sqltypes.AutoString(length=4000), nullable=False),
        sa.Column("person_id", sa.Uuid(), nullable=False),
        sa.Column("structure_id", sa.Uuid(), nullable=False),
        sa.Column("role", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("function_code", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
        sa.Column("function_label", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
        sa.Column("discipline_code", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
        sa.Column("discipline_label", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
        sa.Column("start_date", sa.Date(), nullable=True),
        sa.Column("end_date", sa.Date(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("scope", "source_key", name="uq_role_scope_key"),
    )
    with op.batch_alter_table("role", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_role_modified_at"), ["modified_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_role_person_id"), ["person_id"], unique=False)
        batch_op.create_index("ix_role_scope_owner", ["scope", "owner_key"], unique=False)
        batch_op.create_index(batch_op.f("ix_role_structure_id"), ["structure_id"], unique=False)

    op.create_table(
        "school_class",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("scope", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("source_key", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("owner_key", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("source", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("import_run_id", sa.Uuid(), nullable=True),
        sa.Column("content_hash", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("source_file", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
        sa.Column("source_record", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("leaving_since", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("modified_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("structures", sqlmodel.sql.sqltypes.AutoString(length=4000), nullable=False),
        sa.Column("structure_id", sa.Uuid(), nullable=False),
        sa.Column("code", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("label", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
        sa.Column("level_codes", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("scope", "source_key", name="uq_school_class_scope_key"),
    )
    with op.batch_alter_table("school_class", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_school_class_modified_at"), ["modified_at"], unique=False
        )
        batch_op.create_index("ix_school_class_scope_owner", ["scope", "owner_key"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_school_class_structure_id"), ["structure_id"], unique=False
        )

    op.create_table(
        "structure",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("scope", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("source_key", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("owner_key", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("source", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("import_run_id", sa.Uuid(), nullable=True),
        sa.Column("content_hash", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("source_file", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
        sa.Column("source_record", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("leaving_since", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("modified_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("structures", sqlmodel.sql.sqltypes.AutoString(length=4000), nullable=False),
        sa.Column("uai", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=True),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("type_label", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
        sa.Column("type_code", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=True),
        sa.Column("degree", sqlmodel.sql.sqltypes.AutoString(length=2), nullable=True),
        sa.Column("sector", sqlmodel.sql.sqltypes.AutoString(length=2), nullable=True),
        sa.Column("academie", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=True),
        sa.Column("academie_name", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("ministry", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
        sa.Column("siret", sqlmodel.sql.sqltypes.AutoString(length=14), nullable=True),
        sa.Column("street", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
        sa.Column("postal_code", sqlmodel.sql.sqltypes.AutoString(length=10), nullable=True),
        sa.Column("city", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
        sa.Column("phone", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("email", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
        sa.Column("parent_id", sa.Uuid(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("scope", "source_key", name="uq_structure_scope_key"),
    )
    with op.batch_alter_table("structure", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_structure_modified_at"), ["modified_at"], unique=False)
        batch_op.create_index("ix_structure_scope_owner", ["scope", "owner_key"], unique=False)
        batch_op.create_index(batch_op.f("ix_structure_uai"), ["uai"], unique=False)

    op.create_table(
        "subject",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("scope", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("source_key", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("owner_key", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("source", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("import_run_id", sa.Uuid(), nullable=True),
        sa.Column("content_hash", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("source_file", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
        sa.Column("source_record", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("leaving_since", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("modified_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("structures", sqlmodel.sql.sqltypes.AutoString(length=4000), nullable=False),
        sa.Column("code", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("label", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
        sa.Column("parent_code", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("scope", "source_key", name="uq_subject_scope_key"),
    )
    with op.batch_alter_table("subject", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_subject_code"), ["code"], unique=False)
        batch_op.create_index(batch_op.f("ix_subject_modified_at"), ["modified_at"], unique=False)
        batch_op.create_index("ix_subject_scope_owner", ["scope", "owner_key"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("subject", schema=None) as batch_op:
        batch_op.drop_index("ix_subject_scope_owner")
        batch_op.drop_index(batch_op.f("ix_subject_modified_at"))
        batch_op.drop_index(batch_op.f("ix_subject_code"))

    op.drop_table("subject")
    with op.batch_alter_table("structure", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_structure_uai"))
        batch_op.drop_index("ix_structure_scope_owner")
        batch_op.drop_index(batch_op.f("ix_structure_modified_at"))

    op.drop_table("structure")
    with op.batch_alter_table("school_class", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_school_class_structure_id"))
        batch_op.drop_index("ix_school_class_scope_owner")
        batch_op.drop_index(batch_op.f("ix_school_class_modified_at"))

    op.drop_table("school_class")
    with op.batch_alter_table("role", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_role_structure_id"))
        batch_op.drop_index("ix_role_scope_owner")
        batch_op.drop_index(batch_op.f("ix_role_person_id"))
        batch_op.drop_index(batch_op.f("ix_role_modified_at"))

    op.drop_table("role")
    with op.batch_alter_table("pupil_group", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_pupil_group_structure_id"))
        batch_op.drop_index("ix_pupil_group_scope_owner")
        batch_op.drop_index(batch_op.f("ix_pupil_group_modified_at"))

    op.drop_table("pupil_group")
    with op.batch_alter_table("person", schema=None) as batch_op:
        batch_op.drop_index("ix_person_scope_owner")
        batch_op.drop_index(batch_op.f("ix_person_modified_at"))

    op.drop_table("person")
    with op.batch_alter_table("level", schema=None) as batch_op:
        batch_op.drop_index("ix_level_scope_owner")
        batch_op.drop_index(batch_op.f("ix_level_modified_at"))
        batch_op.drop_index(batch_op.f("ix_level_code"))

    op.drop_table("level")
    with op.batch_alter_table("import_run", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_import_run_scope"))

    op.drop_table("import_run")
    with op.batch_alter_table("guardianship", schema=None) as batch_op:
        batch_op.drop_index("ix_guardianship_scope_owner")
        batch_op.drop_index(batch_op.f("ix_guardianship_pupil_id"))
        batch_op.drop_index(batch_op.f("ix_guardianship_modified_at"))
        batch_op.drop_index(batch_op.f("ix_guardianship_guardian_id"))

    op.drop_table("guardianship")
    with op.batch_alter_table("external_id", schema=None) as batch_op:
        batch_op.drop_index("ix_external_id_type_value")
        batch_op.drop_index(batch_op.f("ix_external_id_entity_id"))

    op.drop_table("external_id")
    with op.batch_alter_table("enrollment", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_enrollment_structure_id"))
        batch_op.drop_index("ix_enrollment_scope_owner")
        batch_op.drop_index(batch_op.f("ix_enrollment_person_id"))
        batch_op.drop_index(batch_op.f("ix_enrollment_modified_at"))
        batch_op.drop_index(batch_op.f("ix_enrollment_group_id"))
        batch_op.drop_index(batch_op.f("ix_enrollment_class_id"))

    op.drop_table("enrollment")
    op.drop_table("change_log")
