"""Taps into the server: stored once per (device, buffer, seq), from registered gates only, with the
site taken from the server's own record of the gate. On SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session as DbSession
from world import Api, Company

from protocol.messages import Card, DeviceStatus, TapEvent
from server.services import devices, ingest
from server.services.context import Context
from server.store import tables as t

BUF = "ab" * 16
AT = datetime(2026, 11, 25, 7, 58, tzinfo=UTC)
JST = ZoneInfo("Asia/Tokyo")
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)  # 21:00 JST


@pytest.fixture(autouse=True)
def _server_clock(ctx: Context) -> None:
    """The taps here are dated 2026-11-25 and the server's time window is around its own clock."""
    ctx.clock = lambda: NOW


def tap(seq: int, uid: str = "0114A1B2C3D4E5F6", device: str = "gate-01", buffer_id: str = BUF) -> TapEvent:
    return TapEvent(device_id=device, buffer_id=buffer_id, seq=seq, card=Card(tech="felica", uid=uid),
                    direction="in", at=AT, clock_synced=True, boot_id="b", mono_ms=seq * 1000)


def stored(api: Api) -> list[tuple[int, int | None, int]]:
    with DbSession(api.ctx.store.engine) as s:
        return [(r.seq, r.worker_id, r.site_id) for r in s.scalars(select(t.Tap).order_by(t.Tap.seq))]


def _gate(api: Api) -> tuple[int, dict[str, object]]:
    site_id, worker, _ = _gate_and_prime(api)
    return site_id, worker


def _gate_and_prime(api: Api) -> tuple[int, dict[str, object], Company]:
    prime = api.company("(株)基本建設")
    site = api.site(prime)
    prime.owner.ok("POST", f"/sites/{site.id}/devices", {"device_id": "gate-01", "name": "正門"}, status=201)
    worker = api.worker(prime, "鳶田 一郎")
    prime.owner.ok("POST", f"/workers/{worker['id']}/cards", {"uid": "0114A1B2C3D4E5F6"}, status=201)
    return site.id, worker, prime


def test_a_tap_is_stored_once_and_a_resend_is_a_duplicate(api: Api) -> None:
    site_id, worker = _gate(api)
    assert [a.outcome for a in ingest.ingest_taps(api.ctx, "gate-01", [tap(1), tap(2, uid="0114FFFFFFFFFFFF")])] \
        == ["recorded", "recorded"]
    again = ingest.ingest_taps(api.ctx, "gate-01", [tap(1), tap(2, uid="0114FFFFFFFFFFFF"), tap(3)])
    assert [a.outcome for a in again] == ["duplicate", "duplicate", "recorded"]
    # The card's worker is attributed; a card not linked yet is kept for later.
    assert stored(api) == [(1, worker["id"], site_id), (2, None, site_id), (3, worker["id"], site_id)]


def test_a_new_buffer_of_the_same_gate_is_a_new_count(api: Api) -> None:
    _gate(api)
    ingest.ingest_taps(api.ctx, "gate-01", [tap(1)])
    acks = ingest.ingest_taps(api.ctx, "gate-01", [tap(1, buffer_id="cd" * 16)])
    assert [a.outcome for a in acks] == ["recorded"]  # a replaced SD card's seq 1 is not the old seq 1


def test_taps_from_retired_or_impersonated_gates_are_rejected_with_a_reason(api: Api) -> None:
    _, _, prime = _gate_and_prime(api)
    counters = ingest.Counters()
    acks = ingest.ingest_taps(api.ctx, "gate-01", [tap(1, device="gate-02")], counters)
    assert acks[0].outcome == "rejected" and "differs" in (acks[0].reason or "")
    prime.owner.ok("POST", "/devices/gate-01/retire")
    acks = ingest.ingest_taps(api.ctx, "gate-01", [tap(1)], counters)
    assert acks[0].outcome == "rejected" and acks[0].reason == "device retired"
    assert stored(api) == [] and held(api) == []
    assert sum(counters.rejected.values()) == 2


def held(api: Api) -> list[tuple[str, int, str]]:
    with DbSession(api.ctx.store.engine) as s:
        return [(h.device_id, h.seq, h.reason) for h in s.scalars(select(t.HeldTap).order_by(t.HeldTap.seq))]


