"""map revision: one row every process reads to tell its grid index is stale

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-21
"""
from alembic import op
import sqlalchemy as sa

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table('map_revision',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('changed_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    # The one row exists from the start, so concurrent imports lock it rather than race to insert it.
    op.bulk_insert(table, [{'id': 1, 'revision': 0, 'changed_at': None}])


def downgrade() -> None:
    op.drop_table('map_revision')
