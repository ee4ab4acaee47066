"""access: staff token revocation and the login throttle

Revision ID: 0008
Revises: 0001
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from models.core import UTCDateTime

revision: str = '0008'
down_revision: str | Sequence[str] | None = '0001'
branch_labels: str | Sequence[str] | None = ('access',)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('staff_user') as batch:
        batch.add_column(sa.Column('tokens_valid_after', UTCDateTime(), nullable=True))
    op.create_table(
        'login_failure',
        sa.Column('id', sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column('key', sa.String(length=200), nullable=False),
        sa.Column('at', UTCDateTime(), nullable=False),
    )
    op.create_index('ix_login_failure_key_at', 'login_failure', ['key', 'at'])


def downgrade() -> None:
    op.drop_index('ix_login_failure_key_at', table_name='login_failure')
    op.drop_table('login_failure')
    with op.batch_alter_table('staff_user') as batch:
        batch.drop_column('tokens_valid_after')