def records_of(api: Api, worker_id: object) -> list[tuple[int, object, int]]:
    with DbSession(api.ctx.store.engine) as s:
        return [(r.site_id, r.work_day, r.tap_count)
                for r in s.scalars(select(t.Attendance).where(t.Attendance.worker_id == worker_id))]


def test_an_unregistered_gates_taps_are_held_and_become_records_once_the_prime_registers_it(api: Api) -> None:
    site_id, worker, prime = _gate_and_prime(api)
    counters = ingest.Counters()
    # gate-07 is mounted and tapping before the 元請 registered it: its worker was told 「記録しました」.
    taps = [tap(n, device="gate-07") for n in (1, 2, 3)]
    acks = ingest.ingest_taps(api.ctx, "gate-07", taps, counters)
    assert [(a.outcome, a.reason) for a in acks] == [("held", "unknown device")] * 3
    assert [a.outcome for a in ingest.ingest_taps(api.ctx, "gate-07", taps[:2])] == ["held", "held"]  # a re-send
    assert held(api) == [("gate-07", 1, "unknown device"), ("gate-07", 2, "unknown device"),
                         ("gate-07", 3, "unknown device")]
    assert counters.held == 3 and counters.rejected == {} and stored(api) == []

    # The 元請 sees which gate its rostered workers are waiting at (counts and times, no cards); a
    # company that is 元請 of no site may not look; another 元請 does not see this 元請's workers' gate.
    assert prime.owner.ok("GET", "/held-taps") == []  # 鳶田 is not on the roster yet
    prime.owner.ok("POST", f"/sites/{site_id}/roster",
                   {"worker_id": worker["id"], "trade": {"major": "06", "minor": "01"}, "position": "general"},
                   status=201)
    listed = prime.owner.ok("GET", "/held-taps")
    assert [(h["device_id"], h["taps"], h["reason"]) for h in listed] == [("gate-07", 3, "unknown device")]
    assert api.operator.ok("GET", "/held-taps") == listed
    stranger = api.company("(株)無関係")
    assert stranger.owner.call("GET", "/held-taps").status_code == 403
    other_prime = api.company("(株)他社建設")
    api.site(other_prime, name="他社の現場")
    assert other_prime.owner.ok("GET", "/held-taps") == []

    # Registering the gate stores its taps on the site and builds the worker's record, once.
    gate = prime.owner.ok("POST", f"/sites/{site_id}/devices", {"device_id": "gate-07", "name": "通用口"},
                          status=201)
    assert gate["held_taps_stored"] == 3
    assert stored(api) == [(1, worker["id"], site_id), (2, worker["id"], site_id), (3, worker["id"], site_id)]
    assert records_of(api, worker["id"]) == [(site_id, AT.astimezone(JST).date(), 3)]
    assert held(api) == [] and prime.owner.ok("GET", "/held-taps") == []
    # The gate re-sends what it never saw acknowledged: the server has it.
    assert [a.outcome for a in ingest.ingest_taps(api.ctx, "gate-07", taps)] == ["duplicate"] * 3


def test_a_tap_held_while_its_gate_was_being_registered_is_stored_by_the_sweep(api: Api) -> None:
    site_id, worker, prime = _gate_and_prime(api)
    prime.owner.ok("POST", f"/sites/{site_id}/devices", {"device_id": "gate-08", "name": "裏門"}, status=201)
    # An ingest transaction that started before the registration committed held this tap after the
    # registration's own release had run: nothing but the sweep would ever store it.
    with DbSession(api.ctx.store.engine) as s, s.begin():
        e = tap(5, device="gate-08")
        s.add(t.HeldTap(device_id="gate-08", buffer_id=e.buffer_id, seq=5, card_tech="felica", card_uid=e.card.uid,
                        direction="in", at=AT, clock_synced=True, boot_id="b", mono_ms=5000, reason="unknown device",
                        received_at=AT))
    assert ingest.release_all_placed(api.ctx) == 1
    assert stored(api) == [(5, worker["id"], site_id)] and held(api) == []
    assert ingest.release_all_placed(api.ctx) == 0


def test_two_ingest_workers_with_the_same_batch_store_it_once(api: Api) -> None:
    _gate(api)
    batch = [tap(n) for n in range(1, 21)]
    outcomes: list[list[str]] = []
    barrier = threading.Barrier(2)

    def worker() -> None:
        barrier.wait()
        outcomes.append([a.outcome for a in ingest.ingest_taps(api.ctx, "gate-01", batch)])

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    with DbSession(api.ctx.store.engine) as s:
        assert s.scalar(select(func.count()).select_from(t.Tap)) == 20
    per_seq = list(zip(*outcomes, strict=True))
    assert all(sorted(p) == ["duplicate", "recorded"] for p in per_seq)


