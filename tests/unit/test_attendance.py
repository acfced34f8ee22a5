"""就業履歴: taps at the gate become one record per worker, site and work day.

The flows of a site day, told with the pure rules of server/domain/attendance.py: a morning entry
and an evening exit through a gate pair, one gate for both ways, a night shift across midnight,
double taps, the 事後補正 deadline (就労翌月末まで) and why a day does not count.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from server.domain.attendance import (
    AttendanceDay,
    DayRule,
    Direction,
    Tap,
    build_record,
    build_records,
    check_correction_window,
    correction_deadline,
    count_leader_days,
    count_work_days,
    day_window,
    site_fee_days,
    validity,
    work_day,
)
from server.domain.roster import EntryFields
from server.errors import Conflict, InvalidInput

JST = ZoneInfo("Asia/Tokyo")
RULE = DayRule()  # 04:00 JST, 10 minutes between an auto entry and exit
SITE = 7
WORKER = 42
DAIKU = ("大工", "型枠大工")


def jst(day: str, hhmm: str) -> datetime:
    return datetime.fromisoformat(f"{day}T{hhmm}:00+09:00")


def tap(seq: int, direction: str, at: datetime, *, trusted: bool = True, worker: int | None = WORKER,
        site: int = SITE) -> Tap:
    return Tap(seq=seq, direction=Direction(direction), at=at, clock_trusted=trusted, worker_id=worker, site_id=site)


def record(day: str, *, worker: int = WORKER, site: int = SITE, trusted: bool = True) -> AttendanceDay:
    return build_record([tap(1, "in", jst(day, "08:00"), worker=worker, site=site, trusted=trusted)], RULE)


# --- a day at the gate -----------------------------------------------------------------------


def test_morning_entry_and_evening_exit_through_a_gate_pair() -> None:
    rec = build_record([
        tap(1, "in", jst("2026-05-11", "07:52")),
        tap(2, "out", jst("2026-05-11", "12:01")),  # out for lunch
        tap(3, "in", jst("2026-05-11", "12:58")),
        tap(4, "out", jst("2026-05-11", "17:35")),
    ], RULE)

    assert rec.work_day == date(2026, 5, 11)
    assert (rec.entry_at, rec.entry_seq) == (jst("2026-05-11", "07:52"), 1)
    assert (rec.exit_at, rec.exit_seq) == (jst("2026-05-11", "17:35"), 4)
    assert rec.tap_count == 4
    assert not rec.clock_unverified
    assert (rec.worker_id, rec.site_id) == (WORKER, SITE)


def test_an_entry_gate_tap_never_becomes_an_exit() -> None:
    """Only the entry gate was passed (the exit gate was down): no exit, rather than a wrong one."""
    rec = build_record([tap(1, "in", jst("2026-05-11", "07:50")), tap(2, "in", jst("2026-05-11", "17:30"))], RULE)

    assert rec.entry_seq == 1
    assert rec.exit_at is None and rec.exit_seq is None


def test_only_an_exit_tap_gives_an_exit_without_entry() -> None:
    rec = build_record([tap(9, "out", jst("2026-05-11", "17:30"))], RULE)

    assert (rec.entry_at, rec.exit_seq) == (None, 9)


def test_one_gate_for_both_ways_pairs_the_first_and_last_tap() -> None:
    rec = build_record([
        tap(1, "auto", jst("2026-05-11", "08:00")),
        tap(2, "auto", jst("2026-05-11", "12:00")),
        tap(3, "auto", jst("2026-05-11", "17:00")),
    ], RULE)

    assert (rec.entry_seq, rec.exit_seq) == (1, 3)
    assert rec.exit_at == jst("2026-05-11", "17:00")


def test_an_auto_tap_right_after_entering_is_a_double_tap_not_an_exit() -> None:
    rec = build_record([tap(1, "auto", jst("2026-05-11", "08:00")), tap(2, "auto", jst("2026-05-11", "08:04"))], RULE)

    assert rec.entry_seq == 1 and rec.exit_at is None
    assert rec.tap_count == 2


def test_the_auto_exit_gap_is_a_site_setting() -> None:
    taps = [tap(1, "auto", jst("2026-05-11", "08:00")), tap(2, "auto", jst("2026-05-11", "08:04"))]

    assert build_record(taps, DayRule(min_exit_gap=timedelta(minutes=3))).exit_seq == 2
    assert build_record(taps, DayRule(min_exit_gap=timedelta(minutes=4))).exit_seq == 2  # the gap is inclusive
    assert build_record(taps, DayRule(min_exit_gap=timedelta(minutes=5))).exit_seq is None


def test_a_single_auto_tap_is_an_entry_only() -> None:
    rec = build_record([tap(1, "auto", jst("2026-05-11", "08:00"))], RULE)

    assert (rec.entry_seq, rec.exit_seq, rec.tap_count) == (1, None, 1)


def test_repeated_taps_at_the_same_moment_make_neither_an_exit_nor_a_second_record() -> None:
    at = jst("2026-05-11", "08:00")
    taps = [tap(1, "auto", at), tap(2, "auto", at), tap(3, "auto", at)]

    records = build_records(taps, RULE)

    assert len(records) == 1
    assert records[0].entry_seq == 1 and records[0].exit_at is None


def test_a_redelivered_tap_counts_once() -> None:
    """At-least-once delivery: the same tap may arrive twice after a crash between commit and Ack."""
    morning, evening = tap(1, "in", jst("2026-05-11", "07:50")), tap(2, "out", jst("2026-05-11", "17:30"))

    rec = build_record([morning, evening, morning, evening], RULE)

    assert rec.tap_count == 2
    assert (rec.entry_seq, rec.exit_seq) == (1, 2)


def test_taps_of_a_day_build_one_record_per_worker_and_site() -> None:
    other = WORKER + 1
    taps = [
        tap(1, "in", jst("2026-05-11", "07:50")),
        tap(2, "in", jst("2026-05-11", "07:51"), worker=other),
        tap(3, "in", jst("2026-05-11", "07:51")),  # double tap
        tap(4, "out", jst("2026-05-11", "17:30"), worker=other),
        tap(5, "out", jst("2026-05-11", "17:31")),
        tap(6, "in", jst("2026-05-12", "07:49")),
        tap(7, "in", jst("2026-05-11", "07:55"), worker=None),  # a card not linked yet: kept aside
    ]

    records = build_records(taps, RULE)

    assert [(r.worker_id, r.work_day, r.entry_seq, r.exit_seq) for r in records] == [
        (WORKER, date(2026, 5, 11), 1, 5),
        (other, date(2026, 5, 11), 2, 4),
        (WORKER, date(2026, 5, 12), 6, None),
    ]


def test_a_record_is_built_from_one_worker_site_and_day_only() -> None:
    with pytest.raises(InvalidInput) as err:
        build_record([tap(1, "in", jst("2026-05-11", "08:00")), tap(2, "in", jst("2026-05-12", "08:00"))], RULE)
    assert err.value.code == "mixed_taps"
    with pytest.raises(InvalidInput) as err:
        build_record([tap(1, "in", jst("2026-05-11", "08:00")), tap(2, "in", jst("2026-05-11", "09:00"), site=8)],
                     RULE)
    assert err.value.code == "mixed_taps"
    with pytest.raises(InvalidInput) as err:
        build_record([], RULE)
    assert err.value.code == "no_taps"


# --- the work day and night shifts ---------------------------------------------------------


def test_a_tap_before_the_day_boundary_belongs_to_the_previous_day() -> None:
    assert work_day(jst("2026-05-12", "03:59"), RULE) == date(2026, 5, 11)
    assert work_day(jst("2026-05-12", "04:00"), RULE) == date(2026, 5, 12)
    assert work_day(jst("2026-05-12", "00:00"), RULE) == date(2026, 5, 11)


def test_the_work_day_is_the_sites_local_day_whatever_offset_the_device_sent() -> None:
    """23:30 UTC on the 11th is 08:30 JST on the 12th."""
    at = datetime(2026, 5, 11, 23, 30, tzinfo=ZoneInfo("UTC"))

    assert work_day(at, RULE) == date(2026, 5, 12)
    assert work_day(at, DayRule(tz=ZoneInfo("UTC"))) == date(2026, 5, 11)


def test_a_night_shift_from_20_00_to_05_00_stays_one_record_on_the_start_day() -> None:
    """The site's night shift ends at 05:00, so it sets its day boundary after that (06:00)."""
    night_site = DayRule(boundary=time(6, 0))
    taps = [
        tap(1, "in", jst("2026-05-11", "19:55")),
        tap(2, "out", jst("2026-05-12", "00:30")),  # a break across midnight
        tap(3, "in", jst("2026-05-12", "01:15")),
        tap(4, "out", jst("2026-05-12", "05:05")),
    ]

    records = build_records(taps, night_site)

    assert len(records) == 1
    rec = records[0]
    assert rec.work_day == date(2026, 5, 11)
    assert (rec.entry_at, rec.exit_at) == (jst("2026-05-11", "19:55"), jst("2026-05-12", "05:05"))


