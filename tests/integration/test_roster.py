"""施工体制技能者登録 / 現場作業員一覧 (作業員名簿) and 作業員名簿パターン.

The seed: 下請事業者が自身の所属技能者を登録 — a company registers its own workers on a site where
it is 登録, with 職種 (one the worker holds, to the 小分類), 立場, 作業内容, 有害物質の取扱い,
特殊健康診断 and 資格 (chosen from the worker's own). An entry without 職種 or 立場 is kept, but the
days do not count for skill evaluation, and the API says why.
"""

from __future__ import annotations

from typing import Any

from world import DAIKU, DENKI, TOBI, Api, Company, Session, Site


def _roster(session: Session, site: Site) -> list[tuple[str, str]]:
    """(worker name, employer name) of every entry this account sees."""
    rows = session.ok("GET", f"/sites/{site.id}/roster")["entries"]
    return sorted((r["worker"]["name"], r["employer"]["name"]) for r in rows)


def _setup(api: Api) -> tuple[Company, Site, Company, int]:
    prime = api.company("(株)基本建設")
    site = api.site(prime)
    first = api.company("アップ一級工務店(株)")
    node = api.registered(site, prime, site.root, first)
    return prime, site, first, node


def test_subcontractor_registers_its_own_worker_with_the_roster_fields(api: Api) -> None:
    prime, site, first, node = _setup(api)
    worker = api.worker(first, "鳶 一郎", trades=[TOBI, DENKI],
                        qualifications=[{"category": "技能講習", "name": "玉掛け"},
                                        {"category": "特別教育", "name": "フルハーネス"}],
                        health_insurance="enrolled", pension_insurance="enrolled", employment_insurance="enrolled")
    tamakake = worker["qualifications"][0]["id"]

    entry = first.owner.ok("POST", f"/sites/{site.id}/roster", {
        "worker_id": worker["id"],
        "trade": DENKI,
        "position": "foreman",
        "work_description": "  鉄骨建方  ",
        "hazardous": ["asbestos", "other"],
        "hazardous_other": "アーク溶接ヒューム",
        "health_checks": ["dust"],
        "qualification_ids": [tamakake],
    }, status=201)
    assert entry["node_id"] == node and entry["tier"] == 1
    assert entry["worker"]["name"] == "鳶 一郎" and entry["employer"]["id"] == first.id
    assert (entry["trade"]["major"], entry["trade"]["minor"]) == ("09", "01") and entry["trade"]["label"]
    assert (entry["position"], entry["position_label"]) == ("foreman", "職長")
    assert entry["work_description"] == "鉄骨建方"
    assert [h["label"] for h in entry["hazardous"]] == ["石綿", "その他"]
    assert entry["hazardous_other"] == "アーク溶接ヒューム"
    assert [h["code"] for h in entry["health_checks"]] == ["dust"] and entry["health_checks_other"] is None
    assert [q["name"] for q in entry["qualifications"]] == ["玉掛け"]
    assert entry["social_insurance"]["health"] == "enrolled"
    assert entry["valid_for_skill_evaluation"] is True and entry["invalid_reasons"] == []
    assert entry["registered_by_company_id"] == first.id

    listed = prime.owner.ok("GET", f"/sites/{site.id}/roster")
    assert listed["site"]["id"] == site.id
    assert [e["id"] for e in listed["entries"]] == [entry["id"]]
    assert listed["summary"] == {"total": 1, "invalid": 0}

    # The roster's lists come from the reference lists the screens use.
    lists = first.owner.ok("GET", "/reference/lists")
    positions = {p["code"]: p for p in lists["positions"]}
    assert {"職長", "班長", "一般"} <= {p["label"] for p in positions.values()}
    assert positions["foreman"]["leader"] and positions["subforeman"]["leader"]
    assert not positions["general"]["leader"]
    assert {"石綿", "粉じん", "その他"} <= {h["label"] for h in lists["hazardous"]}


def test_trade_codes_are_normalised_like_ids(api: Api) -> None:
    _, site, first, _ = _setup(api)
    worker = api.worker(first, "全角 入力", trades=[TOBI])
    entry = first.owner.ok("POST", f"/sites/{site.id}/roster",
                           {"worker_id": worker["id"], "trade": {"major": "０６", "minor": "０１"},
                            "position": "general"}, status=201)
    assert (entry["trade"]["major"], entry["trade"]["minor"]) == ("06", "01")
    assert entry["valid_for_skill_evaluation"] is True


