"""MIS import: clinic drop-folder code, MIS ids on visits and patients, import runs and rows

Revision ID: 0011
Revises: 0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = ("imports",)
depends_on: str | Sequence[str] | None = None

S = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    with op.batch_alter_table("clinic") as b:
        b.add_column(sa.Column("code", S(length=32), nullable=True))
        b.create_unique_constraint("uq_clinic_code", ["code"])
    with op.batch_alter_table("patient") as b:
        b.add_column(sa.Column("last_visit_on", sa.Date(), nullable=True))
    with op.batch_alter_table("appointment") as b:
        b.add_column(sa.Column("mis_visit_id", S(length=64), nullable=True))
        b.create_unique_constraint("uq_appointment_mis_visit", ["clinic_id", "mis_visit_id"])
    op.create_table(
        "patient_mis_id",
        sa.Column("clinic_id", S(length=32), sa.ForeignKey("clinic.id"), primary_key=True),
        sa.Column("mis_patient_id", S(length=64), primary_key=True),
        sa.Column("patient_id", S(length=32), sa.ForeignKey("patient.id"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_patient_mis_id_patient_id", "patient_mis_id", ["patient_id"])
    op.create_table(
        "import_mapping",
        sa.Column("clinic_id", S(length=32), sa.ForeignKey("clinic.id"), primary_key=True),
        sa.Column("columns", sa.JSON(), nullable=False),
        sa.Column("authoritative_days", sa.Boolean(), nullable=False),
        sa.Column("daily_at", S(length=5), nullable=False),
        sa.Column("default_duration_minutes", sa.Integer(), nullable=False),
        sa.Column("default_service", S(length=200), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "import_run",
        sa.Column("id", S(length=32), primary_key=True),
        sa.Column("clinic_id", S(length=32), sa.ForeignKey("clinic.id"), nullable=False),
        sa.Column("kind", sa.Enum("visits", "completed", "patients", name="importkind", native_enum=False, length=32), nullable=False),
        sa.Column(
            "state",
            sa.Enum("queued", "running", "completed", "failed", name="importstate", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column("source", S(length=16), nullable=False),
        sa.Column("file_name", S(length=255), nullable=False),
        sa.Column("sha256", S(length=64), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("dedup_key", S(length=255), nullable=True),
        sa.Column("workflow_id", S(length=255), nullable=False),
        sa.Column("total_rows", sa.Integer(), nullable=True),
        sa.Column("headers", sa.JSON(), nullable=False),
        sa.Column("error", S(length=1000), nullable=True),
        sa.Column("created_by", S(length=32), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("dedup_key", name="uq_import_run_dedup_key"),
    )
    op.create_index("ix_import_run_clinic_id", "import_run", ["clinic_id"])
    op.create_index("ix_import_run_state", "import_run", ["state"])
    op.create_index("ix_import_run_sha256", "import_run", ["sha256"])
    op.create_table(
        "import_row",
        sa.Column("import_id", S(length=32), sa.ForeignKey("import_run.id"), primary_key=True),
        sa.Column("row", sa.Integer(), primary_key=True),
        sa.Column("batch", sa.Integer(), nullable=False),
        sa.Column("phase", sa.Integer(), nullable=False),
        sa.Column(
            "state", sa.Enum("pending", "committed", "done", name="rowstate", native_enum=False, length=32), nullable=False
        ),
        sa.Column("outcome", S(length=16), nullable=True),
        sa.Column("column", S(length=100), nullable=True),
        sa.Column("reason", S(length=500), nullable=True),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("appointment_id", S(length=32), nullable=True),
        sa.Column("patient_id", S(length=32), nullable=True),
    )
    op.create_index("ix_import_row_batch", "import_row", ["import_id", "batch"])


def downgrade() -> None:
    op.drop_table("import_row")
    op.drop_table("import_run")
    op.drop_table("import_mapping")
    op.drop_table("patient_mis_id")
    with op.batch_alter_table("appointment") as b:
        b.drop_constraint("uq_appointment_mis_visit", type_="unique")
        b.drop_column("mis_visit_id")
    with op.batch_alter_table("patient") as b:
        b.drop_column("last_visit_on")
    with op.batch_alter_table("clinic") as b:
        b.drop_constraint("uq_clinic_code", type_="unique")
        b.drop_column("code")
