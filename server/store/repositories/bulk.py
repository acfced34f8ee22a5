"""Set-based writes of many rows in one statement: the tap path's inserts and record updates.

The ingest stores a batch of hundreds of taps and rebuilds as many records per transaction. Row by
row that is hundreds of statements; here it is one per table, the same statement text whatever the
batch size, so SQLAlchemy compiles it once and the driver converts it once:

- SQLite: an executemany of one cached statement (SQLite runs it in-process, no round trips);
- PostgreSQL: the rows travel as one array per column and come back as a table through
  ``unnest(...)``: ``INSERT … SELECT … FROM unnest(...)`` and ``UPDATE … FROM unnest(...)``. The
  usual multi-row VALUES list (SQLAlchemy's "insertmanyvalues") made a statement of 16 parameters
  per row that PostgreSQL parsed and planned afresh for every batch size, and an ORM flush sent one
  UPDATE per record; both were the largest parts of the PostgreSQL ingest's time.

JSON columns go through as text and are cast back (an array of JSON lists is not an array psycopg
can send as such).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import JSON, ColumnElement, Table, Text, bindparam, cast, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value


def insert_or_skip(session: Session, table: Table, rows: Sequence[dict[str, Any]], keys: Sequence[str],
                   returning: Sequence[str] = ()) -> list[tuple[Any, ...]]:
    """Many rows in one INSERT … ON CONFLICT DO NOTHING. Returns the ``returning`` columns of the rows
    actually inserted, in no particular order: skipped rows return nothing, so callers return the key
    columns to tell which were new. Every row has the same keys; ``rows`` must not repeat a key.

    Two ingest workers receiving the same tap (a re-send, a shared-subscription redelivery) must
    store it once without either transaction failing: on PostgreSQL a plain INSERT would abort the
    whole batch on the unique index; ON CONFLICT lets the loser see "already there" and go on."""
    if not rows:
        return []
    if _dialect(session) == "postgresql":
        names = list(rows[0])
        source = _unnest(table, rows, names)
        stmt = postgresql.insert(table).from_select(names, select(*(_column(table, source, n) for n in names)))
        stmt = stmt.on_conflict_do_nothing(index_elements=list(keys))
        if returning:
            return [tuple(r) for r in session.execute(stmt.returning(*(table.c[n] for n in returning))).all()]
        session.execute(stmt)
        return []
    lite = sqlite.insert(table).on_conflict_do_nothing(index_elements=list(keys))
    if returning:
        return [tuple(r) for r in session.execute(lite.returning(*(table.c[n] for n in returning)), list(rows)).all()]
    session.execute(lite, list(rows))
    return []


def update_by_id(session: Session, table: Table, changes: Sequence[tuple[Any, dict[str, Any]]]) -> None:
    """Write ``changes`` — (ORM instance of ``table``, {column: new value}), every dict with the same
    columns — in one UPDATE, and tell the ORM the instances now hold those values as stored, so the
    session neither flushes them again nor keeps a stale copy. Used where a whole batch of rows
    was locked and recomputed (``records.rebuild_many``)."""
    if not changes:
        return
    names = list(changes[0][1])
    rows = [{"id": obj.id, **values} for obj, values in changes]
    if _dialect(session) == "postgresql":
        source = _unnest(table, rows, ["id", *names])
        stmt = (update(table).values({n: _column(table, source, n) for n in names})
                .where(table.c.id == source.c.id))
        session.execute(stmt)
    else:
        stmt = (update(table).where(table.c.id == bindparam("_id", type_=table.c.id.type))
                .values({n: bindparam(f"_{n}", type_=table.c[n].type) for n in names}))
        session.execute(stmt, [{f"_{k}": v for k, v in row.items()} for row in rows])
    for obj, values in changes:
        for name, value in values.items():
            set_committed_value(obj, name, value)


# --- PostgreSQL: rows as column arrays --------------------------------------------------------------


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def _unnest(table: Table, rows: Sequence[dict[str, Any]], names: Sequence[str]) -> Any:
    """``unnest(:a_x, :a_y, …) AS src(x, y, …)``: one array parameter per column."""
    arrays = [
        bindparam(f"a_{n}", [json.dumps(r[n]) for r in rows], type_=postgresql.ARRAY(Text))
        if isinstance(table.c[n].type, JSON)
        else bindparam(f"a_{n}", [r[n] for r in rows], type_=postgresql.ARRAY(table.c[n].type))
        for n in names
    ]
    return func.unnest(*arrays).table_valued(*names).render_derived(name="src")


def _column(table: Table, source: Any, name: str) -> ColumnElement[Any]:
    column: ColumnElement[Any] = source.c[name]
    return cast(column, table.c[name].type) if isinstance(table.c[name].type, JSON) else column
