"""`make chaos`, the HTTP inputs: schemathesis against the OpenAPI, and the role matrix of the 帳票 table.

One world, built through the API itself (tests/support/world.py) on a fresh migrated SQLite file:

    カオス元請建設 (元請) ── カオス一次工業 (upper) ── カオス二次設備 (lower) ── 技能 カオス太郎 (worker login)
                      │                        ├─ 首都塗装カオス (CCUS未登録: a placeholder by name)
                      │                        └─ カオス招待先 (invited by upper, 未承認)
                      └─ カオス別系統工業 (another first tier, with a worker of its own on the roster)
    無関係建設 (unrelated: registered, on no site of the 元請), and anonymous.

Each of upper, lower and unrelated acts through its 事業者責任者; the 元請 too. Every worker has a linked
card and a tap at gate-01 today, so there are records, and the lower company asked for a correction.

**Role matrix** (``MATRIX``): every operation of the OpenAPI, with its path ids filled from the world and
a body that would succeed for the role that may do it, called as each of the six roles. The database is
restored from a snapshot before every call that is not a GET, so each call meets the same world. Each
expectation names its source: a line of the seed's 帳票 table (/work/shared/seeds/000_67787271afa048a8.txt,
帳票NO 1-1 … 4-2), the README's "## API: main flows", or the documented product rule it tests. Outcomes:
``allow`` (2xx), ``deny`` (401/403/404/409/422: refused, whatever the reason) and ``hide`` (refused, or 2xx
without the named marker in the body: a list may answer, but not with what the role must not see).
An unexpected ALLOW (or a marker that leaked) is a security failure: counted in ``lost`` (the row fails);
an unexpected DENY is listed in the note (a role locked out of its own work: a defect, not a leak).

**schemathesis**: every operation, positive and negative examples (hypothesis, seeded), as the 元請's
事業者責任者, in-process through ASGI; every response is checked against the OpenAPI (status code
documented, content type, body schema) and any 5xx is a failure (``http_500``).
"""

from __future__ import annotations

import contextlib
import re
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from .table import Row

ROLES = ("元請", "upper", "lower", "unrelated", "worker", "anonymous")
P, U, L, X, W, A = ROLES
COMPANIES = frozenset({P, U, L, X})
LOGGED_IN = frozenset({P, U, L, X, W})
EVERYONE = frozenset(ROLES)
SEED = "seed 帳票"  # /work/shared/seeds/000_67787271afa048a8.txt, lines 158-179
UID_W, UID_W2, UID_S = "0114C4A05C000001", "0114C4A05C000002", "0114C4A05C000003"


def _support_on_path() -> None:
    """tests/support (world) is on sys.path under pytest; `make chaos` runs outside it."""
    support = str(Path(__file__).resolve().parents[1] / "support")
    if support not in sys.path:
        sys.path.insert(0, support)


# --- the world ------------------------------------------------------------------------------------------


