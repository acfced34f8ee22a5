"""事業者・技能者・カード: IDs as the CCUS screens show them, who registers whom, and lost cards.

Companies are registered by the operator; a company's 事業者責任者 or 階層管理者 registers its own
workers with their 職種 (validated against the code table), 資格, 社会保険 and 建退共. A card UID
is linked to one worker at a time; a lost card is replaced and the old one stays in the history.
"""

from __future__ import annotations

from typing import Any

from world import DAIKU, DENKI, TOBI, Api, Company, ccus_id

from server.domain.ids import corporate_number_check_digit


def _full_width(digits: str) -> str:
    return digits.translate(str.maketrans("0123456789", "０１２３４５６７８９"))


def _corporate_number(body12: str = "234567890123") -> str:
    return f"{corporate_number_check_digit(body12)}{body12}"


def _worker_body(employer: Company, name: str = "鳶 一郎", **extra: Any) -> dict[str, Any]:
    return {"ccus_id": ccus_id("8"), "name": name, "employer_id": employer.id, "trades": [TOBI], **extra}


def _worker_names(company: Company) -> list[str]:
    return [w["name"] for w in company.owner.ok("GET", f"/companies/{company.id}/workers")]


# --- companies ------------------------------------------------------------------------------------


def test_company_ids_are_14_digits_and_full_width_digits_are_normalised(api: Api) -> None:
    for bad in ("1234567890123", "123456789012345", "1234567890123a", ""):
        api.operator.fail("POST", "/companies", {"ccus_id": bad, "name": "誤入力建設(株)"}, status=422,
                          code="invalid_company_id")
    assert api.operator.ok("GET", "/companies", name="誤入力") == []

    digits = ccus_id("1")
    created = api.operator.ok("POST", "/companies", {"ccus_id": _full_width(digits), "name": "全角工業(株)"},
                              status=201)
    assert created["ccus_id"] == digits
    # The same ID typed with hyphens is the same company.
    hyphenated = f"{digits[:4]}-{digits[4:9]}-{digits[9:]}"
    api.operator.fail("POST", "/companies", {"ccus_id": hyphenated, "name": "重複(株)"}, status=409,
                      code="company_exists")
    assert [c["name"] for c in api.operator.ok("GET", "/companies", ccus_id=digits)] == ["全角工業(株)"]


def test_corporate_number_has_a_check_digit(api: Api) -> None:
    good = _corporate_number()
    wrong_digit = f"{corporate_number_check_digit(good[1:]) % 9 + 1}{good[1:]}"
    for bad in (wrong_digit, good[1:], good + "0", "abcdefghijklm"):
        api.operator.fail("POST", "/companies", {"ccus_id": ccus_id("1"), "name": "法人番号誤り(株)",
                                                 "corporate_number": bad},
                          status=422, code="invalid_corporate_number")
    assert api.operator.ok("GET", "/companies", name="法人番号誤り") == []

    created = api.operator.ok("POST", "/companies", {"ccus_id": ccus_id("1"), "name": "法人番号正(株)",
                                                     "corporate_number": _full_width(good),
                                                     "permit_number": "国土交通大臣許可（特-5）第12345号"},
                              status=201)
    assert created["corporate_number"] == good
    assert created["permit_number"] == "国土交通大臣許可（特-5）第12345号"


def test_only_the_operator_registers_companies(api: Api) -> None:
    company = api.company("既存建設(株)")
    company.owner.fail("POST", "/companies", {"ccus_id": ccus_id("1"), "name": "勝手に登録(株)"}, status=403,
                       code="role_not_allowed")
    api.anonymous.fail("POST", "/companies", {"ccus_id": ccus_id("1"), "name": "匿名(株)"}, status=401)
    assert api.operator.ok("GET", "/companies", name="勝手に登録") == []
    api.operator.fail("POST", "/companies", {"ccus_id": ccus_id("1"), "name": "  "}, status=422,
                      code="company_name_required")


