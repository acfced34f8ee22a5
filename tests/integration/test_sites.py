"""現場・契約情報: the 元請 registers a site; who lists it, who reads which items (帳票 4-1), who edits it."""

from __future__ import annotations

from typing import Any

from world import Api, ccus_id


def _site_body(**extra: Any) -> dict[str, Any]:
    return {
        "ccus_id": ccus_id("4"),
        "name": "エプロ建設工事",
        "order_type": "private",
        "period_start": "2026-04-01",
        "period_end": "2027-09-30",
        "address": "東京都 港区 虎ノ門",
        "manager_name": "現場 太郎",
        **extra,
    }


def test_the_prime_registers_a_site_and_its_own_row_is_the_root(api: Api) -> None:
    prime = api.company("(株)基本建設")
    body = _site_body(order_type="public_local", disclosed_items=["address", "order_type"])
    site = prime.owner.ok("POST", "/sites", body, status=201)
    assert site["ccus_id"] == body["ccus_id"] and site["name"] == "エプロ建設工事"
    assert site["order_type"] == "public_local" and site["order_type_label"] == "公共工事(地方)"
    assert site["period"] == {"start": "2026-04-01", "end": "2027-09-30"}
    assert site["prime"] == {"id": prime.id, "ccus_id": prime.ccus_id, "name": "(株)基本建設"}
    assert site["address"] == "東京都 港区 虎ノ門" and site["manager_name"] == "現場 太郎"
    assert site["disclosed_items"] == ["address", "order_type"]

    rows = prime.owner.ok("GET", f"/sites/{site['id']}/hierarchy")["rows"]
    assert [(r["tier_label"], r["company_id"], r["status_label"]) for r in rows] == [("元請", prime.id, "登録")]

    # A 現場ID written with hyphens or full-width digits is the same 14 digits.
    spaced = prime.owner.ok("POST", "/sites", _site_body(ccus_id="4000-1111-2222-33"), status=201)
    assert spaced["ccus_id"] == "40001111222233"
    wide = prime.owner.ok("POST", "/sites", _site_body(ccus_id="４０００１１１１２２２２４４"), status=201)
    assert wide["ccus_id"] == "40001111222244"

    labels = {"public_national": "公共工事(国)", "public_local": "公共工事(地方)",
              "public_other": "公共工事(その他)", "private": "民間工事"}
    for order_type, label in labels.items():
        created = prime.owner.ok("POST", "/sites", _site_body(order_type=order_type), status=201)
        assert created["order_type_label"] == label

    # The 階層管理者 may register sites for the company too.
    manager = api.staff(prime, "hierarchy_manager")
    by_manager = manager.ok("POST", "/sites", _site_body(), status=201)
    assert by_manager["prime"]["id"] == prime.id


def test_a_site_registration_with_bad_input_is_refused_and_nothing_is_created(api: Api) -> None:
    prime = api.company("(株)基本建設")
    for bad_id in ("1234567890123", "123456789012345", "4000000000000A", "", "4000 0000 0000 0X"):
        body = prime.owner.fail("POST", "/sites", _site_body(ccus_id=bad_id), status=422, code="invalid_site_id")
        assert body["details"]["value"] == bad_id
    prime.owner.fail("POST", "/sites", _site_body(order_type="public"), status=422, code="unknown_order_type")
    body = prime.owner.fail("POST", "/sites", _site_body(period_start="2027-10-01", period_end="2027-09-30"),
                            status=422, code="period_reversed")
    assert "就業履歴蓄積期間" in body["message"]
    body = prime.owner.fail("POST", "/sites", _site_body(disclosed_items=["address", "face_photo"]),
                            status=422, code="unknown_site_item")
    assert "face_photo" in body["message_en"] and "address" in body["details"]["allowed"]
    prime.owner.fail("POST", "/sites", _site_body(name="  "), status=422, code="site_name_required")
    prime.owner.fail("POST", "/sites", _site_body(period_start="2026-02-30"), status=422, code="invalid_request")
    prime.owner.fail("POST", "/sites", _site_body(unknown_field=1), status=422, code="invalid_request")
    no_name = _site_body()
    del no_name["name"]
    prime.owner.fail("POST", "/sites", no_name, status=422, code="invalid_request")
    assert prime.owner.ok("GET", "/sites") == []

    taken = _site_body()
    prime.owner.ok("POST", "/sites", taken, status=201)
    other = api.company("他社建設(株)")
    other.owner.fail("POST", "/sites", _site_body(ccus_id=taken["ccus_id"], name="別の現場"), status=409,
                     code="site_exists")
    assert other.owner.ok("GET", "/sites") == []
    assert len(prime.owner.ok("GET", "/sites")) == 1


