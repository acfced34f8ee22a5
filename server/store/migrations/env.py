"""Alembic environment: online migrations only, on the engine our store builds (same pragmas)."""

from __future__ import annotations

from alembic import context

from server.store.database import make_engine
from server.store.tables import Base

config = context.config
engine = make_engine(config.get_main_option("sqlalchemy.url") or "")
with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=engine.dialect.name == "sqlite",  # SQLite alters tables by copying them
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
