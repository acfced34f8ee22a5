"""代理手続き (参考資料4) and 開示設定 (参考資料6).

Proxy: the employer (所属事業者) consents, per upper company, that it may register and edit the
employer's workers on the roster and see what registering needs; withdrawing ends that.
Disclosure: every personal item is hidden from other companies (初期は一括非開示) until BOTH the
worker and the employer agree, all at once or per item; then every registered company sees the
agreed items (more in test_disclosure.py). The employer always sees its own workers; the 元請 and
upper companies see what the 作業員名簿 holds for workers on their site.
"""

from __future__ import annotations

from typing import Any

from world import TOBI, Api, Company, Site

from server.domain.consent import PERSONAL_ITEMS
from server.services.context import Context
from server.services.disclosure import has_proxy_consent, proxy_principals


def _site_with_first_tier(api: Api) -> tuple[Company, Site, Company, int]:
    prime = api.company("(株)基本建設")
    site = api.site(prime)
    first = api.company("アップ一級工務店(株)")
    return prime, site, first, api.registered(site, prime, site.root, first)


def _consent(by: Company, agent: Company, consented: bool) -> dict[str, Any]:
    result: dict[str, Any] = by.owner.ok("PUT", f"/companies/{by.id}/proxy-consents/{agent.id}",
                                         {"consented": consented})
    return result


# --- 代理手続き ------------------------------------------------------------------------------------------


def test_upper_company_registers_the_employers_workers_only_with_proxy_consent(api: Api) -> None:
    prime, site, first, _ = _site_with_first_tier(api)
    worker = api.worker(first, "鳶 一郎", qualifications=[{"category": "技能講習", "name": "玉掛け"}],
                        birth_date="1988-04-01", level=2)
    body = {"worker_id": worker["id"], "trade": TOBI, "position": "general"}

    # Without consent: cannot register the employer's workers; its list shows only what both sides
    # disclosed (nothing yet).
    assert prime.owner.ok("GET", f"/companies/{first.id}/workers") == []
    prime.owner.fail("POST", f"/sites/{site.id}/roster", body, status=403, code="proxy_consent_required")
    assert prime.owner.ok("GET", f"/sites/{site.id}/roster")["entries"] == []

    consent = _consent(first, prime, True)
    assert (consent["employer_id"], consent["agent_id"], consent["consented"]) == (first.id, prime.id, True)
    assert consent["status_label"] == "同意する"
    # Both sides see the consent in their lists (代理手続き合意済事業者リスト).
    assert [(c["employer_id"], c["agent_id"]) for c in first.owner.ok("GET", f"/companies/{first.id}/proxy-consents")
            ] == [(first.id, prime.id)]
    assert [c["consented"] for c in prime.owner.ok("GET", f"/companies/{prime.id}/proxy-consents")] == [True]

    # With it: the workers with what registering needs (trades, qualifications), not everything.
    (listed,) = prime.owner.ok("GET", f"/companies/{first.id}/workers")
    assert listed["name"] == "鳶 一郎"
    assert [(t["major"], t["minor"]) for t in listed["trades"]] == [("06", "01")]
    assert [q["name"] for q in listed["qualifications"]] == ["玉掛け"]
    assert "birth_date" not in listed and "level" not in listed
    qualification = listed["qualifications"][0]["id"]

    entry = prime.owner.ok("POST", f"/sites/{site.id}/roster", body | {"qualification_ids": [qualification]},
                           status=201)
    assert entry["registered_by_company_id"] == prime.id and entry["employer"]["id"] == first.id
    assert entry["node_id"] != site.root  # the entry sits under the employer, not the agent
    edited = prime.owner.ok("PATCH", f"/roster/{entry['id']}", {"position": "foreman"})
    assert edited["position"] == "foreman"

    # Withdrawn (同意しない): refused again, and nothing changes.
    assert _consent(first, prime, False)["status_label"] == "同意しない"
    assert prime.owner.ok("GET", f"/companies/{first.id}/workers") == []
    prime.owner.fail("PATCH", f"/roster/{entry['id']}", {"position": "general"}, status=403,
                     code="proxy_consent_required")
    prime.owner.fail("DELETE", f"/roster/{entry['id']}", status=403, code="proxy_consent_required")
    (now,) = prime.owner.ok("GET", f"/sites/{site.id}/roster")["entries"]
    assert now["position"] == "foreman"
    # The employer itself still edits its worker's entry.
    first.owner.ok("PATCH", f"/roster/{entry['id']}", {"position": "subforeman"})

    # Giving and withdrawing are in the audit log, with before and after.
    log = [e for e in first.owner.ok("GET", "/audit") if e["action"] == "proxy_consent.set"]
    assert [(e["before"] and e["before"]["consented"], e["after"]["consented"]) for e in reversed(log)] == [
        (None, True),
        (True, False),
    ]