def test_subcontractor_must_approve_before_roster(api: Api) -> None:
    prime = api.company("(株)基本建設")
    site = api.site(prime)
    first = api.company("アップ一級工務店(株)")
    node = api.invite(site, prime, site.root, first)
    worker = api.worker(first, "鳶 一郎")
    body = {"worker_id": worker["id"], "trade": TOBI, "position": "general"}

    first.owner.fail("POST", f"/sites/{site.id}/roster", body, status=409, code="employer_not_registered_on_site")
    assert prime.owner.ok("GET", f"/sites/{site.id}/roster")["entries"] == []

    api.approve(first, node)
    first.owner.ok("POST", f"/sites/{site.id}/roster", body, status=201)
    assert _roster(prime.owner, site) == [("鳶 一郎", "アップ一級工務店(株)")]


def test_a_company_not_on_the_site_cannot_register_its_workers(api: Api) -> None:
    prime, site, _, _ = _setup(api)
    outsider = api.company("現場外工業(株)")
    worker = api.worker(outsider, "外部 太郎")
    outsider.owner.fail("POST", f"/sites/{site.id}/roster", {"worker_id": worker["id"], "trade": TOBI},
                        status=409, code="employer_not_registered_on_site")
    outsider.owner.fail("GET", f"/sites/{site.id}/roster", status=404, code="site_not_found")
    prime.owner.fail("POST", "/sites/999999/roster", {"worker_id": worker["id"]}, status=404, code="site_not_found")
    prime.owner.fail("POST", f"/sites/{site.id}/roster", {"worker_id": 999999}, status=404, code="worker_not_found")
    assert prime.owner.ok("GET", f"/sites/{site.id}/roster")["entries"] == []


def test_another_companys_worker_is_refused_without_consent(api: Api) -> None:
    prime, site, first, n1 = _setup(api)
    sibling = api.company("横並び設備(株)")
    second = api.company("二次鳶(株)")
    api.registered(site, prime, site.root, sibling)
    api.registered(site, first, n1, second)
    first_worker = api.worker(first, "一次 職人")
    prime_worker = api.worker(prime, "元請 社員")

    def body(worker: dict[str, Any]) -> dict[str, Any]:
        return {"worker_id": worker["id"], "trade": TOBI, "position": "general"}

    # A company beside or below the employer does not see the worker: the same answer as for a worker
    # that does not exist, so the roster endpoint tells nobody whose worker is whose.
    missing = sibling.owner.fail("POST", f"/sites/{site.id}/roster", {**body(first_worker), "worker_id": 999999},
                                 status=404, code="worker_not_found")
    for company, worker in ((sibling, first_worker), (second, first_worker), (second, prime_worker)):
        refused = company.owner.fail("POST", f"/sites/{site.id}/roster", body(worker), status=404)
        assert refused == missing
    # With consent but not above the employer: told why, since the consent says the worker is known.
    first.owner.ok("PUT", f"/companies/{first.id}/proxy-consents/{sibling.id}", {"consented": True})
    sibling.owner.fail("POST", f"/sites/{site.id}/roster", body(first_worker), status=403, code="not_your_worker")
    # A company above it: only with the employer's proxy consent (参考資料4).
    prime.owner.fail("POST", f"/sites/{site.id}/roster", body(first_worker), status=403,
                     code="proxy_consent_required")
    # A worker account registers nobody, not even itself.
    api.worker_login(first, first_worker).fail("POST", f"/sites/{site.id}/roster", body(first_worker), status=403,
                                               code="role_not_allowed")
    assert prime.owner.ok("GET", f"/sites/{site.id}/roster")["entries"] == []


def test_site_manager_registers_only_on_its_bound_sites(api: Api) -> None:
    prime, site, first, _ = _setup(api)
    other_site = api.site(prime, "別現場新築工事")
    api.registered(other_site, prime, other_site.root, first)
    bound = api.staff(first, "site_manager", site_ids=[site.id])
    w1, w2 = api.worker(first, "鳶 一郎"), api.worker(first, "鳶 二郎")

    bound.ok("POST", f"/sites/{site.id}/roster", {"worker_id": w1["id"], "trade": TOBI, "position": "general"},
             status=201)
    bound.fail("POST", f"/sites/{other_site.id}/roster",
               {"worker_id": w2["id"], "trade": TOBI, "position": "general"}, status=403, code="site_not_assigned")
    assert prime.owner.ok("GET", f"/sites/{other_site.id}/roster")["entries"] == []
    assert _roster(bound, site) == [("鳶 一郎", "アップ一級工務店(株)")]
    bound.fail("GET", f"/sites/{other_site.id}/roster", status=404)


