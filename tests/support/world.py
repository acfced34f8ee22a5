"""A small language for the seed's situations, spoken only through the HTTP API.

    prime = api.company("基本建設(株)")
    site = api.site(prime, "エプロ建設工事")
    first = api.company("アップ一級工務店(株)")
    node = api.registered(site, prime, first)        # 招待 by the prime, 承認 by the first tier

Each company comes with its 事業者責任者 logged in (``company.owner``), past the first-login
password change, so a test reads like the screens: who does what, and what they are told.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from fastapi.testclient import TestClient

from server.services import accounts
from server.services.context import Context

PASSWORD = "genba-Pass-2026"
NEW_PASSWORD = "genba-Next-2027"
SECURITY_CODE = "246810"
TOBI = {"major": "06", "minor": "01"}  # とび工 / とび工
DENKI = {"major": "09", "minor": "01"}  # 電工 / 電気工
DAIKU = {"major": "34", "minor": "01"}  # 大工 / 大工

_ids = itertools.count(1)


def ccus_id(prefix: str = "9") -> str:
    return f"{prefix}{next(_ids):013d}"


class Session:
    """One logged-in account talking to the API."""

    def __init__(self, client: TestClient, token: str | None, account: dict[str, Any] | None = None) -> None:
        self.client = client
        self.token = token
        self.account = account or {}

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def call(self, method: str, path: str, json: Any = None, **params: Any) -> Any:
        return self.client.request(method, "/api/v1" + path, json=json, headers=self.headers, params=params or None)

    def ok(self, method: str, path: str, json: Any = None, status: int | None = None, **params: Any) -> Any:
        r = self.call(method, path, json, **params)
        expected = status or {"POST": (200, 201), "DELETE": (204,)}.get(method, (200,))
        expected = (expected,) if isinstance(expected, int) else expected
        assert r.status_code in expected, f"{method} {path} → {r.status_code}: {r.text}"
        return r.json() if r.content else None

    def fail(self, method: str, path: str, json: Any = None, status: int = 400, code: str = "", **params: Any) -> Any:
        r = self.call(method, path, json, **params)
        assert r.status_code == status, f"{method} {path} → {r.status_code} (wanted {status}): {r.text}"
        body = r.json()
        assert set(body) >= {"code", "message", "message_en"}, body
        if code:
            assert body["code"] == code, body
        assert body["message"] and body["message_en"]
        return body


@dataclass
class Company:
    id: int
    ccus_id: str
    name: str
    owner: Session
    accounts: dict[str, Session] = field(default_factory=dict)


@dataclass
class Site:
    id: int
    ccus_id: str
    name: str
    prime: Company
    root: int  # the prime's hierarchy node


class Api:
    def __init__(self, client: TestClient, ctx: Context, operator: Session) -> None:
        self.client = client
        self.ctx = ctx
        self.operator = operator
        self.anonymous = Session(client, None)

    @classmethod
    def bootstrap(cls, client: TestClient, ctx: Context) -> Api:
        accounts.create_operator(ctx, "operator", PASSWORD)
        return cls(client, ctx, cls.login_as(client, "operator", PASSWORD))

    @staticmethod
    def login_as(client: TestClient, login_id: str, password: str) -> Session:
        r = client.post("/api/v1/auth/login", json={"login_id": login_id, "password": password})
        assert r.status_code == 200, r.text
        body = r.json()
        return Session(client, body["token"], body["account"])

    def activate(self, created: dict[str, Any]) -> Session:
        """First login with the initial password, change it and set the security code, log in again."""
        first = self.login_as(self.client, created["login_id"], created["initial_password"])
        first.ok(
            "POST",
            "/auth/password",
            {"current_password": created["initial_password"], "new_password": PASSWORD,
             "security_code": SECURITY_CODE},
        )
        return self.login_as(self.client, created["login_id"], PASSWORD)

    def account(self, by: Session, login_id: str, role: str, **body: Any) -> Session:
        created = by.ok("POST", "/accounts", {"login_id": login_id, "role": role, **body}, status=201)
        return self.activate(created)

    def company(self, name: str, **extra: Any) -> Company:
        cid = ccus_id("1")
        c = self.operator.ok("POST", "/companies", {"ccus_id": cid, "name": name, **extra}, status=201)
        owner = self.account(self.operator, f"owner{c['id']}", "company_owner", company_id=c["id"],
                             display_name=f"{name} 事業者責任者")
        return Company(c["id"], cid, name, owner)

    def staff(self, company: Company, role: str, site_ids: list[int] | None = None) -> Session:
        login = f"{role}{company.id}-{len(company.accounts)}"
        s = self.account(company.owner, login, role, company_id=company.id, site_ids=site_ids or [])
        company.accounts[login] = s
        return s

    def worker(self, employer: Company, name: str, trades: list[dict[str, str]] | None = None,
               qualifications: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
        body = {
            "ccus_id": ccus_id("8"),
            "name": name,
            "employer_id": employer.id,
            "trades": [TOBI] if trades is None else trades,
            "qualifications": qualifications or [],
            **extra,
        }
        result: dict[str, Any] = employer.owner.ok("POST", "/workers", body, status=201)
        return result

    def worker_login(self, employer: Company, worker: dict[str, Any]) -> Session:
        return self.account(employer.owner, f"worker{worker['id']}", "worker", worker_id=worker["id"])

    def site(self, prime: Company, name: str = "エプロ建設工事", **extra: Any) -> Site:
        sid = ccus_id("4")
        body = {
            "ccus_id": sid,
            "name": name,
            "order_type": "private",
            "period_start": "2026-04-01",
            "period_end": "2027-09-30",
            "address": "東京都 港区 虎ノ門",
            "manager_name": "現場 太郎",
            **extra,
        }
        s = prime.owner.ok("POST", "/sites", body, status=201)
        tree = prime.owner.ok("GET", f"/sites/{s['id']}/hierarchy")
        return Site(s["id"], sid, name, prime, tree["rows"][0]["node_id"])

    def invite(self, site: Site, by: Company | Session, parent: int, company: Company) -> int:
        session = by.owner if isinstance(by, Company) else by
        node = session.ok("POST", f"/sites/{site.id}/hierarchy",
                          {"parent_node_id": parent, "company_id": company.id}, status=201)
        return int(node["id"])

    def approve(self, company: Company, node_id: int, work_name: str = "躯体工事") -> None:
        company.owner.ok("POST", f"/hierarchy/{node_id}/approve", {"work_name": work_name, "work_content": "一式"})

    def registered(self, site: Site, by: Company, parent: int, company: Company) -> int:
        """招待 then 承認: the company is 登録 under ``parent``."""
        node = self.invite(site, by, parent, company)
        self.approve(company, node)
        return node

    def placeholder(self, site: Site, by: Company, parent: int, name: str) -> int:
        node = by.owner.ok("POST", f"/sites/{site.id}/hierarchy",
                           {"parent_node_id": parent, "placeholder_name": name}, status=201)
        return int(node["id"])

    def on_roster(self, site: Site, by: Company | Session, worker: dict[str, Any], **fields: Any) -> dict[str, Any]:
        session = by.owner if isinstance(by, Company) else by
        body = {"worker_id": worker["id"], "trade": TOBI, "position": "general", **fields}
        result: dict[str, Any] = session.ok("POST", f"/sites/{site.id}/roster", body, status=201)
        return result