def test_proxy_consent_is_per_upper_company(api: Api) -> None:
    prime, site, first, n1 = _site_with_first_tier(api)
    second = api.company("二次鳶(株)")
    sibling = api.company("横並び設備(株)")
    api.registered(site, first, n1, second)
    api.registered(site, prime, site.root, sibling)
    worker = api.worker(second, "二次 職人")
    body = {"worker_id": worker["id"], "trade": TOBI, "position": "general"}

    _consent(second, prime, True)
    # The 元請 may now; the company directly above, without its own consent, may not.
    assert first.owner.ok("GET", f"/companies/{second.id}/workers") == []
    first.owner.fail("POST", f"/sites/{site.id}/roster", body, status=403, code="proxy_consent_required")
    prime.owner.ok("POST", f"/sites/{site.id}/roster", body, status=201)

    # A consent to a company that is not above the employer on this site lets it see the workers,
    # but never register them on this roster.
    other = api.worker(second, "二次 職人2")
    _consent(second, sibling, True)
    assert {w["name"] for w in sibling.owner.ok("GET", f"/companies/{second.id}/workers")} == {
        "二次 職人", "二次 職人2"}
    sibling.owner.fail("POST", f"/sites/{site.id}/roster", body | {"worker_id": other["id"]}, status=403,
                       code="not_your_worker")
    assert len(prime.owner.ok("GET", f"/sites/{site.id}/roster")["entries"]) == 1


def test_an_agent_acts_for_the_employers_whose_consent_stands_whichever_way_it_is_asked(api: Api, ctx: Context) -> None:
    """A report streaming many employers' workers asks once which employers gave the reader proxy
    consent (``proxy_principals``); a page about one employer asks per pair (``has_proxy_consent``).
    Both answer the same: a consent counts while it stands, and only the way it was given."""
    prime, _, first, _ = _site_with_first_tier(api)
    second, stranger = api.company("二次鳶(株)"), api.company("無関係工業(株)")
    _consent(first, prime, True)
    _consent(second, prime, True)
    _consent(second, prime, False)  # withdrawn: the row stays, the consent does not
    _consent(prime, first, True)  # the other way round: the 元請 as employer, the 1次 as agent

    with ctx.read() as uow:
        assert proxy_principals(uow, prime.id) == {first.id}
        assert proxy_principals(uow, first.id) == {prime.id}
        assert proxy_principals(uow, stranger.id) == frozenset() == proxy_principals(uow, None)
        companies = (prime, first, second, stranger)
        for agent in companies:
            principals = proxy_principals(uow, agent.id)
            for employer in companies:
                assert (employer.id in principals) == has_proxy_consent(uow, employer.id, agent.id), (employer, agent)


def test_only_the_employers_owner_or_hierarchy_manager_sets_proxy_consent(api: Api) -> None:
    prime, _, first, _ = _site_with_first_tier(api)
    worker = api.worker(first, "鳶 一郎")
    path = f"/companies/{first.id}/proxy-consents/{prime.id}"

    api.staff(first, "site_manager").fail("PUT", path, {"consented": True}, status=403, code="role_not_allowed")
    api.worker_login(first, worker).fail("PUT", path, {"consented": True}, status=403, code="role_not_allowed")
    prime.owner.fail("PUT", path, {"consented": True}, status=403, code="not_your_company")
    api.operator.fail("PUT", path, {"consented": True}, status=403, code="role_not_allowed")
    api.anonymous.fail("PUT", path, {"consented": True}, status=401)
    first.owner.fail("PUT", f"/companies/{first.id}/proxy-consents/{first.id}", {"consented": True}, status=422,
                     code="proxy_self")
    first.owner.fail("PUT", f"/companies/{first.id}/proxy-consents/999999", {"consented": True}, status=404,
                     code="company_not_found")
    first.owner.fail("PUT", path, {"consented": "はい"}, status=422, code="invalid_request")
    assert first.owner.ok("GET", f"/companies/{first.id}/proxy-consents") == []
    prime.owner.fail("GET", f"/companies/{first.id}/proxy-consents", status=403, code="not_your_company")

    manager = api.staff(first, "hierarchy_manager")
    assert manager.ok("PUT", path, {"consented": True})["consented"] is True
    assert [w["name"] for w in prime.owner.ok("GET", f"/companies/{first.id}/workers")] == ["鳶 一郎"]


# --- 開示設定 ---------------------------------------------------------------------------------------