def test_company_search_by_id_or_part_of_the_name(api: Api) -> None:
    up = api.company("アップ一級工務店(株)")
    api.company("アップ二級設備(株)")
    api.company("基本建設(株)")
    searcher = api.company("検索する元請(株)")

    by_id = searcher.owner.ok("GET", "/companies", ccus_id=up.ccus_id)
    assert [(c["id"], c["name"]) for c in by_id] == [(up.id, "アップ一級工務店(株)")]
    assert searcher.owner.ok("GET", "/companies", ccus_id=_full_width(up.ccus_id))[0]["id"] == up.id
    assert sorted(c["name"] for c in searcher.owner.ok("GET", "/companies", name="アップ")) == [
        "アップ一級工務店(株)",
        "アップ二級設備(株)",
    ]
    # A LIKE wildcard is a character, not a pattern.
    assert searcher.owner.ok("GET", "/companies", name="%") == []
    searcher.owner.fail("GET", "/companies", status=422, code="search_term_required")
    searcher.owner.fail("GET", "/companies", status=422, code="invalid_company_id", ccus_id="12345")

    worker = api.worker(searcher, "検索 太郎")
    api.worker_login(searcher, worker).fail("GET", "/companies", status=403, code="role_not_allowed", name="アップ")


# --- workers --------------------------------------------------------------------------------------


def test_worker_ids_trades_and_insurance_are_checked(api: Api) -> None:
    employer = api.company("鳶工業(株)")
    refusals = [
        ({"ccus_id": "8123"}, "invalid_worker_id"),
        ({"ccus_id": "8" * 15}, "invalid_worker_id"),
        ({"trades": [{"major": "99", "minor": "99"}]}, "unknown_trade"),
        ({"trades": [{"major": "とび", "minor": "01"}]}, "invalid_trade_code"),
        ({"health_insurance": "yes"}, "invalid_insurance_state"),
        ({"kentaikyo": "加入"}, "invalid_insurance_state"),
        ({"level": 5}, "invalid_level"),
        ({"name": " "}, "worker_name_required"),
    ]
    for change, code in refusals:
        employer.owner.fail("POST", "/workers", _worker_body(employer) | change, status=422, code=code)
    assert _worker_names(employer) == []

    digits = ccus_id("8")
    w = employer.owner.ok(
        "POST",
        "/workers",
        _worker_body(
            employer,
            ccus_id=_full_width(digits),
            trades=[TOBI, {"major": "０９", "minor": "０１"}, TOBI],
            qualifications=[{"category": "技能講習", "name": "玉掛け", "number": "A-1"}],
            health_insurance="enrolled",
            pension_insurance="enrolled",
            employment_insurance="exempt",
            kentaikyo="not_enrolled",
            level=2,
        ),
        status=201,
    )
    assert w["ccus_id"] == digits
    assert [(t["major"], t["minor"]) for t in w["trades"]] == [("06", "01"), ("09", "01")]
    assert w["trades"][0]["label"]
    assert [q["name"] for q in w["qualifications"]] == ["玉掛け"]
    assert w["social_insurance"] == {"health": "enrolled", "pension": "enrolled", "employment": "exempt"}
    assert w["kentaikyo"] == "not_enrolled" and w["level"] == 2

    employer.owner.fail("POST", "/workers", _worker_body(employer, ccus_id=digits), status=409, code="worker_exists")
    assert _worker_names(employer) == ["鳶 一郎"]
    # The employer reads its worker back with everything.
    got = employer.owner.ok("GET", f"/workers/{w['id']}")
    assert got["social_insurance"]["employment"] == "exempt" and len(got["trades"]) == 2


def test_only_the_employers_owner_or_hierarchy_manager_registers_its_workers(api: Api) -> None:
    employer = api.company("大工工務店(株)")
    other = api.company("他社建設(株)")
    manager = api.staff(employer, "hierarchy_manager")
    site_manager = api.staff(employer, "site_manager")
    existing = api.worker(employer, "大工 花子", trades=[DAIKU])

    manager.ok("POST", "/workers", _worker_body(employer, "階層 登録", trades=[DAIKU]), status=201)
    api.operator.ok("POST", "/workers", _worker_body(employer, "運用 登録"), status=201)

    site_manager.fail("POST", "/workers", _worker_body(employer, "現場 管理"), status=403, code="role_not_allowed")
    other.owner.fail("POST", "/workers", _worker_body(employer, "他社 登録"), status=403, code="not_your_company")
    api.worker_login(employer, existing).fail("POST", "/workers", _worker_body(employer, "本人 登録"), status=403,
                                               code="role_not_allowed")
    api.anonymous.fail("POST", "/workers", _worker_body(employer, "匿名"), status=401)
    api.operator.fail("POST", "/workers", _worker_body(employer) | {"employer_id": 999999}, status=404,
                      code="company_not_found")
    assert sorted(_worker_names(employer)) == sorted(["大工 花子", "階層 登録", "運用 登録"])
    assert _worker_names(other) == []


