"""施工体制: 招待 → 未承認 → 承認 → 登録, as the seed's 参考資料1 and 2 walk through it."""

from __future__ import annotations

from world import Api


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
