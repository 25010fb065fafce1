"""residents: case followers, feedback after closure (回访), report receipts

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21
"""
from alembic import op
import sqlalchemy as sa

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('case_follower',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('case_id', sa.Integer(), nullable=False),
    sa.Column('person_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['case_id'], ['case.id'], ),
    sa.ForeignKeyConstraint(['person_id'], ['person.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('case_id', 'person_id', name='uq_case_follower_case_person')
    )
    with op.batch_alter_table('case_follower', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_case_follower_case_id'), ['case_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_case_follower_person_id'), ['person_id'], unique=False)

    op.create_table('case_feedback',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('case_id', sa.Integer(), nullable=False),
    sa.Column('person_id', sa.Integer(), nullable=False),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('asked_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('fixed', sa.Boolean(), nullable=True),
    sa.Column('answered_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('reopened', sa.Boolean(), nullable=False),
    sa.Column('rating', sa.Integer(), nullable=True),
    sa.Column('comment', sa.String(length=1000), nullable=True),
    sa.Column('rated_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint('rating IS NULL OR (rating BETWEEN 1 AND 5)', name='ck_case_feedback_rating'),
    sa.ForeignKeyConstraint(['case_id'], ['case.id'], ),
    sa.ForeignKeyConstraint(['person_id'], ['person.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('case_id', 'person_id', 'closed_at', name='uq_case_feedback_closure')
    )
    with op.batch_alter_table('case_feedback', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_case_feedback_case_id'), ['case_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_case_feedback_person_id'), ['person_id'], unique=False)

    op.create_table('report_receipt',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('person_id', sa.Integer(), nullable=False),
    sa.Column('draft_id', sa.String(length=32), nullable=False),
    sa.Column('case_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['case_id'], ['case.id'], ),
    sa.ForeignKeyConstraint(['person_id'], ['person.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('person_id', 'draft_id', name='uq_report_receipt_draft')
    )
    with op.batch_alter_table('report_receipt', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_report_receipt_case_id'), ['case_id'], unique=False)
        batch_op.create_index('ix_report_receipt_person_created', ['person_id', 'created_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('report_receipt', schema=None) as batch_op:
        batch_op.drop_index('ix_report_receipt_person_created')
        batch_op.drop_index(batch_op.f('ix_report_receipt_case_id'))

    op.drop_table('report_receipt')
    with op.batch_alter_table('case_feedback', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_case_feedback_person_id'))
        batch_op.drop_index(batch_op.f('ix_case_feedback_case_id'))

    op.drop_table('case_feedback')
    with op.batch_alter_table('case_follower', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_case_follower_person_id'))
        batch_op.drop_index(batch_op.f('ix_case_follower_case_id'))

    op.drop_table('case_follower')
