"""management reports: per-visit confirmation facts and the survey time, a patient's visits index

Revision ID: 0014
Revises: 0013
"""

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | Sequence[str] | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("appointment", schema=None) as b:
        b.add_column(sa.Column("confirmation", sa.String(length=16), nullable=True))
        b.add_column(sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True))
        b.add_column(sa.Column("operator_confirmed", sa.Boolean(), nullable=False, server_default=sa.false()))
        b.add_column(sa.Column("survey_sent_at", sa.DateTime(timezone=True), nullable=True))
        b.create_index("ix_appointment_patient_starts", ["patient_id", "starts_at"], unique=False)
    # Journeys recorded before this revision: the same facts from their stored history.
    from models.appointment import confirmation_facts

    bind = op.get_bind()
    table = sa.table(
        "appointment",
        sa.column("id", sa.String),
        sa.column("history", sa.JSON),
        sa.column("confirmation", sa.String),
        sa.column("confirmed_at", sa.DateTime(timezone=True)),
        sa.column("operator_confirmed", sa.Boolean),
        sa.column("survey_sent_at", sa.DateTime(timezone=True)),
    )
    for id_, history in bind.execute(sa.select(table.c.id, table.c.history)).all():
        f = confirmation_facts((datetime.fromisoformat(h["at"]), h["event"]) for h in history or [])
        if f.confirmation or f.operator_confirmed or f.survey_sent_at:
            bind.execute(
                table.update()
                .where(table.c.id == id_)
                .values(
                    confirmation=f.confirmation,
                    confirmed_at=f.confirmed_at,
                    operator_confirmed=f.operator_confirmed,
                    survey_sent_at=f.survey_sent_at,
                )
            )


def downgrade() -> None:
    with op.batch_alter_table("appointment", schema=None) as b:
        b.drop_index("ix_appointment_patient_starts")
        b.drop_column("survey_sent_at")
        b.drop_column("operator_confirmed")
        b.drop_column("confirmed_at")
        b.drop_column("confirmation")
