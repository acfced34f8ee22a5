"""The store on both backends: migrations match the models, and the database itself refuses what
the domain refuses (the second line of defence behind the services)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session as DbSession

from server.services.context import Context
from server.store import tables as t

NOW = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)


def test_migrations_match_the_models(ctx: Context) -> None:
    with ctx.store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), t.Base.metadata)
    assert diff == []


def test_sqlite_runs_with_wal_foreign_keys_and_a_busy_timeout(ctx: Context, backend: str) -> None:
    if backend != "sqlite":
        assert ctx.store.engine.dialect.name == "postgresql"
        return
    with ctx.store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 5000  # then database_busy (503)


def _site(s: DbSession) -> tuple[int, int]:
    c = t.Company(ccus_id="10000000000001", name="元請(株)", created_at=NOW)
    s.add(c)
    s.flush()
    site = t.Site(ccus_id="40000000000001", name="現場", prime_id=c.id, order_type="private",
                  period_start=date(2026, 4, 1), period_end=date(2027, 3, 31), disclosed_items=[], created_at=NOW)
    s.add(site)
    s.flush()
    root = t.HierarchyNode(site_id=site.id, company_id=c.id, status="registered", invited_at=NOW)
    s.add(root)
    s.flush()
    return site.id, root.id


def test_the_database_keeps_a_company_once_per_site(ctx: Context) -> None:
    with DbSession(ctx.store.engine) as s:
        site_id, root = _site(s)
        sub = t.Company(ccus_id="10000000000002", name="下請(株)", created_at=NOW)
        s.add(sub)
        s.flush()
        s.add(t.HierarchyNode(site_id=site_id, parent_id=root, company_id=sub.id, status="pending", invited_at=NOW))
        s.flush()
        s.add(t.HierarchyNode(site_id=site_id, parent_id=root, company_id=sub.id, status="pending", invited_at=NOW))
        with pytest.raises(IntegrityError):
            s.flush()
        s.rollback()


def test_the_database_refuses_a_row_that_is_both_company_and_placeholder(ctx: Context) -> None:
    with DbSession(ctx.store.engine) as s:
        site_id, root = _site(s)
        s.add(t.HierarchyNode(site_id=site_id, parent_id=root, company_id=None, placeholder_name=None,
                              status="registered", invited_at=NOW))
        with pytest.raises(IntegrityError):
            s.flush()
        s.rollback()


def test_the_database_refuses_a_second_root(ctx: Context) -> None:
    with DbSession(ctx.store.engine) as s:
        site_id, _ = _site(s)
        with pytest.raises(IntegrityError):
            s.execute(text("INSERT INTO hierarchy_nodes (site_id, company_id, status, invited_at, version) "
                           "VALUES (:s, 1, 'registered', :n, 1)"), {"s": site_id, "n": NOW})
        s.rollback()


def test_one_active_card_per_uid(ctx: Context) -> None:
    with DbSession(ctx.store.engine) as s:
        c = t.Company(ccus_id="10000000000003", name="所属(株)", created_at=NOW)
        s.add(c)
        s.flush()
        w1 = t.Worker(ccus_id="80000000000001", name="一", employer_id=c.id, created_at=NOW)
        w2 = t.Worker(ccus_id="80000000000002", name="二", employer_id=c.id, created_at=NOW)
        s.add_all([w1, w2])
        s.flush()
        s.add(t.Card(uid="0114AABBCCDDEEFF", tech="felica", worker_id=w1.id, issued_at=NOW, revoked_at=NOW))
        s.add(t.Card(uid="0114AABBCCDDEEFF", tech="felica", worker_id=w2.id, issued_at=NOW))
        s.flush()  # a revoked card does not hold its UID
        s.add(t.Card(uid="0114AABBCCDDEEFF", tech="felica", worker_id=w1.id, issued_at=NOW))
        with pytest.raises(IntegrityError):
            s.flush()
        s.rollback()