def test_roster_fields_are_checked_and_a_refusal_changes_nothing(api: Api) -> None:
    _, site, first, _ = _setup(api)
    worker = api.worker(first, "鳶 一郎", trades=[TOBI], qualifications=[{"category": "技能講習", "name": "玉掛け"}])
    other = api.worker(first, "鳶 二郎", qualifications=[{"category": "技能講習", "name": "足場"}])
    foreign_qualification = other["qualifications"][0]["id"]
    base = {"worker_id": worker["id"], "trade": TOBI, "position": "general"}
    refusals = [
        ({"trade": DENKI}, "trade_not_held"),
        ({"trade": {"major": "99", "minor": "99"}}, "unknown_trade"),
        ({"trade": {"major": "鳶", "minor": "01"}}, "invalid_trade_code"),
        ({"position": "親方"}, "unknown_position"),
        ({"hazardous": ["plutonium"]}, "unknown_hazardous"),
        ({"hazardous": ["other"]}, "hazardous_other_text_required"),
        ({"hazardous": ["other"], "hazardous_other": "   "}, "hazardous_other_text_required"),
        ({"health_checks": ["x-ray"]}, "unknown_health_checks"),
        ({"health_checks": ["dust", "other"]}, "health_checks_other_text_required"),
        ({"qualification_ids": [foreign_qualification]}, "qualification_not_held"),
        ({"qualification_ids": [999999]}, "qualification_not_held"),
    ]
    for change, code in refusals:
        first.owner.fail("POST", f"/sites/{site.id}/roster", base | change, status=422, code=code)
    first.owner.fail("POST", f"/sites/{site.id}/roster", base | {"nickname": "x"}, status=422,
                     code="invalid_request")
    assert first.owner.ok("GET", f"/sites/{site.id}/roster")["entries"] == []

    entry = first.owner.ok("POST", f"/sites/{site.id}/roster",
                           base | {"health_checks": ["other"], "health_checks_other": "振動工具",
                                   "hazardous_other": "ignored without その他"}, status=201)
    assert [h["label"] for h in entry["health_checks"]] == ["その他"]
    assert entry["health_checks_other"] == "振動工具"
    assert entry["hazardous"] == [] and entry["hazardous_other"] is None

    # A checkbox ticked twice is one item.
    quals = [worker["qualifications"][0]["id"]] * 2
    edited = first.owner.ok("PATCH", f"/roster/{entry['id']}",
                            {"hazardous": ["dust", "asbestos", "dust"], "qualification_ids": quals})
    assert [h["code"] for h in edited["hazardous"]] == ["dust", "asbestos"]
    assert [q["name"] for q in edited["qualifications"]] == ["玉掛け"]


def test_entry_without_trade_or_position_is_kept_but_not_valid_for_skill_evaluation(api: Api) -> None:
    prime, site, first, _ = _setup(api)
    bare = api.worker(first, "職種 なし")
    no_position = api.worker(first, "立場 なし")

    e1 = first.owner.ok("POST", f"/sites/{site.id}/roster", {"worker_id": bare["id"]}, status=201)
    assert e1["valid_for_skill_evaluation"] is False
    assert [r["code"] for r in e1["invalid_reasons"]] == ["no_trade", "no_position"]
    assert all(r["message"] and r["message_en"] for r in e1["invalid_reasons"])
    e2 = first.owner.ok("POST", f"/sites/{site.id}/roster", {"worker_id": no_position["id"], "trade": TOBI},
                        status=201)
    assert [r["code"] for r in e2["invalid_reasons"]] == ["no_position"]

    listed = prime.owner.ok("GET", f"/sites/{site.id}/roster")
    assert listed["summary"] == {"total": 2, "invalid": 2}

    fixed = first.owner.ok("PATCH", f"/roster/{e1['id']}", {"trade": TOBI, "position": "subforeman"})
    assert fixed["valid_for_skill_evaluation"] is True and fixed["invalid_reasons"] == []
    assert fixed["position_label"] == "班長"
    assert prime.owner.ok("GET", f"/sites/{site.id}/roster")["summary"] == {"total": 2, "invalid": 1}
    # Clearing the 立場 again makes it invalid again, with the reason.
    cleared = first.owner.ok("PATCH", f"/roster/{e1['id']}", {"position": None})
    assert [r["code"] for r in cleared["invalid_reasons"]] == ["no_position"]
    assert cleared["trade"]["minor"] == "01"


