"""Patrol reports (巡查上报): whether a worker's own report was kept by its finder or handed to dispatch

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-04
"""
from alembic import op
import sqlalchemy as sa

revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'patrol_report',
        sa.Column('case_id', sa.Integer(), nullable=False),
        sa.Column('finder_id', sa.Integer(), nullable=False),
        sa.Column('handed_to_dispatch', sa.Boolean(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['case_id'], ['case.id']),
        sa.ForeignKeyConstraint(['finder_id'], ['person.id']),
        sa.PrimaryKeyConstraint('case_id'),
    )
    op.create_index('ix_patrol_report_finder_id', 'patrol_report', ['finder_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_patrol_report_finder_id', table_name='patrol_report')
    op.drop_table('patrol_report')
