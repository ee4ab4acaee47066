"""patient texts: clinic/patient language, WhatsApp template per clinic, message templates,
service catalogue, appointment.service_code

Revision ID: 0005_texts
Revises: 0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0005_texts"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = ("texts",)
depends_on: str | Sequence[str] | None = None

S = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    with op.batch_alter_table("clinic") as b:
        b.add_column(sa.Column("language", S(length=8), nullable=False, server_default="ru"))
        b.add_column(
            sa.Column("whatsapp_template", S(length=512), nullable=False, server_default="appointment_notice")
        )
        b.add_column(sa.Column("whatsapp_template_language", S(length=16), nullable=True))
    with op.batch_alter_table("patient") as b:
        b.add_column(sa.Column("language", S(length=8), nullable=True))
    with op.batch_alter_table("appointment") as b:
        b.add_column(sa.Column("service_code", S(length=64), nullable=True))
    op.create_table(
        "message_template",
        sa.Column("id", S(length=32), nullable=False),
        sa.Column("clinic_id", S(length=32), nullable=False),
        sa.Column("kind", S(length=64), nullable=False),
        sa.Column("language", S(length=8), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("updated_by", S(length=32), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["clinic_id"], ["clinic.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("clinic_id", "kind", "language", name="uq_message_template_kind_language"),
    )
    op.create_index("ix_message_template_clinic_id", "message_template", ["clinic_id"])
    op.create_table(
        "service",
        sa.Column("id", S(length=32), nullable=False),
        sa.Column("clinic_id", S(length=32), nullable=False),
        sa.Column("code", S(length=64), nullable=False),
        sa.Column("name", S(length=200), nullable=False),
        sa.Column("aliases", sa.JSON(), nullable=False),
        sa.Column("specialty", S(length=100), nullable=True),
        sa.Column("duration_minutes", sa.Integer(), nullable=False),
        sa.Column("memo_before", S(length=64), nullable=True),
        sa.Column("memo_after", S(length=64), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("extra", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["clinic_id"], ["clinic.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("clinic_id", "code", name="uq_service_clinic_code"),
    )
    op.create_index("ix_service_clinic_id", "service", ["clinic_id"])


def downgrade() -> None:
    op.drop_index("ix_service_clinic_id", table_name="service")
    op.drop_table("service")
    op.drop_index("ix_message_template_clinic_id", table_name="message_template")
    op.drop_table("message_template")
    with op.batch_alter_table("appointment") as b:
        b.drop_column("service_code")
    with op.batch_alter_table("patient") as b:
        b.drop_column("language")
    with op.batch_alter_table("clinic") as b:
        b.drop_column("whatsapp_template_language")
        b.drop_column("whatsapp_template")
        b.drop_column("language")
