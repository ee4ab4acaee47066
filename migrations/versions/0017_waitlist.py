"""waiting list: waitlist_entry, slot_offer, appointment.source

Revision ID: w012
Revises: 0002
Create Date: 2026-11-26 19:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "w012"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = ("waitlist",)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "waitlist_entry",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("clinic_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("patient_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("doctor_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("specialty", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
        sa.Column("service", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("service_code", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("duration_minutes", sa.Integer(), nullable=True),
        sa.Column("days", sa.JSON(), nullable=False),
        sa.Column("windows", sa.JSON(), nullable=False),
        sa.Column("until", sa.Date(), nullable=False),
        sa.Column("note", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
        sa.Column("state", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("booked_appointment_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("created_by", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["clinic_id"], ["clinic.id"]),
        sa.ForeignKeyConstraint(["patient_id"], ["patient.id"]),
        sa.ForeignKeyConstraint(["doctor_id"], ["doctor.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_waitlist_entry_clinic_state", "waitlist_entry", ["clinic_id", "state", "created_at"])
    op.create_index("ix_waitlist_entry_patient_id", "waitlist_entry", ["patient_id"])
    op.create_table(
        "slot_offer",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("freed_key", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("clinic_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("doctor_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("duration_minutes", sa.Integer(), nullable=False),
        sa.Column("freed_by", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("reason", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("state", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("workflow_id", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("journey_started", sa.Boolean(), nullable=False),
        sa.Column("offered", sa.Integer(), nullable=False),
        sa.Column("booked_appointment_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("waitlist_entry_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["clinic_id"], ["clinic.id"]),
        sa.ForeignKeyConstraint(["doctor_id"], ["doctor.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("freed_key", name="uq_slot_offer_freed_key"),
    )
    op.create_index("ix_slot_offer_clinic_id", "slot_offer", ["clinic_id"])
    op.create_index("ix_slot_offer_journey_started", "slot_offer", ["journey_started"])
    with op.batch_alter_table("appointment") as batch:
        batch.add_column(sa.Column("source", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True))
        batch.create_index("ix_appointment_source", ["source"])


def downgrade() -> None:
    with op.batch_alter_table("appointment") as batch:
        batch.drop_index("ix_appointment_source")
        batch.drop_column("source")
    op.drop_index("ix_slot_offer_journey_started", table_name="slot_offer")
    op.drop_index("ix_slot_offer_clinic_id", table_name="slot_offer")
    op.drop_table("slot_offer")
    op.drop_index("ix_waitlist_entry_patient_id", table_name="waitlist_entry")
    op.drop_index("ix_waitlist_entry_clinic_state", table_name="waitlist_entry")
    op.drop_table("waitlist_entry")
