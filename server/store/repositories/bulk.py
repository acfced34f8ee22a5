"""Set-based writes of many rows in one statement: the tap path's inserts and record updates.

The ingest stores a batch of hundreds of taps and rebuilds as many records per transaction. Row by
row that is hundreds of statements; here it is one per table, the same statement text whatever the
batch size, so SQLAlchemy compiles it once and the driver converts it once:

- SQLite: an executemany of one cached statement (SQLite runs it in-process, no round trips);
- PostgreSQL: the rows travel as one array per column and come back as a table through
  ``unnest(...)``: ``INSERT … SELECT … FROM unnest(...) ON CONFLICT …``. The
  usual multi-row VALUES list (SQLAlchemy's "insertmanyvalues") made a statement of 16 parameters
  per row that PostgreSQL parsed and planned afresh for every batch size, and an ORM flush sent one
  UPDATE per record; both were the largest parts of the PostgreSQL ingest's time.

JSON columns go through as text and are cast back (an array of JSON lists is not an array psycopg
can send as such). The arrays go in psycopg's binary format (``BinaryArray``): its text format
spells every element out, quoting and escaping, and took 4–5 µs per time or JSON value, about a
tenth of the whole ingest's time per tap; the binary one packs the same array in a tenth of that.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from psycopg import adapters
from psycopg.types.array import ListBinaryDumper
from sqlalchemy import JSON, ColumnElement, Dialect, Table, Text, TypeDecorator, bindparam, cast, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session
from sqlalchemy.sql.type_api import to_instance
from sqlalchemy.types import TypeEngine


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
    names = list(rows[0])
    if _dialect(session) == "postgresql":
        def build() -> Any:
            stmt = _pg_insert(table, names).on_conflict_do_nothing(index_elements=list(keys))
            return stmt.returning(*(table.c[n] for n in returning)) if returning else stmt

        result = _pg_execute(session, ("skip", table.name, tuple(names), tuple(keys), tuple(returning)), build,
                             _pg_arrays(session.get_bind().dialect, table, rows, names))
        return [tuple(r) for r in result.all()] if returning else []
    lite = sqlite.insert(table).on_conflict_do_nothing(index_elements=list(keys))
    if returning:
        return [tuple(r) for r in session.execute(lite.returning(*(table.c[n] for n in returning)), list(rows)).all()]
    session.execute(lite, list(rows))
    return []


def upsert(session: Session, table: Table, rows: Sequence[dict[str, Any]], keys: Sequence[str]) -> None:
    """Many rows in one INSERT … ON CONFLICT (``keys``) DO UPDATE: a row whose key is stored replaces
    the stored values of every other column it names (its id stays). Every row has the same keys;
    ``rows`` must not repeat a key. The caller serialises writers of one key (a lock taken before
    the values were computed): the statement only spares the second write an empty row and a
    separate UPDATE cost."""
    if not rows:
        return
    names = list(rows[0])
    changing = [n for n in names if n not in keys]
    if _dialect(session) == "postgresql":
        def build() -> Any:
            stmt = _pg_insert(table, names)
            return stmt.on_conflict_do_update(index_elements=list(keys), set_={n: stmt.excluded[n] for n in changing})

        _pg_execute(session, ("upsert", table.name, tuple(names), tuple(keys)), build,
                    _pg_arrays(session.get_bind().dialect, table, rows, names))
        return
    lite = sqlite.insert(table)
    session.execute(lite.on_conflict_do_update(index_elements=list(keys), set_={n: lite.excluded[n] for n in changing}),
                    list(rows))


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


# --- PostgreSQL: rows as column arrays --------------------------------------------------------------

#: SQL text of each bulk statement, compiled once per process. SQLAlchemy 2.0 gives its PostgreSQL
#: INSERT (the one with ON CONFLICT) no cache key, so it would compile the statement again on every
#: batch; the text depends only on the table, the columns and the keys, never on the rows.
_PG_SQL: dict[tuple[Any, ...], str] = {}


def _pg_execute(session: Session, key: tuple[Any, ...], build: Callable[[], Any],
                params: dict[str, Any]) -> CursorResult[Any]:
    connection = session.connection()
    key = (type(connection.dialect), *key)
    sql = _PG_SQL.get(key)
    if sql is None:
        sql = _PG_SQL[key] = build().compile(dialect=connection.dialect).string
    return connection.exec_driver_sql(sql, params)


def _pg_insert(table: Table, names: Sequence[str]) -> postgresql.Insert:
    """``INSERT INTO table (names…) SELECT … FROM unnest(:a_x::T[], …) AS src(x, …)``: one array
    parameter per column, bound by name (``_pg_arrays``)."""
    arrays = [bindparam(f"a_{n}", type_=postgresql.ARRAY(Text if isinstance(table.c[n].type, JSON)
                                                          else table.c[n].type)) for n in names]
    source = func.unnest(*arrays).table_valued(*names).render_derived(name="src")
    return postgresql.insert(table).from_select(list(names), select(*(_column(table, source, n) for n in names)))


def _pg_arrays(dialect: Dialect, table: Table, rows: Sequence[dict[str, Any]], names: Sequence[str]) -> dict[str, Any]:
    """The parameters of ``_pg_insert``: a column's values as one array in psycopg's binary format,
    each value through the column type's bind processor (e.g. Boolean's check) as SQLAlchemy would;
    JSON values as their text (cast back in the statement)."""
    params: dict[str, Any] = {}
    for n in names:
        if isinstance(table.c[n].type, JSON):
            params[f"a_{n}"] = _BinaryList(json.dumps(r[n]) for r in rows)
        elif (process := table.c[n].type.dialect_impl(dialect).bind_processor(dialect)) is not None:
            params[f"a_{n}"] = _BinaryList(process(r[n]) for r in rows)
        else:
            params[f"a_{n}"] = _BinaryList(r[n] for r in rows)
    return params


class _BinaryList(list[Any]):
    """A list psycopg sends in its binary array format (registered below); a plain list keeps the
    default (text) format everywhere else."""


adapters.register_dumper(_BinaryList, ListBinaryDumper)


class BinaryArray(TypeDecorator[list[Any]]):
    """``postgresql.ARRAY`` whose value travels in binary: the same SQL (``:p::TYPE[]``), its elements
    converted by the element type's own bind processor first, if it has one. (A TypeDecorator: a
    subclass of ARRAY would be swapped for the dialect's own ARRAY and lose its bind processor.)"""

    impl = postgresql.ARRAY
    cache_ok = True

    def __init__(self, item_type: TypeEngine[Any] | type[TypeEngine[Any]]) -> None:
        super().__init__(item_type)
        self.item_type = to_instance(item_type)  # part of the statement's cache key: one per element type

    def bind_processor(self, dialect: Dialect) -> Any:
        item = self.item_type.dialect_impl(dialect).bind_processor(dialect)

        def process(value: Any) -> Any:
            if value is None:
                return None
            return _BinaryList(value if item is None else (item(v) for v in value))

        return process


def _column(table: Table, source: Any, name: str) -> ColumnElement[Any]:
    column: ColumnElement[Any] = source.c[name]
    return cast(column, table.c[name].type) if isinstance(table.c[name].type, JSON) else column
