"""施工体制: 招待 → 未承認 → 承認 → 登録, as the seed's 参考資料1 and 2 walk through it."""

from __future__ import annotations

from typing import Any

from world import TOBI, Api, Company, Session, Site


def test_subcontractor_must_approve_before_it_is_registered(api: Api) -> None:
    prime = api.company("(株)基本建設")
    site = api.site(prime)
    first = api.company("アップ一級工務店(株)")

    node = api.invite(site, prime, site.root, first)
    rows = prime.owner.ok("GET", f"/sites/{site.id}/hierarchy")["rows"]
    assert [(r["tier_label"], r["name"], r["status_label"]) for r in rows] == [
        ("元請", "(株)基本建設", "登録"),
        ("1", "アップ一級工務店(株)", "未承認"),
    ]

    requests = first.owner.ok("GET", "/approval-requests")
    assert [(r["node_id"], r["requester"]["name"]) for r in requests] == [(node, "(株)基本建設")]
    assert requests[0]["requested_at"]

    first.owner.fail("POST", f"/hierarchy/{node}/approve", {"work_name": ""}, status=422, code="work_name_required")
    first.owner.ok("POST", f"/hierarchy/{node}/approve", {"work_name": "躯体工事", "work_content": "鉄骨建方"})
    rows = prime.owner.ok("GET", f"/sites/{site.id}/hierarchy")["rows"]
    assert rows[1]["status_label"] == "登録" and rows[1]["work_name"] == "躯体工事"
    assert first.owner.ok("GET", "/approval-requests") == []
    first.owner.fail("POST", f"/hierarchy/{node}/approve", {"work_name": "x"}, status=409,
                     code="invitation_already_decided")


def test_tiers_follow_the_tree_and_a_company_appears_once_per_site(api: Api) -> None:
    prime = api.company("元請建設(株)")
    site = api.site(prime)
    first, second, third = (api.company(n) for n in ("一次工業(株)", "二次建築(株)", "三次設備(株)"))
    n1 = api.registered(site, prime, site.root, first)
    n2 = api.registered(site, first, n1, second)
    api.registered(site, second, n2, third)
    tiers = {r["name"]: r["tier"] for r in prime.owner.ok("GET", f"/sites/{site.id}/hierarchy")["rows"]}
    assert tiers == {"元請建設(株)": 0, "一次工業(株)": 1, "二次建築(株)": 2, "三次設備(株)": 3}
    prime.owner.fail("POST", f"/sites/{site.id}/hierarchy", {"parent_node_id": site.root, "company_id": second.id},
                     status=409, code="company_already_on_site")


def _rows(session: Session, site: Site) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = session.ok("GET", f"/sites/{site.id}/hierarchy")["rows"]
    return rows


def _shape(session: Session, site: Site) -> list[tuple[int, str, str]]:
    """(次数, 事業者名, ステータス) in screen order."""
    return [(r["tier"], r["name"], r["status_label"]) for r in _rows(session, site)]


def _invite_body(parent: int, company: Company | None = None, placeholder: str | None = None) -> dict[str, Any]:
    if company is not None:
        return {"parent_node_id": parent, "company_id": company.id}
    return {"parent_node_id": parent, "placeholder_name": placeholder}


# --- 招待 -------------------------------------------------------------------------------------------


def test_an_upper_subcontractor_invites_below_itself_but_not_above_or_beside(api: Api) -> None:
    prime = api.company("元請建設(株)")
    site = api.site(prime)
    first, sibling, second, newcomer = (
        api.company(n) for n in ("一次工業(株)", "隣接設備(株)", "二次建築(株)", "新規塗装(株)")
    )
    n1 = api.registered(site, prime, site.root, first)
    ns = api.registered(site, prime, site.root, sibling)
    n2 = api.registered(site, first, n1, second)
    before = _shape(prime.owner, site)

    path = f"/sites/{site.id}/hierarchy"
    body = first.owner.fail("POST", path, _invite_body(ns, newcomer), status=403, code="outside_your_branch")
    assert body["details"]["node_id"] == ns
    first.owner.fail("POST", path, _invite_body(site.root, newcomer), status=403, code="outside_your_branch")
    second.owner.fail("POST", path, _invite_body(n1, newcomer), status=403, code="outside_your_branch")
    second.owner.fail("POST", path, _invite_body(ns, placeholder="横から工業"), status=403,
                      code="outside_your_branch")
    first.owner.fail("POST", path, {"parent_node_id": n1, "company_id": 999999}, status=404,
                     code="company_not_found")
    first.owner.fail("POST", path, _invite_body(999999, newcomer), status=404, code="node_not_found")
    other_site = api.site(prime, "東棟新築工事")
    first.owner.fail("POST", f"/sites/{other_site.id}/hierarchy", _invite_body(n1, newcomer), status=404,
                     code="site_not_found")
    prime.owner.fail("POST", f"/sites/{other_site.id}/hierarchy", _invite_body(n1, newcomer), status=404,
                     code="node_not_found")
    first.owner.fail("POST", path, {"parent_node_id": n1}, status=422, code="company_or_placeholder")
    first.owner.fail("POST", path, {"parent_node_id": n1, "company_id": newcomer.id, "placeholder_name": "x"},
                     status=422, code="company_or_placeholder")
    assert _shape(prime.owner, site) == before

    # Under itself, and further down its own branch.
    node = first.owner.ok("POST", path, _invite_body(n2, newcomer), status=201)
    assert (node["parent_id"], node["status"], node["tier"]) == (n2, "pending", 3)
    assert newcomer.owner.ok("GET", "/approval-requests")[0]["requester"]["name"] == "一次工業(株)"
    assert _shape(prime.owner, site) == [(0, "元請建設(株)", "登録"), (1, "一次工業(株)", "登録"),
                                         (2, "二次建築(株)", "登録"), (3, "新規塗装(株)", "未承認"),
                                         (1, "隣接設備(株)", "登録")]


