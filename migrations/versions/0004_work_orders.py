"""work orders: per-department tasks, offers, completions, verification cards, escalations

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21
"""
from alembic import op
import sqlalchemy as sa

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def _ts(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        'case_task',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('case_id', sa.Integer(), nullable=False),
        sa.Column('department_code', sa.String(length=64), nullable=False),
        sa.Column('lead', sa.Boolean(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('assignee_id', sa.Integer(), nullable=True),
        sa.Column('version', sa.Integer(), nullable=False),
        _ts('created_at'),
        _ts('updated_at'),
        _ts('accepted_at', nullable=True),
        _ts('done_at', nullable=True),
        sa.ForeignKeyConstraint(['assignee_id'], ['person.id']),
        sa.ForeignKeyConstraint(['case_id'], ['case.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('case_id', 'department_code', name='uq_case_task_department'),
    )
    with op.batch_alter_table('case_task', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_case_task_case_id'), ['case_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_case_task_status'), ['status'], unique=False)
        batch_op.create_index(batch_op.f('ix_case_task_assignee_id'), ['assignee_id'], unique=False)

    op.create_table(
        'work_offer',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('case_id', sa.Integer(), nullable=False),
        sa.Column('task_id', sa.Integer(), nullable=False),
        sa.Column('worker_id', sa.Integer(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('message_notification_id', sa.Integer(), nullable=True),
        sa.Column('follow_up_notification_ids', sa.JSON(), nullable=False),
        sa.Column('note', sa.String(length=2000), nullable=True),
        _ts('created_at'),
        _ts('closed_at', nullable=True),
        sa.ForeignKeyConstraint(['case_id'], ['case.id']),
        sa.ForeignKeyConstraint(['task_id'], ['case_task.id']),
        sa.ForeignKeyConstraint(['worker_id'], ['person.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('work_offer', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_work_offer_case_id'), ['case_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_work_offer_task_id'), ['task_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_work_offer_worker_id'), ['worker_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_work_offer_status'), ['status'], unique=False)

    op.create_table(
        'completion',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('case_id', sa.Integer(), nullable=False),
        sa.Column('task_id', sa.Integer(), nullable=False),
        sa.Column('worker_id', sa.Integer(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('photo_ids', sa.JSON(), nullable=False),
        sa.Column('lat', sa.Float(), nullable=True),
        sa.Column('lon', sa.Float(), nullable=True),
        sa.Column('accuracy_m', sa.Float(), nullable=True),
        sa.Column('live', sa.Boolean(), nullable=False),
        sa.Column('distance_m', sa.Float(), nullable=True),
        sa.Column('allowed_m', sa.Float(), nullable=True),
        _ts('location_at', nullable=True),
        sa.Column('location_message_id', sa.BigInteger(), nullable=True),
        _ts('last_seen_at', nullable=True),
        sa.Column('problems', sa.JSON(), nullable=False),
        sa.Column('flagged', sa.Boolean(), nullable=False),
        sa.Column('proof_id', sa.Integer(), nullable=True),
        _ts('started_at'),
        _ts('submitted_at', nullable=True),
        _ts('decided_at', nullable=True),
        sa.Column('decided_by_id', sa.Integer(), nullable=True),
        sa.Column('decision_note', sa.String(length=2000), nullable=True),
        sa.ForeignKeyConstraint(['case_id'], ['case.id']),
        sa.ForeignKeyConstraint(['task_id'], ['case_task.id']),
        sa.ForeignKeyConstraint(['worker_id'], ['person.id']),
        sa.ForeignKeyConstraint(['proof_id'], ['proof.id']),
        sa.ForeignKeyConstraint(['decided_by_id'], ['person.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('completion', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_completion_case_id'), ['case_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_completion_task_id'), ['task_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_completion_worker_id'), ['worker_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_completion_status'), ['status'], unique=False)

    op.create_table(
        'verification_request',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('case_id', sa.Integer(), nullable=False),
        sa.Column('supervisor_id', sa.Integer(), nullable=False),
        sa.Column('case_version', sa.Integer(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('notification_id', sa.Integer(), nullable=True),
        _ts('created_at'),
        _ts('closed_at', nullable=True),
        sa.ForeignKeyConstraint(['case_id'], ['case.id']),
        sa.ForeignKeyConstraint(['supervisor_id'], ['person.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('verification_request', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_verification_request_case_id'), ['case_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_verification_request_supervisor_id'), ['supervisor_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_verification_request_status'), ['status'], unique=False)

    op.create_table(
        'dispatch_escalation',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('case_id', sa.Integer(), nullable=False),
        sa.Column('task_id', sa.Integer(), nullable=True),
        sa.Column('area_code', sa.String(length=64), nullable=True),
        sa.Column('reason', sa.String(length=32), nullable=False),
        sa.Column('notified_person_ids', sa.JSON(), nullable=False),
        sa.Column('notified_chat_ids', sa.JSON(), nullable=False),
        _ts('created_at'),
        _ts('resolved_at', nullable=True),
        sa.ForeignKeyConstraint(['case_id'], ['case.id']),
        sa.ForeignKeyConstraint(['task_id'], ['case_task.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('dispatch_escalation', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_dispatch_escalation_case_id'), ['case_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_dispatch_escalation_resolved_at'), ['resolved_at'], unique=False)


def downgrade() -> None:
    op.drop_table('dispatch_escalation')
    op.drop_table('verification_request')
    op.drop_table('completion')
    op.drop_table('work_offer')
    op.drop_table('case_task')