def test_only_a_company_owner_or_hierarchy_manager_registers_a_site(api: Api) -> None:
    prime = api.company("(株)基本建設")
    site = api.site(prime)
    site_manager = api.staff(prime, "site_manager", site_ids=[site.id])
    site_manager.fail("POST", "/sites", _site_body(), status=403, code="role_not_allowed")
    worker = api.worker(prime, "山田 太郎")
    api.worker_login(prime, worker).fail("POST", "/sites", _site_body(), status=403, code="role_not_allowed")
    api.operator.fail("POST", "/sites", _site_body(), status=403, code="role_not_allowed")
    api.anonymous.fail("POST", "/sites", _site_body(), status=401, code="login_required")
    assert [s["id"] for s in prime.owner.ok("GET", "/sites")] == [site.id]


def test_my_sites_lists_where_my_company_is_and_in_what_status(api: Api) -> None:
    prime = api.company("(株)基本建設")
    first = api.company("アップ一級工務店(株)")
    stranger = api.company("無関係工業(株)")
    site = api.site(prime, "エプロ建設工事")
    other_site = api.site(prime, "東棟新築工事")

    mine = prime.owner.ok("GET", "/sites")
    assert [(s["id"], s["is_prime"], s["my_status"]) for s in mine] == [
        (site.id, True, "registered"),
        (other_site.id, True, "registered"),
    ]
    node = api.invite(site, prime, site.root, first)
    assert [(s["id"], s["is_prime"], s["my_status"]) for s in first.owner.ok("GET", "/sites")] == [
        (site.id, False, "pending")
    ]
    api.approve(first, node)
    assert [(s["id"], s["my_status"]) for s in first.owner.ok("GET", "/sites")] == [(site.id, "registered")]
    assert stranger.owner.ok("GET", "/sites") == []

    # A 現場管理者 lists only the sites the account is bound to.
    bound = api.staff(prime, "site_manager", site_ids=[other_site.id])
    assert [s["id"] for s in bound.ok("GET", "/sites")] == [other_site.id]

    # A worker lists the sites whose roster holds them.
    worker = api.worker(first, "鈴木 一郎")
    worker_session = api.worker_login(first, worker)
    assert worker_session.ok("GET", "/sites") == []
    api.on_roster(site, first, worker)
    listed = worker_session.ok("GET", "/sites")
    assert [(s["id"], s["is_prime"]) for s in listed] == [(site.id, False)]
    assert "my_status" not in listed[0]

    api.operator.fail("GET", "/sites", status=403, code="role_not_allowed")


def test_subcontractors_and_workers_see_only_the_items_the_prime_discloses(api: Api) -> None:
    """帳票 4-1: the 元請 chooses which site items subcontractors and workers see."""
    prime = api.company("(株)基本建設")
    first = api.company("アップ一級工務店(株)")
    stranger = api.company("無関係工業(株)")
    site = api.site(prime, disclosed_items=["address", "order_type"])
    node = api.invite(site, prime, site.root, first)

    full = prime.owner.ok("GET", f"/sites/{site.id}")
    assert set(full) >= {"address", "manager_name", "order_type", "period", "prime", "disclosed_items"}
    assert full["manager_name"] == "現場 太郎" and full["period"]["end"] == "2027-09-30"

    # The invited company may read the site it is asked to join, within what is disclosed.
    expected = {
        "id": site.id,
        "ccus_id": site.ccus_id,
        "name": site.name,
        "time_zone": "Asia/Tokyo",  # always shown: every time about the site reads in it
        "address": "東京都 港区 虎ノ門",
        "order_type": "private",
        "order_type_label": "民間工事",
    }
    assert first.owner.ok("GET", f"/sites/{site.id}") == expected
    assert first.owner.ok("GET", "/approval-requests")[0]["site"] == expected
    api.approve(first, node)
    assert first.owner.ok("GET", f"/sites/{site.id}") == expected
    assert first.owner.ok("GET", f"/sites/{site.id}/hierarchy")["site"] == expected
    listed = first.owner.ok("GET", "/sites")[0]
    assert "manager_name" not in listed and "period" not in listed and "prime" not in listed

    worker = api.worker(first, "鈴木 一郎")
    worker_session = api.worker_login(first, worker)
    worker_session.fail("GET", f"/sites/{site.id}", status=404, code="site_not_found")
    api.on_roster(site, first, worker)
    assert worker_session.ok("GET", f"/sites/{site.id}") == expected

    stranger.owner.fail("GET", f"/sites/{site.id}", status=404, code="site_not_found")
    prime.owner.fail("GET", "/sites/999999", status=404, code="site_not_found")
    api.operator.fail("GET", f"/sites/{site.id}", status=404, code="site_not_found")
    other_site = api.site(prime, "東棟新築工事")
    unbound = api.staff(prime, "site_manager", site_ids=[other_site.id])
    unbound.fail("GET", f"/sites/{site.id}", status=404, code="site_not_found")

    # With nothing disclosed, only the site's ID and name are shown.
    bare = api.site(prime, "西棟新築工事")
    api.registered(bare, prime, bare.root, first)
    assert set(first.owner.ok("GET", f"/sites/{bare.id}")) == {"id", "ccus_id", "name", "time_zone"}