def test_invitations_by_each_kind_of_company_account(api: Api) -> None:
    """参考資料1: 招待 is done by the 事業者責任者, the 階層管理者 or a 現場管理者 (bound to the site)."""
    prime = api.company("元請建設(株)")
    site = api.site(prime)
    other_site = api.site(prime, "東棟新築工事")
    a, b, c, d = (api.company(n) for n in ("一次工業(株)", "隣接設備(株)", "二次建築(株)", "新規塗装(株)"))
    path = f"/sites/{site.id}/hierarchy"

    manager = api.staff(prime, "hierarchy_manager")
    manager.ok("POST", path, _invite_body(site.root, a), status=201)
    bound = api.staff(prime, "site_manager", site_ids=[site.id])
    bound.ok("POST", path, _invite_body(site.root, b), status=201)
    unbound = api.staff(prime, "site_manager", site_ids=[other_site.id])
    unbound.fail("POST", path, _invite_body(site.root, c), status=403, code="site_not_assigned")
    worker = api.worker(prime, "元請 花子")
    api.worker_login(prime, worker).fail("POST", path, _invite_body(site.root, c), status=403,
                                         code="role_not_allowed")
    api.operator.fail("POST", path, _invite_body(site.root, c), status=403, code="role_not_allowed")
    api.anonymous.fail("POST", path, _invite_body(site.root, c), status=401, code="login_required")
    stranger = api.company("無関係工業(株)")
    stranger.owner.fail("POST", path, _invite_body(site.root, d), status=404, code="site_not_found")
    assert [r["name"] for r in _rows(prime.owner, site)] == ["元請建設(株)", "一次工業(株)", "隣接設備(株)"]


def test_a_company_whose_invitation_is_pending_cannot_invite_yet(api: Api) -> None:
    prime = api.company("元請建設(株)")
    site = api.site(prime)
    first, second = api.company("一次工業(株)"), api.company("二次建築(株)")
    n1 = api.invite(site, prime, site.root, first)
    path = f"/sites/{site.id}/hierarchy"
    body = first.owner.fail("POST", path, _invite_body(n1, second), status=409, code="own_invitation_pending")
    assert "承認" in body["message"]
    first.owner.fail("POST", path, _invite_body(n1, placeholder="未登録工業"), status=409,
                     code="own_invitation_pending")
    assert second.owner.ok("GET", "/approval-requests") == []
    api.approve(first, n1)
    api.invite(site, first, n1, second)
    assert _shape(prime.owner, site)[-1] == (2, "二次建築(株)", "未承認")


# --- 承認・辞退 ---------------------------------------------------------------------------------------


