"""conversations: open questions, message thread links, a clinic's WhatsApp reply template

Revision ID: c010
Revises: 0001
Create Date: 2026-11-26 15:40:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = 'c010'
down_revision: str | Sequence[str] | None = '0001'
branch_labels: str | Sequence[str] | None = ('conversations',)
depends_on: str | Sequence[str] | None = None

S = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    op.create_table(
        'open_question',
        sa.Column('id', S(length=32), nullable=False),
        sa.Column('message_key', S(length=255), nullable=False),
        sa.Column('message_id', S(length=32), nullable=True),
        sa.Column('kind', S(length=64), nullable=False),
        sa.Column('state', S(length=16), nullable=False),
        sa.Column('patient_id', S(length=32), nullable=False),
        sa.Column('recipient_id', S(length=32), nullable=False),
        sa.Column('clinic_id', S(length=32), nullable=True),
        sa.Column('subject_type', S(length=32), nullable=False),
        sa.Column('subject_id', S(length=64), nullable=False),
        sa.Column('subject_version', sa.Integer(), nullable=True),
        sa.Column('subject_state', S(length=64), nullable=True),
        sa.Column('workflow_id', S(length=255), nullable=False),
        sa.Column('signal', S(length=64), nullable=False),
        sa.Column('answers', sa.JSON(), nullable=False),
        sa.Column('channel', S(length=16), nullable=True),
        sa.Column('asked_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('open_until', sa.DateTime(timezone=True), nullable=True),
        sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('closed_reason', S(length=200), nullable=True),
        sa.Column('answer_message_id', S(length=32), nullable=True),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('message_key', name='uq_open_question_message_key'),
    )
    op.create_index('ix_open_question_state', 'open_question', ['state'])
    op.create_index('ix_open_question_patient_id', 'open_question', ['patient_id'])
    op.create_index('ix_open_question_recipient_id', 'open_question', ['recipient_id'])
    op.create_index('ix_open_question_subject_id', 'open_question', ['subject_id'])
    op.create_index('ix_open_question_asked_at', 'open_question', ['asked_at'])
    with op.batch_alter_table('message_log') as b:
        b.add_column(sa.Column('subject_type', S(length=32), nullable=True))
        b.add_column(sa.Column('about_patient_id', S(length=32), nullable=True))
        b.add_column(sa.Column('question_id', S(length=32), nullable=True))
        b.add_column(sa.Column('task_id', S(length=32), nullable=True))
        b.add_column(sa.Column('sent_by', S(length=32), nullable=True))
        b.create_index('ix_message_log_about_patient_id', ['about_patient_id'])
    with op.batch_alter_table('clinic') as b:
        b.add_column(sa.Column('whatsapp_reply_template', S(length=512), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('clinic') as b:
        b.drop_column('whatsapp_reply_template')
    with op.batch_alter_table('message_log') as b:
        b.drop_index('ix_message_log_about_patient_id')
        for c in ('sent_by', 'task_id', 'question_id', 'about_patient_id', 'subject_type'):
            b.drop_column(c)
    op.drop_table('open_question')