def test_a_seq_stored_with_other_content_is_a_conflict_kept_for_the_prime_not_a_duplicate(api: Api) -> None:
    site_id, worker, prime = _gate_and_prime(api)
    assert [a.outcome for a in ingest.ingest_taps(api.ctx, "gate-01", [tap(1)])] == ["recorded"]
    other = tap(1, uid="0114FFFFFFFFFFFF")  # the same seq, another card: a restored SD image, or a forgery
    counters = ingest.Counters()
    acks = ingest.ingest_taps(api.ctx, "gate-01", [other, tap(1), other], counters)
    # The conflicting version is answered `conflict` each time it comes (kept once); the true re-send
    # of seq 1 is a duplicate.
    conflict = ("conflict", "seq already stored with other content")
    assert [(a.outcome, a.reason) for a in acks] == [conflict, ("duplicate", None), conflict]
    assert counters.conflict == 2 and counters.duplicate == 1
    assert [a.outcome for a in ingest.ingest_taps(api.ctx, "gate-01", [other])] == ["conflict"]  # answered again
    assert stored(api) == [(1, worker["id"], site_id)]  # the record keeps the first version
    with DbSession(api.ctx.store.engine) as s:
        assert s.scalar(select(func.count()).select_from(t.TapConflict)) == 1  # kept once
    seen = prime.owner.ok("GET", f"/sites/{site_id}/tap-conflicts")
    assert [(c["device_id"], c["seq"], c["stored"]["card"]["uid"], c["other"]["card"]["uid"]) for c in seen] \
        == [("gate-01", 1, "0114A1B2C3D4E5F6", "0114FFFFFFFFFFFF")]
    outsider = api.company("(株)よその会社")
    outsider.owner.fail("GET", f"/sites/{site_id}/tap-conflicts", status=404)


def test_a_seq_repeated_in_one_batch_with_other_content_is_a_conflict(api: Api) -> None:
    _gate(api)
    acks = ingest.ingest_taps(api.ctx, "gate-01", [tap(1), tap(1, uid="0114FFFFFFFFFFFF"), tap(1)])
    assert [a.outcome for a in acks] == ["recorded", "conflict", "duplicate"]
    with DbSession(api.ctx.store.engine) as s:
        kept = s.scalars(select(t.TapConflict)).all()
        assert [(c.seq, c.card_uid) for c in kept] == [(1, "0114FFFFFFFFFFFF")]


def test_a_seq_past_32_bits_is_stored_on_both_backends(api: Api) -> None:
    # The wire allows any seq up to 2^63 - 1; taps.seq was a 32-bit column on PostgreSQL, and such a
    # tap failed its whole batch in the database.
    site_id, worker = _gate(api)
    big = 2**40 + 7
    bigger = 2**63 - 1
    taps = [tap(1).model_copy(update={"seq": seq, "mono_ms": 1000 + n}) for n, seq in enumerate((big, bigger))]
    assert [a.outcome for a in ingest.ingest_taps(api.ctx, "gate-01", taps)] == ["recorded", "recorded"]
    assert stored(api) == [(big, worker["id"], site_id), (bigger, worker["id"], site_id)]


def timed(seq: int, at: datetime, synced: bool = True, boot: str = "b", mono_ms: int | None = None) -> TapEvent:
    return TapEvent(device_id="gate-01", buffer_id=BUF, seq=seq, card=Card(tech="felica", uid="0114A1B2C3D4E5F6"),
                    direction="in", at=at, clock_synced=synced, boot_id=boot,
                    mono_ms=seq * 1000 if mono_ms is None else mono_ms)


