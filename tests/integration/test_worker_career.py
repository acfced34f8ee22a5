"""GET /workers/{id}/career: a worker's days towards the next CCUS level from the gate's records, counted as CCUS
counts them (valid records only, one day per calendar day across sites, days as 職長/班長 apart), for the readers
of 2-1 (the worker, its employer, the 元請 and upper companies of a site where it is on the roster), each counting
only the records it may read, and the current level only for a reader the worker's 開示設定 lets see it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import count
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from world import DENKI, TOBI, Api, Company

from protocol.messages import Card, TapEvent
from server.services import ingest

JST = ZoneInfo("Asia/Tokyo")
NOW = datetime(2026, 11, 25, 21, 0, tzinfo=JST)
BUF = "ca" * 16
_seq = count(1)


@dataclass
class Careers:
    """𠮷野 四郎 of 𠮷野設備(株) (level 2), on two rosters:

        キャリアビル of (株)キャリア建設: 元請 ── (有)上位工業 (1次) ── 𠮷野設備 (2次), and (株)別系統 (1次);
            四郎 is 職長 there and tapped on 2, 3 and 4 November.
        他社倉庫 of (株)他元請: 元請 ── 𠮷野設備 (1次); 四郎 (一般) tapped on 4 and 5 November.
        キャリア第二現場 of (株)キャリア建設: 四郎 is on no roster there; he tapped on 6 November (not valid).
    """

    api: Api
    prime: Company
    upper: Company
    lower: Company
    side: Company
    other_prime: Company
    stranger: Company
    worker: dict[str, Any]
    colleague: dict[str, Any]
    entry: dict[str, Any]  # 四郎's entry on キャリアビル's roster
    warehouse: int  # 他社倉庫's id

    @property
    def path(self) -> str:
        return f"/workers/{self.worker['id']}/career"


def _tap(api: Api, device: str, uid: str, day: int) -> None:
    event = TapEvent(device_id=device, buffer_id=BUF, seq=next(_seq), card=Card(tech="felica", uid=uid),
                     direction="in", at=datetime(2026, 11, day, 7, 30, tzinfo=JST), clock_synced=True,
                     boot_id="boot-c", mono_ms=next(_seq) * 1000)
    assert ingest.ingest_taps(api.ctx, device, [event])[0].outcome == "recorded"


@pytest.fixture
def careers(api: Api) -> Careers:
    api.ctx.clock = lambda: NOW.astimezone(UTC)  # the server takes taps only near its own time
    prime, upper, lower, side, other_prime, stranger = (api.company(n) for n in (
        "(株)キャリア建設", "(有)上位工業", "𠮷野設備(株)", "(株)別系統", "(株)他元請", "(株)無関係"))
    site = api.site(prime, name="キャリアビル")
    second = api.site(prime, name="キャリア第二現場")
    other = api.site(other_prime, name="他社倉庫")
    up_node = api.registered(site, prime, site.root, upper)
    api.registered(site, upper, up_node, lower)
    api.registered(site, prime, site.root, side)
    api.registered(other, other_prime, other.root, lower)
    for owner, s, device in ((prime, site, "gate-a"), (other_prime, other, "gate-b"), (prime, second, "gate-c")):
        owner.owner.ok("POST", f"/sites/{s.id}/devices", {"device_id": device, "name": device}, status=201)
    worker = api.worker(lower, "𠮷野 四郎", level=2)
    uid = "0114CA00000000A1"
    lower.owner.ok("POST", f"/workers/{worker['id']}/cards", {"uid": uid}, status=201)
    entry = api.on_roster(site, lower, worker, position="foreman")
    api.on_roster(other, lower, worker)
    for device, days in (("gate-a", (2, 3, 4)), ("gate-b", (4, 5)), ("gate-c", (6,))):
        for day in days:
            _tap(api, device, uid, day)
    colleague = api.worker(lower, "名簿外 五郎")
    return Careers(api, prime, upper, lower, side, other_prime, stranger, worker, colleague, entry, other.id)


def test_the_worker_and_its_employer_count_every_valid_day_once_however_many_sites(careers: Careers) -> None:
    me = careers.api.worker_login(careers.lower, careers.worker)
    for reader in (me, careers.lower.owner):
        c = reader.ok("GET", careers.path)
        # 2, 3, 4 (キャリアビル, 職長), 4 and 5 (他社倉庫): four days; 6 (not on that roster) is not valid.
        assert (c["work_days"], c["leader_days"], c["foreman_days"], c["counted"]) == (4, 3, 3, "all")
        assert c["years"] == 0.0 and c["days_per_year"] == 215
        assert c["trade"] == {"major": "06", "minor": "01", "label": "とび工 / とび工"}
        assert c["standard"]["key"] == "default"
        assert (c["current_level"], c["next_level"]) == (2, 3)
        assert (c["work_days_needed"], c["leader_days_needed"]) == (1505 - 4, 215 - 3)
        assert c["next"]["leadership_label"] == "職長又は班長" and c["next"]["years_required"] == 7.0
        assert [(lv["level"], lv["work_days_required"], lv["leader_days_required"], lv["work_days_short"])
                for lv in c["levels"]] == [(2, 645, 0, 641), (3, 1505, 215, 1501), (4, 2150, 645, 2146)]
    month = careers.lower.owner.ok("GET", f"/workers/{careers.worker['id']}/attendance", month="2026-11")
    assert month["summary"]["valid_work_days"] == 4 and month["summary"]["leader_days"] == 3  # the same count


def test_the_prime_and_upper_companies_count_only_the_records_they_may_read_and_not_the_hidden_level(
        careers: Careers) -> None:
    for reader, days, leader in ((careers.prime.owner, 3, 3), (careers.upper.owner, 3, 3),
                                 (careers.other_prime.owner, 2, 0)):
        c = reader.ok("GET", careers.path)
        assert (c["work_days"], c["leader_days"], c["counted"]) == (days, leader, "visible")
        # The level is a personal item the worker has not disclosed: no current or next level is named.
        assert (c["current_level"], c["next_level"], c["next"], c["work_days_needed"]) == (None, None, None, None)
        assert [lv["work_days_short"] for lv in c["levels"]] == [645 - days, 1505 - days, 2150 - days]


def test_once_both_sides_disclose_the_level_the_prime_is_told_the_next_level_and_what_it_still_needs(
        careers: Careers) -> None:
    me = careers.api.worker_login(careers.lower, careers.worker)
    for side in (me, careers.lower.owner):
        side.ok("PUT", f"/workers/{careers.worker['id']}/disclosure", {"items": {"level": True}})
    c = careers.prime.owner.ok("GET", careers.path)
    assert (c["current_level"], c["next_level"], c["work_days_needed"], c["leader_days_needed"]) == (2, 3, 1502, 212)


def test_the_career_is_evaluated_in_the_trade_asked_with_that_trades_standard(careers: Careers) -> None:
    rebar = careers.lower.owner.ok("GET", careers.path, trade="10-01")
    assert rebar["standard"]["name"] == "鉄筋技能者" and rebar["work_days"] == 0  # his days are とび工
    assert rebar["levels"][1]["leader_days_required"] == 645
    denki = careers.lower.owner.ok("GET", careers.path, trade="09-01")
    assert denki["trade"]["label"] == "電工 / 電気工" and denki["work_days"] == 0
    careers.lower.owner.fail("GET", careers.path, status=422, code="unknown_trade", trade="99-99")
    careers.lower.owner.fail("GET", careers.path, status=422, trade="とび")


def test_nobody_else_is_told_the_worker_exists(careers: Careers) -> None:
    api = careers.api
    colleague = api.worker_login(careers.lower, careers.colleague)
    for reader in (careers.side.owner, careers.stranger.owner, colleague, api.operator,
                   api.staff(careers.prime, "site_manager", site_ids=[])):
        reader.fail("GET", careers.path, status=404, code="worker_not_found")
    careers.prime.owner.fail("GET", "/workers/999999/career", status=404, code="worker_not_found")


def test_the_employers_site_manager_counts_only_the_days_on_its_bound_site(careers: Careers) -> None:
    """A 現場管理者 of 𠮷野設備 bound to 他社倉庫 reads 四郎's 2-1 there only (4 and 5 November): its career
    counts those two days, not the three at キャリアビル."""
    manager = careers.api.staff(careers.lower, "site_manager", site_ids=[careers.warehouse])
    c = manager.ok("GET", careers.path)
    assert (c["work_days"], c["leader_days"], c["counted"]) == (2, 0, "visible")
    totals = manager.ok("GET", f"/workers/{careers.worker['id']}/reports/attendance-totals", month="2026-11")
    assert totals["summary"]["work_days"] == c["work_days"]
    assert (c["current_level"], c["trade_source"]) == (2, "registered")  # its own company's worker: every item


def test_a_company_not_shown_the_registered_trades_is_evaluated_in_the_roster_trade_it_reads(
        careers: Careers) -> None:
    """四郎 registers 電工 first; the 元請 sees only the とび工 of his entry on its roster. Without ?trade= it is
    evaluated in that とび工 (the roster's), never in the registered 電工; once his entry names no trade,
    in none at all, and the answer says ?trade= picks one. Disclosed by both sides, the registered one."""
    wid = careers.worker["id"]
    careers.lower.owner.ok("PATCH", f"/workers/{wid}", {"trades": [DENKI, TOBI]})
    mine = careers.lower.owner.ok("GET", careers.path)
    assert (mine["trade"]["major"], mine["trade"]["minor"], mine["trade_source"]) == ("09", "01", "registered")
    assert mine["trade_note"] is None and mine["work_days"] == 0  # his days are とび工

    c = careers.prime.owner.ok("GET", careers.path)
    assert (c["trade"]["major"], c["trade"]["minor"], c["trade_source"]) == ("06", "01", "roster")
    assert "?trade=" in c["trade_note"] and (c["work_days"], c["counted"]) == (3, "visible")

    careers.lower.owner.ok("PATCH", f"/roster/{careers.entry['id']}", {"trade": None})
    c = careers.prime.owner.ok("GET", careers.path)
    assert (c["trade"], c["trade_source"], c["standard"]["key"]) == (None, None, "default")
    assert "?trade=" in c["trade_note"]
    asked = careers.prime.owner.ok("GET", careers.path, trade="09-01")
    assert (asked["trade"]["major"], asked["trade_source"], asked["trade_note"]) == ("09", "query", None)

    me = careers.api.worker_login(careers.lower, careers.worker)
    for side in (me, careers.lower.owner):
        side.ok("PUT", f"/workers/{wid}/disclosure", {"items": {"trades": True}})
    c = careers.prime.owner.ok("GET", careers.path)
    assert (c["trade"]["major"], c["trade"]["minor"], c["trade_source"]) == ("09", "01", "registered")