def test_only_the_invited_company_approves_and_only_its_owner_or_hierarchy_manager(api: Api) -> None:
    prime = api.company("元請建設(株)")
    site = api.site(prime)
    first, stranger = api.company("一次工業(株)"), api.company("無関係工業(株)")
    node = api.invite(site, prime, site.root, first)
    approve = {"work_name": "躯体工事", "work_content": "鉄骨建方"}

    prime.owner.fail("POST", f"/hierarchy/{node}/approve", approve, status=404, code="invitation_not_found")
    stranger.owner.fail("POST", f"/hierarchy/{node}/approve", approve, status=404, code="invitation_not_found")
    stranger.owner.fail("POST", f"/hierarchy/{node}/decline", status=404, code="invitation_not_found")
    prime.owner.fail("POST", f"/hierarchy/{site.root}/approve", approve, status=409,
                     code="invitation_already_decided")
    site_manager = api.staff(first, "site_manager", site_ids=[site.id])
    site_manager.fail("POST", f"/hierarchy/{node}/approve", approve, status=403, code="role_not_allowed")
    site_manager.fail("POST", f"/hierarchy/{node}/decline", status=403, code="role_not_allowed")
    site_manager.fail("GET", "/approval-requests", status=403, code="role_not_allowed")
    worker = api.worker(first, "一次 太郎")
    api.worker_login(first, worker).fail("POST", f"/hierarchy/{node}/approve", approve, status=403,
                                         code="role_not_allowed")
    first.owner.fail("POST", "/hierarchy/999999/approve", approve, status=404)
    first.owner.fail("POST", f"/hierarchy/{node}/approve", {}, status=422, code="invalid_request")
    assert _shape(prime.owner, site)[-1] == (1, "一次工業(株)", "未承認")

    manager = api.staff(first, "hierarchy_manager")
    requests = manager.ok("GET", "/approval-requests")
    assert [(r["node_id"], r["tier"], r["site"]["id"]) for r in requests] == [(node, 1, site.id)]
    decided = manager.ok("POST", f"/hierarchy/{node}/approve", approve)
    assert decided["status"] == "registered" and decided["work_content"] == "鉄骨建方"
    assert _rows(prime.owner, site)[-1]["work_name"] == "躯体工事"


def test_declining_removes_the_company_from_the_tree_and_it_can_be_invited_again(api: Api) -> None:
    prime = api.company("元請建設(株)")
    site = api.site(prime)
    first = api.company("一次工業(株)")
    node = api.invite(site, prime, site.root, first)

    declined = first.owner.ok("POST", f"/hierarchy/{node}/decline")
    assert declined["status"] == "declined"
    assert _shape(prime.owner, site) == [(0, "元請建設(株)", "登録")]
    assert first.owner.ok("GET", "/approval-requests") == []
    assert first.owner.ok("GET", "/sites") == []
    first.owner.fail("GET", f"/sites/{site.id}", status=404, code="site_not_found")
    first.owner.fail("GET", f"/sites/{site.id}/hierarchy", status=404, code="site_not_found")
    first.owner.fail("POST", f"/hierarchy/{node}/approve", {"work_name": "躯体工事"}, status=409,
                     code="invitation_already_decided")
    first.owner.fail("POST", f"/hierarchy/{node}/decline", status=409, code="invitation_already_decided")
    prime.owner.fail("DELETE", f"/hierarchy/{node}", status=404, code="node_not_found")

    again = api.invite(site, prime, site.root, first)
    assert again != node
    assert [r["node_id"] for r in first.owner.ok("GET", "/approval-requests")] == [again]
    api.approve(first, again)
    assert _shape(prime.owner, site) == [(0, "元請建設(株)", "登録"), (1, "一次工業(株)", "登録")]


def test_a_pending_company_with_companies_placed_below_it_cannot_decline_until_they_are_removed(api: Api) -> None:
    """The 元請 may lay out a branch below a company that has not approved yet; declining must not orphan it."""
    prime = api.company("元請建設(株)")
    site = api.site(prime)
    first, second = api.company("一次工業(株)"), api.company("二次建築(株)")
    n1 = api.invite(site, prime, site.root, first)
    n2 = api.registered(site, prime, n1, second)
    body = first.owner.fail("POST", f"/hierarchy/{n1}/decline", status=409, code="node_has_children")
    assert body["details"]["children"] == [n2]
    assert _shape(prime.owner, site) == [(0, "元請建設(株)", "登録"), (1, "一次工業(株)", "未承認"),
                                         (2, "二次建築(株)", "登録")]
    assert [r["name"] for r in _rows(second.owner, site)] == ["元請建設(株)", "一次工業(株)", "二次建築(株)"]
    assert [r["node_id"] for r in first.owner.ok("GET", "/approval-requests")] == [n1]

    prime.owner.ok("DELETE", f"/hierarchy/{n2}")
    first.owner.ok("POST", f"/hierarchy/{n1}/decline")
    assert _shape(prime.owner, site) == [(0, "元請建設(株)", "登録")]


# --- CCUS未登録事業者 (placeholders) -------------------------------------------------------------------


