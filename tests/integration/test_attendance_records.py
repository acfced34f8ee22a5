"""就業履歴 as the site sees it: taps stored by the ingest become one record per worker, site and
work day, with the roster's 職種 and 立場 and the validity for skill evaluation; unlinked cards,
clock correction, night shifts, 事後補正 with approval, and who sees what. On SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import count
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session as DbSession
from world import PASSWORD, Api, Company, Session, Site

from protocol.messages import Card, TapEvent
from server.services import ingest, records
from server.store import tables as t
from server.store.repositories import records as records_repo

JST = ZoneInfo("Asia/Tokyo")
NOW = datetime(2026, 11, 25, 21, 0, tzinfo=JST)  # the evening the tests look back on
BUF = "ab" * 16
_seq = count(1)


def jst(day: int, hh: int, mm: int, month: int = 11) -> datetime:
    return datetime(2026, month, day, hh, mm, tzinfo=JST)


@dataclass
class Gates:
    api: Api
    site: Site
    prime: Company

    def tap(self, uid: str, at: datetime, gate: str = "gate-in", direction: str = "in", synced: bool = True,
            boot: str = "boot-1", mono_ms: int | None = None) -> str:
        seq = next(_seq)
        event = TapEvent(device_id=gate, buffer_id=BUF, seq=seq, card=Card(tech="felica", uid=uid),
                         direction=direction, at=at, clock_synced=synced, boot_id=boot,
                         mono_ms=seq * 1000 if mono_ms is None else mono_ms)
        return ingest.ingest_taps(self.api.ctx, gate, [event])[0].outcome

    def day(self, day: str = "2026-11-25", by: Session | None = None) -> dict[str, Any]:
        result: dict[str, Any] = (by or self.prime.owner).ok("GET", f"/sites/{self.site.id}/attendance", day=day)
        return result

    def record_of(self, worker: dict[str, Any], day: str = "2026-11-25") -> dict[str, Any]:
        rows = [r for r in self.day(day)["records"] if r["worker"]["id"] == worker["id"]]
        assert len(rows) == 1, rows
        return rows[0]


UID_A = "0114A1B2C3D4E5F6"
UID_B = "0114A1B2C3D4E5F7"


@pytest.fixture
def gates(api: Api) -> Gates:
    api.ctx.clock = lambda: NOW.astimezone(UTC)
    prime = api.company("(株)基本建設")
    site = api.site(prime)
    for gate, direction in (("gate-in", "in"), ("gate-out", "out"), ("gate-auto", "auto")):
        prime.owner.ok("POST", f"/sites/{site.id}/devices",
                       {"device_id": gate, "name": gate, "direction": direction}, status=201)
    return Gates(api, site, prime)


def _worker(g: Gates, name: str, uid: str, employer: Company | None = None, **roster: Any) -> dict[str, Any]:
    employer = employer or g.prime
    w = g.api.worker(employer, name)
    employer.owner.ok("POST", f"/workers/{w['id']}/cards", {"uid": uid}, status=201)
    if roster.pop("on_roster", True):
        g.api.on_roster(g.site, employer, w, **roster)
    return w


def test_morning_entry_and_evening_exit_make_one_valid_record_with_trade_and_position(gates: Gates) -> None:
    w = _worker(gates, "鳶田 一郎", UID_A, position="foreman")
    assert gates.tap(UID_A, jst(25, 7, 58)) == "recorded"
    assert gates.tap(UID_A, jst(25, 17, 31), gate="gate-out", direction="out") == "recorded"
    r = gates.record_of(w)
    assert (r["entry_at"], r["exit_at"]) == ("2026-11-25T07:58:00+09:00", "2026-11-25T17:31:00+09:00")
    assert r["trade"]["major"] == "06" and r["position_label"] == "職長" and r["tier"] == 0
    assert r["valid_for_skill_evaluation"] and r["invalid_reasons"] == []
    assert r["employer"]["name"] == "(株)基本建設"


def test_repeated_and_resent_taps_never_add_a_record_or_move_the_exit(gates: Gates) -> None:
    w = _worker(gates, "鳶田 一郎", UID_A)
    gates.tap(UID_A, jst(25, 7, 58), gate="gate-auto", direction="auto")
    gates.tap(UID_A, jst(25, 7, 59), gate="gate-auto", direction="auto")  # a double tap: not an exit
    assert gates.record_of(w)["exit_at"] is None
    event = TapEvent(device_id="gate-auto", buffer_id=BUF, seq=999_001, card=Card(tech="felica", uid=UID_A),
                     direction="auto", at=jst(25, 17, 30), clock_synced=True, boot_id="b", mono_ms=1)
    for _ in range(3):  # the same tap re-sent (a lost Ack): recorded once, then duplicates
        ingest.ingest_taps(gates.api.ctx, "gate-auto", [event])
    r = gates.record_of(w)
    assert (r["entry_at"], r["exit_at"], r["tap_count"]) == ("2026-11-25T07:58:00+09:00",
                                                              "2026-11-25T17:30:00+09:00", 3)
    assert gates.day()["summary"]["workers"] == 1


def test_a_worker_not_on_the_roster_is_recorded_but_not_valid(gates: Gates) -> None:
    w = _worker(gates, "名簿 なし", UID_A, on_roster=False)
    gates.tap(UID_A, jst(25, 8, 0))
    r = gates.record_of(w)
    assert not r["valid_for_skill_evaluation"] and not r["on_roster"]
    assert [x["code"] for x in r["invalid_reasons"]] == ["not_on_roster"]


def test_a_roster_entry_without_trade_is_recorded_with_the_reason_and_fixing_it_today_makes_it_valid(
        gates: Gates) -> None:
    w = _worker(gates, "職種 未設定", UID_A, trade=None)
    gates.tap(UID_A, jst(25, 8, 0))
    r = gates.record_of(w)
    assert "no_trade" in [x["code"] for x in r["invalid_reasons"]]
    entry = gates.prime.owner.ok("GET", f"/sites/{gates.site.id}/roster")["entries"][0]
    gates.prime.owner.ok("PATCH", f"/roster/{entry['id']}", {"trade": {"major": "06", "minor": "01"}})
    assert gates.record_of(w)["valid_for_skill_evaluation"]


def test_a_day_outside_the_accumulation_period_is_not_valid(gates: Gates) -> None:
    gates.prime.owner.ok("PATCH", f"/sites/{gates.site.id}", {"period_start": "2026-11-26"})
    w = _worker(gates, "期間 外", UID_A)
    gates.tap(UID_A, jst(25, 8, 0))
    assert [x["code"] for x in gates.record_of(w)["invalid_reasons"]] == ["outside_period"]


def test_a_night_shift_stays_one_record_when_the_site_day_boundary_is_after_its_end(gates: Gates) -> None:
    w = _worker(gates, "夜勤 太郎", UID_A)
    gates.tap(UID_A, jst(24, 20, 0))
    gates.tap(UID_A, jst(25, 5, 0), gate="gate-out", direction="out")
    # Default boundary 04:00: the 05:00 exit falls on the next work day.
    assert gates.record_of(w, "2026-11-24")["exit_at"] is None
    assert gates.record_of(w, "2026-11-25")["entry_at"] is None
    site = gates.prime.owner.ok("PATCH", f"/sites/{gates.site.id}", {"day_boundary": "06:00"})
    assert site["day_boundary"] == "06:00"
    r = gates.record_of(w, "2026-11-24")
    assert (r["entry_at"], r["exit_at"]) == ("2026-11-24T20:00:00+09:00", "2026-11-25T05:00:00+09:00")
    assert gates.day("2026-11-25")["records"] == []
    gates.prime.owner.fail("PATCH", f"/sites/{gates.site.id}", {"day_boundary": "25:00"}, status=422,
                           code="invalid_day_boundary")


def test_a_site_abroad_keeps_its_own_time_zone_for_its_work_days_and_shows_times_with_that_offset(
        gates: Gates) -> None:
    w = _worker(gates, "海外 現場", UID_A)
    gates.tap(UID_A, jst(25, 20, 0))  # 2026-11-25 20:00 in Japan is 06:00 the same day in New York
    assert gates.record_of(w, "2026-11-25")["entry_at"] == "2026-11-25T20:00:00+09:00"
    site = gates.prime.owner.ok("PATCH", f"/sites/{gates.site.id}", {"time_zone": "America/New_York"})
    assert site["time_zone"] == "America/New_York"
    assert gates.day("2026-11-25")["site"]["time_zone"] == "America/New_York"
    assert gates.record_of(w, "2026-11-25")["entry_at"] == "2026-11-25T06:00:00-05:00"
    # Every time shown about the site reads in its zone: the 施工体制, the roster, the gates, the log.
    prime = gates.prime.owner
    assert prime.ok("GET", f"/sites/{gates.site.id}/hierarchy")["rows"][0]["invited_at"].endswith("-05:00")
    assert prime.ok("GET", f"/sites/{gates.site.id}/roster")["entries"][0]["updated_at"].endswith("-05:00")
    seen = [d["last_seen_at"] for d in prime.ok("GET", f"/sites/{gates.site.id}/devices") if d["last_seen_at"]]
    assert all(at.endswith("-05:00") for at in seen)
    assert prime.ok("GET", "/audit", site_id=gates.site.id)[0]["at"].endswith("-05:00")
    gates.prime.owner.ok("PATCH", f"/sites/{gates.site.id}", {"time_zone": "Asia/Tokyo"})
    assert gates.record_of(w, "2026-11-25")["entry_at"] == "2026-11-25T20:00:00+09:00"
    for bad in ("Mars/Olympus", "../../etc/passwd", "", "JST+9"):
        gates.prime.owner.fail("PATCH", f"/sites/{gates.site.id}", {"time_zone": bad}, status=422,
                               code="invalid_time_zone")
    assert gates.prime.owner.ok("GET", f"/sites/{gates.site.id}")["time_zone"] == "Asia/Tokyo"


def test_taps_of_an_unlinked_card_are_listed_for_the_prime_and_attributed_when_the_card_is_linked(
        gates: Gates) -> None:
    w = _worker(gates, "カード 未登録", UID_B)  # holds UID_B; UID_A is a new card nobody has yet
    gates.tap(UID_A, jst(25, 7, 55))
    gates.tap(UID_A, jst(25, 17, 5), gate="gate-out", direction="out")
    day = gates.day()
    assert day["records"] == []
    assert [(c["card_uid"], c["taps"]) for c in day["unlinked_cards"]] == [(UID_A, 2)]
    card = gates.prime.owner.ok("POST", f"/workers/{w['id']}/cards",
                                {"uid": UID_A, "replaces": True, "reason": "紛失"}, status=201)
    assert card["attributed_taps"] == 2
    r = gates.record_of(w)
    assert (r["entry_at"], r["exit_at"]) == ("2026-11-25T07:55:00+09:00", "2026-11-25T17:05:00+09:00")
    assert gates.day()["unlinked_cards"] == []


def test_taps_before_clock_sync_are_redated_by_a_later_synced_reading_of_the_same_boot(gates: Gates) -> None:
    w = _worker(gates, "時刻 未同期", UID_A)
    # The gate booted with a clock stuck on 1 January; 07:58 real time was mono 100 s into the boot.
    gates.tap(UID_A, datetime(2026, 1, 1, 0, 1, 40, tzinfo=JST), gate="gate-auto", direction="auto",
              synced=False, boot="boot-x", mono_ms=100_000)
    assert gates.day()["records"] == []
    # A clock that far off is no evidence of a day (2025-12-31 is past its correction deadline): the
    # tap is held for a reading of its boot, not made into a record of a day nobody worked.
    assert gates.day("2025-12-31")["records"] == []
    # NTP answers; the same gate's next tap, synchronised, is 17:30 at mono 34,420 s: 9 h 32 min after
    # the first one, which was therefore at 07:58.
    gates.tap(UID_A, jst(25, 17, 30), gate="gate-auto", direction="auto", boot="boot-x", mono_ms=34_420_000)
    r = gates.record_of(w)
    assert (r["entry_at"], r["exit_at"]) == ("2026-11-25T07:58:00+09:00", "2026-11-25T17:30:00+09:00")
    assert not r["clock_unverified"] and r["valid_for_skill_evaluation"]
    assert gates.day("2025-12-31")["records"] == []
    detail = gates.prime.owner.ok("GET", f"/attendance/{r['id']}")
    assert detail["taps"][0]["redated"] and detail["taps"][0]["device_clock_at"].startswith("2026-01-01")


def test_taps_of_a_boot_that_never_synced_stay_flagged(gates: Gates) -> None:
    w = _worker(gates, "時刻 不明", UID_A)
    gates.tap(UID_A, jst(25, 8, 0), synced=False, boot="boot-y", mono_ms=5_000)
    gates.tap(UID_A, jst(25, 18, 0), gate="gate-out", direction="out", boot="boot-z", mono_ms=9_000)  # another boot
    r = gates.record_of(w)
    assert r["clock_unverified"] and not r["valid_for_skill_evaluation"]


def _correction(by: Session, g: Gates, w: dict[str, Any], day: str, entry: str | None, exit_: str | None,
                status: int = 201, code: str = "") -> dict[str, Any]:
    body = {"site_id": g.site.id, "worker_id": w["id"], "work_day": day, "entry_at": entry, "exit_at": exit_,
            "reason": "カードを忘れたため"}
    if status != 201:
        return by.fail("POST", "/corrections", body, status=status, code=code)
    result: dict[str, Any] = by.ok("POST", "/corrections", body, status=201)
    return result


def test_worker_asks_a_correction_the_prime_approves_and_the_record_keeps_what_the_gate_said(
        gates: Gates) -> None:
    w = _worker(gates, "補正 申請", UID_A)
    me = gates.api.worker_login(gates.prime, w)
    gates.tap(UID_A, jst(25, 7, 58))  # forgot to tap out
    c = _correction(me, gates, w, "2026-11-25", None, "2026-11-25T17:45:00+09:00")
    assert c["state_label"] == "申請中" and c["deadline"] == "2026-12-31"
    assert [x["id"] for x in me.ok("GET", "/corrections")] == [c["id"]]
    pending = gates.prime.owner.ok("GET", "/corrections", site_id=gates.site.id, state="pending")
    assert [x["id"] for x in pending] == [c["id"]]
    assert gates.day()["pending_corrections"] == 1
    me.fail("POST", f"/corrections/{c['id']}/approve", {}, status=403, code="correction_prime_only")
    done = gates.prime.owner.ok("POST", f"/corrections/{c['id']}/approve", {"comment": "確認しました"})
    assert done["state_label"] == "承認"
    r = gates.record_of(w)
    assert (r["entry_at"], r["exit_at"], r["device_exit_at"]) == (
        "2026-11-25T07:58:00+09:00", "2026-11-25T17:45:00+09:00", None)
    assert r["corrected"]
    detail = me.ok("GET", f"/attendance/{r['id']}")
    assert [t["used_as"] for t in detail["taps"]] == ["entry"]
    assert detail["corrections"][0]["decided_by"] and detail["corrections"][0]["comment"] == "確認しました"
    gates.prime.owner.fail("POST", f"/corrections/{c['id']}/reject", {"comment": "x"}, status=409,
                           code="correction_decided")


def test_a_correction_after_the_end_of_the_next_month_is_refused_with_the_deadline(gates: Gates) -> None:
    w = _worker(gates, "期限 切れ", UID_A)
    gates.tap(UID_A, jst(25, 7, 58))
    gates.api.ctx.clock = lambda: datetime(2027, 1, 1, 9, 0, tzinfo=JST).astimezone(UTC)
    owner = gates.api.login_as(gates.api.client, gates.prime.owner.account["login_id"], PASSWORD)  # a new day
    err = _correction(owner, gates, w, "2026-11-25", None, "2026-11-25T17:00:00+09:00",
                      status=409, code="correction_deadline_passed")
    assert "2026-12-31" in err["message"]
    gates.api.ctx.clock = lambda: datetime(2026, 12, 31, 23, 0, tzinfo=JST).astimezone(UTC)
    _correction(owner, gates, w, "2026-11-25", None, "2026-11-25T17:00:00+09:00")


def test_a_correction_for_a_day_that_has_not_begun_is_refused(gates: Gates) -> None:
    # Issue 17 finding 4: a 事後補正 dated 2027-01-15 was accepted, approved, and counted as a work day
    # and a site-fee day. It is "after the fact" (事後): only for days that have begun, times not ahead of now.
    w = _worker(gates, "未来 補正", UID_A)
    err = _correction(gates.prime.owner, gates, w, "2027-01-15", "2027-01-15T08:00:00+09:00",
                      "2027-01-15T17:00:00+09:00", status=422, code="correction_day_not_begun")
    assert "2027-01-15" in err["message"]
    _correction(gates.prime.owner, gates, w, "2026-11-26", "2026-11-26T08:00:00+09:00", None,
                status=422, code="correction_day_not_begun")  # tomorrow (NOW is 11-25 21:00)
    # Today has begun, but its exit cannot be set later than now.
    _correction(gates.prime.owner, gates, w, "2026-11-25", "2026-11-25T08:00:00+09:00",
                "2026-11-25T23:30:00+09:00", status=422, code="correction_time_in_future")
    c = _correction(gates.prime.owner, gates, w, "2026-11-25", "2026-11-25T08:00:00+09:00",
                    "2026-11-25T20:30:00+09:00")
    gates.prime.owner.ok("POST", f"/corrections/{c['id']}/approve", {})
    assert gates.day("2027-01-15")["records"] == []


def test_a_rejected_correction_needs_a_comment_and_leaves_the_record(gates: Gates) -> None:
    w = _worker(gates, "否認 対象", UID_A)
    gates.tap(UID_A, jst(25, 7, 58))
    c = _correction(gates.prime.owner, gates, w, "2026-11-25", "2026-11-25T07:00:00+09:00", None)
    gates.prime.owner.fail("POST", f"/corrections/{c['id']}/reject", {}, status=422, code="text_required")
    gates.prime.owner.ok("POST", f"/corrections/{c['id']}/reject", {"comment": "入場記録と矛盾"})
    r = gates.record_of(w)
    assert r["entry_at"] == "2026-11-25T07:58:00+09:00" and not r["corrected"]


def test_direct_input_for_a_day_without_taps_creates_the_record_once_approved(gates: Gates) -> None:
    w = _worker(gates, "直接 入力", UID_A)
    c = _correction(gates.prime.owner, gates, w, "2026-11-24", "2026-11-24T08:00:00+09:00",
                    "2026-11-24T17:00:00+09:00")
    assert gates.day("2026-11-24")["records"] == []
    gates.prime.owner.ok("POST", f"/corrections/{c['id']}/approve", {})
    r = gates.record_of(w, "2026-11-24")
    assert r["tap_count"] == 0 and r["corrected"] and r["valid_for_skill_evaluation"]


def test_correction_times_must_lie_in_that_work_day_and_be_in_order(gates: Gates) -> None:
    w = _worker(gates, "時刻 誤り", UID_A)
    _correction(gates.prime.owner, gates, w, "2026-11-25", "2026-11-26T08:00:00+09:00", None,
                status=422, code="correction_outside_day")
    _correction(gates.prime.owner, gates, w, "2026-11-25", "2026-11-25T17:00:00+09:00",
                "2026-11-25T08:00:00+09:00", status=422, code="exit_before_entry")
    _correction(gates.prime.owner, gates, w, "2026-11-25", None, None, status=422, code="correction_needs_time")


def test_only_the_worker_or_the_employer_may_ask_for_a_correction(gates: Gates) -> None:
    sub = gates.api.company("(有)上層")
    gates.api.registered(gates.site, gates.prime, gates.site.root, sub)
    w = _worker(gates, "他社 技能者", UID_A)
    _correction(sub.owner, gates, w, "2026-11-25", "2026-11-25T08:00:00+09:00", None, status=404,
                code="worker_not_found")


def test_each_company_sees_the_records_its_place_in_the_hierarchy_allows(gates: Gates) -> None:
    g = gates
    up = g.api.company("(有)上層")
    down = g.api.company("(株)下層")
    side = g.api.company("(株)別系統")
    up_node = g.api.registered(g.site, g.prime, g.site.root, up)
    g.api.registered(g.site, up, up_node, down)
    g.api.registered(g.site, g.prime, g.site.root, side)
    uids = iter(f"0114A1B2C3D4E{n:03X}" for n in range(1, 10))
    people = {c.name: _worker(g, f"{c.name} 技能者", next(uids), employer=c)
              for c in (g.prime, up, down, side)}
    for n in range(len(people)):
        g.tap(f"0114A1B2C3D4E{n + 1:03X}", jst(25, 8, n))

    def names(session: Session) -> set[str]:
        return {r["worker"]["name"] for r in g.day(by=session)["records"]}

    assert names(g.prime.owner) == {w["name"] for w in people.values()}
    assert names(up.owner) == {people[up.name]["name"], people[down.name]["name"]}
    assert names(down.owner) == {people[down.name]["name"]}
    assert "unlinked_cards" not in g.day(by=up.owner)
    me = g.api.worker_login(down, people[down.name])
    assert names(me) == {people[down.name]["name"]}
    cal = me.ok("GET", f"/workers/{people[down.name]['id']}/attendance", month="2026-11")
    assert len(cal["days"]) == 30 and cal["summary"]["work_days"] == 1
    assert cal["days"][24]["records"][0]["site"]["id"] == g.site.id
    side.owner.fail("GET", f"/workers/{people[down.name]['id']}/attendance", month="2026-11", status=404)
    month = g.prime.owner.ok("GET", f"/sites/{g.site.id}/attendance/month", month="2026-11")
    assert month["summary"] == {"site_fee_days": 4, "workers": 4}
    stranger = g.api.company("(株)無関係")
    stranger.owner.fail("GET", f"/sites/{g.site.id}/attendance", status=404, code="site_not_found")


def test_two_ingest_workers_taking_the_entry_and_the_exit_at_once_leave_both_on_the_record(gates: Gates) -> None:
    w = _worker(gates, "同時 処理", UID_A)
    barrier = threading.Barrier(2)

    def send(gate: str, direction: str, at: datetime) -> None:
        barrier.wait()
        gates.tap(UID_A, at, gate=gate, direction=direction)

    threads = [threading.Thread(target=send, args=("gate-in", "in", jst(25, 8, 0))),
               threading.Thread(target=send, args=("gate-out", "out", jst(25, 17, 0)))]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    r = gates.record_of(w)
    assert (r["entry_at"], r["exit_at"], r["tap_count"]) == ("2026-11-25T08:00:00+09:00",
                                                              "2026-11-25T17:00:00+09:00", 2)


def test_four_ingest_workers_racing_over_the_same_workers_leave_every_record_complete(gates: Gates) -> None:
    # Four gates, each with its own ingest worker (so no gate lock orders them), send batches that
    # all touch the same six workers' day at once: every record must end with every tap of its day,
    # whichever transaction committed last (the rebuild's per-worker lock; BEGIN IMMEDIATE on SQLite).
    uids = [f"0114A1B2C3D4{n:04X}" for n in range(6)]
    people = [_worker(gates, f"競合 {n}", uid) for n, uid in enumerate(uids)]
    extra = [("gate-in-2", "in"), ("gate-out-2", "out")]
    for gate, direction in extra:
        gates.prime.owner.ok("POST", f"/sites/{gates.site.id}/devices",
                             {"device_id": gate, "name": gate, "direction": direction}, status=201)
    lanes = [("gate-in", "in", 7), ("gate-in-2", "in", 8), ("gate-out", "out", 17), ("gate-out-2", "out", 18)]
    barrier = threading.Barrier(len(lanes))
    failures: list[BaseException] = []

    def lane(gate: str, direction: str, hour: int) -> None:
        try:
            barrier.wait()
            for round_ in range(5):
                events = [TapEvent(device_id=gate, buffer_id=BUF, seq=next(_seq), card=Card(tech="felica", uid=uid),
                                   direction=direction, at=jst(25, hour, round_ * 10 + n), clock_synced=True,
                                   boot_id="boot-race", mono_ms=next(_seq)) for n, uid in enumerate(uids)]
                assert {a.outcome for a in ingest.ingest_taps(gates.api.ctx, gate, events)} == {"recorded"}
        except BaseException as exc:  # reported below: an assert in a thread would vanish
            failures.append(exc)

    threads = [threading.Thread(target=lane, args=args) for args in lanes]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert failures == []
    for n, w in enumerate(people):
        r = gates.record_of(w)
        assert r["tap_count"] == 20
        assert (r["entry_at"], r["exit_at"]) == (f"2026-11-25T07:{n:02d}:00+09:00",
                                                 f"2026-11-25T18:{40 + n:02d}:00+09:00")


def test_a_card_linked_while_the_site_is_edited_gives_both_their_answer_not_a_deadlock(
        gates: Gates, monkeypatch: pytest.MonkeyPatch) -> None:
    # Found by review: the card's taps make a new record (whose site key the upsert must share)
    # while the 元請 edits the site (its row locked, its records rebuilt, this worker's among them).
    # Whoever locks first, the other waits; neither is refused.
    w = _worker(gates, "後から 紐付け", UID_A)
    assert gates.tap(UID_A, jst(25, 8, 0)) == "recorded"  # the worker has a record: the site edit rebuilds it
    assert gates.tap(UID_B, jst(24, 8, 0)) == "recorded"  # a card nobody held yet
    paused = threading.Event()
    save = records_repo.RecordRepository.save_rebuilt

    def slow_save(self: records_repo.RecordRepository, rows: Any) -> None:
        if threading.current_thread().name == "linking":
            paused.set()
            time.sleep(1.5)  # the site edit locks the site and waits for this worker meanwhile
        save(self, rows)

    monkeypatch.setattr(records_repo.RecordRepository, "save_rebuilt", slow_save)
    failures: list[BaseException] = []

    def link() -> None:
        try:
            with gates.api.ctx.write() as uow:
                records.attribute_card(gates.api.ctx, uow, UID_B, w["id"])
        except BaseException as exc:
            failures.append(exc)

    linking = threading.Thread(target=link, name="linking")
    linking.start()
    assert paused.wait(10)
    gates.prime.owner.ok("PATCH", f"/sites/{gates.site.id}", {"day_boundary": "04:00"})
    linking.join()
    assert failures == []
    assert gates.record_of(w, "2026-11-24")["entry_at"] == "2026-11-24T08:00:00+09:00"


def test_a_bad_day_or_month_is_a_clear_error(gates: Gates) -> None:
    gates.prime.owner.fail("GET", f"/sites/{gates.site.id}/attendance/month", month="2026-13", status=422,
                           code="invalid_month")
    gates.prime.owner.fail("GET", f"/sites/{gates.site.id}/attendance", day="yesterday", status=422)


def test_an_unsynced_tap_and_the_synced_one_that_redates_it_in_one_batch_make_one_right_record(
        gates: Gates) -> None:
    w = _worker(gates, "同一 バッチ", UID_A)
    other = _worker(gates, "別 技能者", UID_B)
    # The stale clock puts the first tap on a later day; the synced tap of the same boot moves it back.
    stale = TapEvent(device_id="gate-auto", buffer_id=BUF, seq=next(_seq), card=Card(tech="felica", uid=UID_A),
                     direction="auto", at=jst(27, 9, 0), clock_synced=False, boot_id="boot-q", mono_ms=1_000)
    synced = TapEvent(device_id="gate-auto", buffer_id=BUF, seq=next(_seq), card=Card(tech="felica", uid=UID_B),
                      direction="auto", at=jst(25, 8, 1), clock_synced=True, boot_id="boot-q", mono_ms=61_000)
    acks = ingest.ingest_taps(gates.api.ctx, "gate-auto", [stale, synced])
    assert [a.outcome for a in acks] == ["recorded", "recorded"]
    assert gates.record_of(w)["entry_at"] == "2026-11-25T08:00:00+09:00"
    assert gates.record_of(other)["entry_at"] == "2026-11-25T08:01:00+09:00"
    assert gates.day("2026-11-27")["records"] == []


def test_a_tap_with_an_impossible_time_is_refused_and_the_rest_of_its_batch_is_stored(gates: Gates) -> None:
    _worker(gates, "時刻 異常", UID_A)
    bad = TapEvent(device_id="gate-in", buffer_id=BUF, seq=next(_seq), card=Card(tech="felica", uid=UID_A),
                   direction="in", at=datetime(1, 1, 1, 0, 0, tzinfo=JST), clock_synced=True, boot_id="b", mono_ms=1)
    good = TapEvent(device_id="gate-in", buffer_id=BUF, seq=next(_seq), card=Card(tech="felica", uid=UID_A),
                    direction="in", at=jst(25, 8, 0), clock_synced=True, boot_id="b", mono_ms=2)
    counters = ingest.Counters()
    acks = ingest.ingest_taps(gates.api.ctx, "gate-in", [bad, good], counters)
    assert [(a.outcome, a.reason) for a in acks] == [("rejected", "time out of range"), ("recorded", None)]
    assert counters.rejected == {"time out of range": 1} and counters.recorded == 1


def test_taps_of_a_card_reported_lost_go_to_no_one_else_but_back_to_its_holder_when_found(gates: Gates) -> None:
    holder = _worker(gates, "紛失 した人", UID_A)
    other = _worker(gates, "別 の人", UID_B)
    card = gates.prime.owner.ok("GET", f"/workers/{holder['id']}/cards")[0]
    gates.prime.owner.ok("POST", f"/cards/{card['id']}/revoke", {"reason": "紛失"})
    gates.api.ctx.clock = lambda: (NOW + timedelta(minutes=1)).astimezone(UTC)
    gates.tap(UID_A, jst(25, 8, 0))  # someone uses the lost card
    gates.api.ctx.clock = lambda: (NOW + timedelta(minutes=2)).astimezone(UTC)
    linked = gates.prime.owner.ok("POST", f"/workers/{other['id']}/cards",
                                  {"uid": UID_A, "replaces": True, "reason": "再発行"}, status=201)
    assert linked["attributed_taps"] == 0
    assert gates.day()["records"] == [] and [c["card_uid"] for c in gates.day()["unlinked_cards"]] == [UID_A]
    # A card reported lost and found again by its holder: the taps since are theirs.
    found = _worker(gates, "見つけた 人", "0114A1B2C3D4E500")
    card = gates.prime.owner.ok("GET", f"/workers/{found['id']}/cards")[0]
    gates.prime.owner.ok("POST", f"/cards/{card['id']}/revoke", {"reason": "紛失"})
    gates.api.ctx.clock = lambda: (NOW + timedelta(minutes=3)).astimezone(UTC)
    gates.tap("0114A1B2C3D4E500", jst(25, 8, 5))
    again = gates.prime.owner.ok("POST", f"/workers/{found['id']}/cards", {"uid": "0114A1B2C3D4E500"}, status=201)
    assert again["attributed_taps"] == 1 and gates.record_of(found)["entry_at"] == "2026-11-25T08:05:00+09:00"
    gates.api.ctx.clock = lambda: NOW.astimezone(UTC)


def test_a_tap_stored_while_its_card_was_being_linked_is_attributed_by_the_sweep(gates: Gates) -> None:
    from sqlalchemy import delete, update

    w = _worker(gates, "遅れて 紐付け", UID_A)
    gates.tap(UID_A, jst(25, 8, 0))
    # As if the ingest had read the card table before the link committed:
    with DbSession(gates.api.ctx.store.engine) as s, s.begin():
        s.execute(update(t.Tap).values(worker_id=None))
        s.execute(delete(t.Attendance))
    assert gates.day()["records"] == []
    assert records.attribute_orphans(gates.api.ctx) == 1
    assert gates.record_of(w)["entry_at"] == "2026-11-25T08:00:00+09:00"


def test_approved_corrections_stack_in_decision_order_and_one_that_inverts_the_day_is_refused(
        gates: Gates) -> None:
    w = _worker(gates, "二回 補正", UID_A)
    gates.tap(UID_A, jst(25, 7, 58))
    gates.tap(UID_A, jst(25, 9, 0), gate="gate-out", direction="out")
    c1 = _correction(gates.prime.owner, gates, w, "2026-11-25", "2026-11-25T07:30:00+09:00", None)
    gates.prime.owner.ok("POST", f"/corrections/{c1['id']}/approve", {})
    c2 = _correction(gates.prime.owner, gates, w, "2026-11-25", None, "2026-11-25T17:00:00+09:00")
    gates.prime.owner.ok("POST", f"/corrections/{c2['id']}/approve", {})
    r = gates.record_of(w)
    assert (r["entry_at"], r["exit_at"]) == ("2026-11-25T07:30:00+09:00", "2026-11-25T17:00:00+09:00")
    _correction(gates.prime.owner, gates, w, "2026-11-25", "2026-11-25T18:00:00+09:00", None, status=422,
                code="correction_inverts_record")


def test_a_site_manager_of_the_employer_not_bound_to_the_site_neither_asks_nor_sees_corrections(
        gates: Gates) -> None:
    w = _worker(gates, "担当 外", UID_A)
    gates.tap(UID_A, jst(25, 7, 58))
    c = _correction(gates.prime.owner, gates, w, "2026-11-25", None, "2026-11-25T17:00:00+09:00")
    unbound = gates.api.staff(gates.prime, "site_manager", site_ids=[])
    assert unbound.ok("GET", "/corrections") == []
    _correction(unbound, gates, w, "2026-11-25", None, "2026-11-25T17:10:00+09:00", status=404)
    bound = gates.api.staff(gates.prime, "site_manager", site_ids=[gates.site.id])
    assert [x["id"] for x in bound.ok("GET", "/corrections")] == [c["id"]]


def test_the_month_counted_in_the_database_agrees_with_the_domains_counting_rules(gates: Gates) -> None:
    """RecordRepository.month_groups counts in SQL what domain.attendance counts in Python; on the same
    records they agree, for the 元請 (every worker) and for an upper company (its branch only)."""
    from server.domain.attendance import count_leader_days, count_work_days, site_fee_days

    g = gates
    up = g.api.company("(有)上層")
    up_node = g.api.registered(g.site, g.prime, g.site.root, up)
    people = [
        _worker(g, "職長 一郎", "0114A1B2C3D40001", position="foreman"),
        _worker(g, "一般 二郎", "0114A1B2C3D40002", position="general"),
        _worker(g, "名簿外 三郎", "0114A1B2C3D40003", on_roster=False),
        _worker(g, "上層 四郎", "0114A1B2C3D40004", employer=up, position="subforeman"),
    ]
    assert up_node
    for day in (4, 5, 6, 11, 25):
        for n in range(len(people)):
            if (day + n) % 3:  # not everyone every day
                g.tap(f"0114A1B2C3D4{n + 1:04X}", jst(day, 8, n))
    with DbSession(g.api.ctx.store.engine) as s:
        rows = s.scalars(select(t.Attendance).where(t.Attendance.site_id == g.site.id)).all()

    def expected(ws: list[dict[str, Any]]) -> dict[int, tuple[int, int, int, list[str]]]:
        out = {}
        for w in ws:
            mine = [r for r in rows if r.worker_id == w["id"]]
            if mine:
                valid = [r for r in mine if r.valid]
                out[w["id"]] = (count_work_days(mine), count_work_days(valid),
                                count_leader_days((r, r.position) for r in valid),
                                sorted(r.work_day.isoformat() for r in mine))
        return out

    for session, ws in ((g.prime.owner, people), (up.owner, people[3:])):
        month = session.ok("GET", f"/sites/{g.site.id}/attendance/month", month="2026-11")
        got = {x["worker"]["id"]: (x["days"], x["valid_days"], x["leader_days"], x["work_days"])
               for x in month["workers"]}
        assert got == expected(ws)
        assert month["summary"]["site_fee_days"] == site_fee_days(r for r in rows if r.worker_id in got)
    assert expected(people)[people[0]["id"]][2] > 0 and expected(people)[people[2]["id"]][1] == 0


def test_a_resent_synced_tap_of_the_previous_boot_does_not_leave_the_next_boots_taps_unverified(
        gates: Gates) -> None:
    """A gate re-sends its backlog after a reboot: an old boot's synced tap (already stored) must not
    become the gate's clock reference, or the new boot's unsynced taps are never re-dated."""
    from protocol.messages import DeviceStatus
    from server.services import devices

    w = _worker(gates, "再 起動", UID_A)
    _worker(gates, "別 人", UID_B)

    def ev(uid: str, at: datetime, synced: bool, boot: str, mono: int, seq: int) -> TapEvent:
        return TapEvent(device_id="gate-auto", buffer_id=BUF, seq=seq, card=Card(tech="felica", uid=uid),
                        direction="auto", at=at, clock_synced=synced, boot_id=boot, mono_ms=mono)

    old = ev(UID_B, jst(24, 17, 0), True, "boot-1", 50_000_000, 9001)
    ingest.ingest_taps(gates.api.ctx, "gate-auto", [old])
    devices.record_status(gates.api.ctx, DeviceStatus(device_id="gate-auto", state="online", at=jst(25, 7, 59),
                                                      clock_synced=True, boot_id="boot-2", mono_ms=120_000))
    stale = ev(UID_A, datetime(2026, 1, 1, 0, 1, tzinfo=JST), False, "boot-2", 60_000, 9002)
    assert [a.outcome for a in ingest.ingest_taps(gates.api.ctx, "gate-auto", [old, stale])] \
        == ["duplicate", "recorded"]
    r = gates.record_of(w)
    assert r["entry_at"] == "2026-11-25T07:58:00+09:00" and not r["clock_unverified"]
