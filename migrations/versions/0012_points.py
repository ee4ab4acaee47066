"""points_entry: the bonus-points ledger (balance stays on patient.loyalty_points)

Revision ID: p012
Revises: 0004
Create Date: 2026-11-26 17:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "p012"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = ("points",)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "points_entry",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("patient_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("delta", sa.Integer(), nullable=False),
        sa.Column("balance_after", sa.Integer(), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("reason", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("plan_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("staff_user_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["patient_id"], ["patient.id"]),
        sa.ForeignKeyConstraint(["plan_id"], ["treatment_plan.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_points_entry_patient_at", "points_entry", ["patient_id", "created_at"])
    op.create_index("uq_points_entry_plan_kind", "points_entry", ["plan_id", "kind"], unique=True)


def downgrade() -> None:
    op.drop_index("uq_points_entry_plan_kind", table_name="points_entry")
    op.drop_index("ix_points_entry_patient_at", table_name="points_entry")
    op.drop_table("points_entry")