def test_a_worker_sees_their_own_data_and_nobody_unrelated_sees_the_worker(api: Api) -> None:
    employer = api.company("電気工事(株)")
    stranger = api.company("無関係建設(株)")
    me = api.worker(employer, "電気 次郎", trades=[DENKI], birth_date="1990-05-01", level=3, phone="090-0000-0000")
    colleague = api.worker(employer, "同僚 三郎")
    session = api.worker_login(employer, me)

    own = session.ok("GET", f"/workers/{me['id']}")
    assert own["name"] == "電気 次郎" and own["birth_date"] == "1990-05-01" and own["level"] == 3
    assert own["phone"] == "090-0000-0000"
    assert session.ok("GET", f"/companies/{employer.id}")["name"] == "電気工事(株)"

    session.fail("GET", f"/workers/{colleague['id']}", status=404, code="worker_not_found")
    session.fail("GET", f"/companies/{stranger.id}", status=404, code="company_not_found")
    session.fail("GET", f"/companies/{employer.id}/workers", status=403)
    stranger.owner.fail("GET", f"/workers/{me['id']}", status=404, code="worker_not_found")
    stranger.owner.fail("GET", "/workers/999999", status=404, code="worker_not_found")
    # Whether a worker exists is not told apart from whether it is visible.
    assert (stranger.owner.fail("GET", f"/workers/{me['id']}", status=404)["message"]
            == stranger.owner.fail("GET", "/workers/999999", status=404)["message"])
    assert stranger.owner.ok("GET", f"/companies/{employer.id}/workers") == []  # nothing disclosed (参考資料6)


# --- cards ----------------------------------------------------------------------------------------


def test_lost_card_is_replaced_and_the_history_stays(api: Api) -> None:
    employer = api.company("カード工業(株)")
    worker = api.worker(employer, "鳶 一郎")
    other = api.worker(employer, "鳶 二郎")

    card = employer.owner.ok("POST", f"/workers/{worker['id']}/cards",
                             {"uid": "01:2e:3a:4b:5c:6d:7e:8f", "tech": "felica"}, status=201)
    assert card["uid"] == "012E3A4B5C6D7E8F" and card["revoked_at"] is None and card["worker_id"] == worker["id"]

    for bad in ("xyz", "0123", "012E3A4B5C6D7E8", "00" * 11):
        employer.owner.fail("POST", f"/workers/{worker['id']}/cards", {"uid": bad}, status=422,
                            code="invalid_card_uid")
    employer.owner.fail("POST", f"/workers/{worker['id']}/cards", {"uid": "AABBCCDD", "tech": "magstripe"},
                        status=422, code="invalid_card_tech")
    # The same card (in another spelling) cannot be linked to a second worker, nor twice to the same one.
    employer.owner.fail("POST", f"/workers/{other['id']}/cards", {"uid": "012e3a4b5c6d7e8f"}, status=409,
                        code="card_in_use")
    employer.owner.fail("POST", f"/workers/{worker['id']}/cards", {"uid": "012E3A4B5C6D7E8F"}, status=409,
                        code="card_in_use")
    assert employer.owner.ok("GET", f"/workers/{other['id']}/cards") == []

    replacement = employer.owner.ok("POST", f"/workers/{worker['id']}/cards",
                                    {"uid": "0102030405060708", "replaces": True, "reason": "紛失"}, status=201)
    cards = employer.owner.ok("GET", f"/workers/{worker['id']}/cards")
    assert [(c["uid"], c["revoked_at"] is None, c["revoke_reason"]) for c in cards] == [
        ("012E3A4B5C6D7E8F", False, "紛失"),
        ("0102030405060708", True, None),
    ]
    assert replacement["id"] == cards[1]["id"]

    # The lost card's UID is free again (a found card handed to someone else).
    employer.owner.ok("POST", f"/workers/{other['id']}/cards", {"uid": "012E3A4B5C6D7E8F"}, status=201)
    assert [c["uid"] for c in employer.owner.ok("GET", f"/workers/{other['id']}/cards")] == ["012E3A4B5C6D7E8F"]
    # The worker's history is unchanged by that.
    assert len(employer.owner.ok("GET", f"/workers/{worker['id']}/cards")) == 2

    # The audit log says who revoked which card, with before and after.
    revoked = [e for e in employer.owner.ok("GET", "/audit") if e["action"] == "card.revoke"]
    assert [(e["entity_id"], e["before"]["revoked_at"], e["after"]["revoke_reason"]) for e in revoked] == [
        (card["id"], None, "紛失")
    ]
    assert revoked[0]["account_id"] == employer.owner.account["id"]

    # Revoking directly: once.
    employer.owner.ok("POST", f"/cards/{replacement['id']}/revoke", {"reason": "退職"})
    employer.owner.fail("POST", f"/cards/{replacement['id']}/revoke", {"reason": "退職"}, status=409,
                        code="card_already_revoked")
    employer.owner.fail("POST", "/cards/999999/revoke", {"reason": "紛失"}, status=404, code="card_not_found")
    assert all(c["revoked_at"] for c in employer.owner.ok("GET", f"/workers/{worker['id']}/cards"))