def test_a_night_shift_on_one_auto_gate_pairs_across_midnight() -> None:
    rec = build_record([tap(1, "auto", jst("2026-05-11", "20:00")), tap(2, "auto", jst("2026-05-12", "03:30"))], RULE)

    assert rec.work_day == date(2026, 5, 11)
    assert (rec.entry_seq, rec.exit_seq) == (1, 2)


def test_with_the_default_boundary_an_exit_after_04_00_falls_on_the_next_day() -> None:
    """Why the boundary is a site setting: 04:00 splits a shift that ends at 05:00."""
    records = build_records([tap(1, "in", jst("2026-05-11", "20:00")), tap(2, "out", jst("2026-05-12", "05:00"))],
                            RULE)

    assert [r.work_day for r in records] == [date(2026, 5, 11), date(2026, 5, 12)]


def test_naive_times_and_unknown_directions_are_refused() -> None:
    with pytest.raises(InvalidInput) as err:
        tap(1, "in", datetime(2026, 5, 11, 8, 0))
    assert err.value.code == "naive_time"
    with pytest.raises(InvalidInput) as err:
        Tap(seq=1, direction="sideways", at=jst("2026-05-11", "08:00"), clock_trusted=True,  # type: ignore[arg-type]
            worker_id=WORKER, site_id=SITE)
    assert err.value.code == "unknown_direction"
    plain = Tap(seq=1, direction="out", at=jst("2026-05-11", "08:00"), clock_trusted=True,  # type: ignore[arg-type]
                worker_id=WORKER, site_id=SITE)
    assert plain.direction is Direction.OUT


