"""inbox: Telegram's webhook store becomes one durable inbox for every channel (channel, dedup_key)

Existing rows are kept: each becomes a `telegram` message keyed by str(update_id), ordered by it.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04
"""
from alembic import op
import sqlalchemy as sa

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None

_COMMON = "payload, state, attempts, received_at, lease_until, processed_at, last_error"


def upgrade() -> None:
    op.create_table('inbox_message',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('channel', sa.String(length=32), server_default='telegram', nullable=False),
    sa.Column('dedup_key', sa.String(length=255), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=True),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('lease_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('processed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.String(length=2000), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('channel', 'dedup_key', name='uq_inbox_message_key')
    )
    with op.batch_alter_table('inbox_message', schema=None) as batch_op:
        batch_op.create_index('ix_inbox_message_queue', ['channel', 'state', 'seq', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_inbox_message_state'), ['state'], unique=False)
    op.execute(
        f"INSERT INTO inbox_message (channel, dedup_key, seq, {_COMMON}) "
        f"SELECT 'telegram', CAST(w.update_id AS VARCHAR(255)), w.update_id, {_COMMON} "
        "FROM webhook_update AS w ORDER BY w.update_id"
    )
    with op.batch_alter_table('webhook_update', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_webhook_update_state'))
    op.drop_table('webhook_update')


def downgrade() -> None:
    op.create_table('webhook_update',
    sa.Column('update_id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('lease_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('processed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.String(length=2000), nullable=True),
    sa.PrimaryKeyConstraint('update_id')
    )
    with op.batch_alter_table('webhook_update', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_webhook_update_state'), ['state'], unique=False)
    # Only Telegram's messages fit the old table; other channels' messages are dropped with the inbox.
    op.execute(
        f"INSERT INTO webhook_update (update_id, {_COMMON}) "
        f"SELECT seq, {_COMMON} FROM inbox_message WHERE channel = 'telegram' AND seq IS NOT NULL"
    )
    with op.batch_alter_table('inbox_message', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_inbox_message_state'))
        batch_op.drop_index('ix_inbox_message_queue')
    op.drop_table('inbox_message')
