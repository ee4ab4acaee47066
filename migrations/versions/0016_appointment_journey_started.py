"""appointment.journey_started: a booking whose journey is not known to run yet

Revision ID: 0016
Revises: 0002
Create Date: 2026-11-26 15:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Existing rows were booked by an API that started their journey before answering.
    with op.batch_alter_table("appointment") as batch:
        batch.add_column(sa.Column("journey_started", sa.Boolean(), nullable=False, server_default=sa.true()))
        batch.create_index("ix_appointment_journey_started", ["journey_started"])


def downgrade() -> None:
    with op.batch_alter_table("appointment") as batch:
        batch.drop_index("ix_appointment_journey_started")
        batch.drop_column("journey_started")