def test_placeholders_are_placed_anywhere_below_and_can_have_children_but_no_workers(api: Api) -> None:
    prime = api.company("元請建設(株)")
    site = api.site(prime)
    first, employer = api.company("一次工業(株)"), api.company("三次鳶工業(株)")
    n1 = api.registered(site, prime, site.root, first)
    path = f"/sites/{site.id}/hierarchy"

    p1 = prime.owner.ok("POST", path, _invite_body(site.root, placeholder="  山田組  "), status=201)
    assert (p1["status"], p1["company_id"], p1["placeholder_name"], p1["tier"]) == ("registered", None, "山田組", 1)
    p2 = api.placeholder(site, first, n1, "CCUS建設")
    p3 = api.placeholder(site, first, p2, "孫請工務店")  # a placeholder under a placeholder
    for bad in ("", "   ", "x" * 201):
        first.owner.fail("POST", path, _invite_body(n1, placeholder=bad), status=422,
                         code="invalid_placeholder_name")

    rows = {r["node_id"]: r for r in _rows(prime.owner, site)}
    assert (rows[p2]["ccus_id"], rows[p2]["name"], rows[p2]["placeholder"]) == ("CCUS未登録", "CCUS建設", True)
    assert (rows[p2]["status_label"], rows[p2]["tier"]) == ("登録", 2)
    assert (rows[p3]["tier"], rows[p3]["parent_id"]) == (3, p2)

    # A placeholder is nobody: it has no invitation to decide.
    first.owner.fail("POST", f"/hierarchy/{p2}/approve", {"work_name": "x"}, status=404,
                     code="invitation_not_found")

    # The workers' employer is invited under the placeholder; until it approves, its workers
    # cannot be on the roster, and they go on the employer's own row, never the placeholder's.
    worker = api.worker(employer, "鳶 一郎")
    ne = api.invite(site, first, p2, employer)
    body = {"worker_id": worker["id"], "trade": TOBI, "position": "general"}
    employer.owner.fail("POST", f"/sites/{site.id}/roster", body, status=409, code="employer_not_registered_on_site")
    api.approve(employer, ne, "とび工事")
    entry = api.on_roster(site, employer, worker)
    assert (entry["node_id"], entry["tier"]) == (ne, 3)
    counts = {r["node_id"]: r["roster_count"] for r in _rows(prime.owner, site)}
    assert counts[p2] == 0 and counts[ne] == 1


# --- 置換 (参考資料2) --------------------------------------------------------------------------------


def test_only_the_company_directly_above_replaces_a_placeholder_once_everyone_below_approved(api: Api) -> None:
    prime = api.company("(株)基本建設")
    site = api.site(prime)
    first, third = api.company("アップ一級工務店(株)"), api.company("三次設備(株)")
    registered_later = api.company("CCUS建設(株)")
    n1 = api.registered(site, prime, site.root, first)
    p = api.placeholder(site, first, n1, "CCUS建設")
    n3 = api.invite(site, first, p, third)
    replace = {"company_id": registered_later.id}

    body = first.owner.fail("POST", f"/hierarchy/{p}/replace", replace, status=409,
                            code="pending_below_placeholder")
    assert body["details"]["pending_node_ids"] == [n3] and "承認後" in body["message"]
    api.approve(third, n3, "空調設備工事")

    prime.owner.fail("POST", f"/hierarchy/{p}/replace", replace, status=403, code="not_directly_above")
    third.owner.fail("POST", f"/hierarchy/{p}/replace", replace, status=403, code="not_directly_above")
    registered_later.owner.fail("POST", f"/hierarchy/{p}/replace", replace, status=404, code="site_not_found")
    site_manager = api.staff(first, "site_manager", site_ids=[])
    site_manager.fail("POST", f"/hierarchy/{p}/replace", replace, status=403, code="site_not_assigned")
    first.owner.fail("POST", f"/hierarchy/{p}/replace", {"company_id": 999999}, status=404,
                     code="company_not_found")
    before = _rows(prime.owner, site)
    assert before[2]["placeholder"] is True

    done = first.owner.ok("POST", f"/hierarchy/{p}/replace", replace)
    assert (done["id"], done["company_id"], done["placeholder_name"]) == (p, registered_later.id, None)
    after = _rows(prime.owner, site)
    row = after[2]
    assert (row["node_id"], row["ccus_id"], row["name"], row["placeholder"]) == (
        p, registered_later.ccus_id, "CCUS建設(株)", False)
    assert (row["replaced_placeholder_name"], row["status_label"], row["tier"]) == ("CCUS建設", "登録", 2)
    # The subtree stays: same rows, same parents, same tiers.
    assert [(r["node_id"], r["parent_id"], r["tier"]) for r in after] == [
        (r["node_id"], r["parent_id"], r["tier"]) for r in before
    ]
    assert after[3]["company_id"] == third.id and after[3]["parent_id"] == p

    # Irreversible: there is no placeholder left to replace.
    first.owner.fail("POST", f"/hierarchy/{p}/replace", {"company_id": api.company("別会社(株)").id},
                     status=409, code="not_a_placeholder")
    # The replaced company is on the site now, 登録, and acts there.
    assert [(s["id"], s["my_status"]) for s in registered_later.owner.ok("GET", "/sites")] == [
        (site.id, "registered")
    ]
    api.placeholder(site, registered_later, p, "下請未登録工業")


