"""spot checks: the round plan of each day, and what a worker's answer held

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23
"""
from alembic import op
import sqlalchemy as sa

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('spot_check_round',
    sa.Column('day', sa.String(length=8), nullable=False),
    sa.Column('round', sa.Integer(), nullable=False),
    sa.Column('seed', sa.String(length=64), nullable=False),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('checks', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('day', 'round')
    )
    with op.batch_alter_table('spot_check', schema=None) as batch_op:
        batch_op.add_column(sa.Column('accuracy_m', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('location_message_id', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('photo_phash', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('photo_problem', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('location_problem', sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('spot_check', schema=None) as batch_op:
        batch_op.drop_column('location_problem')
        batch_op.drop_column('photo_problem')
        batch_op.drop_column('photo_phash')
        batch_op.drop_column('location_message_id')
        batch_op.drop_column('accuracy_m')

    op.drop_table('spot_check_round')
