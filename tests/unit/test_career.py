"""能力評価: a worker's days towards the next CCUS level, counted as CCUS counts them (valid records only,
one day per calendar day across sites, leader days apart), against the standard of the worker's trade."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from server.domain.career import (
    DAYS_PER_YEAR,
    DEFAULT,
    CareerDay,
    Leadership,
    progress,
    standard_for,
    tally,
    years,
)

TOBI = ("06", "01")  # とび工: no standard of its own here, the default
TOBI_OTHER = ("06", "02")  # another とび工 小分類: the same 大分類
DENKI = ("09", "01")
REBAR = ("10", "01")
INTERIOR = ("43", "07")  # 床張り工
START = date(2020, 4, 1)


def days(n: int, *, trade: tuple[str, str] = TOBI, position: str | None = "general", valid: bool = True,
         start: date = START) -> list[CareerDay]:
    return [CareerDay(start + timedelta(days=i), valid, position, trade) for i in range(n)]


def test_three_years_of_215_days_make_level_two_and_nothing_is_missing_on_the_645th_day() -> None:
    assert DAYS_PER_YEAR == 215 and years(645) == 3.0 and years(1505) == 7.0 and years(2150) == 10.0
    almost = progress(days(644), TOBI, current_level=1)
    assert almost.next_level == 2 and almost.next is not None
    assert (almost.next.work_days_short, almost.next.leader_days_short, almost.next.met) == (1, 0, False)
    done = progress(days(645), TOBI, current_level=1)
    assert done.next is not None and done.next.met and done.tally.work_days == 645


def test_two_sites_on_one_day_are_one_work_day_and_invalid_records_do_not_count() -> None:
    morning = days(10)
    other_site_same_days = days(10, position="foreman")
    not_valid = days(5, valid=False, start=START + timedelta(days=100))
    counted = tally([*morning, *other_site_same_days, *not_valid], DEFAULT, TOBI)
    assert (counted.work_days, counted.leader_days, counted.foreman_days) == (10, 10, 10)


def test_level_three_needs_1505_days_and_a_year_as_foreman_or_subforeman() -> None:
    records = days(1300) + days(205, position="subforeman", start=START + timedelta(days=1300))
    p = progress(records, TOBI, current_level=2)
    assert p.next_level == 3 and p.next is not None
    assert p.tally.work_days == 1505 and p.tally.leader_days == 205
    assert (p.next.work_days_short, p.next.leader_days_short) == (0, 10)
    more = records + days(10, position="foreman", start=START + timedelta(days=1505))
    assert progress(more, TOBI, current_level=2).next.met  # type: ignore[union-attr]


def test_level_four_counts_only_days_as_foreman_not_as_subforeman() -> None:
    records = days(1500) + days(650, position="subforeman", start=START + timedelta(days=1500))
    p = progress(records, TOBI, current_level=3)
    assert p.next is not None and p.next.requirement.leadership == Leadership.FOREMAN
    assert p.tally.work_days == 2150 and p.tally.foreman_days == 0
    assert (p.next.work_days_short, p.next.leader_days_short) == (0, 645)
    as_foreman = days(1500) + days(650, position="foreman_safety", start=START + timedelta(days=1500))
    assert progress(as_foreman, TOBI, current_level=3).next.met  # type: ignore[union-attr]


def test_the_rebar_standard_asks_three_years_as_leader_for_level_three() -> None:
    assert standard_for(REBAR).name == "鉄筋技能者"
    p = progress(days(1505, trade=REBAR) + days(300, trade=REBAR, position="foreman", start=date(2025, 1, 1)),
                 REBAR, current_level=2)
    assert p.next is not None and p.next.requirement.leader_days == 645
    assert p.next.leader_days_short == 345 and p.next.work_days_short == 0


def test_the_interior_finishing_standard_asks_five_years_for_level_three() -> None:
    assert standard_for(INTERIOR).name == "内装仕上技能者" and standard_for(("43", "03")) is DEFAULT
    p = progress(days(1075, trade=INTERIOR), INTERIOR, current_level=2)
    assert p.next is not None and p.next.work_days_short == 0 and p.next.leader_days_short == 645


def test_only_days_in_the_evaluated_trades_family_count() -> None:
    records = days(100, trade=TOBI) + days(50, trade=TOBI_OTHER, start=date(2021, 1, 1)) + days(
        70, trade=DENKI, start=date(2022, 1, 1)) + [CareerDay(date(2023, 1, 1), True, "foreman", None)]
    assert tally(records, DEFAULT, TOBI).work_days == 150
    assert tally(records, DEFAULT, DENKI).work_days == 70
    assert tally(records, DEFAULT, None).work_days == 220  # no trade to evaluate: every day with a trade
    assert tally(records, standard_for(REBAR), REBAR).work_days == 0


def test_every_level_is_listed_and_no_next_level_is_named_when_the_current_level_is_not_known() -> None:
    p = progress(days(700), TOBI, current_level=None)
    assert p.next_level is None and p.next is None
    assert [(lp.requirement.level, lp.work_days_short, lp.met) for lp in p.levels] == [
        (2, 0, True), (3, 805, False), (4, 1450, False)]


def test_a_level_four_worker_has_no_next_level_and_a_level_outside_one_to_four_is_refused() -> None:
    assert progress(days(3000), TOBI, current_level=4).next_level is None
    with pytest.raises(ValueError):
        progress([], TOBI, current_level=5)
