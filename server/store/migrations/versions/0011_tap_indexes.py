"""tap indexes: only those the queries need, partial where they are asked about few taps

Every tap of a morning rush is written into every index of ``taps``. ``ix_taps_site_id`` repeated
the first column of ``ix_taps_day``; ``ix_taps_card_uid`` and ``ix_taps_boot`` held every tap
although they are only asked about taps without a worker (a card linked later) and taps waiting
for a clock reading (clock_trusted false): both become partial indexes of those taps alone.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05 00:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('taps') as batch:
        batch.drop_index('ix_taps_site_id')
        batch.drop_index('ix_taps_card_uid')
        batch.drop_index('ix_taps_boot')
        batch.create_index('ix_taps_unattributed', ['card_uid'], unique=False,
                           sqlite_where=sa.text('worker_id IS NULL'), postgresql_where=sa.text('worker_id IS NULL'))
        batch.create_index('ix_taps_waiting_clock', ['device_pk', 'boot_id'], unique=False,
                           sqlite_where=sa.text('clock_trusted IS 0'),
                           postgresql_where=sa.text('clock_trusted IS false'))


def downgrade() -> None:
    with op.batch_alter_table('taps') as batch:
        batch.drop_index('ix_taps_waiting_clock')
        batch.drop_index('ix_taps_unattributed')
        batch.create_index('ix_taps_boot', ['device_pk', 'boot_id', 'clock_trusted'], unique=False)
        batch.create_index('ix_taps_card_uid', ['card_uid'], unique=False)
        batch.create_index('ix_taps_site_id', ['site_id'], unique=False)