@dataclass
class Scene:
    """The world, its sessions by role, the ids the paths and bodies need, and the snapshot to restore."""

    client: Any
    ctx: Any
    db: Path
    snapshot: Path
    sessions: dict[str, Any]
    ids: dict[str, Any]
    app: Any

    def restore(self) -> None:
        """Back to the world as built: close every connection, copy the snapshot over the database."""
        self.ctx.store.dispose()
        for suffix in ("-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                Path(str(self.db) + suffix).unlink()
        shutil.copyfile(self.snapshot, self.db)


@contextlib.contextmanager
def scene() -> Any:
    _support_on_path()
    from fastapi.testclient import TestClient
    from world import PASSWORD, TOBI, Api, Session

    from protocol.messages import Card, TapEvent
    from server.api.app import create_app
    from server.services.context import Context
    from server.services.ingest import ingest_batch
    from server.store import migrate
    from server.store.database import Store

    work = Path(tempfile.mkdtemp(prefix="genba-chaos-api-"))
    db = work / "genba.db"
    url = f"sqlite:///{db}"
    migrate.upgrade(url)
    ctx = Context(Store(url), fast_hashing=True)
    # The scene taps "five minutes ago" and reads today's 就業履歴: run at 04:02 JST (a site's default
    # day boundary) that tap would belong to yesterday's work day. The server's clock runs at real pace
    # from the last 13:00 JST, mid work day, so the scene means the same whenever CI runs it.
    started = datetime.now(UTC)
    anchor = started.astimezone(ZoneInfo("Asia/Tokyo")).replace(hour=13, minute=0, second=0, microsecond=0)
    if anchor > started:
        anchor -= timedelta(days=1)
    ctx.clock = lambda: anchor + (datetime.now(UTC) - started)
    app = create_app(ctx)
    try:
        with TestClient(app, raise_server_exceptions=False) as client:
            api = Api.bootstrap(client, ctx)
            today = date.today()
            period = {"period_start": (today - timedelta(days=200)).isoformat(),
                      "period_end": (today + timedelta(days=200)).isoformat()}
            prime = api.company("カオス元請建設(株)")
            site = api.site(prime, "カオス現場", **period)
            site2 = api.site(prime, "カオス第二現場", **period)
            upper = api.company("カオス一次工業(株)")
            n_upper = api.registered(site, prime, site.root, upper)
            lower = api.company("カオス二次設備(株)")
            n_lower = api.registered(site, upper, n_upper, lower)
            sibling = api.company("カオス別系統工業(株)")
            api.registered(site, prime, site.root, sibling)
            invitee = api.company("カオス招待先(株)")
            n_invited = api.invite(site, upper, n_upper, invitee)
            n_placeholder = api.placeholder(site, upper, n_upper, "首都塗装カオス")
            replacement = api.company("首都塗装カオス")
            newco = api.company("カオス新規(株)")
            unrelated = api.company("無関係建設(株)")
            api.site(unrelated, "無関係の現場", **period)

            worker = api.worker(lower, "技能 カオス太郎")
            worker2 = api.worker(lower, "技能 カオス次郎")  # not on the roster: for registering
            other = api.worker(sibling, "別系統 作業員")
            card = lower.owner.ok("POST", f"/workers/{worker['id']}/cards", {"uid": UID_W}, status=201)
            lower.owner.ok("POST", f"/workers/{worker2['id']}/cards", {"uid": UID_W2}, status=201)
            sibling.owner.ok("POST", f"/workers/{other['id']}/cards", {"uid": UID_S}, status=201)
            entry = api.on_roster(site, lower, worker)
            api.on_roster(site, sibling, other)
            worker_session = api.worker_login(lower, worker)
            staff = api.staff(lower, "site_manager", [site.id])
            prime.owner.ok("POST", f"/sites/{site.id}/devices", {"device_id": "gate-01", "name": "正門カオス"},
                           status=201)
            now = ctx.now()
            taps = [("gate-01", TapEvent(device_id="gate-01", buffer_id="c4" * 16, seq=n + 1,
                                         card=Card(tech="felica", uid=uid), direction="in",
                                         at=now - timedelta(minutes=5), clock_synced=True, boot_id="chaos",
                                         mono_ms=1000 + n))
                    for n, uid in enumerate([UID_W, UID_S])]
            ingest_batch(ctx, taps)
            day = prime.owner.ok("GET", f"/sites/{site.id}/attendance")
            record = next(r["id"] for r in day["records"] if r["worker"]["id"] == worker["id"])
            work_day = day["work_day"]
            correction = lower.owner.ok("POST", "/corrections", {
                "site_id": site.id, "worker_id": worker["id"], "work_day": work_day,
                "exit_at": (now - timedelta(minutes=1)).isoformat(), "reason": "カオス補正理由"}, status=201)
            pattern = prime.owner.ok("POST", "/hierarchy-patterns", {"site_id": site.id, "name": "カオス型"},
                                     status=201)
            roster_pattern = lower.owner.ok("POST", "/roster-patterns", {
                "name": "カオス名簿型", "entries": [{"worker_id": worker2["id"], "trade": TOBI,
                                                 "position": "general"}]}, status=201)
            throwaway = api.staff(lower, "site_manager", [site.id])
            sessions = {P: prime.owner, U: upper.owner, L: lower.owner, X: unrelated.owner, W: worker_session,
                        A: Session(client, None), "operator": api.operator, "invitee": invitee.owner}
            ids = {
                "site": site.id, "site2": site2.id, "root": site.root, "n_upper": n_upper, "n_lower": n_lower,
                "n_invited": n_invited, "n_placeholder": n_placeholder, "replacement": replacement.id,
                "newco": newco.id, "prime": prime.id, "upper": upper.id, "lower": lower.id, "worker": worker["id"],
                "worker2": worker2["id"], "card": card["id"], "entry": entry["id"], "record": record,
                "work_day": work_day, "month": work_day[:7], "correction": correction["id"],
                "pattern": pattern["id"], "roster_pattern": roster_pattern["id"],
                "staff": staff.account["id"], "throwaway": throwaway.account["login_id"], "password": PASSWORD,
                "login_of": {r: s.account.get("login_id") for r, s in sessions.items()},
            }
            ctx.store.dispose()
            snapshot = work / "snapshot.db"
            shutil.copyfile(db, snapshot)
            yield Scene(client, ctx, db, snapshot, sessions, ids, app)
    finally:
        ctx.store.dispose()
        shutil.rmtree(work, ignore_errors=True)



# --- the role matrix ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Expect:
    """Who may call one operation on the world's objects, and why."""

    method: str
    path: str  # /api/v1 path with {ids} from Scene.ids
    allowed: frozenset[str]
    source: str
    body: Callable[[dict[str, Any]], Any] | None = None
    query: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    hide: dict[str, str] = field(default_factory=dict)  # role → text its 2xx answer must not contain
    unjudged: frozenset[str] = frozenset()  # roles the sources say nothing about
    proof: str | None = None  # who may, when none of the six may: its 2xx shows the refusals are about roles

    def expected(self, role: str) -> str:
        if role in self.unjudged:
            return "any"
        if role in self.allowed:
            return "allow"
        return "hide" if role in self.hide else "deny"


def _s(*roles: str) -> frozenset[str]:
    return frozenset(roles)


SIBLING = "カオス別系統"  # a first-tier branch the upper and lower companies are not part of
OTHER_WORKER = "別系統 作業員"
TREE = "README 施工体制: the 元請 sees the whole tree; a company its branch (visibility.tree_nodes)"
E = Expect
MATRIX: list[Expect] = [
    # 帳票 has no row for logging in: the auth endpoints are every account's own (or public).
    E("POST", "/auth/login", EVERYONE, "public: an ID and its password",
      body=lambda i: {"login_id": i["throwaway"], "password": i["password"]}),
    E("POST", "/auth/password", LOGGED_IN, "each account changes its own password (seed: 初回ログイン時 "
      "パスワード変更)",
      body=lambda i: {"current_password": i["password"], "new_password": "genba-Chaos-2031"}),
    E("POST", "/auth/reset", EVERYONE, "public: the security code is the proof (seed: セキュリティコード)",
      body=lambda i: {"login_id": i["throwaway"], "security_code": "246810", "new_password": "genba-Chaos-2031"}),
    E("POST", "/auth/logout", LOGGED_IN, "each account ends its own session"),
    E("GET", "/me", LOGGED_IN, "each account reads itself"),
    # IDs: 本支店担当者・現場管理者 IDs are managed by their own company (seed 138: 適切に管理).
    E("POST", "/accounts", _s(L), "a company issues its own IDs (services.accounts.reissue: its own IDs)",
      body=lambda i: {"login_id": "chaos-new-id", "role": "site_manager", "company_id": i["lower"],
                      "site_ids": [i["site"]]}),
    E("POST", "/accounts/{staff}/reissue", _s(L), "a company's 事業者責任者 for its own IDs "
      "(services.accounts.reissue)"),
    E("PUT", "/accounts/{staff}/sites", _s(L), "a company binds its own 現場管理者 IDs to sites",
      body=lambda i: {"site_ids": [i["site"]]}),
    E("GET", "/companies/{lower}/accounts", _s(L), "a company's own IDs"),
    # 事業者
    E("POST", "/companies", _s(), "事業者登録 is the operator's (mirrors CCUS), no company or worker",
      body=lambda i: {"ccus_id": "10000000009990", "name": "カオス登録"}, proof="operator"),
    E("GET", "/companies", COMPANIES, "事業者検索 of the invitation screen: registry facts (README 招待)",
      query=lambda i: {"name": "カオス"}, unjudged=_s(W)),
    E("GET", "/companies/{lower}", _s(P, U, L, W), f"{SEED} 3-1 事業者情報: 技能者, 所属事業主, 元請, 上位下請 (an "
      "unrelated company: not judged, it gets the same registry facts from 事業者検索)", unjudged=_s(X)),
    E("GET", "/companies/{lower}/workers", _s(L), f"{SEED} 1-2 所属技能者一覧: 所属事業主 (others: only items "
      "both sides disclosed, 【1-2】)", unjudged=_s(P, U, X, W)),
    # 技能者
    E("POST", "/workers", _s(L), "技能者登録 by the 所属事業主 (代理 only with consent: README 代理手続き)",
      body=lambda i: {"ccus_id": "80000000009990", "name": "新規 カオス", "employer_id": i["lower"],
                      "trades": [{"major": "06", "minor": "01"}]}),
    E("GET", "/workers/{worker}", _s(P, U, L, W), f"{SEED} 1-1 技能者情報: 技能者, 所属事業主; 1-4: 元請, 上位下請 "
      "for a worker on their site's roster"),
    E("PATCH", "/workers/{worker}", _s(L), f"{SEED} 1-1: the 所属事業主 keeps its worker's data",
      body=lambda i: {"phone": "03-0000-0000"}),
    E("GET", "/workers/{worker}/cards", _s(L), "the employer links its workers' cards", unjudged=_s(P, W)),
    E("POST", "/workers/{worker}/cards", _s(L), "the employer links its workers' cards",
      body=lambda i: {"uid": "0114C4A05C0000AA"}, unjudged=_s(P)),
    E("POST", "/cards/{card}/revoke", _s(L), "the employer revokes a lost card", body=lambda i: {"reason": "紛失"},
      unjudged=_s(P)),
    # 現場
    E("GET", "/sites", LOGGED_IN, f"{SEED} 4-2 自社に関する現場一覧 (filtered per account)",
      hide={X: "カオス現場"}),
    E("POST", "/sites", COMPANIES, "現場・契約情報の登録: any company is the 元請 of the site it registers",
      body=lambda i: {"ccus_id": "40000000009990", "name": "カオス新現場", "order_type": "private",
                      "period_start": date.today().isoformat(),
                      "period_end": (date.today() + timedelta(days=30)).isoformat()}),
    E("GET", "/sites/{site}", _s(P, U, L, W), f"{SEED} 4-1 現場・契約情報: 技能者, 元請, 上位下請 (公開設定項目)"),
    E("PATCH", "/sites/{site}", _s(P), f"{SEED} 4-1: the 元請 registers 現場・契約情報",
      body=lambda i: {"manager_name": "カオス 担当"}),
    # 施工体制
    E("GET", "/sites/{site}/hierarchy", _s(P, U, L, W), f"{SEED} 3-3 施工体制登録事業者一覧: 技能者(自社のみ), 元請, "
      f"上位下請; {TREE}", hide={U: SIBLING, L: SIBLING, W: SIBLING}),
    E("POST", "/sites/{site}/hierarchy", _s(P, U), "README 招待: an upper company invites under its own row; the "
      "元請 anywhere", body=lambda i: {"parent_node_id": i["n_upper"], "company_id": i["newco"]}),
    E("GET", "/approval-requests", COMPANIES, "承認要請リスト: each company its own", unjudged=_s(W)),
    E("POST", "/hierarchy/{n_invited}/approve", _s(), "README 承認: only the invited company approves",
      body=lambda i: {"work_name": "カオス工事"}, proof="invitee"),
    E("POST", "/hierarchy/{n_invited}/decline", _s(), "only the invited company declines", proof="invitee"),
    E("PUT", "/hierarchy/{n_lower}/work", _s(P, U, L), "工事内容編集: the company itself or one above it",
      body=lambda i: {"work_name": "配管工事", "work_content": "一式"}),
    E("POST", "/hierarchy/{n_placeholder}/replace", _s(U), "README CCUS未登録 → 置換: the company directly above",
      body=lambda i: {"company_id": i["replacement"]}),
    E("DELETE", "/hierarchy/{n_invited}", _s(P, U), "削除 / 招待の取り下げ: the inviter or a company above it"),
    E("GET", "/hierarchy-patterns", COMPANIES, "each company its own patterns", unjudged=_s(W)),
    E("POST", "/hierarchy-patterns", _s(P, U), "a company saves its own subtree of a site it is on (lower has "
      "none below it)", unjudged=_s(L),
      body=lambda i: {"site_id": i["site"], "name": "カオス保存"}),
    E("POST", "/hierarchy-patterns/{pattern}/apply", _s(P), "the 元請's own pattern, on its own other site",
      body=lambda i: {"site_id": i["site2"]}),
    # 作業員名簿
    E("GET", "/sites/{site}/roster", _s(P, U, L, W), f"{SEED} 1-4 施工体制登録技能者一覧 / AZ6 作業員名簿: "
      "技能者(本人のみ), 所属事業主, 元請, 上位下請 (上位は自身の下位のみ)",
      hide={U: OTHER_WORKER, L: OTHER_WORKER, W: OTHER_WORKER}),
    E("POST", "/sites/{site}/roster", _s(L), f"{SEED} AZ6 作業員名簿: 当該下請 registers its workers (代理: consent)",
      body=lambda i: {"worker_id": i["worker2"], "trade": {"major": "06", "minor": "01"}, "position": "general"}),
    E("PATCH", "/roster/{entry}", _s(L), f"{SEED} AZ6: 当該下請 keeps its entries",
      body=lambda i: {"position": "foreman"},
      unjudged=_s(P, U)),
    E("DELETE", "/roster/{entry}", _s(L), f"{SEED} AZ6: 当該下請 keeps its entries", unjudged=_s(P, U)),
    E("GET", "/roster-patterns", COMPANIES, "each company its own patterns", unjudged=_s(W)),
    E("POST", "/roster-patterns", _s(L), "a company saves a list of its own workers",
      body=lambda i: {"name": "カオス名簿保存", "entries": [{"worker_id": i["worker2"], "position": "general"}]}),
    E("POST", "/roster-patterns/{roster_pattern}/apply", _s(L), "the company's own pattern",
      body=lambda i: {"site_id": i["site"]}),
    # 同意
    E("GET", "/companies/{lower}/proxy-consents", _s(L), "README 代理手続き: the consents a company gave",
      unjudged=_s(U)),
    E("PUT", "/companies/{lower}/proxy-consents/{upper}", _s(L), "README 代理手続き: the employer consents or "
      "withdraws",
      body=lambda i: {"consented": True}),
    E("GET", "/workers/{worker}/disclosure", _s(L, W), "README 開示設定: each side sets its own half"),
    E("PUT", "/workers/{worker}/disclosure", _s(L, W), "README 開示設定: each side sets its own half",
      body=lambda i: {"all": True}),
    # 入退場デバイス
    E("POST", "/sites/{site}/devices", _s(P), "README 入退場デバイス: the 元請 registers its gates",
      body=lambda i: {"device_id": "gate-02", "name": "東門カオス"}),
    E("GET", "/sites/{site}/devices", _s(P), "README 入退場デバイス: the 元請's gates and their state",
      unjudged=_s(U, L)),
    E("GET", "/sites/{site}/tap-conflicts", _s(P), "tap conflicts: the 元請 only (API docs)"),
    E("GET", "/held-taps", _s(P, X), "held taps: the operator and any 元請's gate managers (unrelated is the 元請 "
      "of its own site; API docs)"),
    E("PATCH", "/devices/{device}", _s(P), "README 入退場デバイス: the 元請's gates",
      body=lambda i: {"location": "東門"}),
    E("POST", "/devices/{device}/retire", _s(P), "README 入退場デバイス: the 元請's gates"),
    # 就業履歴
    E("GET", "/sites/{site}/attendance", _s(P, U, L, W), f"{SEED} 2-1/2-3 技能者(本人のみ), 所属事業主, 元請, 上位下請",
      hide={U: OTHER_WORKER, L: OTHER_WORKER, W: OTHER_WORKER}),
    E("GET", "/sites/{site}/attendance/month", _s(P, U, L), f"{SEED} 2-2/2-4 就業履歴一覧: 所属事業主, 元請, 上位下請",
      query=lambda i: {"month": i["month"]}, hide={U: OTHER_WORKER, L: OTHER_WORKER, W: OTHER_WORKER}),
    E("GET", "/workers/{worker}/attendance", _s(P, U, L, W), f"{SEED} 2-1/2-3 技能者(本人のみ), 所属事業主, 元請, "
      "上位下請",
      query=lambda i: {"month": i["month"]}),
    E("GET", "/attendance/{record}", _s(P, U, L, W), f"{SEED} 2-3: one record, as 2-1/2-3"),
    # 帳票 (reports)
    E("GET", "/sites/{site}/reports/attendance-calendar", _s(P, U, L), f"{SEED} 2-4 就業履歴一覧（月別カレンダー）: "
      "所属事業主, 元請, 上位下請 (not the worker: 403 report_forbidden)",
      query=lambda i: {"month": i["month"]}, hide={U: OTHER_WORKER, L: OTHER_WORKER}),
    E("GET", "/sites/{site}/reports/attendance-totals", _s(P, U, L, W), f"{SEED} 2-1 就業履歴（月別計）: "
      "技能者(本人のみ: its own line), 所属事業主, 元請, 上位下請",
      query=lambda i: {"month": i["month"]}, hide={U: OTHER_WORKER, L: OTHER_WORKER, W: OTHER_WORKER}),
    E("GET", "/sites/{site}/reports/attendance-list", _s(P, U, L), f"{SEED} 2-2 就業履歴一覧（月別集約）: "
      "所属事業主, 元請, 上位下請 (not the worker: 403 report_forbidden)",
      query=lambda i: {"month": i["month"]}, hide={U: OTHER_WORKER, L: OTHER_WORKER}),
    E("GET", "/workers/{worker}/reports/attendance-totals", _s(P, U, L, W), f"{SEED} 2-1 就業履歴（月別計）: "
      "技能者(本人のみ), 所属事業主, 元請, 上位下請",
      query=lambda i: {"month": i["month"]}),
    E("GET", "/sites/{site}/reports/subcontractors", _s(P, U, L), f"{SEED} 3-2 下位事業者一覧: 元請, 上位下請 (not the "
      f"worker: 403 report_forbidden); {TREE}", hide={U: SIBLING, L: SIBLING}),
    E("GET", "/sites/{site}/reports/companies", _s(P, U, L, W), f"{SEED} 3-3 施工体制登録事業者一覧: 技能者(自社のみ), "
      f"元請, 上位下請; {TREE}", hide={U: SIBLING, L: SIBLING, W: SIBLING}),
    E("GET", "/workers/{worker}/reports/attendance-calendar", _s(P, U, L, W), f"{SEED} 2-3 就業履歴（月別カレンダー）: "
      "技能者(本人のみ), 所属事業主, 元請, 上位下請",
      query=lambda i: {"month": i["month"]}),
    E("GET", "/workers/{worker}/reports/profile", _s(L, W), f"{SEED} 1-1 技能者情報: 技能者, 所属事業主 (the 元請 and "
      "upper see the worker on their roster: 403 report_forbidden; unrelated: 404)"),
    E("GET", "/companies/{lower}/reports/workers", _s(L), f"{SEED} 1-2 所属技能者一覧: 所属事業主; other companies "
      "list only what both sides disclosed (nothing here: an empty list; tests/integration/test_worker_reports.py), "
      "the worker 403", unjudged=_s(P, U, X)),
    E("GET", "/companies/{lower}/reports/worker-statistics", _s(P, U, L, W), f"{SEED} 1-3 所属技能者統計情報: 技能者, "
      "所属事業者, 元請, 上位下請 (unrelated: 404)"),
    E("GET", "/sites/{site}/reports/roster", _s(P, U, L, W), f"{SEED} 1-4 施工体制登録技能者一覧: 技能者(本人のみ), "
      "所属事業主, 元請, 上位下請 (as GET /sites/{site}/roster)",
      hide={U: OTHER_WORKER, L: OTHER_WORKER, W: OTHER_WORKER}),
    E("GET", "/companies/{lower}/reports/profile", _s(P, U, L, W), f"{SEED} 3-1 事業者情報: 技能者, 所属事業主, 元請, "
      "上位下請 (unrelated: 404, unlike GET /companies/{id})"),
    E("GET", "/sites/{site}/reports/site", _s(P, U, L, W), f"{SEED} 4-1 現場・契約情報: 技能者, 元請, 上位下請 "
      "(only the 元請's 公開設定項目: the world's site discloses none, so not its 現場担当者名)",
      hide={U: "現場 太郎", L: "現場 太郎", W: "現場 太郎"}),
    E("GET", "/companies/{lower}/reports/sites", _s(L), f"{SEED} 4-2 自社に関する現場一覧: the company's own accounts "
      "(other companies: 404; the worker: 403 report_forbidden)"),
    E("GET", "/sites/{site}/reports/fee", _s(P), "現場利用料 estimate: the 元請 is charged, only it (others on the "
      "site: 403 prime_only; services.site_reports)", query=lambda i: {"month": i["month"]}),
    E("GET", "/workers/{worker}/career", _s(P, U, L, W), f"{SEED} 2-1 readers (能力評価 days): 技能者(本人のみ), "
      "所属事業主, 元請, 上位下請 (services.career)"),
    # 安全書類 (Excel forms: a zip, so no text marker to look for; what each party's file holds is checked
    # cell by cell in tests/integration/test_ledgers.py)
    E("GET", "/sites/{site}/safety-documents/az1", _s(P, U), f"{SEED} AZ1 施工体制台帳: 元請, 1次下請 (the 2次 and "
      "the worker: 403 report_forbidden)"),
    E("GET", "/sites/{site}/safety-documents/az3", _s(P, U, L), f"{SEED} AZ3 施工体制台帳（工事担当技術者）: 元請, "
      "施工体系図にある事業者（自身の枝のみ）"),
    E("GET", "/sites/{site}/safety-documents/az4", _s(P, U, L), f"{SEED} AZ4 下請負業者編成表: 元請, "
      "施工体系図にある事業者（自身の枝のみ）"),
    E("GET", "/sites/{site}/safety-documents/az5", _s(P, U, L), f"{SEED} AZ5 再下請負通知書（変更届）of the 2次: 元請, "
      "当該下請, 上位は自身の下位のみ (the worker: 403 report_forbidden)", query=lambda i: {"company_id": i["lower"]}),
    # (what each party's AZ2/AZ6/AZ7 holds is checked cell by cell in tests/integration/test_safety_documents.py)
    E("GET", "/sites/{site}/safety-documents/az2", _s(P, U, L), f"{SEED} AZ2 "
      "工事作業所災害防止協議会兼施工体系図: 元請, 施工体系図にある事業者（自身の枝のみ） (the worker: 403 "
      "report_forbidden; unrelated: 404)"),
    E("GET", "/sites/{site}/safety-documents/az6-a", _s(P, U, L), f"{SEED} AZ6-a 作業員名簿 of the 2次: 元請, "
      "当該下請, 上位は自身の下位のみ (the worker: 403 report_forbidden)", query=lambda i: {"company_id": i["lower"]}),
    E("GET", "/sites/{site}/safety-documents/az6-b", _s(P, U), f"{SEED} AZ6-b "
      "作業員名簿（社会保険加入状況について組込版） of the 1次: 元請, 当該下請 (the 2次 below it: 404 "
      "company_not_found)", query=lambda i: {"company_id": i["upper"]}),
    E("GET", "/sites/{site}/safety-documents/az7", _s(P, U, L), f"{SEED} AZ7 社会保険加入状況 of the 2次: 元請, "
      "当該下請, 上位は自身の下位のみ (the worker: 403 report_forbidden)", query=lambda i: {"company_id": i["lower"]}),
    E("POST", "/corrections", _s(L, W), "README 事後補正: the worker or the employer asks",
      body=lambda i: {"site_id": i["site"], "worker_id": i["worker"], "work_day": i["yesterday"],
                      "entry_at": f"{i['yesterday']}T08:00:00+09:00", "exit_at": f"{i['yesterday']}T17:00:00+09:00",
                      "reason": "カードを忘れた"}),
    E("GET", "/corrections", _s(P, L, W), "README 事後補正: the 元請 its sites', the worker and employer theirs",
      query=lambda i: {"site_id": i["site"]}, hide={U: "カオス補正理由", X: "カオス補正理由"}),
    E("POST", "/corrections/{correction}/approve", _s(P), "README 事後補正: the 元請 approves",
      body=lambda i: {"comment": "確認済み"}),
    E("POST", "/corrections/{correction}/reject", _s(P), "README 事後補正: the 元請 rejects with a comment",
      body=lambda i: {"comment": "記録と合わない"}),
    # code lists and the audit log
    E("GET", "/reference/trades", EVERYONE, "code lists: public, no personal data"),
    E("GET", "/reference/lists", EVERYONE, "code lists: public, no personal data"),
    E("GET", "/audit", _s(P), "README 変更履歴: a site's log is its 元請's; others at most their own actions",
      query=lambda i: {"site_id": i["site"]}, hide={W: "gate-01", U: "gate-01", L: "gate-01", X: "gate-01"}),
]
del E


def shape(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "{}", path)


def _refused(status: int) -> bool:
    return 400 <= status < 500


def role_matrix(sc: Scene) -> Row:
    """Every operation × the six roles, the world restored before every call that may change it."""
    ids = dict(sc.ids)
    ids["yesterday"] = (date.fromisoformat(ids["work_day"]) - timedelta(days=1)).isoformat()
    ids["device"] = "gate-01"
    listed = {(e.method, shape("/api/v1" + e.path)) for e in MATRIX}
    schema = {(m.upper(), shape(p)) for p, ops in sc.app.openapi()["paths"].items() for m in ops}
    calls = matching = allowed_wrongly = http_500 = 0
    leaks: list[str] = []
    locked_out: list[str] = []
    unproven: list[str] = []
    for e in MATRIX:
        path = e.path.format(**ids)
        for role in ROLES:
            if e.method != "GET":
                sc.restore()
            session = sc.sessions[role]
            r = session.call(e.method, path, e.body(ids) if e.body else None, **(e.query(ids) if e.query else {}))
            calls += 1
            want = e.expected(role)
            marker = e.hide.get(role)
            leaked = bool(marker) and r.is_success and marker in r.text
            repro = f"{e.method} {path} as {role} → {r.status_code}"
            if r.status_code >= 500:
                http_500 += 1
                leaks.append(f"{repro} (server error)")
            elif want == "any":
                matching += 1
            elif leaked:
                allowed_wrongly += 1
                leaks.append(f"{repro} shows '{marker}' ({e.source})")
            elif want == "allow" and r.is_success or want != "allow" and (_refused(r.status_code) or marker
                                                                          and r.is_success):
                matching += 1
            elif want != "allow" and r.is_success:
                allowed_wrongly += 1
                leaks.append(f"{repro}, expected refused ({e.source}): {r.text[:160]}")
            else:
                locked_out.append(f"{repro} {_code(r)}, expected allowed ({e.source})")
            if role == P and r.is_success:  # the 元請 sees everything: a marker it does not see proves nothing
                unproven += [f"{e.method} {path}: '{m}' not in the 元請's answer" for m in set(e.hide.values())
                             if m not in r.text]
            if want == "deny" and r.status_code == 422 and _code(r) == "invalid_request":
                unproven.append(f"{repro}: the request itself is invalid ({r.text[:120]})")
        if e.proof:
            sc.restore()
            r = sc.sessions[e.proof].call(e.method, path, e.body(ids) if e.body else None,
                                          **(e.query(ids) if e.query else {}))
            if not r.is_success:
                unproven.append(f"{e.method} {path} as {e.proof} → {r.status_code} {_code(r)}")
    sc.restore()
    notes = [f"{len(MATRIX)} operations × {len(ROLES)} roles; allowed but should be refused (counted in lost): "
             + ("; ".join(leaks) if leaks else "none")]
    if unproven:
        notes.append("refusals not shown to be about the role (the request fails for everyone): "
                     + "; ".join(unproven))
    if locked_out:
        notes.append(f"refused but should be allowed ({len(locked_out)}): " + "; ".join(locked_out))
    if schema - listed:
        notes.append("operations in the OpenAPI without an expectation: "
                     + ", ".join(f"{m} {p}" for m, p in sorted(schema - listed)))
    if listed - schema:
        notes.append("expectations for operations the OpenAPI lacks: "
                     + ", ".join(f"{m} {p}" for m, p in sorted(listed - schema)))
    return Row(name=f"role matrix ({len(MATRIX)} endpoints × {len(ROLES)} roles)", sent=calls, recorded=matching,
               lost=allowed_wrongly, http_500=http_500, note="; ".join(notes))


def _code(r: Any) -> str:
    try:
        return str(r.json().get("code"))
    except (ValueError, AttributeError):
        return r.text[:80]


# --- schemathesis ---------------------------------------------------------------------------------------

#: Operations that end or change the caller's own session: fuzzed with a throwaway account's token, so the
#: 元請's token stays valid for the rest of the run.
OWN_SESSION = {"/api/v1/auth/logout", "/api/v1/auth/password"}


@dataclass
class Findings:
    """Failed checks by (operation, check): how many, and the first example (status, curl, message)."""

    calls: int = 0
    conforming: int = 0
    http_500: int = 0
    by: Counter[tuple[str, str]] = field(default_factory=Counter)
    first: dict[tuple[str, str], str] = field(default_factory=dict)

    def add(self, label: str, title: str, example: str) -> None:
        key = (label, title)
        self.by[key] += 1
        self.first.setdefault(key, example)


def schemathesis_row(sc: Scene, examples: int, seed_value: int = 17) -> Row:
    """Every operation of the OpenAPI, ``examples`` positive and ``examples`` negative cases each, as the
    元請's 事業者責任者 (the world restored before each operation: a fuzzed DELETE or reissue may have
    removed what the next needs)."""
    import schemathesis
    from hypothesis.errors import Unsatisfiable
    from schemathesis import GenerationMode

    found = Findings()
    schema = schemathesis.openapi.from_asgi("/openapi.json", sc.app)
    started = time.monotonic()
    for result in schema.get_all_operations():
        op = result.ok()
        sc.restore()
        session = sc.sessions[P]
        if op.path in OWN_SESSION:
            from world import Api

            session = Api.login_as(sc.client, sc.ids["throwaway"], sc.ids["password"])
        headers = {"Authorization": f"Bearer {session.token}"}
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            with contextlib.suppress(Unsatisfiable):  # no negative case exists (an operation without input)
                _fuzz(op, mode, headers, found, examples, seed_value)
    sc.restore()
    spent = time.monotonic() - started
    findings = [f"{n}× {label} {title}; e.g. {found.first[(label, title)]}"
                for (label, title), n in sorted(found.by.items(), key=lambda x: (-x[1], x[0]))]
    kinds = Counter(title for _, title in found.by.elements())
    note = (f"{examples} positive + {examples} negative examples per operation, in {spent:.0f} s; "
            f"{found.calls - found.conforming} responses failed a check: "
            + (", ".join(f"{t} {n}" for t, n in kinds.most_common()) if kinds else "none"))
    if findings:
        note += "; " + " | ".join(findings)
    return Row(name=f"schemathesis ({found.calls:,} requests)", sent=found.calls, recorded=found.conforming,
               http_500=found.http_500, note=note)


def _fuzz(op: Any, mode: Any, headers: dict[str, str], found: Findings, examples: int, seed_value: int) -> None:
    """One seeded hypothesis run of one operation in one generation mode; every response checked."""
    from hypothesis import HealthCheck, Phase, given, seed, settings
    from schemathesis.core.failures import Failure, FailureGroup

    @seed(seed_value)
    @settings(max_examples=examples, database=None, phases=[Phase.explicit, Phase.generate],
              deadline=None, suppress_health_check=list(HealthCheck))
    @given(op.as_strategy(generation_mode=mode))
    def one(case: Any) -> None:
        response = case.call(headers=headers)
        found.calls += 1
        if response.status_code >= 500:
            found.http_500 += 1
        try:
            case.validate_response(response, headers=headers)
        except (Failure, FailureGroup) as exc:  # FailureGroup is a BaseExceptionGroup
            failures = exc.exceptions if isinstance(exc, FailureGroup) else [exc]
            curl = case.as_curl_command(headers={"Authorization": "Bearer $TOKEN"})
            for f in failures:
                found.add(op.label, f"{mode.value}: {f.title}",
                          f"[{response.status_code}] {curl[:400]} → {response.text[:200]}")
        else:
            found.conforming += 1

    one()


def rows(quick: bool) -> list[Row]:
    """The role matrix, then schemathesis on the same world (restored): quick has fewer examples."""
    with scene() as sc:
        return [role_matrix(sc), schemathesis_row(sc, 2 if quick else 8)]