def test_a_placeholder_cannot_be_replaced_with_a_company_already_on_the_site(api: Api) -> None:
    prime = api.company("元請建設(株)")
    site = api.site(prime)
    first, second = api.company("一次工業(株)"), api.company("二次建築(株)")
    n1 = api.registered(site, prime, site.root, first)
    api.registered(site, prime, site.root, second)
    p = api.placeholder(site, first, n1, "二次建築")
    first.owner.fail("POST", f"/hierarchy/{p}/replace", {"company_id": second.id}, status=409,
                     code="company_already_on_site")
    first.owner.fail("POST", f"/hierarchy/{p}/replace", {"company_id": first.id}, status=409,
                     code="company_already_on_site")
    pending = api.company("招待中工業(株)")
    api.invite(site, prime, site.root, pending)
    first.owner.fail("POST", f"/hierarchy/{p}/replace", {"company_id": pending.id}, status=409,
                     code="company_already_on_site")
    assert next(r for r in _rows(prime.owner, site) if r["node_id"] == p)["placeholder"] is True


def test_the_company_above_a_placeholder_is_told_of_a_registered_company_with_the_same_name(api: Api) -> None:
    """A suggestion only: nothing is replaced until that company presses 置換."""
    prime = api.company("(株)基本建設")
    site = api.site(prime)
    first, third = api.company("アップ一級工務店(株)"), api.company("三次設備(株)")
    n1 = api.registered(site, prime, site.root, first)
    p = api.placeholder(site, first, n1, "CCUS建設")
    lonely = api.placeholder(site, first, n1, "該当なし興業")
    api.registered(site, first, p, third)
    same = api.company("CCUS建設(株)")
    wide = api.company("ＣＣＵＳ建設　株式会社")
    api.company("CCUS建設工業(株)")  # a different name

    rows = {r["node_id"]: r for r in _rows(first.owner, site)}
    candidates = rows[p]["replacement_candidates"]
    assert sorted((c["id"], c["ccus_id"], c["name"]) for c in candidates) == [
        (same.id, same.ccus_id, "CCUS建設(株)"),
        (wide.id, wide.ccus_id, "ＣＣＵＳ建設　株式会社"),
    ]
    assert rows[lonely]["replacement_candidates"] == []
    assert rows[p]["placeholder"] is True and rows[p]["ccus_id"] == "CCUS未登録"
    # Only the company directly above is told: not the prime, not the company below.
    assert all("replacement_candidates" not in r for r in _rows(prime.owner, site))
    assert all("replacement_candidates" not in r for r in _rows(third.owner, site))
    assert same.owner.ok("GET", "/sites") == []


# --- 削除 -------------------------------------------------------------------------------------------


def test_removing_a_node_is_refused_with_children_or_workers_and_says_why(api: Api) -> None:
    prime = api.company("元請建設(株)")
    site = api.site(prime)
    first, sibling, second = api.company("一次工業(株)"), api.company("隣接設備(株)"), api.company("二次建築(株)")
    n1 = api.registered(site, prime, site.root, first)
    ns = api.registered(site, prime, site.root, sibling)
    n2 = api.registered(site, first, n1, second)
    worker = api.worker(second, "二次 次郎")
    entry = api.on_roster(site, second, worker)
    before = _shape(prime.owner, site)

    body = prime.owner.fail("DELETE", f"/hierarchy/{n1}", status=409, code="node_has_children")
    assert body["details"]["children"] == [n2] and "下位に1社" in body["message"]
    body = first.owner.fail("DELETE", f"/hierarchy/{n2}", status=409, code="node_has_workers")
    assert body["details"]["roster_count"] == 1 and "作業員名簿に1名" in body["message"]
    prime.owner.fail("DELETE", f"/hierarchy/{site.root}", status=409, code="cannot_remove_prime")
    first.owner.fail("DELETE", f"/hierarchy/{site.root}", status=409, code="cannot_remove_prime")
    # Only companies above may remove: not the company itself, not a sibling, not one below.
    second.owner.fail("DELETE", f"/hierarchy/{n2}", status=403, code="not_above")
    second.owner.fail("DELETE", f"/hierarchy/{n1}", status=403, code="not_above")
    sibling.owner.fail("DELETE", f"/hierarchy/{n2}", status=403, code="not_above")
    first.owner.fail("DELETE", f"/hierarchy/{ns}", status=403, code="not_above")
    api.company("無関係工業(株)").owner.fail("DELETE", f"/hierarchy/{ns}", status=404, code="site_not_found")
    prime.owner.fail("DELETE", "/hierarchy/999999", status=404, code="node_not_found")
    assert _shape(prime.owner, site) == before

    second.owner.ok("DELETE", f"/roster/{entry['id']}")
    prime.owner.ok("DELETE", f"/hierarchy/{n2}")  # above, though not directly
    assert second.owner.ok("GET", "/sites") == []
    first.owner.fail("DELETE", f"/hierarchy/{n2}", status=404, code="node_not_found")
    prime.owner.ok("DELETE", f"/hierarchy/{n1}")
    prime.owner.ok("DELETE", f"/hierarchy/{ns}")
    assert _shape(prime.owner, site) == [(0, "元請建設(株)", "登録")]