def _worker_on_roster(api: Api) -> tuple[Company, Site, Company, dict[str, Any]]:
    prime, site, first, _ = _site_with_first_tier(api)
    worker = api.worker(first, "鳶 一郎", qualifications=[{"category": "技能講習", "name": "玉掛け"}],
                        birth_date="1988-04-01", level=3, face_photo="faces/1.jpg", blood_type="A",
                        health_insurance="enrolled", pension_insurance="enrolled", employment_insurance="enrolled",
                        kentaikyo="enrolled")
    api.on_roster(site, first, worker, position="foreman",
                  qualification_ids=[worker["qualifications"][0]["id"]])
    return prime, site, first, worker


HIDDEN_FROM_THE_PRIME = {"birth_date", "level", "face_photo", "blood_type", "address", "phone", "trades",
                         "qualifications", "kentaikyo"}


def test_the_prime_sees_what_the_roster_holds_and_nothing_more_by_default(api: Api) -> None:
    prime, site, first, worker = _worker_on_roster(api)

    seen = prime.owner.ok("GET", f"/workers/{worker['id']}")
    assert seen["name"] == "鳶 一郎" and seen["ccus_id"] == worker["ccus_id"]
    assert seen["social_insurance"] == {"health": "enrolled", "pension": "enrolled", "employment": "enrolled"}
    assert seen["visible_items"] == ["social_insurance"]
    assert not HIDDEN_FROM_THE_PRIME & set(seen)
    # The roster itself: 職種, 立場, the chosen 資格 and 社会保険.
    (entry,) = prime.owner.ok("GET", f"/sites/{site.id}/roster")["entries"]
    assert entry["trade"]["major"] == "06" and entry["position_label"] == "職長"
    assert [q["name"] for q in entry["qualifications"]] == ["玉掛け"]
    assert entry["social_insurance"]["health"] == "enrolled"

    # The employer always sees everything, whatever the settings.
    full = first.owner.ok("GET", f"/workers/{worker['id']}")
    assert set(full["visible_items"]) == set(PERSONAL_ITEMS)
    assert (full["birth_date"], full["level"], full["face_photo"]) == ("1988-04-01", 3, "faces/1.jpg")
    site_manager = api.staff(first, "site_manager")
    assert site_manager.ok("GET", f"/workers/{worker['id']}")["level"] == 3

    # Defaults: all hidden, as both sides see it.
    for who in (first.owner, api.worker_login(first, worker)):
        settings = who.ok("GET", f"/workers/{worker['id']}/disclosure")
        assert [i["item"] for i in settings["items"]] == list(PERSONAL_ITEMS)
        assert settings["disclosed_items"] == []
        assert not any(i["worker_agrees"] or i["employer_agrees"] for i in settings["items"])
    prime.owner.fail("GET", f"/workers/{worker['id']}/disclosure", status=404, code="worker_not_found")


def test_an_item_is_disclosed_only_while_both_the_worker_and_the_employer_agree(api: Api) -> None:
    prime, _, first, worker = _worker_on_roster(api)
    me = api.worker_login(first, worker)
    path = f"/workers/{worker['id']}/disclosure"

    def prime_sees() -> set[str]:
        return set(prime.owner.ok("GET", f"/workers/{worker['id']}")["visible_items"]) - {"social_insurance"}

    # One side alone is not enough, whichever side it is.
    after = me.ok("PUT", path, {"items": {"level": True, "face_photo": True}})
    assert after["disclosed_items"] == []
    assert prime_sees() == set()
    after = first.owner.ok("PUT", path, {"items": {"level": True, "birth_date": True}})
    assert after["disclosed_items"] == ["level"]
    assert prime_sees() == {"level"}
    assert prime.owner.ok("GET", f"/workers/{worker['id']}")["level"] == 3
    assert "face_photo" not in prime.owner.ok("GET", f"/workers/{worker['id']}")

    # The worker withdraws: hidden again.
    me.ok("PUT", path, {"items": {"level": False}})
    assert prime_sees() == set()
    assert "level" not in prime.owner.ok("GET", f"/workers/{worker['id']}")

    # 一括開示 on both sides: everything; 一括非開示 by either side: nothing.
    me.ok("PUT", path, {"all": True})
    assert prime_sees() == {"birth_date", "level"}  # what the employer had agreed to
    first.owner.ok("PUT", path, {"all": True})
    assert prime_sees() == set(PERSONAL_ITEMS) - {"social_insurance"}
    seen = prime.owner.ok("GET", f"/workers/{worker['id']}")
    assert (seen["birth_date"], seen["face_photo"], seen["blood_type"]) == ("1988-04-01", "faces/1.jpg", "A")
    first.owner.ok("PUT", path, {"all": False})
    assert prime_sees() == set()
    # Per item after 一括: the employer agrees to one again.
    first.owner.ok("PUT", path, {"items": {"qualifications": True}})
    assert prime_sees() == {"qualifications"}
    settings = me.ok("GET", path)
    by_item = {i["item"]: i for i in settings["items"]}
    assert by_item["qualifications"] == {"item": "qualifications", "label": "資格", "worker_agrees": True,
                                         "employer_agrees": True, "disclosed": True}
    assert by_item["level"]["worker_agrees"] and not by_item["level"]["employer_agrees"]