def test_roster_entries_are_edited_and_removed(api: Api) -> None:
    prime, site, first, _ = _setup(api)
    sibling = api.company("横並び設備(株)")
    api.registered(site, prime, site.root, sibling)
    worker = api.worker(first, "鳶 一郎", trades=[TOBI, DAIKU],
                        qualifications=[{"category": "技能講習", "name": "玉掛け"}])
    entry = api.on_roster(site, first, worker, work_description="鉄骨建方")
    path = f"/roster/{entry['id']}"

    edited = first.owner.ok("PATCH", path, {"trade": DAIKU, "hazardous": ["dust"], "work_description": "型枠"})
    assert edited["trade"]["major"] == "34" and [h["code"] for h in edited["hazardous"]] == ["dust"]
    assert edited["work_description"] == "型枠" and edited["position"] == "general"  # the rest stays

    # Refused edits leave the entry as it was.
    first.owner.fail("PATCH", path, {"trade": DENKI}, status=422, code="trade_not_held")
    first.owner.fail("PATCH", path, {"position": "boss"}, status=422, code="unknown_position")
    first.owner.fail("PATCH", path, {"hazardous": ["dust", "other"]}, status=422,
                     code="hazardous_other_text_required")
    first.owner.fail("PATCH", path, {"worker_id": 1}, status=422, code="invalid_request")
    sibling.owner.fail("PATCH", path, {"position": "foreman"}, status=404, code="roster_entry_not_found")
    api.company("他現場建設(株)").owner.fail("PATCH", path, {"position": "foreman"}, status=404,
                                        code="roster_entry_not_found")
    prime.owner.fail("PATCH", path, {"position": "foreman"}, status=403, code="proxy_consent_required")
    api.worker_login(first, worker).fail("PATCH", path, {"position": "foreman"}, status=403)
    first.owner.fail("PATCH", "/roster/999999", {"position": "foreman"}, status=404, code="roster_entry_not_found")
    (now,) = prime.owner.ok("GET", f"/sites/{site.id}/roster")["entries"]
    assert (now["trade"]["major"], now["position"], now["work_description"]) == ("34", "general", "型枠")
    assert [h["code"] for h in now["hazardous"]] == ["dust"]

    # Removal: not by others.
    sibling.owner.fail("DELETE", path, status=404, code="roster_entry_not_found")
    api.company("無関係建設(株)").owner.fail("DELETE", path, status=404, code="roster_entry_not_found")
    prime.owner.fail("DELETE", path, status=403, code="proxy_consent_required")
    assert len(prime.owner.ok("GET", f"/sites/{site.id}/roster")["entries"]) == 1
    first.owner.ok("DELETE", path)
    assert prime.owner.ok("GET", f"/sites/{site.id}/roster")["entries"] == []
    first.owner.fail("DELETE", path, status=404, code="roster_entry_not_found")
    # Removed, the worker can be registered again.
    api.on_roster(site, first, worker)


def test_a_worker_is_on_a_sites_roster_once(api: Api) -> None:
    prime, site, first, _ = _setup(api)
    other_site = api.site(prime, "別現場新築工事")
    api.registered(other_site, prime, other_site.root, first)
    worker = api.worker(first, "鳶 一郎")
    api.on_roster(site, first, worker)
    first.owner.fail("POST", f"/sites/{site.id}/roster",
                     {"worker_id": worker["id"], "trade": TOBI, "position": "foreman"}, status=409,
                     code="already_on_roster")
    (only,) = prime.owner.ok("GET", f"/sites/{site.id}/roster")["entries"]
    assert only["position"] == "general"
    api.on_roster(other_site, first, worker)


