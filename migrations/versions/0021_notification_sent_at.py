"""An index on notification.sent_at: a sender taking over finds the chats its predecessor just wrote to

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-06
"""
from alembic import op

revision = '0021'
down_revision = '0020'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_notification_sent_at', 'notification', ['sent_at'])


def downgrade() -> None:
    op.drop_index('ix_notification_sent_at', table_name='notification')
