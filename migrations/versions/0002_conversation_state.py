"""conversation state, consent and upstream ids

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('fsm_state',
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('state', sa.String(length=200), nullable=True),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('key')
    )
    with op.batch_alter_table('case', schema=None) as batch_op:
        batch_op.add_column(sa.Column('media_urls', sa.JSON(), nullable=False, server_default='[]'))
        batch_op.add_column(sa.Column('external_id', sa.String(length=200), nullable=True))
        batch_op.create_index(batch_op.f('ix_case_external_id'), ['external_id'], unique=False)
    with op.batch_alter_table('case', schema=None) as batch_op:
        # The default only fills existing rows; new rows always get the value from the application.
        batch_op.alter_column('media_urls', server_default=None)

    with op.batch_alter_table('person', schema=None) as batch_op:
        batch_op.add_column(sa.Column('username', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('locale_chosen', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column('consented_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table('person', schema=None) as batch_op:
        batch_op.alter_column('locale_chosen', server_default=None)



def downgrade() -> None:
    with op.batch_alter_table('person', schema=None) as batch_op:
        batch_op.drop_column('deleted_at')
        batch_op.drop_column('consented_at')
        batch_op.drop_column('locale_chosen')
        batch_op.drop_column('username')

    with op.batch_alter_table('case', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_case_external_id'))
        batch_op.drop_column('external_id')
        batch_op.drop_column('media_urls')

    op.drop_table('fsm_state')
