"""supervision: escalation steps, extensions, shelving, spot checks, supervisor topics, digest runs;
case escalation bookkeeping and category SLA units

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-21
"""
from alembic import op
import sqlalchemy as sa

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('digest_run',
    sa.Column('day', sa.String(length=8), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('recipients', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('day')
    )
    op.create_table('supervisor_topic',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('chat_id', sa.BigInteger(), nullable=False),
    sa.Column('area_code', sa.String(length=64), nullable=False),
    sa.Column('message_thread_id', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('chat_id', 'area_code', name='uq_supervisor_topic_area')
    )
    op.create_table('spot_check',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('grid_code', sa.String(length=64), nullable=False),
    sa.Column('worker_id', sa.Integer(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('seed', sa.String(length=64), nullable=False),
    sa.Column('requested_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('photo_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('photo_path', sa.String(length=500), nullable=True),
    sa.Column('location_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('lat', sa.Float(), nullable=True),
    sa.Column('lon', sa.Float(), nullable=True),
    sa.Column('live', sa.Boolean(), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('escalated_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('note', sa.String(length=500), nullable=True),
    sa.ForeignKeyConstraint(['worker_id'], ['person.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('spot_check', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_spot_check_due_at'), ['due_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_spot_check_grid_code'), ['grid_code'], unique=False)
        batch_op.create_index(batch_op.f('ix_spot_check_status'), ['status'], unique=False)
        batch_op.create_index(batch_op.f('ix_spot_check_worker_id'), ['worker_id'], unique=False)

    op.create_table('escalation_step',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('case_id', sa.Integer(), nullable=False),
    sa.Column('round', sa.Integer(), nullable=False),
    sa.Column('step', sa.String(length=64), nullable=False),
    sa.Column('level', sa.String(length=16), nullable=False),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('fired_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('notified_person_ids', sa.JSON(), nullable=False),
    sa.Column('notified_chat_ids', sa.JSON(), nullable=False),
    sa.Column('repeats', sa.Integer(), nullable=False),
    sa.Column('next_repeat_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('acknowledged_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('acknowledged_by_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['acknowledged_by_id'], ['person.id'], ),
    sa.ForeignKeyConstraint(['case_id'], ['case.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('case_id', 'round', 'step', name='uq_escalation_step_once')
    )
    with op.batch_alter_table('escalation_step', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_escalation_step_case_id'), ['case_id'], unique=False)
        batch_op.create_index('ix_escalation_step_repeat', ['next_repeat_at'], unique=False)

    op.create_table('extension',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('case_id', sa.Integer(), nullable=False),
    sa.Column('requested_by_id', sa.Integer(), nullable=True),
    sa.Column('reason', sa.String(length=1000), nullable=False),
    sa.Column('working_minutes', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('requested_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('decided_by_id', sa.Integer(), nullable=True),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('decision_note', sa.String(length=1000), nullable=True),
    sa.Column('old_due_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('new_due_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['case_id'], ['case.id'], ),
    sa.ForeignKeyConstraint(['decided_by_id'], ['person.id'], ),
    sa.ForeignKeyConstraint(['requested_by_id'], ['person.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('extension', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_extension_case_id'), ['case_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_extension_status'), ['status'], unique=False)

    op.create_table('shelving',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('case_id', sa.Integer(), nullable=False),
    sa.Column('shelved_by_id', sa.Integer(), nullable=True),
    sa.Column('reason', sa.String(length=1000), nullable=False),
    sa.Column('review_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('shelved_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('accept_left_minutes', sa.Integer(), nullable=True),
    sa.Column('handle_left_minutes', sa.Integer(), nullable=True),
    sa.Column('unshelved_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('unshelved_by_id', sa.Integer(), nullable=True),
    sa.Column('review_pinged_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['case_id'], ['case.id'], ),
    sa.ForeignKeyConstraint(['shelved_by_id'], ['person.id'], ),
    sa.ForeignKeyConstraint(['unshelved_by_id'], ['person.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('shelving', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_shelving_case_id'), ['case_id'], unique=False)

    with op.batch_alter_table('case', schema=None) as batch_op:
        batch_op.add_column(sa.Column('next_escalation_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('escalation_round', sa.Integer(), server_default='0', nullable=False))
        batch_op.create_index(batch_op.f('ix_case_next_escalation_at'), ['next_escalation_at'], unique=False)

    with op.batch_alter_table('category', schema=None) as batch_op:
        batch_op.add_column(sa.Column('accept_sla_unit', sa.String(length=16), server_default='clock_minutes', nullable=False))
        batch_op.add_column(sa.Column('handle_sla_unit', sa.String(length=16), server_default='clock_minutes', nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('category', schema=None) as batch_op:
        batch_op.drop_column('handle_sla_unit')
        batch_op.drop_column('accept_sla_unit')

    with op.batch_alter_table('case', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_case_next_escalation_at'))
        batch_op.drop_column('escalation_round')
        batch_op.drop_column('next_escalation_at')

    with op.batch_alter_table('shelving', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_shelving_case_id'))

    op.drop_table('shelving')
    with op.batch_alter_table('extension', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_extension_status'))
        batch_op.drop_index(batch_op.f('ix_extension_case_id'))

    op.drop_table('extension')
    with op.batch_alter_table('escalation_step', schema=None) as batch_op:
        batch_op.drop_index('ix_escalation_step_repeat')
        batch_op.drop_index(batch_op.f('ix_escalation_step_case_id'))

    op.drop_table('escalation_step')
    with op.batch_alter_table('spot_check', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_spot_check_worker_id'))
        batch_op.drop_index(batch_op.f('ix_spot_check_status'))
        batch_op.drop_index(batch_op.f('ix_spot_check_grid_code'))
        batch_op.drop_index(batch_op.f('ix_spot_check_due_at'))

    op.drop_table('spot_check')
    op.drop_table('supervisor_topic')
    op.drop_table('digest_run')
