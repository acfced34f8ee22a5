"""site time zone: where a site's work days begin and end, and the zone its times are shown in

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04 22:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Every existing site was run in Japan time (the zone was fixed before): the default keeps its
    # work days and records exactly as they are.
    with op.batch_alter_table('sites') as batch:
        batch.add_column(sa.Column('time_zone', sa.String(length=64), server_default='Asia/Tokyo', nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('sites') as batch:
        batch.drop_column('time_zone')