def test_an_uncorrectable_clock_flags_the_record() -> None:
    rec = build_record([
        tap(1, "in", jst("2026-05-11", "08:00")),
        tap(2, "out", jst("2026-05-11", "17:00"), trusted=False),
    ], RULE)

    assert rec.clock_unverified
    assert rec.exit_seq == 2  # still recorded: presence is a fact, only the time is in doubt


# --- validity ----------------------------------------------------------------------------------

PERIOD = (date(2026, 4, 1), date(2027, 3, 31))
FULL = EntryFields(trade=DAIKU, position="general")


def _codes(rec: AttendanceDay, roster: EntryFields | None = FULL, period: tuple[date, date] = PERIOD,
           card_linked: bool = True) -> list[str]:
    v = validity(rec, roster, period, card_linked)
    assert v.valid == (not v.reasons)
    for r in v.reasons:
        assert r["message"] and r["message_en"]
    return [r["code"] for r in v.reasons]


def test_a_complete_day_is_valid() -> None:
    v = validity(record("2026-05-11"), FULL, PERIOD, True)

    assert v.valid and v.reasons == ()


def test_each_reason_a_day_does_not_count() -> None:
    rec = record("2026-05-11")

    assert _codes(rec, card_linked=False) == ["card_not_linked"]
    assert _codes(rec, roster=None) == ["not_on_roster"]
    assert _codes(rec, roster=EntryFields(position="general")) == ["no_trade"]
    assert _codes(rec, roster=EntryFields(trade=DAIKU)) == ["no_position"]
    assert _codes(rec, period=(date(2026, 6, 1), date(2026, 12, 31))) == ["outside_period"]
    assert _codes(record("2026-05-11", trusted=False)) == ["clock_unverified"]


