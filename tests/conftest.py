"""Fixtures: a fresh database per test on SQLite and on a private PostgreSQL, and the HTTP API.

Tests that take ``backend`` (directly or through ``ctx``/``api``) run twice: once on a real SQLite
file, once on a database in the PostgreSQL server the suite starts itself (pgserver.py). Each
test gets a copy of a database migrated once per session, so migrations run on both backends
but not once per test.
"""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from gpiozero.pins.mock import MockFactory
from pgserver import PrivatePostgres
from world import Api

from server.api.app import create_app
from server.services.context import Context
from server.store import migrate
from server.store.database import Store

pytest_plugins = ["mqtt_fixtures"]  # `mosquitto`: a private broker per test (tests/support/mosquitto.py)

_counter = itertools.count()


@pytest.fixture
def factory() -> Iterator[MockFactory]:
    """gpiozero mock pins of this test's own (pin state lives on the factory: reset after)."""
    f = MockFactory()
    yield f
    f.reset()


@pytest.fixture(scope="session")
def pg() -> Iterator[PrivatePostgres]:
    with PrivatePostgres() as server:
        yield server


@pytest.fixture(scope="session")
def pg_template(pg: PrivatePostgres) -> str:
    url = pg.create_database("genba_template")
    migrate.upgrade(url)
    # Drop the pooled connections so the template can be copied (CREATE DATABASE needs it idle).
    from sqlalchemy import create_engine

    create_engine(url).dispose()
    return "genba_template"


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "genba.db"
    migrate.upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def db_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if backend == "sqlite":
        path = tmp_path / "genba.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite:///{path}"
        return
    pg: PrivatePostgres = request.getfixturevalue("pg")
    template: str = request.getfixturevalue("pg_template")
    name = f"t{next(_counter)}"
    yield pg.create_database(name, template=template)
    pg.drop_database(name)


@pytest.fixture
def ctx(db_url: str) -> Iterator[Context]:
    context = Context(Store(db_url), fast_hashing=True)
    yield context
    context.store.dispose()


@pytest.fixture
def client(ctx: Context) -> Iterator[TestClient]:
    with TestClient(create_app(ctx), raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def api(client: TestClient, ctx: Context) -> Api:
    """The HTTP API with an operator logged in, and helpers to build the seed's situations."""
    return Api.bootstrap(client, ctx)
