"""Tests for the private PostgreSQL server the test suite runs (tests/support/pgserver.py).

These guard the promise that tests never touch the shared server on 5432:
the private server runs on another port, databases on it are independent,
and stop() leaves nothing behind.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

# tests/ has no __init__.py, so pytest puts tests/ itself on sys.path.
from pgserver import SHARED_PORT, PrivatePostgres

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def pg() -> Iterator[PrivatePostgres]:
    with PrivatePostgres() as server:
        yield server


def test_not_the_shared_server(pg: PrivatePostgres) -> None:
    assert pg.port != SHARED_PORT
    assert pg.host == "127.0.0.1"
    assert pg.url("x") == f"postgresql+psycopg://postgres@127.0.0.1:{pg.port}/x"
    engine = sa.create_engine(pg.url("postgres"))
    try:
        with engine.connect() as conn:
            # The server we talk to keeps its data in our temp directory.
            data_dir = conn.execute(sa.text("SHOW data_directory")).scalar_one()
            port = conn.execute(sa.text("SHOW port")).scalar_one()
    finally:
        engine.dispose()
    assert Path(data_dir).resolve() == pg.data_dir.resolve()
    assert int(port) == pg.port


def test_databases_are_separate(pg: PrivatePostgres) -> None:
    url_a = pg.create_database("genba_a")
    url_b = pg.create_database("genba_b")
    assert url_a.endswith(f":{pg.port}/genba_a")
    engine_a = sa.create_engine(url_a)
    engine_b = sa.create_engine(url_b)
    try:
        with engine_a.begin() as conn:
            conn.execute(sa.text("CREATE TABLE worker (id int PRIMARY KEY, name text)"))
            conn.execute(sa.text("INSERT INTO worker VALUES (1, '山田 太郎')"))
        with engine_a.connect() as conn:
            assert conn.execute(sa.text("SELECT name FROM worker")).scalar_one() == "山田 太郎"
        with engine_b.connect() as conn:
            exists = conn.execute(sa.text("SELECT to_regclass('public.worker')")).scalar_one()
            assert exists is None
    finally:
        # engine_a still has a pooled connection: drop must cope (WITH FORCE).
        pg.drop_database("genba_a")
        engine_a.dispose()
        engine_b.dispose()
        pg.drop_database("genba_b")
    with sa.create_engine(pg.url("postgres")).connect() as conn:
        names = set(conn.execute(sa.text("SELECT datname FROM pg_database")).scalars())
    assert not {"genba_a", "genba_b"} & names


def test_stop_removes_directory() -> None:
    server = PrivatePostgres().start()
    base_dir, data_dir = server.base_dir, server.data_dir
    assert (data_dir / "PG_VERSION").is_file()
    server.stop()
    assert not data_dir.exists()
    assert not base_dir.exists()
    assert not server.running
    with pytest.raises(RuntimeError):
        _ = server.port
    server.stop()  # idempotent


def test_context_manager_cleans_up_on_error() -> None:
    with pytest.raises(ZeroDivisionError), PrivatePostgres() as server:
        base_dir = server.base_dir
        _ = 1 / 0
    assert not base_dir.exists()
