"""Life-safety alarms: elder roster, duty roster, committee contacts, welfare checks

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-04
"""
from alembic import op
import sqlalchemy as sa


revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('area_contact',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('area_code', sa.String(length=64), nullable=False),
    sa.Column('role', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('phone', sa.String(length=32), nullable=False),
    sa.Column('chat_id', sa.BigInteger(), nullable=True),
    sa.Column('locale', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('area_contact', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_area_contact_area_code'), ['area_code'], unique=False)

    op.create_table('coverage_gap',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('area_code', sa.String(length=64), nullable=False),
    sa.Column('starts_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ends_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('alerted_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('area_code', 'starts_at', name='uq_coverage_gap_start')
    )
    with op.batch_alter_table('coverage_gap', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_coverage_gap_area_code'), ['area_code'], unique=False)

    op.create_table('elder',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('address', sa.String(length=500), nullable=False),
    sa.Column('grid_code', sa.String(length=64), nullable=False),
    sa.Column('lat', sa.Float(), nullable=True),
    sa.Column('lon', sa.Float(), nullable=True),
    sa.Column('key_holder_name', sa.String(length=200), nullable=False),
    sa.Column('key_holder_phone', sa.String(length=32), nullable=False),
    sa.Column('contacts', sa.JSON(), nullable=False),
    sa.Column('consent_by', sa.String(length=200), nullable=False),
    sa.Column('consent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('purged_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('elder', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_elder_ended_at'), ['ended_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_elder_grid_code'), ['grid_code'], unique=False)

    op.create_table('duty_shift',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('area_code', sa.String(length=64), nullable=False),
    sa.Column('person_id', sa.Integer(), nullable=False),
    sa.Column('weekdays', sa.JSON(), nullable=False),
    sa.Column('start_minute', sa.Integer(), nullable=False),
    sa.Column('end_minute', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['person_id'], ['person.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('duty_shift', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_duty_shift_area_code'), ['area_code'], unique=False)
        batch_op.create_index(batch_op.f('ix_duty_shift_person_id'), ['person_id'], unique=False)

    op.create_table('elder_device',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('elder_id', sa.Integer(), nullable=False),
    sa.Column('device_id', sa.String(length=128), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.ForeignKeyConstraint(['elder_id'], ['elder.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('elder_device', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_elder_device_device_id'), ['device_id'], unique=True)
        batch_op.create_index(batch_op.f('ix_elder_device_elder_id'), ['elder_id'], unique=False)

    op.create_table('welfare_check',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('case_id', sa.Integer(), nullable=False),
    sa.Column('elder_id', sa.Integer(), nullable=False),
    sa.Column('device_id', sa.String(length=128), nullable=False),
    sa.Column('outcome', sa.String(length=16), nullable=True),
    sa.Column('outcome_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('worker_id', sa.Integer(), nullable=True),
    sa.Column('lat', sa.Float(), nullable=True),
    sa.Column('lon', sa.Float(), nullable=True),
    sa.Column('distance_m', sa.Float(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['case_id'], ['case.id'], ),
    sa.ForeignKeyConstraint(['elder_id'], ['elder.id'], ),
    sa.ForeignKeyConstraint(['worker_id'], ['person.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('welfare_check', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_welfare_check_case_id'), ['case_id'], unique=True)
        batch_op.create_index(batch_op.f('ix_welfare_check_elder_id'), ['elder_id'], unique=False)

    op.create_table('family_notice',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('check_id', sa.Integer(), nullable=False),
    sa.Column('contact_name', sa.String(length=200), nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('chat_id', sa.BigInteger(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['check_id'], ['welfare_check.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('family_notice', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_family_notice_check_id'), ['check_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('family_notice', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_family_notice_check_id'))

    op.drop_table('family_notice')
    with op.batch_alter_table('welfare_check', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_welfare_check_elder_id'))
        batch_op.drop_index(batch_op.f('ix_welfare_check_case_id'))

    op.drop_table('welfare_check')
    with op.batch_alter_table('elder_device', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_elder_device_elder_id'))
        batch_op.drop_index(batch_op.f('ix_elder_device_device_id'))

    op.drop_table('elder_device')
    with op.batch_alter_table('duty_shift', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_duty_shift_person_id'))
        batch_op.drop_index(batch_op.f('ix_duty_shift_area_code'))

    op.drop_table('duty_shift')
    with op.batch_alter_table('elder', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_elder_grid_code'))
        batch_op.drop_index(batch_op.f('ix_elder_ended_at'))

    op.drop_table('elder')
    with op.batch_alter_table('coverage_gap', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_coverage_gap_area_code'))

    op.drop_table('coverage_gap')
    with op.batch_alter_table('area_contact', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_area_contact_area_code'))

    op.drop_table('area_contact')
