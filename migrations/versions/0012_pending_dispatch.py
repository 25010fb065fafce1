"""pending_dispatch: registered cases waiting for the asynchronous dispatcher

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04
"""
from alembic import op
import sqlalchemy as sa

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'pending_dispatch',
        sa.Column('case_id', sa.Integer(), sa.ForeignKey('case.id'), primary_key=True),
        sa.Column('queued_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('not_before', sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index('ix_pending_dispatch_queued_at', 'pending_dispatch', ['queued_at'])
    op.create_index('ix_pending_dispatch_not_before', 'pending_dispatch', ['not_before'])


def downgrade() -> None:
    op.drop_index('ix_pending_dispatch_not_before', table_name='pending_dispatch')
    op.drop_index('ix_pending_dispatch_queued_at', table_name='pending_dispatch')
    op.drop_table('pending_dispatch')
