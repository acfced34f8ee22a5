"""IDs, roles and logins as the seed walks through them (参考資料 7, 参考資料 1).

ID と初期パスワードでログイン → パスワード変更 → セキュリティコード → もう一度ログイン; the roles
事業者責任者 / 階層管理者 / 現場管理者 / 技能者 and who may issue which ID; a 現場管理者 acts only on the
sites its ID is bound to; 招待 by any company role, 承認 by 事業者責任者 or 階層管理者 only.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

from world import NEW_PASSWORD, PASSWORD, SECURITY_CODE, Api, Company, Session

from server.services.context import Context
from server.store import tables as t


def _issue(api: Api, by: Session, login_id: str, role: str, **body: Any) -> dict[str, Any]:
    created: dict[str, Any] = by.ok("POST", "/accounts", {"login_id": login_id, "role": role, **body}, status=201)
    return created


def _first_login(api: Api, created: dict[str, Any]) -> tuple[Session, dict[str, Any]]:
    r = api.client.post(
        "/api/v1/auth/login", json={"login_id": created["login_id"], "password": created["initial_password"]}
    )
    assert r.status_code == 200, r.text
    body = r.json()
    return Session(api.client, body["token"], body["account"]), body


def _login_fails(api: Api, login_id: str, password: str, code: str) -> dict[str, Any]:
    return api.anonymous.fail("POST", "/auth/login", {"login_id": login_id, "password": password}, status=401,
                              code=code)


def _account_row(ctx: Context, login_id: str) -> t.Account:
    with ctx.store.read() as uow:
        row = uow.accounts.by_login_id(login_id)
        assert row is not None
        return row  # detached when the unit closes, its columns loaded


def _audit_count(api: Api) -> int:
    return len(api.operator.ok("GET", "/audit", limit=1000))


# --- 参考資料 7: 初期パスワード → パスワード変更 → セキュリティコード → もう一度ログイン ---------------------


def test_first_login_only_allows_changing_the_initial_password(api: Api) -> None:
    company = api.company("(株)基本建設")
    created = _issue(api, company.owner, "genba-kanri01", "site_manager", company_id=company.id,
                     display_name="現場 一郎")
    assert created["initial_password"] and created["must_change_password"] is True

    first, body = _first_login(api, created)
    assert body["scope"] == "password_change" and body["must_change_password"] is True
    for method, path, payload in [
        ("GET", "/me", None),
        ("GET", "/sites", None),
        ("GET", "/approval-requests", None),
        ("GET", "/audit", None),
        ("POST", "/accounts", {"login_id": "sneaky01", "role": "worker", "worker_id": 1}),
    ]:
        first.fail(method, path, payload, status=403, code="password_change_required")

    change = {"current_password": created["initial_password"], "new_password": NEW_PASSWORD}
    # 初回はセキュリティコードも設定する
    first.fail("POST", "/auth/password", change, status=422, code="security_code_required")
    first.fail("POST", "/auth/password", change | {"security_code": "12ab"}, status=422, code="invalid_security_code")
    first.fail("POST", "/auth/password", change | {"security_code": ""}, status=422, code="invalid_security_code")
    for weak in ("short1", "onlyletterspassword", "12345678901234", "xgenba-kanri01x9", "GENBA-KANRI01-7x"):
        first.fail("POST", "/auth/password", change | {"new_password": weak, "security_code": SECURITY_CODE},
                   status=422, code="weak_password")
    first.fail("POST", "/auth/password", change | {"current_password": "not-the-initial-1", "security_code":
                                                  SECURITY_CODE}, status=401, code="wrong_password")
    first.fail("POST", "/auth/password", change | {"new_password": created["initial_password"],
                                                  "security_code": SECURITY_CODE}, status=422)
    # Every refusal above changed nothing: still the initial password, no security code, same token.
    row = _account_row(api.ctx, "genba-kanri01")
    assert row.must_change_password and row.security_code_hash is None

    me = first.ok("POST", "/auth/password", change | {"security_code": SECURITY_CODE})
    assert me["must_change_password"] is False
    # The change ends every token, the first-login one included: もう一度ログイン.
    first.fail("POST", "/auth/password", change | {"security_code": SECURITY_CODE}, status=401, code="invalid_token")
    first.fail("GET", "/me", status=401, code="invalid_token")
    _login_fails(api, "genba-kanri01", created["initial_password"], "login_failed")

    again = Api.login_as(api.client, "genba-kanri01", NEW_PASSWORD)
    me = again.ok("GET", "/me")
    assert (me["role"], me["role_label"], me["company_id"], me["display_name"]) == (
        "site_manager", "現場管理者", company.id, "現場 一郎")
    assert me["must_change_password"] is False


def test_a_later_password_change_needs_no_security_code_and_ends_every_session(api: Api) -> None:
    company = api.company("アップ一級工務店(株)")
    manager = api.staff(company, "hierarchy_manager")
    login_id = manager.account["login_id"]
    other_device = Api.login_as(api.client, login_id, PASSWORD)
    manager.fail("POST", "/auth/password", {"current_password": PASSWORD, "new_password": "tooweak"},
                 status=422, code="weak_password")
    other_device.ok("GET", "/me")  # a refused change ends nothing

    manager.ok("POST", "/auth/password", {"current_password": PASSWORD, "new_password": NEW_PASSWORD})
    for old in (manager, other_device):
        old.fail("GET", "/me", status=401, code="invalid_token")
    _login_fails(api, login_id, PASSWORD, "login_failed")
    Api.login_as(api.client, login_id, NEW_PASSWORD).ok("GET", "/me")
    # The security code set at the first change still works (the later change kept it).
    api.anonymous.ok("POST", "/auth/reset", {"login_id": login_id, "security_code": SECURITY_CODE,
                                             "new_password": "genba-Third-2028"}, status=204)
    Api.login_as(api.client, login_id, "genba-Third-2028").ok("GET", "/me")


def test_passwords_and_security_codes_are_stored_hashed(api: Api) -> None:
    company = api.company("(株)ハッシュ建設")
    row = _account_row(api.ctx, company.owner.account["login_id"])
    assert row.password_hash.startswith("$argon2") and PASSWORD not in row.password_hash
    assert row.security_code_hash is not None and row.security_code_hash.startswith("$argon2")
    assert SECURITY_CODE not in row.security_code_hash
    assert company.owner.token
    with api.ctx.store.read() as uow:  # tokens too: only their digest
        assert uow.accounts.token(hashlib.sha256(company.owner.token.encode()).hexdigest()) is not None
        assert uow.accounts.token(company.owner.token) is None
    # Nothing the API returns about an account carries a hash.
    listed = company.owner.ok("GET", f"/companies/{company.id}/accounts")
    me = company.owner.ok("GET", "/me")
    for view in [me, *listed]:
        assert not {"password_hash", "security_code_hash", "initial_password"} & set(view), view


# --- login failures, lockout and the security-code reset -------------------------------------------------


def test_wrong_password_and_unknown_login_are_told_the_same(api: Api) -> None:
    company = api.company("(株)基本建設")
    login_id = company.owner.account["login_id"]
    wrong = _login_fails(api, login_id, "genba-Wrong-0000", "login_failed")
    unknown = _login_fails(api, "nobody-here", "genba-Wrong-0000", "login_failed")
    assert (wrong["message"], wrong["message_en"]) == (unknown["message"], unknown["message_en"])
    api.anonymous.fail("POST", "/auth/login", {"login_id": login_id}, status=422, code="invalid_request")


def test_the_security_code_resets_a_forgotten_password(api: Api) -> None:
    """What a wrong password leads to: a reset by security code (the waits after many wrong
    passwords are tests/integration/test_login_throttle.py)."""
    company = api.company("(株)基本建設")
    login_id = company.owner.account["login_id"]
    _login_fails(api, login_id, "genba-Wrong-0000", "login_failed")

    reset = {"login_id": login_id, "security_code": SECURITY_CODE, "new_password": NEW_PASSWORD}
    api.anonymous.fail("POST", "/auth/reset", reset | {"security_code": "999999"}, status=401, code="reset_failed")
    api.anonymous.fail("POST", "/auth/reset", reset | {"login_id": "nobody-here"}, status=401, code="reset_failed")
    api.anonymous.fail("POST", "/auth/reset", reset | {"new_password": "weak"}, status=422, code="weak_password")
    Api.login_as(api.client, login_id, PASSWORD)  # none of those changed the password

    api.anonymous.ok("POST", "/auth/reset", reset, status=204)
    company.owner.fail("GET", "/me", status=401, code="invalid_token")  # the reset ends old sessions
    _login_fails(api, login_id, PASSWORD, "login_failed")
    session = Api.login_as(api.client, login_id, NEW_PASSWORD)
    assert session.ok("GET", "/me")["id"] == company.owner.account["id"]


def test_guessing_the_security_code_closes_the_reset_until_the_company_reissues(api: Api) -> None:
    company = api.company("(株)基本建設")
    staff = api.staff(company, "hierarchy_manager")
    login_id = staff.account["login_id"]
    reset = {"login_id": login_id, "security_code": "000000", "new_password": NEW_PASSWORD}
    for _ in range(5):
        api.anonymous.fail("POST", "/auth/reset", reset, status=401, code="reset_failed")
    # Even the right code no longer works: a short code must not be guessable online.
    api.anonymous.fail("POST", "/auth/reset", reset | {"security_code": SECURITY_CODE}, status=401,
                       code="reset_locked")

    # Another company cannot reissue it; the company's own 事業者責任者 can.
    other = api.company("他社建設(株)")
    other.owner.fail("POST", f"/accounts/{staff.account['id']}/reissue", status=404, code="account_not_found")
    reissued = company.owner.ok("POST", f"/accounts/{staff.account['id']}/reissue")
    assert reissued["must_change_password"] is True and reissued["initial_password"]
    staff.fail("GET", "/me", status=401, code="invalid_token")  # every session ended
    fresh = api.activate(reissued | {"login_id": login_id})
    assert fresh.ok("GET", "/me")["login_id"] == login_id
    assert _account_row(api.ctx, login_id).failed_resets == 0


def test_who_may_reissue_an_initial_password(api: Api) -> None:
    company = api.company("(株)基本建設")
    manager = api.staff(company, "hierarchy_manager")
    site_manager = api.staff(company, "site_manager")
    owner_id = company.owner.account["id"]
    manager.fail("POST", f"/accounts/{owner_id}/reissue", status=403, code="role_not_allowed")
    site_manager.fail("POST", f"/accounts/{manager.account['id']}/reissue", status=403, code="role_not_allowed")
    manager.ok("POST", f"/accounts/{site_manager.account['id']}/reissue")
    api.operator.ok("POST", f"/accounts/{owner_id}/reissue")
    api.operator.fail("POST", f"/accounts/{api.operator.account['id']}/reissue", status=404)


def test_an_id_that_never_set_a_security_code_cannot_be_reset(api: Api) -> None:
    company = api.company("(株)基本建設")
    created = _issue(api, company.owner, "kaiso-kanri01", "hierarchy_manager", company_id=company.id)
    api.anonymous.fail("POST", "/auth/reset", {"login_id": "kaiso-kanri01", "security_code": SECURITY_CODE,
                                               "new_password": NEW_PASSWORD}, status=401, code="reset_failed")
    _first_login(api, created)  # the initial password still works


# --- tokens ----------------------------------------------------------------------------------------------


def test_tokens_expire_and_logout_ends_one(api: Api) -> None:
    company = api.company("(株)基本建設")
    start = datetime.now(UTC)
    api.ctx.clock = lambda: start
    session = Api.login_as(api.client, company.owner.account["login_id"], PASSWORD)
    other = Api.login_as(api.client, company.owner.account["login_id"], PASSWORD)

    api.ctx.clock = lambda: start + api.ctx.token_ttl - timedelta(minutes=1)
    session.ok("GET", "/me")
    api.ctx.clock = lambda: start + api.ctx.token_ttl + timedelta(seconds=1)
    session.fail("GET", "/me", status=401, code="token_expired")
    session.fail("POST", "/sites/1/hierarchy", {"parent_node_id": 1, "company_id": 1}, status=401,
                 code="token_expired")
    fresh = Api.login_as(api.client, company.owner.account["login_id"], PASSWORD)
    fresh.ok("GET", "/me")

    fresh.ok("POST", "/auth/logout", status=204)
    fresh.fail("GET", "/me", status=401, code="invalid_token")
    api.ctx.clock = lambda: start
    other.ok("GET", "/me")  # logging out one session leaves the others


def test_the_first_login_token_expires_sooner(api: Api) -> None:
    company = api.company("(株)基本建設")
    created = _issue(api, company.owner, "genba-kanri02", "site_manager", company_id=company.id)
    start = datetime.now(UTC)
    api.ctx.clock = lambda: start
    first, body = _first_login(api, created)
    assert datetime.fromisoformat(body["expires_at"]) <= start + api.ctx.token_ttl
    api.ctx.clock = lambda: start + timedelta(hours=2)
    first.fail("POST", "/auth/password", {"current_password": created["initial_password"],
                                          "new_password": NEW_PASSWORD, "security_code": SECURITY_CODE},
               status=401, code="token_expired")
    assert _account_row(api.ctx, "genba-kanri02").must_change_password


def test_missing_or_garbage_authorization_is_refused(api: Api) -> None:
    api.anonymous.fail("GET", "/me", status=401, code="login_required")
    api.anonymous.fail("POST", "/accounts", {"login_id": "x-login", "role": "worker", "worker_id": 1},
                       status=401, code="login_required")
    for header in ("Bearer not-a-real-token", "Bearer ", "Basic b3BlcmF0b3I6cGFzcw==", "garbage", "Bearer a b"):
        r = api.client.get("/api/v1/me", headers={"Authorization": header})
        assert r.status_code == 401, (header, r.text)
        assert r.json()["code"] in ("login_required", "invalid_token"), r.text


# --- who may issue which ID ------------------------------------------------------------------------------


def test_the_operator_issues_a_company_owner_id(api: Api) -> None:
    c = api.operator.ok("POST", "/companies", {"ccus_id": "12345678901234", "name": "(株)新規建設"}, status=201)
    created = _issue(api, api.operator, "shinki-owner", "company_owner", company_id=c["id"],
                     display_name="新規 太郎")
    assert (created["role"], created["role_label"], created["company_id"]) == ("company_owner", "事業者責任者", c["id"])
    api.operator.fail("POST", "/accounts", {"login_id": "no-company", "role": "company_owner"}, status=422,
                      code="company_required")
    api.operator.fail("POST", "/accounts", {"login_id": "ghost-owner", "role": "company_owner",
                                            "company_id": 999999}, status=404)
    api.operator.fail("POST", "/accounts", {"login_id": "bad id", "role": "company_owner", "company_id": c["id"]},
                      status=422, code="invalid_login_id")
    api.operator.fail("POST", "/accounts", {"login_id": "odd-role", "role": "superuser", "company_id": c["id"]},
                      status=422, code="invalid_request")
    me = api.activate(created).ok("GET", "/me")
    assert (me["role"], me["company_id"], me["display_name"]) == ("company_owner", c["id"], "新規 太郎")


def test_nobody_can_issue_an_operator_id(api: Api) -> None:
    company = api.company("(株)基本建設")
    manager = api.staff(company, "hierarchy_manager")
    for who in (api.operator, company.owner, manager):
        who.fail("POST", "/accounts", {"login_id": "second-operator", "role": "operator"}, status=403,
                 code="role_not_allowed")
    _login_fails(api, "second-operator", PASSWORD, "login_failed")


def test_a_company_owner_issues_ids_for_its_own_company_and_workers_only(api: Api) -> None:
    prime = api.company("(株)基本建設")
    other = api.company("アップ一級工務店(株)")
    site = api.site(prime)
    mine = api.worker(prime, "建設 太郎")
    theirs = api.worker(other, "一級 花子")

    for role, extra in [("hierarchy_manager", {}), ("site_manager", {"site_ids": [site.id]})]:
        created = _issue(api, prime.owner, f"prime-{role}", role, company_id=prime.id, **extra)
        assert (created["role"], created["company_id"], created["must_change_password"]) == (role, prime.id, True)
    created = _issue(api, prime.owner, "prime-worker", "worker", worker_id=mine["id"])
    assert (created["role"], created["worker_id"], created["company_id"]) == ("worker", mine["id"], None)
    worker = api.activate(created)
    assert worker.ok("GET", "/me")["worker_id"] == mine["id"]

    prime.owner.fail("POST", "/accounts", {"login_id": "steal-staff", "role": "hierarchy_manager",
                                           "company_id": other.id}, status=403, code="not_your_company")
    prime.owner.fail("POST", "/accounts", {"login_id": "steal-owner", "role": "company_owner",
                                           "company_id": other.id}, status=403, code="not_your_company")
    prime.owner.fail("POST", "/accounts", {"login_id": "steal-worker", "role": "worker", "worker_id": theirs["id"]},
                     status=403, code="not_your_company")
    prime.owner.fail("POST", "/accounts", {"login_id": "no-worker", "role": "worker"}, status=422,
                     code="worker_required")
    prime.owner.fail("POST", "/accounts", {"login_id": "twice-worker", "role": "worker", "worker_id": mine["id"]},
                     status=409, code="worker_has_login")

    listed = {a["login_id"]: a for a in prime.owner.ok("GET", f"/companies/{prime.id}/accounts")}
    assert set(listed) == {prime.owner.account["login_id"], "prime-hierarchy_manager", "prime-site_manager"}
    assert listed["prime-site_manager"]["site_ids"] == [site.id]
    prime.owner.fail("GET", f"/companies/{other.id}/accounts", status=403, code="not_your_company")
    for refused in ("steal-staff", "steal-owner", "steal-worker", "no-worker", "twice-worker"):
        _login_fails(api, refused, PASSWORD, "login_failed")


def test_a_hierarchy_manager_issues_staff_ids_but_not_a_company_owner(api: Api) -> None:
    company = api.company("(株)基本建設")
    manager = api.staff(company, "hierarchy_manager")
    manager.fail("POST", "/accounts", {"login_id": "kaiso-owner", "role": "company_owner",
                                       "company_id": company.id}, status=403, code="role_not_allowed")
    created = _issue(api, manager, "kaiso-made-sm", "site_manager", company_id=company.id)
    assert created["role"] == "site_manager"
    # A company owner may appoint another company owner of its own company.
    assert _issue(api, company.owner, "second-owner", "company_owner", company_id=company.id)["role"] == (
        "company_owner")


def test_a_site_manager_and_a_worker_cannot_issue_ids(api: Api) -> None:
    company = api.company("(株)基本建設")
    site = api.site(company)
    site_manager = api.staff(company, "site_manager", site_ids=[site.id])
    worker = api.worker_login(company, api.worker(company, "建設 次郎"))
    other_worker = api.worker(company, "建設 三郎")
    for who in (site_manager, worker):
        who.fail("POST", "/accounts", {"login_id": "by-staff-sm", "role": "site_manager", "company_id": company.id},
                 status=403, code="role_not_allowed")
        who.fail("POST", "/accounts", {"login_id": "by-staff-w", "role": "worker", "worker_id": other_worker["id"]},
                 status=403, code="role_not_allowed")
        who.fail("GET", f"/companies/{company.id}/accounts", status=403, code="role_not_allowed")
        who.fail("PUT", f"/accounts/{site_manager.account['id']}/sites", {"site_ids": []}, status=403,
                 code="role_not_allowed")
    assert site_manager.ok("GET", "/me")["site_ids"] == [site.id]


def test_login_ids_are_unique(api: Api) -> None:
    company = api.company("(株)基本建設")
    _issue(api, company.owner, "taken-id", "hierarchy_manager", company_id=company.id)
    for login_id in ("taken-id", "operator", company.owner.account["login_id"], "  taken-id  "):
        company.owner.fail("POST", "/accounts", {"login_id": login_id, "role": "site_manager",
                                                 "company_id": company.id}, status=409, code="login_id_taken")
    assert len(company.owner.ok("GET", f"/companies/{company.id}/accounts")) == 2


def test_an_overlong_display_name_is_refused_not_a_crash(api: Api) -> None:
    company = api.company("(株)基本建設")
    company.owner.fail("POST", "/accounts", {"login_id": "long-name", "role": "hierarchy_manager",
                                             "company_id": company.id, "display_name": "長" * 101}, status=422,
                       code="invalid_display_name")
    _login_fails(api, "long-name", PASSWORD, "login_failed")


def test_only_site_manager_ids_are_bound_to_sites_where_the_company_is(api: Api) -> None:
    prime = api.company("(株)基本建設")
    site = api.site(prime)
    elsewhere = api.site(api.company("(株)よそ建設"), "よその現場")
    prime.owner.fail("POST", "/accounts", {"login_id": "kaiso-sites", "role": "hierarchy_manager",
                                           "company_id": prime.id, "site_ids": [site.id]},
                     status=422, code="sites_only_for_site_manager")
    body = prime.owner.fail("POST", "/accounts", {"login_id": "sm-elsewhere", "role": "site_manager",
                                                  "company_id": prime.id, "site_ids": [site.id, elsewhere.id]},
                            status=404, code="site_not_found")
    assert body["details"]["site_id"] == elsewhere.id
    prime.owner.fail("POST", "/accounts", {"login_id": "sm-nowhere", "role": "site_manager",
                                           "company_id": prime.id, "site_ids": [999999]},
                     status=404, code="site_not_found")
    # The refusals wrote nothing: neither ID exists, and the login IDs are still free.
    logins = {a["login_id"] for a in prime.owner.ok("GET", f"/companies/{prime.id}/accounts")}
    assert logins == {prime.owner.account["login_id"]}
    _issue(api, prime.owner, "sm-elsewhere", "site_manager", company_id=prime.id, site_ids=[site.id])


def test_rebinding_a_site_manager_moves_it_to_the_new_site_at_once(api: Api) -> None:
    prime = api.company("(株)基本建設")
    site_a = api.site(prime, "A現場")
    site_b = api.site(prime, "B現場")
    first = api.company("アップ一級工務店(株)")
    manager = api.staff(prime, "site_manager", site_ids=[site_a.id])
    manager_id = manager.account["id"]
    invite_b = {"parent_node_id": site_b.root, "company_id": first.id}
    manager.fail("POST", f"/sites/{site_b.id}/hierarchy", invite_b, status=403, code="site_not_assigned")

    view = prime.owner.ok("PUT", f"/accounts/{manager_id}/sites", {"site_ids": [site_b.id]})
    assert view["site_ids"] == [site_b.id]
    assert manager.ok("GET", "/me")["site_ids"] == [site_b.id]  # same session, new binding
    manager.ok("POST", f"/sites/{site_b.id}/hierarchy", invite_b, status=201)
    manager.fail("POST", f"/sites/{site_a.id}/hierarchy", {"parent_node_id": site_a.root, "company_id": first.id},
                 status=403, code="site_not_assigned")
    assert [s["id"] for s in manager.ok("GET", "/sites")] == [site_b.id]

    # Refused rebinds change nothing.
    stranger = api.company("(株)よそ建設")
    stranger.owner.fail("PUT", f"/accounts/{manager_id}/sites", {"site_ids": []}, status=403,
                        code="not_your_company")
    prime.owner.fail("PUT", f"/accounts/{manager_id}/sites", {"site_ids": [site_a.id, api.site(stranger).id]},
                     status=404, code="site_not_found")
    prime.owner.fail("PUT", f"/accounts/{prime.owner.account['id']}/sites", {"site_ids": [site_a.id]},
                     status=404, code="account_not_found")
    assert manager.ok("GET", "/me")["site_ids"] == [site_b.id]


# --- 参考資料 1: 招待 by 事業者責任者・階層管理者・現場管理者; 承認 by 事業者責任者・階層管理者 only -------------


def _rows(company: Company, site_id: int) -> list[tuple[str, str]]:
    rows = company.owner.ok("GET", f"/sites/{site_id}/hierarchy")["rows"]
    return [(r["name"], r["status_label"]) for r in rows]


def test_a_site_manager_acts_only_on_its_bound_sites(api: Api) -> None:
    prime = api.company("(株)基本建設")
    site_a = api.site(prime, "A現場")
    site_b = api.site(prime, "B現場")
    first = api.company("アップ一級工務店(株)")
    manager = api.staff(prime, "site_manager", site_ids=[site_a.id])

    node = api.invite(site_a, manager, site_a.root, first)
    assert _rows(prime, site_a.id) == [("(株)基本建設", "登録"), ("アップ一級工務店(株)", "未承認")]
    manager.fail("POST", f"/sites/{site_b.id}/hierarchy", {"parent_node_id": site_b.root, "company_id": first.id},
                 status=403, code="site_not_assigned")
    manager.fail("GET", f"/sites/{site_b.id}/hierarchy", status=404, code="site_not_found")
    manager.fail("PATCH", f"/sites/{site_b.id}", {"name": "乗っ取り"}, status=403)
    manager.ok("PATCH", f"/sites/{site_a.id}", {"manager_name": "現場 一郎"})
    assert _rows(prime, site_b.id) == [("(株)基本建設", "登録")]
    assert prime.owner.ok("GET", f"/sites/{site_b.id}")["name"] == "B現場"
    assert [s["id"] for s in manager.ok("GET", "/sites")] == [site_a.id]
    # The company owner acts on every site of its company.
    api.invite(site_b, prime, site_b.root, first)
    api.approve(first, node)


def test_a_site_manager_may_invite_but_not_approve(api: Api) -> None:
    prime = api.company("(株)基本建設")
    site = api.site(prime)
    first = api.company("アップ一級工務店(株)")
    second = api.company("二次建築(株)")
    node = api.invite(site, prime, site.root, first)
    first_sm = api.staff(first, "site_manager", site_ids=[site.id])  # bound while its company is 未承認
    first_hm = api.staff(first, "hierarchy_manager")

    first_sm.fail("GET", "/approval-requests", status=403, code="role_not_allowed")
    first_sm.fail("POST", f"/hierarchy/{node}/approve", {"work_name": "躯体工事"}, status=403,
                  code="role_not_allowed")
    first_sm.fail("POST", f"/hierarchy/{node}/decline", status=403, code="role_not_allowed")
    assert _rows(prime, site.id)[1] == ("アップ一級工務店(株)", "未承認")

    assert [r["node_id"] for r in first_hm.ok("GET", "/approval-requests")] == [node]
    first_hm.ok("POST", f"/hierarchy/{node}/approve", {"work_name": "躯体工事", "work_content": "鉄骨建方"})
    assert _rows(prime, site.id)[1] == ("アップ一級工務店(株)", "登録")

    # Now 登録, the first tier's site manager invites below its company; only the invitee approves.
    node2 = api.invite(site, first_sm, node, second)
    second_sm = api.staff(second, "site_manager", site_ids=[site.id])
    second_sm.fail("POST", f"/hierarchy/{node2}/approve", {"work_name": "内装"}, status=403,
                   code="role_not_allowed")
    first_hm.fail("POST", f"/hierarchy/{node2}/approve", {"work_name": "内装"}, status=404,
                  code="invitation_not_found")
    api.approve(second, node2, "内装工事")
    assert _rows(prime, site.id)[2] == ("二次建築(株)", "登録")


def test_workers_and_the_operator_neither_invite_nor_approve(api: Api) -> None:
    prime = api.company("(株)基本建設")
    site = api.site(prime)
    first = api.company("アップ一級工務店(株)")
    node = api.invite(site, prime, site.root, first)
    first_worker = api.worker_login(first, api.worker(first, "一級 花子"))
    invite = {"parent_node_id": site.root, "company_id": api.company("二次建築(株)").id}
    for who in (first_worker, api.operator):
        who.fail("POST", f"/sites/{site.id}/hierarchy", invite, status=403, code="role_not_allowed")
        who.fail("POST", f"/hierarchy/{node}/approve", {"work_name": "躯体工事"}, status=403,
                 code="role_not_allowed")
    assert _rows(prime, site.id) == [("(株)基本建設", "登録"), ("アップ一級工務店(株)", "未承認")]


# --- GET /me for each kind of account --------------------------------------------------------------------


def test_me_tells_each_account_who_it_is(api: Api) -> None:
    company = api.company("(株)基本建設")
    site = api.site(company)
    worker = api.worker(company, "建設 太郎")
    sessions = {
        "operator": api.operator,
        "company_owner": company.owner,
        "hierarchy_manager": api.staff(company, "hierarchy_manager"),
        "site_manager": api.staff(company, "site_manager", site_ids=[site.id]),
        "worker": api.worker_login(company, worker),
    }
    seen = {role: s.ok("GET", "/me") for role, s in sessions.items()}
    assert {role: me["role"] for role, me in seen.items()} == {role: role for role in sessions}
    assert {role: me["role_label"] for role, me in seen.items()} == {
        "operator": "運用管理者", "company_owner": "事業者責任者", "hierarchy_manager": "階層管理者",
        "site_manager": "現場管理者", "worker": "技能者"}
    assert seen["operator"]["company_id"] is None and seen["operator"]["worker_id"] is None
    for role in ("company_owner", "hierarchy_manager", "site_manager"):
        assert seen[role]["company_id"] == company.id
    assert seen["site_manager"]["site_ids"] == [site.id] and seen["hierarchy_manager"]["site_ids"] == []
    assert (seen["worker"]["worker_id"], seen["worker"]["company_id"]) == (worker["id"], None)
    assert all(me["must_change_password"] is False for me in seen.values())
    assert len({me["id"] for me in seen.values()}) == 5


def test_out_of_range_ids_are_refused_not_a_crash(api: Api) -> None:
    company = api.company("(株)基本建設")
    big = 2**63  # one past the largest id either database can store
    for method, path, body in [
        ("POST", "/accounts", {"login_id": "big-company", "role": "site_manager", "company_id": big}),
        ("POST", "/accounts", {"login_id": "big-worker", "role": "worker", "worker_id": big}),
        ("POST", "/accounts", {"login_id": "big-site", "role": "site_manager", "company_id": company.id,
                               "site_ids": [big]}),
        ("PUT", f"/accounts/{big}/sites", {"site_ids": []}),
        ("GET", f"/audit?site_id={big}", None),
    ]:
        r = company.owner.call(method, path, body)
        assert r.status_code in (403, 404, 422), f"{method} {path} → {r.status_code}: {r.text}"
    r = api.operator.call("GET", f"/audit?site_id={big}")
    assert r.status_code in (404, 422) or r.json() == [], r.text
    assert {a["login_id"] for a in company.owner.ok("GET", f"/companies/{company.id}/accounts")} == {
        company.owner.account["login_id"]}
