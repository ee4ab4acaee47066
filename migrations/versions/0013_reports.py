"""management reports: lead source on patients, clinic lead-source lists, first-visit flag

Revision ID: 0013
Revises: 0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = ("reports",)
depends_on: str | Sequence[str] | None = None

DEFAULT_LEAD_SOURCES = '["site", "call", "referral", "instagram", "facebook", "prodoctorov", "google", "walk_in", "other"]'


def upgrade() -> None:
    with op.batch_alter_table("patient", schema=None) as b:
        b.add_column(sa.Column("source", sa.String(length=32), nullable=True))
        b.create_index("ix_patient_source", ["source"], unique=False)
    with op.batch_alter_table("clinic", schema=None) as b:
        b.add_column(sa.Column("lead_sources", sa.JSON(), nullable=False, server_default=DEFAULT_LEAD_SOURCES))
    with op.batch_alter_table("appointment", schema=None) as b:
        b.add_column(sa.Column("first_visit", sa.Boolean(), nullable=False, server_default=sa.false()))
        b.create_index("ix_appointment_first_visit", ["first_visit"], unique=False)
        # the reports read one clinic's visits in a period
        b.create_index("ix_appointment_clinic_starts", ["clinic_id", "starts_at"], unique=False)
    # Visits booked before this revision: the first of each patient (or first after six months).
    bind = op.get_bind()
    rows = bind.execute(sa.text("SELECT id, patient_id, starts_at, stage FROM appointment")).all()
    if rows:
        from models.appointment import first_visit_flags

        by_patient: dict[str, list[tuple[str, object, str]]] = {}
        for id_, pid, starts, stage in rows:
            if isinstance(starts, str):
                from datetime import datetime

                starts = datetime.fromisoformat(starts)
            by_patient.setdefault(pid, []).append((id_, starts, stage))
        first = [i for visits in by_patient.values() for i, f in first_visit_flags(visits).items() if f]  # type: ignore[arg-type]
        for k in range(0, len(first), 1000):
            bind.execute(
                sa.text("UPDATE appointment SET first_visit = :t WHERE id IN :ids").bindparams(
                    sa.bindparam("ids", expanding=True)
                ),
                {"t": True, "ids": first[k : k + 1000]},
            )


def downgrade() -> None:
    with op.batch_alter_table("appointment", schema=None) as b:
        b.drop_index("ix_appointment_clinic_starts")
        b.drop_index("ix_appointment_first_visit")
        b.drop_column("first_visit")
    with op.batch_alter_table("clinic", schema=None) as b:
        b.drop_column("lead_sources")
    with op.batch_alter_table("patient", schema=None) as b:
        b.drop_index("ix_patient_source")
        b.drop_column("source")
