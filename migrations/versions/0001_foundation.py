"""foundation

Revision ID: 0001
Revises: 
Create Date: 2026-11-23 22:58:29.725472
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = '0001'
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("foundation",)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table('clinic',
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('address', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
    sa.Column('phone', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('timezone', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('review_url', sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=True),
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('policy', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('message_log',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('idempotency_key', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('direction', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('channel', sa.Enum('whatsapp', 'telegram', 'sms', 'voice', name='channel', native_enum=False, length=32), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('patient_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('recipient_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('clinic_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('subject_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('workflow_id', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
    sa.Column('provider_message_id', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
    sa.Column('body', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('error', sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('idempotency_key', name='uq_message_log_idempotency_key')
    )
    with op.batch_alter_table('message_log', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_message_log_clinic_id'), ['clinic_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_message_log_patient_id'), ['patient_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_message_log_provider_message_id'), ['provider_message_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_message_log_subject_id'), ['subject_id'], unique=False)

    op.create_table('operator_task',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('dedup_key', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('state', sa.Enum('requested', 'in-progress', 'completed', 'cancelled', name='taskstate', native_enum=False, length=32), nullable=False),
    sa.Column('assigned_role', sa.Enum('front_desk', 'operator', 'doctor', 'accountant', 'deputy_director', 'director', 'ops', 'admin', name='role', native_enum=False, length=32), nullable=False),
    sa.Column('clinic_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('patient_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('subject_type', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('subject_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('workflow_id', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
    sa.Column('title', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
    sa.Column('details', sa.JSON(), nullable=False),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('completed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('completed_by', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('outcome', sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('dedup_key', name='uq_operator_task_dedup_key')
    )
    with op.batch_alter_table('operator_task', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_operator_task_clinic_id'), ['clinic_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_operator_task_kind'), ['kind'], unique=False)
        batch_op.create_index(batch_op.f('ix_operator_task_patient_id'), ['patient_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_operator_task_state'), ['state'], unique=False)
        batch_op.create_index(batch_op.f('ix_operator_task_subject_id'), ['subject_id'], unique=False)

    op.create_table('doctor',
    sa.Column('clinic_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('full_name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('specialty', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['clinic_id'], ['clinic.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('doctor', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_doctor_clinic_id'), ['clinic_id'], unique=False)

    op.create_table('patient',
    sa.Column('full_name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('phone', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('email', sqlmodel.sql.sqltypes.AutoString(length=320), nullable=True),
    sa.Column('birth_date', sa.Date(), nullable=True),
    sa.Column('preferred_channel', sa.Enum('whatsapp', 'telegram', 'sms', 'voice', name='channel', native_enum=False, length=32), nullable=False),
    sa.Column('telegram_chat_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('guardian_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('clinic_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('opted_out', sa.Boolean(), nullable=False),
    sa.Column('opted_out_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('loyalty_points', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['clinic_id'], ['clinic.id'], ),
    sa.ForeignKeyConstraint(['guardian_id'], ['patient.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('patient', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_patient_phone'), ['phone'], unique=False)
        batch_op.create_index(batch_op.f('ix_patient_telegram_chat_id'), ['telegram_chat_id'], unique=False)

    op.create_table('staff_user',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('username', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('password_hash', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('role', sa.Enum('front_desk', 'operator', 'doctor', 'accountant', 'deputy_director', 'director', 'ops', 'admin', name='role', native_enum=False, length=32), nullable=False),
    sa.Column('full_name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('email', sqlmodel.sql.sqltypes.AutoString(length=320), nullable=True),
    sa.Column('clinic_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['clinic_id'], ['clinic.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('staff_user', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_staff_user_username'), ['username'], unique=True)




def downgrade() -> None:

    with op.batch_alter_table('staff_user', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_staff_user_username'))

    op.drop_table('staff_user')
    with op.batch_alter_table('patient', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_patient_telegram_chat_id'))
        batch_op.drop_index(batch_op.f('ix_patient_phone'))

    op.drop_table('patient')
    with op.batch_alter_table('doctor', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_doctor_clinic_id'))

    op.drop_table('doctor')
    with op.batch_alter_table('operator_task', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_operator_task_subject_id'))
        batch_op.drop_index(batch_op.f('ix_operator_task_state'))
        batch_op.drop_index(batch_op.f('ix_operator_task_patient_id'))
        batch_op.drop_index(batch_op.f('ix_operator_task_kind'))
        batch_op.drop_index(batch_op.f('ix_operator_task_clinic_id'))

    op.drop_table('operator_task')
    with op.batch_alter_table('message_log', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_message_log_subject_id'))
        batch_op.drop_index(batch_op.f('ix_message_log_provider_message_id'))
        batch_op.drop_index(batch_op.f('ix_message_log_patient_id'))
        batch_op.drop_index(batch_op.f('ix_message_log_clinic_id'))

    op.drop_table('message_log')
    op.drop_table('clinic')

