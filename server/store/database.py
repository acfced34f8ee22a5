"""Engines and units of work for SQLite (default) and PostgreSQL, on one code path.

SQLite specifics live here and nowhere else: WAL, foreign keys, a busy timeout, and BEGIN
IMMEDIATE for writing transactions so that two writers queue up instead of one failing half-way
(a deferred SQLite transaction that read first cannot upgrade to a writer once another wrote).
On PostgreSQL the services lock the rows they decide on (SELECT ... FOR UPDATE).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, String, create_engine, event, inspect
from sqlalchemy.exc import DataError, IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.exc import StaleDataError

from server.errors import Conflict, InvalidInput
from server.store.unit_of_work import UnitOfWork


def make_engine(url: str, **kwargs: Any) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False}, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
            # Take transaction control from the driver so BEGIN is ours (see the module docstring).
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            # FULL: a commit is on disk when it returns. The ingest acks a tap only after its commit,
            # so NORMAL (which may lose the last commits on power loss) would break that promise.
            cur.execute("PRAGMA synchronous=FULL")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            mode = conn.get_execution_options().get("sqlite_begin", "")
            conn.exec_driver_sql(f"BEGIN {mode}".strip())

        return engine
    return create_engine(url, pool_pre_ping=True, **kwargs)


def _out_of_range(exc: Exception) -> InvalidInput:
    """A value the column cannot hold (an ID past 64 bits, a string too long for PostgreSQL): bad input."""
    return InvalidInput(
        "value_out_of_range",
        ja="入力値が範囲外か長すぎます",
        en="a value is out of range or too long",
        detail=str(getattr(exc, "orig", exc)).splitlines()[0][:200],
    )


def _check_lengths(session: Session, _flush: Any, _instances: Any) -> None:
    """Text longer than its column: PostgreSQL refuses it, SQLite would quietly store it. Refusing
    it here, for every table, makes both backends give the same 422 (services check their own
    fields first where a friendlier label helps)."""
    for obj in (*session.new, *session.dirty):
        for attr in inspect(obj).mapper.column_attrs:
            column = attr.columns[0]
            limit = getattr(column.type, "length", None) if isinstance(column.type, String) else None
            value = getattr(obj, attr.key, None)
            if limit and isinstance(value, str) and len(value) > limit:
                raise InvalidInput(
                    "value_too_long",
                    ja=f"入力値が長すぎます（{column.table.name}.{column.key}: {limit}文字まで、"
                    f"入力は{len(value)}文字）",
                    en=f"{column.table.name}.{column.key} is longer than {limit} characters",
                    field=column.key,
                    max_length=limit,
                )


class Store:
    """The database as the services see it: short units of work, read or write."""

    def __init__(self, url: str, **engine_kwargs: Any) -> None:
        self.url = url
        self.engine = make_engine(url, **engine_kwargs)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        event.listen(self._sessions, "before_flush", _check_lengths)
        self.is_sqlite = self.engine.dialect.name == "sqlite"

    @contextmanager
    def write(self) -> Iterator[UnitOfWork]:
        """One unit of work that commits on success and rolls back on any error.

        A race the database catches (a unique index, a version check) becomes a Conflict, so
        the caller sees a clear 409 and nothing is half-written.
        """
        with self._sessions() as session:
            if self.is_sqlite:
                session.connection(execution_options={"sqlite_begin": "IMMEDIATE"})
            try:
                yield UnitOfWork(session, writable=True)
                session.commit()
            except (IntegrityError, StaleDataError) as exc:
                session.rollback()
                raise Conflict(
                    "concurrent_change",
                    ja="他の操作と競合したため保存できませんでした。最新の状態を確認してもう一度操作してください",
                    en="this change conflicted with another one; reload and try again",
                    detail=str(getattr(exc, "orig", exc)).splitlines()[0][:200],
                ) from exc
            except (DataError, OverflowError) as exc:
                # PostgreSQL says DataError, SQLite's driver OverflowError, for an int past 64 bits.
                session.rollback()
                raise _out_of_range(exc) from exc
            except OperationalError as exc:
                session.rollback()
                if "lock" in str(exc).lower():
                    raise Conflict(
                        "database_busy",
                        ja="データベースが混み合っています。少し待ってからもう一度操作してください",
                        en="the database is busy; try again shortly",
                    ) from exc
                raise
            except BaseException:
                session.rollback()
                raise

    @contextmanager
    def read(self) -> Iterator[UnitOfWork]:
        """A unit of work that only reads: nothing it does is committed."""
        with self._sessions() as session:
            try:
                yield UnitOfWork(session, writable=False)
            except (DataError, OverflowError) as exc:
                raise _out_of_range(exc) from exc

    def dispose(self) -> None:
        self.engine.dispose()
