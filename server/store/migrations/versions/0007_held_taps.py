"""held taps: taps of gates the server could not place yet (not registered, or on no site)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 19:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('held_taps',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('device_id', sa.String(length=63), nullable=False),
    sa.Column('buffer_id', sa.String(length=32), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('card_tech', sa.String(length=12), nullable=False),
    sa.Column('card_uid', sa.String(length=40), nullable=False),
    sa.Column('direction', sa.String(length=4), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('clock_synced', sa.Boolean(), nullable=False),
    sa.Column('boot_id', sa.String(length=64), nullable=False),
    sa.Column('mono_ms', sa.BigInteger(), nullable=False),
    sa.Column('shown', sa.String(length=40), nullable=True),
    sa.Column('reason', sa.String(length=200), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_held_taps')),
    sa.UniqueConstraint('device_id', 'buffer_id', 'seq', name=op.f('uq_held_taps_device_id')),
    )


def downgrade() -> None:
    op.drop_table('held_taps')
