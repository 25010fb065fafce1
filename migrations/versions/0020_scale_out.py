"""Scale-out: the inbox's chat key and holder (one chat's updates in order across processes); job leases

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-04
"""
from alembic import op
import sqlalchemy as sa

revision = '0020'
down_revision = '0019'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('inbox_message', schema=None) as batch_op:
        batch_op.add_column(sa.Column('chat_key', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('holder', sa.String(length=64), nullable=True))
    op.create_table(
        'job_lease',
        sa.Column('name', sa.String(length=64), nullable=False),
        sa.Column('holder', sa.String(length=128), nullable=False),
        sa.Column('lease_until', sa.DateTime(timezone=True), nullable=False),
        sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('runs', sa.Integer(), nullable=False, server_default='0'),
        sa.Column('last_error', sa.String(length=2000), nullable=True),
        sa.PrimaryKeyConstraint('name'),
    )


def downgrade() -> None:
    op.drop_table('job_lease')
    with op.batch_alter_table('inbox_message', schema=None) as batch_op:
        batch_op.drop_column('holder')
        batch_op.drop_column('chat_key')
