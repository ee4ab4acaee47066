"""patient.guardian_id indexed: inbound routing looks up a sender's dependants on every message

Revision ID: 0018
Revises: 0001
Create Date: 2026-11-27 07:05:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0018"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_patient_guardian_id", "patient", ["guardian_id"])


def downgrade() -> None:
    op.drop_index("ix_patient_guardian_id", table_name="patient")