def test_only_the_prime_edits_a_site(api: Api) -> None:
    prime = api.company("(株)基本建設")
    first = api.company("アップ一級工務店(株)")
    stranger = api.company("無関係工業(株)")
    site = api.site(prime, disclosed_items=["address"])
    api.registered(site, prime, site.root, first)
    before = prime.owner.ok("GET", f"/sites/{site.id}")

    first.owner.fail("PATCH", f"/sites/{site.id}", {"name": "乗っ取り"}, status=403, code="prime_only")
    stranger.owner.fail("PATCH", f"/sites/{site.id}", {"name": "乗っ取り"}, status=404, code="site_not_found")
    worker = api.worker(first, "鈴木 一郎")
    api.on_roster(site, first, worker)
    api.worker_login(first, worker).fail("PATCH", f"/sites/{site.id}", {"name": "x"}, status=403,
                                         code="role_not_allowed")
    other_site = api.site(prime, "東棟新築工事")
    unbound = api.staff(prime, "site_manager", site_ids=[other_site.id])
    unbound.fail("PATCH", f"/sites/{site.id}", {"name": "x"}, status=403, code="site_not_assigned")
    assert prime.owner.ok("GET", f"/sites/{site.id}") == before

    changed = prime.owner.ok("PATCH", f"/sites/{site.id}", {
        "manager_name": "現場 次郎",
        "period_end": "2027-12-31",
        "disclosed_items": ["manager_name", "period", "prime"],
    })
    assert changed["manager_name"] == "現場 次郎" and changed["period"]["end"] == "2027-12-31"
    assert changed["name"] == before["name"] and changed["address"] == before["address"]
    assert first.owner.ok("GET", f"/sites/{site.id}") == {
        "id": site.id,
        "ccus_id": site.ccus_id,
        "name": site.name,
        "time_zone": "Asia/Tokyo",
        "manager_name": "現場 次郎",
        "period": {"start": "2026-04-01", "end": "2027-12-31"},
        "prime": {"id": prime.id, "ccus_id": prime.ccus_id, "name": prime.name},
    }

    # The prime's 階層管理者 and a 現場管理者 bound to the site edit it too.
    manager = api.staff(prime, "hierarchy_manager")
    renamed = manager.ok("PATCH", f"/sites/{site.id}", {"name": "エプロ建設工事（第2期）"})
    assert renamed["name"] == "エプロ建設工事（第2期）"
    bound = api.staff(prime, "site_manager", site_ids=[site.id])
    assert bound.ok("PATCH", f"/sites/{site.id}", {"address": "東京都 港区 新橋"})["address"] == "東京都 港区 新橋"


def test_a_site_edit_with_bad_input_is_refused_and_changes_nothing(api: Api) -> None:
    prime = api.company("(株)基本建設")
    site = api.site(prime)
    before = prime.owner.ok("GET", f"/sites/{site.id}")
    path = f"/sites/{site.id}"
    prime.owner.fail("PATCH", path, {"period_end": "2026-03-31"}, status=422, code="period_reversed")
    prime.owner.fail("PATCH", path, {"period_start": "2027-10-01", "address": "別住所"}, status=422,
                     code="period_reversed")
    prime.owner.fail("PATCH", path, {"order_type": "public", "name": "改名"}, status=422, code="unknown_order_type")
    prime.owner.fail("PATCH", path, {"disclosed_items": ["worker_names"]}, status=422, code="unknown_site_item")
    prime.owner.fail("PATCH", path, {"name": " "}, status=422, code="site_name_required")
    prime.owner.fail("PATCH", path, {"ccus_id": "40000000000001"}, status=422, code="invalid_request")
    prime.owner.fail("PATCH", path, {"period_end": "not a date"}, status=422, code="invalid_request")
    # Required items cannot be cleared: a clear 422, never a 500 or a database error.
    for field in ("name", "order_type", "period_start", "period_end", "disclosed_items"):
        prime.owner.fail("PATCH", path, {field: None}, status=422, code="site_field_required")
    assert prime.owner.ok("GET", path) == before
    prime.owner.fail("PATCH", "/sites/999999", {"name": "x"}, status=404, code="site_not_found")

    # Optional items may be cleared.
    cleared = prime.owner.ok("PATCH", path, {"manager_name": None})
    assert cleared["manager_name"] is None