def test_roster_list_follows_the_hierarchy(api: Api) -> None:
    prime, site, a, na = _setup(api)  # a: アップ一級工務店(株)
    a2 = api.company("二次鳶(株)")
    b = api.company("横並び設備(株)")
    pending = api.company("未承認工業(株)")
    stranger = api.company("無関係建設(株)")
    api.registered(site, a, na, a2)
    api.registered(site, prime, site.root, b)
    api.invite(site, prime, site.root, pending)
    workers = {
        "元請 社員": (prime, api.worker(prime, "元請 社員")),
        "一次 職人": (a, api.worker(a, "一次 職人")),
        "二次 職人": (a2, api.worker(a2, "二次 職人")),
        "横並び 職人": (b, api.worker(b, "横並び 職人")),
    }
    for company, worker in workers.values():
        api.on_roster(site, company, worker)
    off_roster = api.worker(a2, "名簿外 職人")

    everyone = sorted((n, c.name) for n, (c, _) in workers.items())
    assert _roster(prime.owner, site) == everyone
    assert _roster(api.staff(prime, "site_manager", site_ids=[site.id]), site) == everyone
    assert _roster(a.owner, site) == [("一次 職人", a.name), ("二次 職人", a2.name)]
    assert _roster(api.staff(a, "hierarchy_manager"), site) == [("一次 職人", a.name), ("二次 職人", a2.name)]
    assert _roster(a2.owner, site) == [("二次 職人", a2.name)]
    assert _roster(b.owner, site) == [("横並び 職人", b.name)]
    assert _roster(api.worker_login(a2, workers["二次 職人"][1]), site) == [("二次 職人", a2.name)]

    for nobody in (pending.owner, api.staff(pending, "site_manager", site_ids=[site.id]), stranger.owner,
                   api.operator, api.worker_login(a2, off_roster), api.staff(prime, "site_manager")):
        nobody.fail("GET", f"/sites/{site.id}/roster", status=404, code="site_not_found")
    api.anonymous.fail("GET", f"/sites/{site.id}/roster", status=401)


# --- 作業員名簿パターン ---------------------------------------------------------------------------------


def test_roster_pattern_registers_own_workers_at_once(api: Api) -> None:
    prime, site, first, _ = _setup(api)
    other_site = api.site(prime, "別現場新築工事")
    api.registered(other_site, prime, other_site.root, first)
    w1 = api.worker(first, "鳶 一郎", qualifications=[{"category": "技能講習", "name": "玉掛け"}])
    w2 = api.worker(first, "鳶 二郎")
    w3 = api.worker(first, "鳶 三郎")

    pattern = first.owner.ok("POST", "/roster-patterns", {"name": "鳶班", "entries": [
        {"worker_id": w1["id"], "trade": TOBI, "position": "foreman", "work_description": "鉄骨建方",
         "qualification_ids": [w1["qualifications"][0]["id"]]},
        {"worker_id": w2["id"], "trade": TOBI, "position": "general", "hazardous": ["dust"]},
        {"worker_id": w3["id"]},
    ]}, status=201)
    assert [p["name"] for p in first.owner.ok("GET", "/roster-patterns")] == ["鳶班"]
    assert prime.owner.ok("GET", "/roster-patterns") == []

    api.on_roster(site, first, w2, position="subforeman")
    applied = first.owner.ok("POST", f"/roster-patterns/{pattern['id']}/apply", {"site_id": site.id}, status=201)
    assert [e["worker"]["name"] for e in applied["added"]] == ["鳶 一郎", "鳶 三郎"]
    assert applied["skipped_worker_ids"] == [w2["id"]]
    entries = {e["worker"]["name"]: e for e in prime.owner.ok("GET", f"/sites/{site.id}/roster")["entries"]}
    assert set(entries) == {"鳶 一郎", "鳶 二郎", "鳶 三郎"}
    assert entries["鳶 一郎"]["position"] == "foreman" and entries["鳶 一郎"]["work_description"] == "鉄骨建方"
    assert [q["name"] for q in entries["鳶 一郎"]["qualifications"]] == ["玉掛け"]
    assert entries["鳶 二郎"]["position"] == "subforeman"  # the existing entry is left alone
    assert entries["鳶 三郎"]["valid_for_skill_evaluation"] is False

    # Applying it again adds nothing; on another site it adds all three.
    again = first.owner.ok("POST", f"/roster-patterns/{pattern['id']}/apply", {"site_id": site.id}, status=201)
    assert again["added"] == [] and sorted(again["skipped_worker_ids"]) == sorted([w1["id"], w2["id"], w3["id"]])
    elsewhere = first.owner.ok("POST", f"/roster-patterns/{pattern['id']}/apply", {"site_id": other_site.id},
                               status=201)
    assert len(elsewhere["added"]) == 3

    first.owner.fail("POST", "/roster-patterns", {"name": "鳶班", "entries": [{"worker_id": w1["id"]}]},
                     status=409, code="pattern_name_taken")
    assert len(first.owner.ok("GET", "/roster-patterns")) == 1

    # Only the company that saved it may apply it.
    prime.owner.fail("POST", f"/roster-patterns/{pattern['id']}/apply", {"site_id": site.id}, status=404,
                     code="pattern_not_found")


