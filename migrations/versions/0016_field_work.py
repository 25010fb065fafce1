"""Field work: progress notes, off-duty handovers, camera snapshots of machine cases

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-04
"""
from alembic import op
import sqlalchemy as sa

revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'progress_note',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('case_id', sa.Integer(), nullable=False),
        sa.Column('task_id', sa.Integer(), nullable=False),
        sa.Column('worker_id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=24), nullable=False),
        sa.Column('text', sa.String(length=500), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['case_id'], ['case.id']),
        sa.ForeignKeyConstraint(['task_id'], ['case_task.id']),
        sa.ForeignKeyConstraint(['worker_id'], ['person.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_progress_note_case_id', 'progress_note', ['case_id'], unique=False)
    op.create_table(
        'off_duty_handover',
        sa.Column('worker_id', sa.Integer(), nullable=False),
        sa.Column('off_duty_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('release_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['worker_id'], ['person.id']),
        sa.PrimaryKeyConstraint('worker_id'),
    )
    op.create_index('ix_off_duty_handover_release_at', 'off_duty_handover', ['release_at'], unique=False)
    op.create_table(
        'case_snapshot',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('case_id', sa.Integer(), nullable=False),
        sa.Column('url', sa.String(length=1000), nullable=False),
        sa.Column('outcome', sa.String(length=16), nullable=False),
        sa.Column('photo_id', sa.Integer(), nullable=True),
        sa.Column('detail', sa.String(length=500), nullable=True),
        sa.Column('fetched_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['case_id'], ['case.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('case_id', 'url', name='uq_case_snapshot_url'),
    )
    op.create_index('ix_case_snapshot_case_id', 'case_snapshot', ['case_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_case_snapshot_case_id', table_name='case_snapshot')
    op.drop_table('case_snapshot')
    op.drop_index('ix_off_duty_handover_release_at', table_name='off_duty_handover')
    op.drop_table('off_duty_handover')
    op.drop_index('ix_progress_note_case_id', table_name='progress_note')
    op.drop_table('progress_note')