def test_an_upper_company_withdraws_a_pending_invitation_or_a_placeholder(api: Api) -> None:
    prime = api.company("元請建設(株)")
    site = api.site(prime)
    first, second = api.company("一次工業(株)"), api.company("二次建築(株)")
    n1 = api.registered(site, prime, site.root, first)
    n2 = api.invite(site, first, n1, second)
    p = api.placeholder(site, first, n1, "山田組")
    first.owner.ok("DELETE", f"/hierarchy/{n2}")
    assert second.owner.ok("GET", "/approval-requests") == []
    second.owner.fail("POST", f"/hierarchy/{n2}/approve", {"work_name": "躯体工事"}, status=404)
    api.staff(first, "site_manager", site_ids=[site.id]).ok("DELETE", f"/hierarchy/{p}")
    assert _shape(prime.owner, site) == [(0, "元請建設(株)", "登録"), (1, "一次工業(株)", "登録")]
    api.registered(site, first, n1, second)


# --- 表示範囲 ---------------------------------------------------------------------------------------


def test_the_prime_sees_the_whole_tree_and_a_subcontractor_its_branch_and_the_path_above(api: Api) -> None:
    prime = api.company("元請建設(株)")
    site = api.site(prime)
    a, a1, a11, b, b1, invitee = (
        api.company(n) for n in ("A一次(株)", "A二次(株)", "A三次(株)", "B一次(株)", "B二次(株)", "招待中(株)")
    )
    na = api.registered(site, prime, site.root, a)
    na1 = api.registered(site, a, na, a1)
    api.registered(site, a1, na1, a11)
    nb = api.registered(site, prime, site.root, b)
    api.registered(site, b, nb, b1)
    api.placeholder(site, b, nb, "B未登録")
    api.invite(site, a, na1, invitee)

    def names(session: Session) -> list[str]:
        return [r["name"] for r in _rows(session, site)]

    assert names(prime.owner) == ["元請建設(株)", "A一次(株)", "A二次(株)", "A三次(株)", "招待中(株)",
                                  "B一次(株)", "B二次(株)", "B未登録"]
    assert names(a.owner) == ["元請建設(株)", "A一次(株)", "A二次(株)", "A三次(株)", "招待中(株)"]
    assert names(a1.owner) == ["元請建設(株)", "A一次(株)", "A二次(株)", "A三次(株)", "招待中(株)"]
    assert names(a11.owner) == ["元請建設(株)", "A一次(株)", "A二次(株)", "A三次(株)"]
    assert names(b1.owner) == ["元請建設(株)", "B一次(株)", "B二次(株)"]
    assert names(invitee.owner) == ["元請建設(株)", "A一次(株)", "A二次(株)", "招待中(株)"]
    assert names(api.staff(b, "hierarchy_manager")) == ["元請建設(株)", "B一次(株)", "B二次(株)", "B未登録"]

    api.company("無関係工業(株)").owner.fail("GET", f"/sites/{site.id}/hierarchy", status=404,
                                             code="site_not_found")
    api.staff(a, "site_manager", site_ids=[]).fail("GET", f"/sites/{site.id}/hierarchy", status=404,
                                                  code="site_not_found")
    api.operator.fail("GET", f"/sites/{site.id}/hierarchy", status=404, code="site_not_found")
    worker = api.worker(a1, "A二次 太郎")
    api.on_roster(site, a1, worker)
    # seed 3-3 施工体制登録事業者一覧: 技能者（自社のみ）: the worker sees its employer's row, nothing else.
    assert [r["name"] for r in _rows(api.worker_login(a1, worker), site)] == ["A二次(株)"]
    prime.owner.fail("GET", "/sites/999999/hierarchy", status=404, code="site_not_found")


# --- 施工体制パターン ---------------------------------------------------------------------------------


