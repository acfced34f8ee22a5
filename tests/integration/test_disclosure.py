"""参考資料6 (技能者個人の情報の取扱い) and 【1-2】所属技能者一覧, for companies with no site relation.

A company that is neither the worker's employer (所属事業者) nor above the worker on a roster, nor
the employer's proxy agent, sees nothing of the worker, not even that it exists, until BOTH the
worker and the employer agree to disclose an item; then any registered company (any of its IDs)
sees exactly the items both agreed to, in the worker's record and in the employer's 所属技能者一覧,
and still nothing of the roster or the attendance. A withdrawal by either side hides it again at
once. Other workers, the operator and anonymous callers are not companies: they never see it.
"""

from __future__ import annotations

from typing import Any

from world import Api, Company

from server.domain.consent import PERSONAL_ITEMS


def _employer_with_a_worker(api: Api) -> tuple[Company, dict[str, Any]]:
    employer = api.company("開示鉄筋(株)")
    worker = api.worker(employer, "開示 一郎", qualifications=[{"category": "技能講習", "name": "玉掛け"}],
                        birth_date="1985-06-01", level=2, phone="090-1111-2222", blood_type="O",
                        health_insurance="enrolled", pension_insurance="enrolled", employment_insurance="enrolled")
    return employer, worker


def _personal_keys(seen: dict[str, Any]) -> set[str]:
    return set(seen) & set(PERSONAL_ITEMS)


def test_an_unrelated_company_sees_a_worker_only_after_both_sides_agree_and_only_what_they_agreed(api: Api) -> None:
    employer, worker = _employer_with_a_worker(api)
    stranger = api.company("無関係建設(株)")
    me = api.worker_login(employer, worker)
    path = f"/workers/{worker['id']}"
    settings = f"{path}/disclosure"
    missing = stranger.owner.fail("GET", "/workers/999999", status=404, code="worker_not_found")

    # Nothing agreed (初期は一括非開示): the worker does not exist for the stranger.
    assert stranger.owner.fail("GET", path, status=404, code="worker_not_found") == missing

    # The worker alone agrees: still nothing.
    me.ok("PUT", settings, {"items": {"level": True, "qualifications": True, "phone": True}})
    assert stranger.owner.fail("GET", path, status=404, code="worker_not_found") == missing

    # The employer agrees to two of them (and to one the worker did not): exactly those two.
    employer.owner.ok("PUT", settings, {"items": {"level": True, "qualifications": True, "birth_date": True}})
    seen = stranger.owner.ok("GET", path)
    assert (seen["id"], seen["ccus_id"], seen["name"], seen["employer_id"]) == (
        worker["id"], worker["ccus_id"], "開示 一郎", employer.id)
    assert seen["visible_items"] == ["level", "qualifications"]
    assert _personal_keys(seen) == {"level", "qualifications"}
    assert seen["level"] == 2 and [q["name"] for q in seen["qualifications"]] == ["玉掛け"]
    # Every ID of a registered company, a 現場管理者 bound to no site included, sees the same.
    for staff in (api.staff(stranger, "hierarchy_manager"), api.staff(stranger, "site_manager")):
        assert staff.ok("GET", path)["visible_items"] == ["level", "qualifications"]

    # The employer withdraws one item: it is gone at once, the other stays.
    employer.owner.ok("PUT", settings, {"items": {"qualifications": False}})
    seen = stranger.owner.ok("GET", path)
    assert seen["visible_items"] == ["level"] and _personal_keys(seen) == {"level"}

    # The worker withdraws the last one: the worker is gone again, as if it did not exist.
    me.ok("PUT", settings, {"items": {"level": False}})
    assert stranger.owner.fail("GET", path, status=404, code="worker_not_found") == missing

    # 一括開示 by both: everything; 一括非開示 by the employer: nothing.
    me.ok("PUT", settings, {"all": True})
    employer.owner.ok("PUT", settings, {"all": True})
    seen = stranger.owner.ok("GET", path)
    assert set(seen["visible_items"]) == set(PERSONAL_ITEMS) and seen["phone"] == "090-1111-2222"
    employer.owner.ok("PUT", settings, {"all": False})
    assert stranger.owner.fail("GET", path, status=404, code="worker_not_found") == missing