def test_who_may_set_a_workers_disclosure(api: Api) -> None:
    prime, _, first, worker = _worker_on_roster(api)
    colleague = api.worker(first, "同僚 二郎")
    path = f"/workers/{worker['id']}/disclosure"

    other_worker = api.worker_login(first, colleague)
    other_worker.fail("PUT", path, {"all": True}, status=404, code="worker_not_found")
    other_worker.fail("GET", path, status=404, code="worker_not_found")
    prime.owner.fail("PUT", path, {"all": True}, status=404, code="worker_not_found")
    api.operator.fail("PUT", path, {"all": True}, status=404, code="worker_not_found")
    api.staff(first, "site_manager").fail("PUT", path, {"all": True}, status=403, code="role_not_allowed")
    api.anonymous.fail("PUT", path, {"all": True}, status=401)
    first.owner.fail("PUT", path, {"all": True, "items": {"level": True}}, status=422,
                     code="disclosure_request_shape")
    first.owner.fail("PUT", path, {}, status=422, code="disclosure_request_shape")
    first.owner.fail("PUT", path, {"items": {"level": True, "salary": True}}, status=422,
                     code="unknown_personal_item")
    first.owner.fail("PUT", "/workers/999999/disclosure", {"all": True}, status=404, code="worker_not_found")
    settings = first.owner.ok("GET", path)
    assert not any(i["worker_agrees"] or i["employer_agrees"] for i in settings["items"])

    # The employer's 階層管理者 sets the employer's side.
    api.staff(first, "hierarchy_manager").ok("PUT", path, {"items": {"level": True}})
    assert [i["item"] for i in first.owner.ok("GET", path)["items"] if i["employer_agrees"]] == ["level"]


def test_who_sees_a_worker_follows_the_roster(api: Api) -> None:
    prime, site, first, n1 = _site_with_first_tier(api)
    second = api.company("二次鳶(株)")
    third = api.company("三次設備(株)")
    sibling = api.company("横並び設備(株)")
    stranger = api.company("無関係建設(株)")
    api.registered(site, first, n1, second)
    n3 = api.registered(site, prime, site.root, sibling)
    api.registered(site, sibling, n3, third)
    worker = api.worker(second, "二次 職人", birth_date="1990-01-01")
    bound = api.staff(prime, "site_manager", site_ids=[site.id])
    unbound = api.staff(prime, "site_manager")
    path = f"/workers/{worker['id']}"

    # Not yet on the roster: only the employer (and the worker) know the worker.
    for company in (prime, first, sibling, third, stranger):
        company.owner.fail("GET", path, status=404, code="worker_not_found")
    assert second.owner.ok("GET", path)["birth_date"] == "1990-01-01"

    entry = api.on_roster(site, second, worker)
    for upper in (prime.owner, first.owner, bound):
        seen = upper.ok("GET", path)
        assert seen["visible_items"] == ["social_insurance"] and "birth_date" not in seen
    for outside in (sibling.owner, third.owner, stranger.owner, unbound):
        outside.fail("GET", path, status=404, code="worker_not_found")

    # Both sides disclose the level: every registered company sees it (参考資料6), the companies above
    # with the roster's 社会保険 as well; the birth date stays hidden from all of them.
    api.worker_login(second, worker).ok("PUT", f"{path}/disclosure", {"items": {"level": True}})
    second.owner.ok("PUT", f"{path}/disclosure", {"items": {"level": True}})
    assert first.owner.ok("GET", path)["visible_items"] == ["level", "social_insurance"]
    for outside in (sibling.owner, third.owner, stranger.owner, unbound):
        seen = outside.ok("GET", path)
        assert seen["visible_items"] == ["level"] and "birth_date" not in seen

    # Off the roster, the site no longer shows the roster's items to the companies above.
    second.owner.ok("DELETE", f"/roster/{entry['id']}")
    assert first.owner.ok("GET", path)["visible_items"] == ["level"]
    second.owner.ok("PUT", f"{path}/disclosure", {"all": False})
    prime.owner.fail("GET", path, status=404, code="worker_not_found")
    first.owner.fail("GET", path, status=404, code="worker_not_found")