def test_a_roster_pattern_holds_only_own_workers(api: Api) -> None:
    prime, site, first, _ = _setup(api)
    own = api.worker(first, "自社 職人")
    theirs = api.worker(prime, "他社 職人")
    first.owner.fail("POST", "/roster-patterns", {"name": "混在", "entries": [
        {"worker_id": own["id"], "trade": TOBI, "position": "general"},
        {"worker_id": theirs["id"], "trade": TOBI, "position": "general"},
    ]}, status=403, code="not_your_worker")
    first.owner.fail("POST", "/roster-patterns", {"name": "職種違い", "entries": [
        {"worker_id": own["id"], "trade": DENKI, "position": "general"},
    ]}, status=422, code="trade_not_held")
    first.owner.fail("POST", "/roster-patterns", {"name": "空", "entries": []}, status=422, code="pattern_empty")
    first.owner.fail("POST", "/roster-patterns", {"name": " ", "entries": [{"worker_id": own["id"]}]},
                     status=422, code="pattern_name_required")
    api.worker_login(first, own).fail("POST", "/roster-patterns",
                                      {"name": "本人", "entries": [{"worker_id": own["id"]}]},
                                      status=403, code="role_not_allowed")
    assert first.owner.ok("GET", "/roster-patterns") == []


def test_a_roster_pattern_is_all_or_nothing_on_a_site_not_yet_approved(api: Api) -> None:
    prime = api.company("(株)基本建設")
    site = api.site(prime)
    first = api.company("アップ一級工務店(株)")
    node = api.invite(site, prime, site.root, first)
    w1, w2 = api.worker(first, "鳶 一郎"), api.worker(first, "鳶 二郎")
    pattern = first.owner.ok("POST", "/roster-patterns", {"name": "鳶班", "entries": [
        {"worker_id": w1["id"], "trade": TOBI, "position": "general"},
        {"worker_id": w2["id"], "trade": TOBI, "position": "general"},
    ]}, status=201)
    first.owner.fail("POST", f"/roster-patterns/{pattern['id']}/apply", {"site_id": site.id}, status=409,
                     code="employer_not_registered_on_site")
    assert prime.owner.ok("GET", f"/sites/{site.id}/roster")["entries"] == []
    api.approve(first, node)
    applied = first.owner.ok("POST", f"/roster-patterns/{pattern['id']}/apply", {"site_id": site.id}, status=201)
    assert len(applied["added"]) == 2


def test_bad_roster_input_is_refused_with_a_4xx_and_changes_nothing(api: Api) -> None:
    """The issue: bad input gets 4xx, never a 500, on both backends alike."""
    _, site, first, _ = _setup(api)
    worker = api.worker(first, "鳶 一郎")
    entry = api.on_roster(site, first, worker)
    for huge in (2**31, 2**63):
        calls = [
            ("POST", f"/sites/{site.id}/roster", {"worker_id": huge}),
            ("POST", f"/sites/{site.id}/roster",
             {"worker_id": worker["id"], "trade": TOBI, "qualification_ids": [huge]}),
            ("PATCH", f"/roster/{huge}", {"position": "foreman"}),
            ("GET", f"/sites/{huge}/roster", None),
            ("POST", f"/roster-patterns/{huge}/apply", {"site_id": site.id}),
        ]
        for method, path, body in calls:
            r = first.owner.call(method, path, body)
            assert r.status_code in (404, 409, 422), f"{method} {path} {body} → {r.status_code}: {r.text}"
    too_long = [
        {"hazardous": ["other"], "hazardous_other": "物" * 201},
        {"health_checks": ["other"], "health_checks_other": "診" * 201},
    ]
    for change in too_long:
        first.owner.fail("PATCH", f"/roster/{entry['id']}", change, status=422, code="value_too_long")
    first.owner.fail("POST", "/roster-patterns", {"name": "名" * 101, "entries": [{"worker_id": worker["id"]}]},
                     status=422, code="value_too_long")

    (now,) = first.owner.ok("GET", f"/sites/{site.id}/roster")["entries"]
    assert now["hazardous"] == [] and now["health_checks"] == [] and now["position"] == "general"
    assert first.owner.ok("GET", "/roster-patterns") == []