def test_only_the_employer_or_the_operator_manages_cards(api: Api) -> None:
    employer = api.company("カード管理(株)")
    other = api.company("他社カード(株)")
    worker = api.worker(employer, "鳶 一郎")
    manager = api.staff(employer, "hierarchy_manager")
    site_manager = api.staff(employer, "site_manager")
    worker_session = api.worker_login(employer, worker)
    path = f"/workers/{worker['id']}/cards"

    card = manager.ok("POST", path, {"uid": "A1B2C3D4"}, status=201)
    api.operator.ok("POST", path, {"uid": "A1B2C3D5"}, status=201)

    other.owner.fail("POST", path, {"uid": "A1B2C3D6"}, status=404, code="worker_not_found")
    other.owner.fail("GET", path, status=404, code="worker_not_found")
    other.owner.fail("POST", f"/cards/{card['id']}/revoke", {"reason": "紛失"}, status=404)
    site_manager.fail("POST", path, {"uid": "A1B2C3D6"}, status=403, code="role_not_allowed")
    worker_session.fail("POST", path, {"uid": "A1B2C3D6"}, status=403, code="role_not_allowed")
    worker_session.fail("POST", f"/cards/{card['id']}/revoke", {"reason": "紛失"}, status=403,
                        code="role_not_allowed")

    # The worker sees their own cards; nothing above changed them.
    assert [(c["uid"], c["revoked_at"]) for c in worker_session.ok("GET", path)] == [
        ("A1B2C3D4", None),
        ("A1B2C3D5", None),
    ]



def test_an_id_out_of_range_is_refused_with_a_4xx_not_a_500(api: Api) -> None:
    """The issue: bad input gets 4xx, never a 500 (integer keys: 32 bits on PostgreSQL, 64 on SQLite)."""
    employer = api.company("入力検査(株)")
    worker = api.worker(employer, "鳶 一郎")
    for huge in (2**31, 2**63):
        for path in (f"/workers/{huge}", f"/workers/{huge}/cards", f"/companies/{huge}",
                     f"/companies/{huge}/workers", f"/workers/{huge}/disclosure"):
            r = employer.owner.call("GET", path)
            assert r.status_code in (404, 422), f"GET {path} → {r.status_code}: {r.text}"
        r = employer.owner.call("POST", "/workers", _worker_body(employer) | {"employer_id": huge})
        assert r.status_code in (403, 404, 422), r.text
        r = api.operator.call("POST", "/workers", _worker_body(employer) | {"employer_id": huge})
        assert r.status_code in (404, 422), r.text
        r = employer.owner.call("PUT", f"/companies/{employer.id}/proxy-consents/{huge}", {"consented": True})
        assert r.status_code in (404, 422), r.text
    assert _worker_names(employer) == ["鳶 一郎"]
    assert employer.owner.ok("GET", f"/workers/{worker['id']}/cards") == []


