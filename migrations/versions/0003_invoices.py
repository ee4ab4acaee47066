"""invoices: uploaded files, suppliers, payer entities, the invoice registry, e-mail log

Revision ID: 0003
Revises: 0001
Create Date: 2026-11-23 23:07:49.088583
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = '0003'
down_revision: str | Sequence[str] | None = '0001'
branch_labels: str | Sequence[str] | None = ('invoices',)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('email_log',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('idempotency_key', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('workflow_id', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
    sa.Column('subject', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
    sa.Column('recipients', sa.Integer(), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('error', sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('idempotency_key', name='uq_email_log_idempotency_key')
    )
    op.create_table('invoice',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('workflow_id', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('state', sa.Enum('submitted', 'returned_for_rework', 'approved', 'rejected', 'paid', 'awaiting_closing_documents', 'documents_submitted', 'completed', name='invoicestate', native_enum=False, length=32), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('initiator_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('category', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('expense_type', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('amount', sa.Numeric(precision=14, scale=2), nullable=False),
    sa.Column('currency', sqlmodel.sql.sqltypes.AutoString(length=3), nullable=False),
    sa.Column('invoice_file_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('comment', sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=True),
    sa.Column('payer_entity_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('supplier_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('paid_on', sa.Date(), nullable=True),
    sa.Column('closing_file_ids', sa.JSON(), nullable=False),
    sa.Column('actions', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('invoice', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_invoice_amount'), ['amount'], unique=False)
        batch_op.create_index(batch_op.f('ix_invoice_category'), ['category'], unique=False)
        batch_op.create_index(batch_op.f('ix_invoice_expense_type'), ['expense_type'], unique=False)
        batch_op.create_index(batch_op.f('ix_invoice_initiator_id'), ['initiator_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_invoice_paid_on'), ['paid_on'], unique=False)
        batch_op.create_index(batch_op.f('ix_invoice_payer_entity_id'), ['payer_entity_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_invoice_state'), ['state'], unique=False)
        batch_op.create_index(batch_op.f('ix_invoice_supplier_id'), ['supplier_id'], unique=False)

    op.create_table('payer_entity',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('tax_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('tax_id')
    )
    with op.batch_alter_table('payer_entity', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_payer_entity_name'), ['name'], unique=False)

    op.create_table('stored_file',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('content_type', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('sha256', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('uploaded_by', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('stored_file', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_stored_file_sha256'), ['sha256'], unique=False)
        batch_op.create_index(batch_op.f('ix_stored_file_uploaded_by'), ['uploaded_by'], unique=False)

    op.create_table('supplier',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('tax_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('tax_id')
    )
    with op.batch_alter_table('supplier', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_supplier_name'), ['name'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('supplier', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_supplier_name'))

    op.drop_table('supplier')
    with op.batch_alter_table('stored_file', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_stored_file_uploaded_by'))
        batch_op.drop_index(batch_op.f('ix_stored_file_sha256'))

    op.drop_table('stored_file')
    with op.batch_alter_table('payer_entity', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_payer_entity_name'))

    op.drop_table('payer_entity')
    with op.batch_alter_table('invoice', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_invoice_supplier_id'))
        batch_op.drop_index(batch_op.f('ix_invoice_state'))
        batch_op.drop_index(batch_op.f('ix_invoice_payer_entity_id'))
        batch_op.drop_index(batch_op.f('ix_invoice_paid_on'))
        batch_op.drop_index(batch_op.f('ix_invoice_initiator_id'))
        batch_op.drop_index(batch_op.f('ix_invoice_expense_type'))
        batch_op.drop_index(batch_op.f('ix_invoice_category'))
        batch_op.drop_index(batch_op.f('ix_invoice_amount'))

    op.drop_table('invoice')
    op.drop_table('email_log')
