"""appointment.journey_revision: the journey's state counter the row shows

Revision ID: 0019
Revises: 0016
Create Date: 2026-11-27 19:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | Sequence[str] | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Existing rows: 0, written by no journey that carries it; their journeys' next full row
    # write sets it (until then a write beside the journey does not land and falls back).
    with op.batch_alter_table("appointment") as batch:
        batch.add_column(sa.Column("journey_revision", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("appointment") as batch:
        batch.drop_column("journey_revision")