def test_only_the_employer_agreeing_shows_nothing(api: Api) -> None:
    employer, worker = _employer_with_a_worker(api)
    stranger = api.company("無関係建設(株)")
    employer.owner.ok("PUT", f"/workers/{worker['id']}/disclosure", {"all": True})
    stranger.owner.fail("GET", f"/workers/{worker['id']}", status=404, code="worker_not_found")
    assert stranger.owner.ok("GET", f"/companies/{employer.id}/workers") == []


def test_disclosed_items_are_for_registered_companies_only(api: Api) -> None:
    employer, worker = _employer_with_a_worker(api)
    other_employer = api.company("別会社(株)")
    other_worker = api.worker(other_employer, "別会社 次郎")
    path = f"/workers/{worker['id']}"
    api.worker_login(employer, worker).ok("PUT", f"{path}/disclosure", {"all": True})
    employer.owner.ok("PUT", f"{path}/disclosure", {"all": True})

    assert set(other_employer.owner.ok("GET", path)["visible_items"]) == set(PERSONAL_ITEMS)
    # A worker of another company, or a colleague, is not a company: nothing (参考資料6: 事業者 only).
    api.worker_login(other_employer, other_worker).fail("GET", path, status=404, code="worker_not_found")
    api.worker_login(employer, api.worker(employer, "同僚 三郎")).fail("GET", path, status=404,
                                                                     code="worker_not_found")
    api.operator.fail("GET", path, status=404, code="worker_not_found")
    api.anonymous.fail("GET", path, status=401)
    # The settings themselves stay the two sides' own.
    other_employer.owner.fail("GET", f"{path}/disclosure", status=404, code="worker_not_found")


def test_the_employers_worker_list_shows_another_company_only_what_both_sides_disclosed(api: Api) -> None:
    employer, worker = _employer_with_a_worker(api)
    hidden = api.worker(employer, "非開示 二郎", level=4)
    half = api.worker(employer, "片側 三郎", level=1)
    stranger = api.company("無関係建設(株)")
    listing = f"/companies/{employer.id}/workers"

    # 【1-2】所属技能者一覧: nothing disclosed, nobody listed.
    assert stranger.owner.ok("GET", listing) == []

    api.worker_login(employer, worker).ok("PUT", f"/workers/{worker['id']}/disclosure", {"items": {"level": True}})
    employer.owner.ok("PUT", f"/workers/{worker['id']}/disclosure", {"items": {"level": True, "phone": True}})
    api.worker_login(employer, half).ok("PUT", f"/workers/{half['id']}/disclosure", {"all": True})
    (listed,) = stranger.owner.ok("GET", listing)
    assert (listed["id"], listed["name"], listed["visible_items"]) == (worker["id"], "開示 一郎", ["level"])
    assert _personal_keys(listed) == {"level"} and listed["level"] == 2
    assert hidden["id"] != listed["id"]

    # Withdrawn: off the list at once; the employer still lists all three with everything.
    employer.owner.ok("PUT", f"/workers/{worker['id']}/disclosure", {"all": False})
    assert stranger.owner.ok("GET", listing) == []
    own = employer.owner.ok("GET", listing)
    assert [w["name"] for w in own] == ["開示 一郎", "非開示 二郎", "片側 三郎"]
    assert all(set(w["visible_items"]) == set(PERSONAL_ITEMS) for w in own)


def test_disclosure_shows_a_workers_items_but_never_the_sites_roster_or_attendance(api: Api) -> None:
    prime = api.company("(株)基本建設")
    site = api.site(prime)
    employer, worker = _employer_with_a_worker(api)
    api.registered(site, prime, site.root, employer)
    api.on_roster(site, employer, worker)
    stranger = api.company("無関係建設(株)")
    api.worker_login(employer, worker).ok("PUT", f"/workers/{worker['id']}/disclosure", {"all": True})
    employer.owner.ok("PUT", f"/workers/{worker['id']}/disclosure", {"all": True})

    assert set(stranger.owner.ok("GET", f"/workers/{worker['id']}")["visible_items"]) == set(PERSONAL_ITEMS)
    stranger.owner.fail("GET", f"/sites/{site.id}/roster", status=404)
    stranger.owner.fail("GET", f"/sites/{site.id}/attendance", status=404)
    # The 元請 keeps what the 作業員名簿 gives it, and now the disclosed items too.
    assert set(prime.owner.ok("GET", f"/workers/{worker['id']}")["visible_items"]) == set(PERSONAL_ITEMS)