def test_taps_dated_in_the_future_or_past_the_correction_deadline_are_refused_and_kept_for_the_prime(
        api: Api) -> None:
    # Issue 17 finding 3: 336 forged taps dated 2000-2100 made 77 records up to 2099-12-30.
    site_id, worker, prime = _gate_and_prime(api)
    prime.owner.ok("POST", f"/sites/{site_id}/roster",
                   {"worker_id": worker["id"], "trade": {"major": "06", "minor": "01"}, "position": "general"},
                   status=201)
    counters = ingest.Counters()
    acks = ingest.ingest_taps(api.ctx, "gate-01", [
        timed(1, datetime(2099, 12, 30, 8, 0, tzinfo=UTC)),  # a broken or forged clock
        timed(2, NOW.replace(hour=13)),  # an hour ahead of the server
        timed(3, datetime(2026, 9, 30, 8, 0, tzinfo=UTC)),  # its 事後補正 deadline (10-31) has passed
        timed(4, NOW.replace(minute=3)),  # a gate clock a few minutes ahead: within the skew
        timed(5, datetime(2026, 10, 1, 8, 0, tzinfo=UTC)),  # October: correctable until 11-30
    ], counters)
    assert [(a.outcome, a.reason) for a in acks] == [
        ("rejected", "time in the future"), ("rejected", "time in the future"),
        ("rejected", "time past the correction deadline"), ("recorded", None), ("recorded", None)]
    assert counters.rejected == {"time in the future": 2, "time past the correction deadline": 1}
    assert [seq for seq, _, _ in stored(api)] == [4, 5]
    assert sorted(str(day) for _, day, _ in records_of(api, worker["id"])) == ["2026-10-01", "2026-11-25"]
    # Not dropped: kept with the reason, and the 元請 sees them (its rostered worker tapped them).
    assert held(api) == [("gate-01", 1, "time in the future"), ("gate-01", 2, "time in the future"),
                         ("gate-01", 3, "time past the correction deadline")]
    listed = {(h["reason"], h["reason_label"], h["taps"]) for h in prime.owner.ok("GET", "/held-taps")}
    assert listed == {("time in the future", "時刻が未来", 2),
                      ("time past the correction deadline", "事後補正の期限切れの日付", 1)}
    # A re-send is answered the same and kept once; the sweep does not pick them up as placeable.
    again = ingest.ingest_taps(api.ctx, "gate-01", [timed(1, datetime(2099, 12, 30, 8, 0, tzinfo=UTC))])
    assert again[0].outcome == "rejected" and len(held(api)) == 3
    assert ingest.release_all_placed(api.ctx) == 0 and len(held(api)) == 3


def test_an_unsynced_tap_with_a_clock_far_off_waits_for_a_reading_of_its_boot(api: Api) -> None:
    # A Pi without an RTC boots on fake-hwclock's saved time (here: months old) and taps before NTP.
    # Its own time is no evidence either way: held (the gate is told it is kept), then dated by the
    # first synchronised reading of the same boot, never rejected for a clock the gate did not trust.
    site_id, worker, prime = _gate_and_prime(api)
    stale = datetime(2026, 6, 1, 0, 0, tzinfo=UTC)
    acks = ingest.ingest_taps(api.ctx, "gate-01", [timed(1, stale, synced=False, boot="boot-2", mono_ms=60_000)])
    assert [(a.outcome, a.reason) for a in acks] == [("held", "clock not set")]
    assert stored(api) == [] and held(api) == [("gate-01", 1, "clock not set")]
    # NTP syncs: the next tap of the boot is a reading (wall and monotonic time together) 1 h later.
    acks = ingest.ingest_taps(api.ctx, "gate-01", [timed(2, NOW - timedelta(hours=2), boot="boot-2",
                                                         mono_ms=3_660_000)])
    assert acks[0].outcome == "recorded"
    assert [seq for seq, _, _ in stored(api)] == [1, 2] and held(api) == []
    with DbSession(api.ctx.store.engine) as s:
        first = s.scalars(select(t.Tap).where(t.Tap.seq == 1)).one()
        assert first.effective_at.replace(tzinfo=UTC) == NOW - timedelta(hours=3) and first.clock_trusted
    assert [(str(day), n) for _, day, n in records_of(api, worker["id"])] == [("2026-11-25", 2)]


