"""Engines and units of work for SQLite (default) and PostgreSQL, on one code path.

SQLite specifics live here and nowhere else: WAL, foreign keys, a busy timeout, and BEGIN
IMMEDIATE for writing transactions so that two writers queue up instead of one failing half-way
(a deferred SQLite transaction that read first cannot upgrade to a writer once another wrote).
On PostgreSQL the services lock the rows they decide on (SELECT ... FOR UPDATE), and a record
rebuild the (site, worker) keys it rebuilds (advisory locks: RecordRepository.lock_for_rebuild).

**A busy store says so, quickly.** SQLite has one writer at a time. No writer is meant to hold
the lock for long (the importer writes in chunks of a fraction of a second, the ingest's batches
take less), so a request that cannot get it within ``BUSY_TIMEOUT_S`` is answered
``Unavailable("database_busy")`` (HTTP 503 with Retry-After; the ingest leaves the tap un-acked
and the gate re-sends it) instead of hanging for half a minute and ending in a 500. The same
bound is PostgreSQL's ``lock_timeout``; a lock that timed out, a deadlock and a serialization
failure are the same "not now" there. The code stays ``database_busy`` (server/ingest.py's
TRANSIENT is keyed by it). Reads never wait: SQLite's WAL lets them run beside the writer, and
PostgreSQL's reads take no row locks. Migrations keep the long wait (``make_engine``'s default):
``init`` runs rarely and should wait for a running server rather than fail.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, String, create_engine, event, inspect
from sqlalchemy.exc import DataError, IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.exc import StaleDataError

from server.errors import Conflict, InvalidInput, Unavailable, database_busy
from server.store.unit_of_work import UnitOfWork

#: How long a unit of work waits for a lock before it is answered ``database_busy``. A few
#: seconds: every writer holds the lock for well under one (see the module docstring), so a longer
#: wait only means a request that hangs, and a client told 503 + Retry-After can try again.
BUSY_TIMEOUT_S = 5.0

#: What ``make_engine`` waits when not told (migrations, ``genba-server init``): the old half minute.
MIGRATION_BUSY_TIMEOUT_S = 30.0

# SQLite's primary result codes for "another connection holds the lock" (extended codes keep these
# in their low byte) and PostgreSQL's SQLSTATEs for a lock not granted in time, a serialization
# failure and a deadlock: each means "the same request later will do", never "this is wrong".
_SQLITE_BUSY_CODES = frozenset({5, 6})  # SQLITE_BUSY, SQLITE_LOCKED
_PG_BUSY_STATES = frozenset({"55P03", "40001", "40P01"})


def make_engine(url: str, busy_timeout_s: float = MIGRATION_BUSY_TIMEOUT_S, **kwargs: Any) -> Engine:
    """An engine for ``url``; a lock not granted within ``busy_timeout_s`` fails the statement."""
    wait_ms = max(1, int(busy_timeout_s * 1000))
    if url.startswith("sqlite"):
        engine = create_engine(
            url, connect_args={"timeout": busy_timeout_s, "check_same_thread": False}, **kwargs
        )

        @event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
            # Take transaction control from the driver so BEGIN is ours (see the module docstring).
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute(f"PRAGMA busy_timeout={wait_ms}")
            # FULL: a commit is on disk when it returns. The ingest acks a tap only after its commit,
            # so NORMAL (which may lose the last commits on power loss) would break that promise.
            cur.execute("PRAGMA synchronous=FULL")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            mode = conn.get_execution_options().get("sqlite_begin", "")
            conn.exec_driver_sql(f"BEGIN {mode}".strip())

        return engine
    connect_args = {"options": f"-c lock_timeout={wait_ms}", **kwargs.pop("connect_args", {})}
    return create_engine(url, pool_pre_ping=True, connect_args=connect_args, **kwargs)


def is_busy(exc: BaseException) -> bool:
    """Whether the database refused ``exc``'s statement only because another transaction holds a
    lock (or won a race PostgreSQL resolves by aborting one side): transient, worth retrying."""
    orig = getattr(exc, "orig", exc)
    code = getattr(orig, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in _SQLITE_BUSY_CODES
    state = getattr(orig, "sqlstate", None)
    if state is not None:
        return state in _PG_BUSY_STATES
    text = str(orig).lower()
    return "database is locked" in text or "database table is locked" in text or "deadlock" in text


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
    """The database as the services see it: short units of work, read or write.

    ``busy_timeout_s`` is how long a unit waits for a lock before it is answered
    ``database_busy`` (see the module docstring).
    """

    def __init__(self, url: str, busy_timeout_s: float = BUSY_TIMEOUT_S, **engine_kwargs: Any) -> None:
        self.url = url
        self.busy_timeout_s = busy_timeout_s
        self.engine = make_engine(url, busy_timeout_s, **engine_kwargs)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        event.listen(self._sessions, "before_flush", _check_lengths)
        self.is_sqlite = self.engine.dialect.name == "sqlite"

    @contextmanager
    def write(self) -> Iterator[UnitOfWork]:
        """One unit of work that commits on success and rolls back on any error.

        A race the database catches (a unique index, a version check) becomes a Conflict, so
        the caller sees a clear 409 and nothing is half-written. A lock not granted in time, at
        BEGIN (SQLite's BEGIN IMMEDIATE waits for the one writer) or at any later statement, becomes
        ``Unavailable("database_busy")``: the caller may send the same request again later.
        """
        with self._sessions() as session:
            try:
                if self.is_sqlite:
                    session.connection(execution_options={"sqlite_begin": "IMMEDIATE"})
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
                if is_busy(exc):
                    raise self._busy() from exc
                raise
            except BaseException:
                session.rollback()
                raise

    @contextmanager
    def read(self) -> Iterator[UnitOfWork]:
        """A unit of work that only reads: nothing it does is committed.

        It never waits for the writer (WAL on SQLite, MVCC on PostgreSQL); should the database still
        say "locked" (SQLite recovering a crashed writer's WAL), that is ``database_busy`` too.
        """
        with self._sessions() as session:
            try:
                yield UnitOfWork(session, writable=False)
            except (DataError, OverflowError) as exc:
                raise _out_of_range(exc) from exc
            except OperationalError as exc:
                if is_busy(exc):
                    raise self._busy() from exc
                raise

    def _busy(self) -> Unavailable:
        """Come back in about as long as we waited: the lock was held at least that long."""
        return database_busy(retry_after_s=max(1, round(self.busy_timeout_s)))

    def dispose(self) -> None:
        self.engine.dispose()
