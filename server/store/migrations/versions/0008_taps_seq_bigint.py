"""taps.seq as a 64-bit integer, the wire contract's bound (it was 32-bit on PostgreSQL)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 20:25:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # SQLite: INTEGER is already 64-bit; the batch rebuild only records the declared type.
    with op.batch_alter_table('taps', schema=None) as batch_op:
        batch_op.alter_column('seq', existing_type=sa.Integer(), type_=sa.BigInteger(), existing_nullable=False)


def downgrade() -> None:
    with op.batch_alter_table('taps', schema=None) as batch_op:
        batch_op.alter_column('seq', existing_type=sa.BigInteger(), type_=sa.Integer(), existing_nullable=False)
