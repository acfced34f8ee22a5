"""Races on the hierarchy: two people press 承認 (or 招待) at the same moment.

On PostgreSQL the services lock the site row (SELECT ... FOR UPDATE) before deciding; on SQLite
every writing transaction starts with BEGIN IMMEDIATE, so writers queue up. Either way exactly
one request wins and the other is told clearly why it did not (a 409 with a code), never a 500
and never a second, half-applied change. Each race runs several rounds so the threads really
overlap; a threading.Barrier releases both at once.
"""

from __future__ import annotations

import itertools
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pgserver import PrivatePostgres
from sqlalchemy import func, select
from sqlalchemy.orm import Session as DbSession
from world import Api, Session

from server.api.app import create_app
from server.errors import Conflict
from server.services import hierarchy as svc
from server.services import logins
from server.services.context import Context
from server.store import tables as t
from server.store.database import Store

ROUNDS = 5
_names = itertools.count()


@pytest.fixture(params=[pytest.param("postgres", marks=pytest.mark.postgres), "sqlite"])
def race_ctx(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Context]:
    """A fresh database of its own: on the private PostgreSQL (from the migrated template), or a SQLite file.

    Each thread gets its own connection from the engine's pool.
    """
    if request.param == "postgres":
        pg: PrivatePostgres = request.getfixturevalue("pg")
        template: str = request.getfixturevalue("pg_template")
        name = f"race{next(_names)}"
        ctx = Context(Store(pg.create_database(name, template=template)), fast_hashing=True)
        yield ctx
        ctx.store.dispose()
        pg.drop_database(name)
    else:
        path = tmp_path / "race.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        ctx = Context(Store(f"sqlite:///{path}"), fast_hashing=True)
        yield ctx
        ctx.store.dispose()


@pytest.fixture
def race_api(race_ctx: Context) -> Iterator[Api]:
    with TestClient(create_app(race_ctx), raise_server_exceptions=False) as client:
        yield Api.bootstrap(client, race_ctx)


def _at_once(*calls: Callable[[], Any]) -> list[tuple[str, Any]]:
    """Run the calls in their own threads, released together; ("ok", result) or ("error", exception) each."""
    barrier = threading.Barrier(len(calls))
    results: list[tuple[str, Any]] = [("missing", None)] * len(calls)

    def run(i: int, call: Callable[[], Any]) -> None:
        barrier.wait()
        try:
            results[i] = ("ok", call())
        except Exception as exc:  # reported below, with the thread's result
            results[i] = ("error", exc)

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=120)
    assert not any(th.is_alive() for th in threads), "a racing request never finished"
    return results


def _actor(ctx: Context, session: Session) -> Any:
    assert session.token
    return logins.authenticate(ctx, session.token)


def _audit_count(ctx: Context, action: str, node_id: int) -> int:
    with DbSession(ctx.store.engine) as s:
        return int(
            s.scalar(
                select(func.count()).select_from(t.AuditEntry).where(
                    t.AuditEntry.action == action, t.AuditEntry.entity_id == node_id
                )
            )
        )


def _node(ctx: Context, node_id: int) -> t.HierarchyNode:
    with DbSession(ctx.store.engine) as s:
        row = s.get(t.HierarchyNode, node_id)
        assert row is not None
        return row


def test_two_approvals_of_the_same_invitation_at_once_one_wins_one_is_told(race_api: Api) -> None:
    api, ctx = race_api, race_api.ctx
    prime = api.company("元請建設(株)")
    site = api.site(prime)
    for n in range(ROUNDS):
        invited = api.company(f"一次工業{n}(株)")
        # The 事業者責任者 and the 階層管理者 of the invited company both press 承認.
        owner = _actor(ctx, invited.owner)
        manager = _actor(ctx, api.staff(invited, "hierarchy_manager"))
        node = api.invite(site, prime, site.root, invited)

        results = _at_once(
            lambda a=owner, nd=node: svc.approve(ctx, a, nd, "躯体工事（責任者）", None),
            lambda a=manager, nd=node: svc.approve(ctx, a, nd, "躯体工事（階層管理者）", None),
        )
        wins = [r for kind, r in results if kind == "ok"]
        losses = [r for kind, r in results if kind == "error"]
        assert len(wins) == 1 and len(losses) == 1, results
        loss = losses[0]
        assert isinstance(loss, Conflict), repr(loss)
        assert loss.code in ("invitation_already_decided", "concurrent_change"), loss.as_dict()
        assert loss.message_ja and loss.message_en

        row = _node(ctx, node)
        assert row.status == "registered"
        assert row.work_name == wins[0]["work_name"]  # the loser wrote nothing
        assert _audit_count(ctx, "hierarchy.approve", node) == 1
        # The loser, asking again, is told it is decided.
        invited.owner.fail("POST", f"/hierarchy/{node}/approve", {"work_name": "x"}, status=409,
                           code="invitation_already_decided")


