"""INSERT … ON CONFLICT DO NOTHING on both backends: the one dialect-specific statement the ingest needs.

Two ingest workers receiving the same tap (a re-send, a shared-subscription redelivery) must store it
once without either transaction failing: on PostgreSQL a plain INSERT would abort the whole batch on
the unique index; ON CONFLICT lets the loser see "already there" and go on.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from server.store.tables import Base


def insert_or_skip(session: Session, model: type[Base], values: dict[str, Any], keys: Sequence[str]) -> int | None:
    """The new row's id, or None when a row with the same ``keys`` already exists."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    table = model.__table__  # the Core table: no ORM bulk machinery for one row
    # Values go in as parameters, not into the statement, so the compiled statement is cached and
    # reused for every tap (compiling it each time was a third of the ingest's CPU).
    stmt = insert(table).on_conflict_do_nothing(index_elements=list(keys)).returning(table.c.id)  # type: ignore[attr-defined]
    row = session.execute(stmt, values).first()
    return int(row[0]) if row else None


def insert_many_or_skip(session: Session, model: type[Base], rows: Sequence[dict[str, Any]], keys: Sequence[str],
                        returning: Sequence[str] = ()) -> list[tuple[Any, ...]]:
    """Many rows in one executemany INSERT … ON CONFLICT DO NOTHING (SQLAlchemy sends them as
    multi-row VALUES, "insertmanyvalues", on both backends). Returns the ``returning`` columns of
    the rows actually inserted, in no particular order: skipped rows return nothing, so callers
    return the key columns to tell which were new. ``rows`` must not repeat a key."""
    if not rows:
        return []
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    table = model.__table__
    stmt = insert(table).on_conflict_do_nothing(index_elements=list(keys))  # type: ignore[attr-defined]
    if returning:
        stmt = stmt.returning(*(table.c[name] for name in returning))
        return [tuple(r) for r in session.execute(stmt, list(rows)).all()]
    session.execute(stmt, list(rows))
    return []
