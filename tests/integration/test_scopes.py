"""The visibility policy's scopes as SQL (repositories.base.scope_clause / audit_clause, and the
worker repository's WorkerScope) admit exactly the rows ``admits`` admits, on both backends: every
combination of grant and row in a small table, so a list filtered in the database and a row checked
in Python never disagree."""

from __future__ import annotations

import itertools

from sqlalchemy import Column, Integer, MetaData, Table, create_engine, select
from world import Api

from server.domain.accounts import Actor, Role
from server.domain.consent import PERSONAL_ITEMS, disclosed_items
from server.domain.hierarchy import Node, Status, Tree
from server.domain.visibility import NO_WORKERS, AuditScope, Scope, Visibility, WorkerScope
from server.services.context import Context
from server.services.disclosure import agreements_of
from server.store import tables as t
from server.store.repositories.base import audit_clause, scope_clause

meta = MetaData()
rows = Table("scope_rows", meta, Column("id", Integer, primary_key=True), Column("site_id", Integer),
             Column("worker_id", Integer), Column("employer_id", Integer), Column("node_id", Integer),
             Column("prime_id", Integer), Column("company_id", Integer), Column("account_id", Integer))

VALUES = {"site_id": (10, 11), "worker_id": (7, 8), "employer_id": (2, 3), "node_id": (None, 101, 102),
          "prime_id": (1, 2)}
TREE = Tree(10, [Node(100, None, 1, None, Status.REGISTERED), Node(101, 100, 2, None, Status.REGISTERED),
                 Node(102, 101, 3, None, Status.REGISTERED)])


def scopes() -> list[Scope]:
    made = [Scope(), Scope(everything=True), Scope(everything=True, site_ids=frozenset({10})),
            Scope(prime_of=1, employer_id=2, site_ids=frozenset({11})), Scope(node_ids=frozenset({102})),
            Scope(node_ids=frozenset({101, 102}), employer_id=3), Scope(worker_id=8)]
    for actor in (Actor(1, Role.COMPANY_OWNER, company_id=2), Actor(2, Role.SITE_MANAGER, company_id=1,
                  site_ids=frozenset({10})), Actor(3, Role.WORKER, worker_id=7)):
        v = Visibility(actor)
        made += [v.records(TREE, 1), v.roster(TREE), v.corrections()]
    return made


def test_every_scope_selects_in_sql_what_it_admits_in_python(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        meta.create_all(engine)
        combos = [dict(zip(VALUES, combo, strict=True)) for combo in itertools.product(*VALUES.values())]
        with engine.begin() as conn:
            conn.execute(rows.insert(), [{"id": i, "company_id": 0, "account_id": 0, **c}
                                         for i, c in enumerate(combos)])
            for scope in scopes():
                c = rows.c
                got = set(conn.scalars(select(c.id).where(scope_clause(
                    scope, site=c.site_id, worker=c.worker_id, employer=c.employer_id, node=c.node_id,
                    prime=c.prime_id))))
                want = {i for i, r in enumerate(combos) if scope.admits(**r)}
                assert got == want, scope
    finally:
        meta.drop_all(engine)
        engine.dispose()


def test_an_audit_scope_selects_a_site_a_company_or_an_account(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        meta.create_all(engine)
        data = [{"id": i, "site_id": s, "company_id": co, "account_id": a}
                for i, (s, co, a) in enumerate(itertools.product((10, 11, None), (1, 2), (5, 6)))]
        with engine.begin() as conn:
            conn.execute(rows.insert(), data)
            c = rows.c

            def ids(scope: AuditScope) -> set[int]:
                return set(conn.scalars(select(c.id).where(audit_clause(
                    scope, site=c.site_id, company=c.company_id, account=c.account_id))))

            assert ids(AuditScope(everything=True)) == {r["id"] for r in data}
            assert ids(AuditScope(site_id=10)) == {r["id"] for r in data if r["site_id"] == 10}
            assert ids(AuditScope(company_id=1, site_ids=frozenset({10}), account_id=6)) == {
                r["id"] for r in data if r["company_id"] == 1 and (r["site_id"] == 10 or r["account_id"] == 6)}
            assert ids(AuditScope(account_id=5)) == {r["id"] for r in data if r["account_id"] == 5}
    finally:
        meta.drop_all(engine)
        engine.dispose()


def test_a_worker_scope_selects_in_sql_the_workers_it_admits_in_python(api: Api, ctx: Context) -> None:
    """所属技能者一覧: each worker's disclosure rows (none, one side, both, both on an item outside
    the scope, an item the model does not know) against every kind of WorkerScope."""
    employer = api.company("開示鉄筋(株)")
    other = api.company("他社(株)")
    settings: list[list[tuple[str, bool, bool]]] = [
        [], [("level", True, False)], [("level", False, True)], [("level", True, True)],
        [("phone", True, True), ("level", True, False)], [("salary", True, True)],
        [("level", False, False), ("blood_type", True, True)],
    ]
    workers = [api.worker(employer, f"技能者 {i}")["id"] for i in range(len(settings))]
    api.worker(other, "他社 技能者")  # never listed for the employer
    with ctx.write() as uow:
        for wid, rows in zip(workers, settings, strict=True):
            for item, by_worker, by_employer in rows:
                uow.add(t.Disclosure(worker_id=wid, item=item, worker_agrees=by_worker,
                                     employer_agrees=by_employer, updated_at=ctx.now()))
    scopes = [NO_WORKERS, WorkerScope(everything=True), WorkerScope(disclosed=frozenset(PERSONAL_ITEMS)),
              WorkerScope(disclosed=frozenset({"level"})), WorkerScope(disclosed=frozenset({"phone", "address"})),
              Visibility(Actor(1, Role.COMPANY_OWNER, company_id=other.id)).company_workers(
                  employer.id, is_proxy_agent=False)]
    with ctx.read() as uow:
        agreed = agreements_of(uow, workers)
        for scope in scopes:
            got = [w.id for w in uow.workers.of_employer(employer.id, scope)]
            want = [w for w in workers if scope.admits(disclosed_items(agreed[w]))]
            assert got == want, scope
        assert [w.id for w in uow.workers.of_employer(employer.id)] == workers
