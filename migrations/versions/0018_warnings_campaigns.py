"""Warnings and inspection campaigns; drills (a case's drill flag)

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-04
"""
from alembic import op
import sqlalchemy as sa

revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None


def _ts(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    with op.batch_alter_table('case', schema=None) as batch_op:
        batch_op.add_column(sa.Column('drill', sa.Boolean(), nullable=False, server_default=sa.false()))
    op.create_table(
        'area_warning',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('area_code', sa.String(length=64), nullable=False),
        sa.Column('level', sa.String(length=16), nullable=False),
        sa.Column('text', sa.String(length=2000), nullable=False),
        sa.Column('drill', sa.Boolean(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('issued_by_id', sa.Integer(), nullable=True),
        _ts('issued_at'),
        _ts('next_reminder_at', True),
        sa.Column('reminders', sa.Integer(), nullable=False),
        _ts('ended_at', True),
        sa.ForeignKeyConstraint(['issued_by_id'], ['person.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_area_warning_area_code', 'area_warning', ['area_code'])
    op.create_index('ix_area_warning_status', 'area_warning', ['status'])
    op.create_index('ix_area_warning_next_reminder_at', 'area_warning', ['next_reminder_at'])
    op.create_table(
        'warning_recipient',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('warning_id', sa.Integer(), nullable=False),
        sa.Column('worker_id', sa.Integer(), nullable=False),
        _ts('sent_at'),
        _ts('acknowledged_at', True),
        sa.Column('reminders', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['warning_id'], ['area_warning.id']),
        sa.ForeignKeyConstraint(['worker_id'], ['person.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('warning_id', 'worker_id', name='uq_warning_recipient'),
    )
    op.create_index('ix_warning_recipient_warning_id', 'warning_recipient', ['warning_id'])
    op.create_index('ix_warning_recipient_worker_id', 'warning_recipient', ['worker_id'])
    op.create_table(
        'campaign',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.Column('area_code', sa.String(length=64), nullable=False),
        sa.Column('checklist', sa.JSON(), nullable=False),
        sa.Column('category_code', sa.String(length=64), nullable=False),
        sa.Column('drill', sa.Boolean(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('created_by_id', sa.Integer(), nullable=True),
        _ts('created_at'),
        _ts('ends_at', True),
        _ts('ended_at', True),
        sa.ForeignKeyConstraint(['created_by_id'], ['person.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_campaign_area_code', 'campaign', ['area_code'])
    op.create_index('ix_campaign_status', 'campaign', ['status'])
    op.create_index('ix_campaign_ends_at', 'campaign', ['ends_at'])
    op.create_table(
        'campaign_place',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('campaign_id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.Column('address', sa.String(length=500), nullable=True),
        sa.Column('lat', sa.Float(), nullable=False),
        sa.Column('lon', sa.Float(), nullable=False),
        sa.Column('grid_code', sa.String(length=64), nullable=True),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('inspector_id', sa.Integer(), nullable=True),
        sa.Column('answers', sa.JSON(), nullable=False),
        sa.Column('photo_path', sa.String(length=500), nullable=True),
        sa.Column('photo_phash', sa.String(length=64), nullable=True),
        sa.Column('seen_lat', sa.Float(), nullable=True),
        sa.Column('seen_lon', sa.Float(), nullable=True),
        _ts('seen_at', True),
        _ts('checked_at', True),
        sa.Column('case_id', sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(['campaign_id'], ['campaign.id']),
        sa.ForeignKeyConstraint(['inspector_id'], ['person.id']),
        sa.ForeignKeyConstraint(['case_id'], ['case.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_campaign_place_campaign_id', 'campaign_place', ['campaign_id'])
    op.create_index('ix_campaign_place_grid_code', 'campaign_place', ['grid_code'])
    op.create_index('ix_campaign_place_status', 'campaign_place', ['status'])
    op.create_index('ix_campaign_place_inspector_id', 'campaign_place', ['inspector_id'])
    op.create_table(
        'campaign_card',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('campaign_id', sa.Integer(), nullable=False),
        sa.Column('person_id', sa.Integer(), nullable=False),
        sa.Column('notification_id', sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(['campaign_id'], ['campaign.id']),
        sa.ForeignKeyConstraint(['person_id'], ['person.id']),
        sa.ForeignKeyConstraint(['notification_id'], ['notification.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('campaign_id', 'person_id', name='uq_campaign_card'),
    )
    op.create_index('ix_campaign_card_campaign_id', 'campaign_card', ['campaign_id'])


def downgrade() -> None:
    op.drop_table('campaign_card')
    op.drop_table('campaign_place')
    op.drop_table('campaign')
    op.drop_table('warning_recipient')
    op.drop_table('area_warning')
    with op.batch_alter_table('case', schema=None) as batch_op:
        batch_op.drop_column('drill')