def test_all_reasons_are_listed_together_in_japanese_and_english() -> None:
    rec = record("2026-05-11", trusted=False)

    v = validity(rec, EntryFields(), (date(2026, 6, 1), date(2026, 12, 31)), False)

    assert not v.valid
    assert [r["code"] for r in v.reasons] == [
        "card_not_linked", "no_trade", "no_position", "outside_period", "clock_unverified"
    ]
    assert "就業履歴蓄積期間" in v.reasons[3]["message"]


def test_the_accumulation_period_includes_both_ends() -> None:
    assert _codes(record("2026-04-01")) == []
    assert _codes(record("2027-03-31")) == []
    assert _codes(record("2027-04-01")) == ["outside_period"]


# --- 事後補正 deadline: 就労翌月末まで -----------------------------------------------------------


@pytest.mark.parametrize(("day", "deadline"), [
    (date(2026, 1, 31), date(2026, 2, 28)),
    (date(2028, 1, 31), date(2028, 2, 29)),  # leap year
    (date(2026, 1, 1), date(2026, 2, 28)),
    (date(2026, 12, 15), date(2027, 1, 31)),
    (date(2026, 12, 31), date(2027, 1, 31)),
    (date(2026, 3, 31), date(2026, 4, 30)),
    (date(2026, 11, 30), date(2026, 12, 31)),
])
def test_the_correction_deadline_is_the_end_of_the_next_month(day: date, deadline: date) -> None:
    assert correction_deadline(day) == deadline


def _at(day: date, hh: int = 12) -> datetime:
    return datetime.combine(day, time(hh), tzinfo=RULE.tz)


def test_a_correction_on_the_deadline_is_accepted_and_the_day_after_refused() -> None:
    check_correction_window(date(2026, 12, 20), _at(date(2027, 1, 31)), RULE)

    with pytest.raises(Conflict) as err:
        check_correction_window(date(2026, 12, 20), _at(date(2027, 2, 1)), RULE)

    assert err.value.code == "correction_deadline_passed"
    assert err.value.details["deadline"] == "2027-01-31"
    assert "2027-01-31" in err.value.message_ja
    assert isinstance(err.value, Conflict)


def test_a_correction_only_for_a_day_that_has_begun() -> None:
    day = date(2026, 12, 20)
    start, _ = day_window(day, RULE)
    check_correction_window(day, start, RULE)  # the day's first moment: it has begun
    with pytest.raises(InvalidInput) as err:
        check_correction_window(day, start - timedelta(seconds=1), RULE)
    assert err.value.code == "correction_day_not_begun"
    assert "2026-12-20" in err.value.message_ja


# --- 就業日数 and the site fee -------------------------------------------------------------------


def test_work_days_are_distinct_days_with_any_record() -> None:
    records = [
        record("2026-05-11"),
        record("2026-05-11", site=SITE + 1),  # a second site the same day is the same day
        record("2026-05-12"),
    ]

    assert count_work_days(records) == 2
    assert site_fee_days(records) == 3  # but each site is charged for its worker-day


def test_records_rebuilt_from_repeated_taps_count_one_day() -> None:
    at = jst("2026-05-11", "08:00")
    records = build_records([tap(i, "in", at + timedelta(seconds=i)) for i in range(5)], RULE)

    assert count_work_days(records) == 1
    assert site_fee_days(records) == 1


def test_days_as_foreman_or_subforeman_are_counted_separately() -> None:
    days = [
        (record("2026-05-11"), "foreman"),
        (record("2026-05-11", site=SITE + 1), "general"),  # leader on one site that day is enough
        (record("2026-05-12"), "subforeman"),
        (record("2026-05-13"), "general"),
        (record("2026-05-14"), None),
    ]

    assert count_work_days(r for r, _ in days) == 4
    assert count_leader_days(days) == 2


def test_work_days_of_several_workers_are_worker_days() -> None:
    assert count_work_days([record("2026-05-11"), record("2026-05-11", worker=WORKER + 1)]) == 2
