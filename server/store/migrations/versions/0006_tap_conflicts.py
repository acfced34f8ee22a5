"""tap conflicts: the same (device, buffer, seq) with other content

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 08:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('tap_conflicts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('device_pk', sa.Integer(), nullable=False),
    sa.Column('buffer_id', sa.String(length=32), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('site_id', sa.Integer(), nullable=False),
    sa.Column('stored_tap_id', sa.Integer(), nullable=False),
    sa.Column('content', sa.String(length=64), nullable=False),
    sa.Column('card_tech', sa.String(length=12), nullable=False),
    sa.Column('card_uid', sa.String(length=40), nullable=False),
    sa.Column('direction', sa.String(length=4), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('clock_synced', sa.Boolean(), nullable=False),
    sa.Column('boot_id', sa.String(length=64), nullable=False),
    sa.Column('mono_ms', sa.BigInteger(), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['device_pk'], ['devices.id'], name=op.f('fk_tap_conflicts_device_pk_devices')),
    sa.ForeignKeyConstraint(['site_id'], ['sites.id'], name=op.f('fk_tap_conflicts_site_id_sites')),
    sa.ForeignKeyConstraint(['stored_tap_id'], ['taps.id'], name=op.f('fk_tap_conflicts_stored_tap_id_taps')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tap_conflicts')),
    sa.UniqueConstraint('device_pk', 'buffer_id', 'seq', 'content', name=op.f('uq_tap_conflicts_device_pk')),
    )
    op.create_index(op.f('ix_tap_conflicts_site_id'), 'tap_conflicts', ['site_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_tap_conflicts_site_id'), table_name='tap_conflicts')
    op.drop_table('tap_conflicts')