def test_overlong_text_is_refused_with_a_4xx_and_changes_nothing(api: Api) -> None:
    """On both backends alike: PostgreSQL enforces the column lengths, SQLite would silently store them."""
    employer = api.company("入力検査(株)")
    worker = api.worker(employer, "鳶 一郎")
    card = employer.owner.ok("POST", f"/workers/{worker['id']}/cards", {"uid": "A1B2C3D4"}, status=201)
    too_long = [
        {"name": "長" * 101},
        {"name_kana": "ナ" * 101},
        {"phone": "0" * 31},
        {"blood_type": "AB型RH+"},
        {"address": "所" * 301},
        {"qualifications": [{"category": "技" * 41, "name": "玉掛け"}]},
        {"qualifications": [{"category": "技能講習", "name": "玉" * 201}]},
        {"qualifications": [{"category": "技能講習", "name": "玉掛け", "number": "9" * 61}]},
    ]
    for change in too_long:
        employer.owner.fail("POST", "/workers", _worker_body(employer, "長い 名前") | change, status=422,
                            code="value_too_long")
    employer.owner.fail("POST", f"/workers/{worker['id']}/cards",
                        {"uid": "A1B2C3D5", "reason": "紛" * 201, "replaces": True}, status=422,
                        code="value_too_long")
    employer.owner.fail("POST", f"/cards/{card['id']}/revoke", {"reason": "紛" * 201}, status=422,
                        code="value_too_long")
    for change in ({"name": "社" * 201}, {"permit_number": "許" * 41}, {"representative": "代" * 101}):
        api.operator.fail("POST", "/companies", {"ccus_id": ccus_id("1"), "name": "長すぎ(株)"} | change,
                          status=422, code="value_too_long")

    assert _worker_names(employer) == ["鳶 一郎"]
    assert [(c["uid"], c["revoked_at"]) for c in employer.owner.ok("GET", f"/workers/{worker['id']}/cards")] == [
        ("A1B2C3D4", None)
    ]
    assert api.operator.ok("GET", "/companies", name="長すぎ") == []
    assert api.operator.ok("GET", "/companies", name="社社社") == []


def test_the_employer_keeps_its_workers_data_current(api: Api) -> None:
    employer = api.company("鳶田組(株)")
    worker = api.worker(employer, "鳶田 一郎", trades=[TOBI])
    updated = employer.owner.ok("PATCH", f"/workers/{worker['id']}", {
        "kentaikyo": "enrolled", "level": 3, "trades": [TOBI, DAIKU],
        "add_qualifications": [{"category": "技能講習", "name": "玉掛け"}],
    })
    assert updated["kentaikyo"] == "enrolled" and updated["level"] == 3
    assert [(t["major"], t["minor"]) for t in updated["trades"]] == [("06", "01"), ("34", "01")]
    assert [q["name"] for q in updated["qualifications"]] == ["玉掛け"]

    other = api.company("他社(株)")
    other.owner.fail("PATCH", f"/workers/{worker['id']}", {"level": 1}, status=404, code="worker_not_found")
    me = api.worker_login(employer, worker)
    me.fail("PATCH", f"/workers/{worker['id']}", {"level": 1}, status=403, code="role_not_allowed")
    employer.owner.fail("PATCH", f"/workers/{worker['id']}", {"level": 9}, status=422, code="invalid_level")
    employer.owner.fail("PATCH", f"/workers/{worker['id']}", {"trades": [{"major": "99", "minor": "99"}]},
                        status=422, code="unknown_trade")
    employer.owner.fail("PATCH", f"/workers/{worker['id']}", {"kentaikyo": "maybe"}, status=422,
                        code="invalid_insurance_state")
    after = employer.owner.ok("GET", f"/workers/{worker['id']}")
    assert after["level"] == 3 and len(after["trades"]) == 2  # the refusals changed nothing
    log = api.operator.ok("GET", "/audit")
    assert any(e["action"] == "worker.update" and e["before"]["level"] is None and e["after"]["level"] == 3
               for e in log)


def test_a_worker_account_does_not_list_its_companys_workers(api: Api) -> None:
    employer = api.company("鳶田組(株)")
    worker = api.worker(employer, "鳶田 一郎")
    me = api.worker_login(employer, worker)
    me.fail("GET", f"/companies/{employer.id}/workers", status=403, code="role_not_allowed")


def test_text_too_long_for_its_column_is_refused_the_same_on_both_backends(api: Api) -> None:
    prime = api.company("(株)基本建設")
    site = api.site(prime)
    prime.owner.fail("PATCH", f"/sites/{site.id}", {"name": "現" * 201}, status=422, code="value_too_long")
    prime.owner.fail("POST", f"/sites/{site.id}/hierarchy", {"parent_node_id": site.root,
                     "placeholder_name": "未" * 201}, status=422)
    assert prime.owner.ok("GET", f"/sites/{site.id}")["name"] == site.name