def test_a_saved_hierarchy_pattern_lays_the_same_shape_on_another_site_and_everyone_approves_again(
    api: Api,
) -> None:
    prime = api.company("元請建設(株)")
    site_a = api.site(prime, "A棟新築工事")
    site_b = api.site(prime, "B棟新築工事")
    first, second, third = api.company("一次工業(株)"), api.company("二次建築(株)"), api.company("三次設備(株)")
    n1 = api.registered(site_a, prime, site_a.root, first)
    n2 = api.registered(site_a, first, n1, second)
    p = api.placeholder(site_a, first, n1, "山田組")
    api.registered(site_a, first, p, third)

    prime.owner.fail("POST", "/hierarchy-patterns", {"site_id": site_a.id, "name": " "}, status=422,
                     code="pattern_name_required")
    pattern = prime.owner.ok("POST", "/hierarchy-patterns", {"site_id": site_a.id, "name": "A棟の体制"},
                             status=201)
    assert [r["id"] for r in prime.owner.ok("GET", "/hierarchy-patterns")] == [pattern["id"]]
    assert first.owner.ok("GET", "/hierarchy-patterns") == []

    applied = prime.owner.ok("POST", f"/hierarchy-patterns/{pattern['id']}/apply", {"site_id": site_b.id},
                             status=201)
    assert len(applied["created_node_ids"]) == 4
    shape_a = [(r["tier"], r["name"]) for r in _rows(prime.owner, site_a)]
    assert [(r["tier"], r["name"]) for r in _rows(prime.owner, site_b)] == shape_a
    assert [r["status_label"] for r in _rows(prime.owner, site_b)] == ["登録", "未承認", "未承認", "登録", "未承認"]
    assert [r["node_id"] for r in _rows(prime.owner, site_a)][1:] == [n1, n2, p, n2 + 2]

    # Every company approves again on the new site; until then it cannot act there.
    b_rows = {r["name"]: r["node_id"] for r in _rows(prime.owner, site_b)}
    assert [r["site"]["id"] for r in second.owner.ok("GET", "/approval-requests")] == [site_b.id]
    first.owner.fail("POST", f"/sites/{site_b.id}/hierarchy", _invite_body(b_rows["一次工業(株)"],
                     placeholder="x"), status=409, code="own_invitation_pending")
    api.approve(first, b_rows["一次工業(株)"])
    api.approve(second, b_rows["二次建築(株)"])
    api.approve(third, b_rows["三次設備(株)"])
    assert all(r["status_label"] == "登録" for r in _rows(prime.owner, site_b))


def test_a_pattern_is_not_applied_where_one_of_its_companies_already_is_or_by_another_company(api: Api) -> None:
    prime = api.company("元請建設(株)")
    site_a = api.site(prime, "A棟新築工事")
    site_b = api.site(prime, "B棟新築工事")
    first, second = api.company("一次工業(株)"), api.company("二次建築(株)")
    n1 = api.registered(site_a, prime, site_a.root, first)
    api.registered(site_a, first, n1, second)
    api.placeholder(site_a, first, n1, "山田組")

    # A subcontractor saves the subtree below its own company.
    pattern = first.owner.ok("POST", "/hierarchy-patterns", {"site_id": site_a.id, "name": "一次の体制"},
                             status=201)
    assert [(r["company_id"], r["placeholder_name"]) for r in pattern["tree"]] == [(second.id, None), (None, "山田組")]
    second.owner.fail("POST", "/hierarchy-patterns", {"site_id": site_a.id, "name": "空"}, status=422,
                      code="pattern_empty")
    api.company("無関係工業(株)").owner.fail("POST", "/hierarchy-patterns", {"site_id": site_a.id, "name": "盗"},
                                             status=404, code="site_not_found")

    b1 = api.registered(site_b, prime, site_b.root, first)
    b2 = api.registered(site_b, prime, site_b.root, second)
    before = _shape(prime.owner, site_b)
    apply = f"/hierarchy-patterns/{pattern['id']}/apply"
    body = first.owner.fail("POST", apply, {"site_id": site_b.id}, status=409, code="company_already_on_site")
    assert body["details"]["company_ids"] == [second.id]
    assert _shape(prime.owner, site_b) == before  # nothing was created, not even the placeholder

    site_c = api.site(prime, "C棟新築工事")
    prime.owner.fail("POST", apply, {"site_id": site_c.id}, status=404, code="pattern_not_found")
    second.owner.fail("POST", apply, {"site_id": site_b.id}, status=404, code="pattern_not_found")
    first.owner.fail("POST", apply, {"site_id": site_c.id}, status=404, code="site_not_found")
    first.owner.fail("POST", "/hierarchy-patterns/999999/apply", {"site_id": site_b.id}, status=404,
                     code="pattern_not_found")
    prime.owner.ok("DELETE", f"/hierarchy/{b2}")
    first.owner.ok("POST", apply, {"site_id": site_b.id}, status=201)
    assert [(r["tier"], r["name"], r["status_label"]) for r in _rows(prime.owner, site_b) if r["tier"] == 2] == [
        (2, "二次建築(株)", "未承認"),
        (2, "山田組", "登録"),
    ]
    assert all(r["parent_id"] == b1 for r in _rows(prime.owner, site_b) if r["tier"] == 2)


