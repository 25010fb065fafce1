"""WeCom / 政务微信: a person's WeCom userid and the channel they use; the WeCom outbox

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-04
"""
from alembic import op
import sqlalchemy as sa

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('person', schema=None) as batch_op:
        batch_op.add_column(sa.Column('wecom_userid', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('channel', sa.String(length=16), nullable=False, server_default='telegram'))
        batch_op.create_unique_constraint('uq_person_wecom_userid', ['wecom_userid'])
    op.create_table(
        'wecom_message',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('touser', sa.String(length=64), nullable=False),
        sa.Column('person_id', sa.Integer(), nullable=True),
        sa.Column('case_id', sa.Integer(), nullable=True),
        sa.Column('payload', sa.JSON(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('priority', sa.SmallInteger(), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('last_error', sa.String(length=2000), nullable=True),
        sa.Column('msgid', sa.String(length=128), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['case_id'], ['case.id']),
        sa.ForeignKeyConstraint(['person_id'], ['person.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_wecom_message_touser', 'wecom_message', ['touser'], unique=False)
    op.create_index('ix_wecom_message_due', 'wecom_message', ['status', 'next_attempt_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_wecom_message_due', table_name='wecom_message')
    op.drop_index('ix_wecom_message_touser', table_name='wecom_message')
    op.drop_table('wecom_message')
    with op.batch_alter_table('person', schema=None) as batch_op:
        batch_op.drop_constraint('uq_person_wecom_userid', type_='unique')
        batch_op.drop_column('channel')
        batch_op.drop_column('wecom_userid')
