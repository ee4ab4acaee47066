"""campaigns: per-clinic campaign settings, one row per patient/kind/period, marketing opt-out

Revision ID: k012
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "k012"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = ("campaigns",)
depends_on: str | Sequence[str] | None = None

_S = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    with op.batch_alter_table("patient", schema=None) as b:
        b.add_column(sa.Column("marketing_opt_out", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.create_table(
        "campaign_setting",
        sa.Column("clinic_id", _S(length=32), nullable=False),
        sa.Column("kind", _S(length=16), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", _S(length=32), nullable=True),
        sa.ForeignKeyConstraint(["clinic_id"], ["clinic.id"]),
        sa.PrimaryKeyConstraint("clinic_id", "kind"),
    )
    op.create_table(
        "campaign_send",
        sa.Column("id", _S(length=32), nullable=False),
        sa.Column("clinic_id", _S(length=32), nullable=False),
        sa.Column("kind", _S(length=16), nullable=False),
        sa.Column("patient_id", _S(length=32), nullable=False),
        sa.Column("period", _S(length=64), nullable=False),
        sa.Column("state", _S(length=32), nullable=False),
        sa.Column("workflow_id", _S(length=255), nullable=False),
        sa.Column("facts", sa.JSON(), nullable=False),
        sa.Column("note", _S(length=300), nullable=True),
        sa.Column("task_id", _S(length=32), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["clinic_id"], ["clinic.id"]),
        sa.ForeignKeyConstraint(["patient_id"], ["patient.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("clinic_id", "kind", "patient_id", "period", name="uq_campaign_send_period"),
    )
    op.create_index("ix_campaign_send_patient_id", "campaign_send", ["patient_id"], unique=False)
    op.create_index("ix_campaign_send_clinic_kind_state", "campaign_send", ["clinic_id", "kind", "state"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_campaign_send_clinic_kind_state", table_name="campaign_send")
    op.drop_index("ix_campaign_send_patient_id", table_name="campaign_send")
    op.drop_table("campaign_send")
    op.drop_table("campaign_setting")
    with op.batch_alter_table("patient", schema=None) as b:
        b.drop_column("marketing_opt_out")
