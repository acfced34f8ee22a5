"""変更履歴: every change is logged with who, what, when, before and after; reading it follows the roles."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from world import NEW_PASSWORD, PASSWORD, SECURITY_CODE, Api, Company, Site


def _site_log(by: Company, site: Site) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = by.owner.ok("GET", "/audit", site_id=site.id)
    return entries


def _everything(api: Api) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = api.operator.ok("GET", "/audit", limit=1000)
    return entries


def test_invite_approve_and_site_edit_are_logged_with_who_what_when_before_after(api: Api) -> None:
    moment = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=5)
    api.ctx.clock = lambda: moment
    prime = api.company("(株)基本建設")
    site = api.site(prime, "エプロ建設工事")
    first = api.company("アップ一級工務店(株)")
    node = api.invite(site, prime, site.root, first)
    api.approve(first, node, "躯体工事")
    prime.owner.ok("PATCH", f"/sites/{site.id}", {"name": "エプロ建設工事（第2期）"})

    log = _site_log(prime, site)
    assert [(e["action"], e["account_id"]) for e in log] == [
        ("site.update", prime.owner.account["id"]),
        ("hierarchy.approve", first.owner.account["id"]),
        ("hierarchy.invite", prime.owner.account["id"]),
        ("site.create", prime.owner.account["id"]),
    ]
    assert all(e["site_id"] == site.id for e in log)
    assert all(datetime.fromisoformat(e["at"]) == moment for e in log)
    update, approve, invite, create = log
    assert (update["entity"], update["entity_id"]) == ("site", site.id)
    assert (update["before"]["name"], update["after"]["name"]) == ("エプロ建設工事", "エプロ建設工事（第2期）")
    assert (approve["entity"], approve["entity_id"], approve["company_id"]) == ("hierarchy_node", node, first.id)
    assert (approve["before"]["status"], approve["after"]["status"]) == ("pending", "registered")
    assert (approve["before"]["work_name"], approve["after"]["work_name"]) == (None, "躯体工事")
    assert invite["before"] is None and invite["after"]["company_id"] == first.id
    assert invite["after"]["status"] == "pending"
    assert create["before"] is None and create["after"]["name"] == "エプロ建設工事"


def test_only_the_prime_reads_a_sites_log(api: Api) -> None:
    prime = api.company("(株)基本建設")
    site = api.site(prime)
    first = api.company("アップ一級工務店(株)")
    second = api.company("二次建築(株)")
    n1 = api.registered(site, prime, site.root, first)
    api.registered(site, first, n1, second)

    # Upper subcontractor and lowest tier alike: 403, not the log.
    for sub in (first, second):
        sub.owner.fail("GET", "/audit", status=403, code="prime_only", site_id=site.id)
    first_worker = api.worker_login(first, api.worker(first, "一級 花子"))
    outsider = api.company("(株)よそ建設")
    outsider.owner.fail("GET", "/audit", status=403, code="prime_only", site_id=site.id)
    outsider.owner.fail("GET", "/audit", status=404, site_id=999999)

    # The prime's company-wide roles and a 現場管理者 bound to the site read it; one bound elsewhere does not.
    other_site = api.site(prime, "別の現場")
    bound = api.staff(prime, "site_manager", site_ids=[site.id])
    elsewhere = api.staff(prime, "site_manager", site_ids=[other_site.id])
    manager = api.staff(prime, "hierarchy_manager")
    expected = [e["id"] for e in _site_log(prime, site)]
    assert len(expected) == 5  # site.create, 2 invites, 2 approvals
    for reader in (bound, manager):
        assert [e["id"] for e in reader.ok("GET", "/audit", site_id=site.id)] == expected
    elsewhere.fail("GET", "/audit", status=403, code="site_not_assigned", site_id=site.id)

    # The operator reads everything, with or without the site filter.
    assert [e["id"] for e in api.operator.ok("GET", "/audit", site_id=site.id)] == expected
    assert set(expected) < {e["id"] for e in _everything(api)}

    # Without a site, a company reads what its own accounts changed; a worker what they changed.
    first_log = first.owner.ok("GET", "/audit")
    assert {e["company_id"] for e in first_log} == {first.id}
    assert {(e["action"], e["entity_id"]) for e in first_log} >= {("hierarchy.approve", n1), ("hierarchy.invite",
                                                                                               n1 + 1)}
    worker_log = first_worker.ok("GET", "/audit")
    assert {e["account_id"] for e in worker_log} <= {first_worker.account["id"]}


def test_a_site_manager_does_not_read_the_log_of_sites_it_is_not_bound_to(api: Api) -> None:
    prime = api.company("(株)基本建設")
    site_a = api.site(prime, "A現場")
    site_b = api.site(prime, "B現場")
    manager = api.staff(prime, "site_manager", site_ids=[site_a.id])
    prime.owner.ok("PATCH", f"/sites/{site_b.id}", {"manager_name": "秘密 太郎"})
    manager.ok("PATCH", f"/sites/{site_a.id}", {"manager_name": "現場 一郎"})

    seen = manager.ok("GET", "/audit")
    assert ("site.update", site_a.id) in {(e["action"], e["site_id"]) for e in seen}
    assert site_b.id not in {e["site_id"] for e in seen}, seen
    # Company-wide entries (IDs issued by the owner, ...) stay with the company-wide roles.
    assert all(e["site_id"] == site_a.id or e["account_id"] == manager.account["id"] for e in seen), seen
    assert "秘密 太郎" not in json.dumps(seen, ensure_ascii=False)


def test_password_changes_are_logged_without_any_secret(api: Api) -> None:
    company = api.company("(株)基本建設")
    created = company.owner.ok("POST", "/accounts", {"login_id": "kaiso01", "role": "hierarchy_manager",
                                                     "company_id": company.id}, status=201)
    session = api.activate(created)
    session.ok("POST", "/auth/password", {"current_password": PASSWORD, "new_password": NEW_PASSWORD})
    api.anonymous.ok("POST", "/auth/reset", {"login_id": "kaiso01", "security_code": SECURITY_CODE,
                                             "new_password": "genba-Third-2028"}, status=204)

    log = [e for e in _everything(api) if e["entity"] == "account" and e["entity_id"] == created["id"]]
    assert [(e["action"], e["account_id"]) for e in log] == [
        ("account.reset_password", None),
        ("account.change_password", created["id"]),
        ("account.change_password", created["id"]),
        ("account.create", company.owner.account["id"]),
    ]
    assert log[-1]["after"]["login_id"] == "kaiso01" and log[-1]["after"]["password_hash"] == "***"
    text = json.dumps(_everything(api), ensure_ascii=False)
    for secret in (created["initial_password"], PASSWORD, NEW_PASSWORD, "genba-Third-2028", "$argon2"):
        assert secret not in text
    assert f'"{SECURITY_CODE}"' not in text


def test_a_refused_request_changes_nothing_and_logs_nothing(api: Api) -> None:
    prime = api.company("(株)基本建設")
    site = api.site(prime)
    other_site = api.site(prime, "別の現場")
    first = api.company("アップ一級工務店(株)")
    node = api.invite(site, prime, site.root, first)
    first_sm = api.staff(first, "site_manager", site_ids=[site.id])
    prime_sm = api.staff(prime, "site_manager", site_ids=[other_site.id])
    outsider = api.company("(株)よそ建設")

    count = len(_everything(api))
    site_before = prime.owner.ok("GET", f"/sites/{site.id}")
    tree_before = prime.owner.ok("GET", f"/sites/{site.id}/hierarchy")
    accounts_before = prime.owner.ok("GET", f"/companies/{prime.id}/accounts")

    first.owner.fail("PATCH", f"/sites/{site.id}", {"name": "下請が変更"}, status=403, code="prime_only")
    prime_sm.fail("PATCH", f"/sites/{site.id}", {"name": "別現場の管理者が変更"}, status=403)
    prime.owner.fail("PATCH", f"/sites/{site.id}", {"name": "期間の誤り", "period_end": "2020-01-01"}, status=422)
    prime_sm.fail("POST", f"/sites/{site.id}/hierarchy", {"parent_node_id": site.root, "company_id": outsider.id},
                  status=403, code="site_not_assigned")
    prime.owner.fail("POST", f"/sites/{site.id}/hierarchy", {"parent_node_id": site.root, "company_id": first.id},
                     status=409, code="company_already_on_site")
    first_sm.fail("POST", f"/hierarchy/{node}/approve", {"work_name": "躯体工事"}, status=403,
                  code="role_not_allowed")
    outsider.owner.fail("POST", f"/hierarchy/{node}/approve", {"work_name": "躯体工事"}, status=404)
    first_sm.fail("POST", "/accounts", {"login_id": "by-sm", "role": "site_manager", "company_id": first.id},
                  status=403, code="role_not_allowed")
    prime.owner.fail("POST", "/accounts", {"login_id": "sm-not-there", "role": "site_manager",
                                           "company_id": prime.id, "site_ids": [site.id, 999999]},
                     status=404, code="site_not_found")
    prime.owner.fail("PUT", f"/accounts/{prime_sm.account['id']}/sites", {"site_ids": [site.id, 999999]},
                     status=404, code="site_not_found")

    assert len(_everything(api)) == count
    assert prime.owner.ok("GET", f"/sites/{site.id}") == site_before
    assert prime.owner.ok("GET", f"/sites/{site.id}/hierarchy") == tree_before
    assert prime.owner.ok("GET", f"/companies/{prime.id}/accounts") == accounts_before
    # And the same actions, allowed, are each logged once.
    first.owner.ok("POST", f"/hierarchy/{node}/approve", {"work_name": "躯体工事"})
    prime.owner.ok("PUT", f"/accounts/{prime_sm.account['id']}/sites", {"site_ids": [site.id]})
    assert [e["action"] for e in _everything(api)[:2]] == ["account.bind_sites", "hierarchy.approve"]
    assert len(_everything(api)) == count + 2