def test_a_status_reading_dates_taps_held_for_their_clock_and_one_from_the_future_dates_nothing(
        api: Api) -> None:
    _, worker, _ = _gate_and_prime(api)
    stale = datetime(2026, 6, 1, 0, 0, tzinfo=UTC)
    ingest.ingest_taps(api.ctx, "gate-01", [timed(1, stale, synced=False, boot="boot-3", mono_ms=60_000)])

    def status(at: datetime) -> DeviceStatus:
        return DeviceStatus(device_id="gate-01", state="online", at=at, clock_synced=True, boot_id="boot-3",
                            mono_ms=3_660_000)

    # A "synchronised" clock in 2099 is no reading: it would carry the boot's taps there.
    devices.record_status(api.ctx, status(datetime(2099, 1, 1, tzinfo=UTC)))
    assert held(api) == [("gate-01", 1, "clock not set")] and stored(api) == []
    devices.record_status(api.ctx, status(NOW))
    assert held(api) == [] and [seq for seq, _, _ in stored(api)] == [1]
    with DbSession(api.ctx.store.engine) as s:
        assert s.scalars(select(t.Tap)).one().effective_at.replace(tzinfo=UTC) == NOW - timedelta(hours=1)
    assert [(str(day), n) for _, day, n in records_of(api, worker["id"])] == [("2026-11-25", 1)]


def test_a_reading_beyond_any_uptime_dates_nothing_and_breaks_nothing(api: Api) -> None:
    # Found by the chaos fuzzer: a status (or a tap) whose mono_ms lies 2^52..2^62 ms from a stored
    # tap's overflowed the re-dating; the status failed its whole ingest batch.
    _, worker, _ = _gate_and_prime(api)
    ingest.ingest_taps(api.ctx, "gate-01", [timed(1, NOW - timedelta(hours=2), synced=False, boot="b9", mono_ms=0)])
    huge = DeviceStatus(device_id="gate-01", state="online", at=NOW, clock_synced=True, boot_id="b9",
                        mono_ms=2**62)
    assert devices.record_status(api.ctx, huge) is True  # kept as the gate's state, not as a reading
    acks = ingest.ingest_taps(api.ctx, "gate-01", [timed(2, NOW, boot="b9", mono_ms=2**52)])
    assert [a.outcome for a in acks] == ["recorded"]
    with DbSession(api.ctx.store.engine) as s:
        first = s.scalars(select(t.Tap).where(t.Tap.seq == 1)).one()
        assert not first.clock_trusted and first.effective_at.replace(tzinfo=UTC) == NOW - timedelta(hours=2)


def test_a_reading_never_dates_a_tap_out_of_the_window(api: Api) -> None:
    # Found in review: a stored unsynchronised tap (its own time plausible) re-dated by a later reading
    # with a monotonic time 400 days on made a record of 2025-10-21, long past its deadline.
    _, worker, _ = _gate_and_prime(api)
    ingest.ingest_taps(api.ctx, "gate-01", [timed(1, NOW - timedelta(hours=1), synced=False, boot="x", mono_ms=0)])
    far = 400 * 24 * 3600 * 1000
    assert ingest.ingest_taps(api.ctx, "gate-01", [timed(2, NOW, boot="x", mono_ms=far)])[0].outcome == "recorded"
    # In one batch too: the reading comes with the tap it would date.
    ingest.ingest_taps(api.ctx, "gate-01", [timed(3, NOW - timedelta(hours=1), synced=False, boot="y", mono_ms=0),
                                            timed(4, NOW, boot="y", mono_ms=far)])
    with DbSession(api.ctx.store.engine) as s:
        kept = {x.seq: (x.effective_at.replace(tzinfo=UTC), x.clock_trusted) for x in s.scalars(select(t.Tap))}
    assert kept[1] == (NOW - timedelta(hours=1), False) and kept[3] == (NOW - timedelta(hours=1), False)
    assert [str(day) for _, day, _ in records_of(api, worker["id"])] == ["2026-11-25"]


def test_a_status_from_before_the_year_2000_is_no_reading(api: Api) -> None:
    # Found in review: a "synchronised" status dated 0001-01-02 became the gate's reference, and every
    # later batch with an unsynchronised tap of that boot failed as a whole (value_out_of_range).
    _gate_and_prime(api)
    ancient = DeviceStatus(device_id="gate-01", state="online", at=datetime(1, 1, 2, tzinfo=UTC), clock_synced=True,
                           boot_id="z", mono_ms=10**11)
    assert devices.record_status(api.ctx, ancient) is True
    acks = ingest.ingest_taps(api.ctx, "gate-01", [timed(1, NOW - timedelta(hours=1), synced=False, boot="z",
                                                         mono_ms=5)])
    assert [a.outcome for a in acks] == ["recorded"]