def test_an_approval_and_a_decline_at_once_leave_one_decision(race_api: Api) -> None:
    api, ctx = race_api, race_api.ctx
    prime = api.company("元請建設(株)")
    site = api.site(prime)
    for n in range(ROUNDS):
        invited = api.company(f"一次工業{n}(株)")
        owner = _actor(ctx, invited.owner)
        manager = _actor(ctx, api.staff(invited, "hierarchy_manager"))
        node = api.invite(site, prime, site.root, invited)

        results = _at_once(
            lambda a=owner, nd=node: svc.approve(ctx, a, nd, "躯体工事", None),
            lambda a=manager, nd=node: svc.decline(ctx, a, nd),
        )
        wins = [r for kind, r in results if kind == "ok"]
        losses = [r for kind, r in results if kind == "error"]
        assert len(wins) == 1 and len(losses) == 1, results
        assert isinstance(losses[0], Conflict), repr(losses[0])
        assert losses[0].code in ("invitation_already_decided", "concurrent_change")
        assert _node(ctx, node).status == wins[0]["status"]
        decided = _audit_count(ctx, "hierarchy.approve", node) + _audit_count(ctx, "hierarchy.decline", node)
        assert decided == 1


def test_two_invitations_of_the_same_company_to_the_same_site_at_once_give_one_201_and_one_409(
    race_api: Api, race_ctx: Context
) -> None:
    api = race_api
    prime = api.company("元請建設(株)")
    site = api.site(prime)
    manager = api.staff(prime, "hierarchy_manager")
    first = api.registered(site, prime, site.root, api.company("一次工業(株)"))
    # Each thread talks HTTP through its own client (its own event loop and connection).
    with TestClient(create_app(race_ctx), raise_server_exceptions=False) as c1, \
            TestClient(create_app(race_ctx), raise_server_exceptions=False) as c2:
        by_owner = Session(c1, prime.owner.token)
        by_manager = Session(c2, manager.token)
        path = f"/sites/{site.id}/hierarchy"
        for n in range(ROUNDS):
            invited = api.company(f"二次建築{n}(株)")
            results = _at_once(
                lambda c=invited.id: by_owner.call("POST", path, {"parent_node_id": site.root, "company_id": c}),
                lambda c=invited.id: by_manager.call("POST", path, {"parent_node_id": first, "company_id": c}),
            )
            assert all(kind == "ok" for kind, _ in results), results
            responses = [r for _, r in results]
            assert sorted(r.status_code for r in responses) == [201, 409], [r.text for r in responses]
            loser = next(r.json() for r in responses if r.status_code == 409)
            assert loser["code"] in ("company_already_on_site", "concurrent_change"), loser
            assert loser["message"] and loser["message_en"]

            rows = prime.owner.ok("GET", path)["rows"]
            assert [r["status"] for r in rows if r["company_id"] == invited.id] == ["pending"]
            requests = invited.owner.ok("GET", "/approval-requests")
            assert len(requests) == 1
            with DbSession(race_ctx.store.engine) as s:
                count = s.scalar(
                    select(func.count()).select_from(t.HierarchyNode).where(
                        t.HierarchyNode.site_id == site.id, t.HierarchyNode.company_id == invited.id
                    )
                )
            assert count == 1  # nothing half-written by the loser


def test_racing_requests_are_answered_with_an_error_body_never_a_500(race_api: Api, race_ctx: Context) -> None:
    """The same approval race through HTTP: one 200, one 409 with the error shape."""
    api = race_api
    prime = api.company("元請建設(株)")
    site = api.site(prime)
    with TestClient(create_app(race_ctx), raise_server_exceptions=False) as c1, \
            TestClient(create_app(race_ctx), raise_server_exceptions=False) as c2:
        for n in range(ROUNDS):
            invited = api.company(f"一次工業{n}(株)")
            manager = api.staff(invited, "hierarchy_manager")
            node = api.invite(site, prime, site.root, invited)
            a, b = Session(c1, invited.owner.token), Session(c2, manager.token)
            results = _at_once(
                lambda s=a, nd=node: s.call("POST", f"/hierarchy/{nd}/approve", {"work_name": "躯体工事"}),
                lambda s=b, nd=node: s.call("POST", f"/hierarchy/{nd}/approve", {"work_name": "躯体工事"}),
            )
            responses = [r for _, r in results]
            assert sorted(r.status_code for r in responses) == [200, 409], [r.text for r in responses]
            loser = next(r.json() for r in responses if r.status_code == 409)
            assert loser["code"] in ("invitation_already_decided", "concurrent_change"), loser
            assert loser["message"] and loser["message_en"]
            assert _node(race_ctx, node).status == "registered"