# --- 工事内容編集 -----------------------------------------------------------------------------------


def test_the_work_name_is_edited_by_the_company_itself_or_a_company_above(api: Api) -> None:
    prime = api.company("元請建設(株)")
    site = api.site(prime)
    first, sibling, second = api.company("一次工業(株)"), api.company("隣接設備(株)"), api.company("二次建築(株)")
    n1 = api.registered(site, prime, site.root, first)
    ns = api.registered(site, prime, site.root, sibling)
    n2 = api.registered(site, first, n1, second)

    own = second.owner.ok("PUT", f"/hierarchy/{n2}/work", {"work_name": "内装工事", "work_content": "軽鉄下地"})
    assert (own["work_name"], own["work_content"]) == ("内装工事", "軽鉄下地")
    first.owner.ok("PUT", f"/hierarchy/{n2}/work", {"work_name": "内装仕上工事"})
    prime.owner.ok("PUT", f"/hierarchy/{n2}/work", {"work_name": "内装仕上工事（変更）", "work_content": "全フロア"})
    prime.owner.ok("PUT", f"/hierarchy/{site.root}/work", {"work_name": "新築工事一式"})

    second.owner.fail("PUT", f"/hierarchy/{n1}/work", {"work_name": "x"}, status=403, code="outside_your_branch")
    sibling.owner.fail("PUT", f"/hierarchy/{n2}/work", {"work_name": "x"}, status=403, code="outside_your_branch")
    first.owner.fail("PUT", f"/hierarchy/{ns}/work", {"work_name": "x"}, status=403, code="outside_your_branch")
    first.owner.fail("PUT", f"/hierarchy/{site.root}/work", {"work_name": "x"}, status=403,
                     code="outside_your_branch")
    second.owner.fail("PUT", f"/hierarchy/{n2}/work", {"work_name": "  "}, status=422, code="work_name_required")
    api.company("無関係工業(株)").owner.fail("PUT", f"/hierarchy/{n2}/work", {"work_name": "x"}, status=404,
                                             code="site_not_found")
    worker = api.worker(second, "二次 次郎")
    api.worker_login(second, worker).fail("PUT", f"/hierarchy/{n2}/work", {"work_name": "x"}, status=403,
                                          code="role_not_allowed")
    rows = {r["node_id"]: r for r in _rows(prime.owner, site)}
    assert (rows[n2]["work_name"], rows[n2]["work_content"]) == ("内装仕上工事（変更）", "全フロア")
    assert rows[site.root]["work_name"] == "新築工事一式" and rows[ns]["work_name"] == "躯体工事"


def test_a_hierarchy_pattern_name_is_used_once_per_company(api: Api) -> None:
    prime = api.company("(株)基本建設")
    site = api.site(prime)
    api.registered(site, prime, site.root, api.company("一次(株)"))
    prime.owner.ok("POST", "/hierarchy-patterns", {"site_id": site.id, "name": "標準"}, status=201)
    prime.owner.fail("POST", "/hierarchy-patterns", {"site_id": site.id, "name": "標準"}, status=409,
                     code="pattern_name_taken")


def test_a_node_whose_invitee_declined_can_still_be_removed(api: Api) -> None:
    prime = api.company("(株)基本建設")
    site = api.site(prime)
    first, second = api.company("一次(株)"), api.company("二次(株)")
    n1 = api.registered(site, prime, site.root, first)
    n2 = api.invite(site, first, n1, second)
    second.owner.ok("POST", f"/hierarchy/{n2}/decline")
    prime.owner.ok("DELETE", f"/hierarchy/{n1}")
    names = [r["name"] for r in prime.owner.ok("GET", f"/sites/{site.id}/hierarchy")["rows"]]
    assert names == ["(株)基本建設"]


def test_control_characters_are_refused_alike_on_both_backends(api: Api) -> None:
    prime = api.company("(株)基本建設")
    site = api.site(prime)
    prime.owner.fail("POST", f"/sites/{site.id}/hierarchy", {"parent_node_id": site.root,
                     "placeholder_name": "未登録\x00建設"}, status=422, code="invalid_request")
