"""能力評価 (CCUS skill levels 1-4): how far a worker's 就業日数 have come towards the next level.

A level is granted by an 能力評価実施団体 on three conditions: days of work recorded, days as 職長/班長,
and qualifications. Only the first two come from the gate, so this module answers "how many days
are still missing", never "the worker is level 3": the qualifications are checked by the body that
grants the level. Counting follows CCUS: only records valid for skill evaluation (能力評価に有効),
one day per calendar day however many sites (two sites on one day are one 就業日), and only days
booked under the trades the standard covers (the 職種 the evaluation is for). 215 days count as one
year (the standards write 645日(3年), 1,505日(7年), 2,150日(10年)).

The numbers, looked up in December 2026 (search, pages corpus; third-party summaries of the
国土交通省 能力評価基準, which differ per 分野):

- Most standards (e.g. ダクト, 運動施設, and the general summary at
  https://yumetas-office.com/2022/03/31/level-judgment/): level 2 645日 (3年); level 3 1,505日
  (7年) with 215日 (1年) as 職長 or 班長; level 4 2,150日 (10年)
  (https://shizuoka-kensetsukyoka.com/blog/detail/20210528000015).
- 鉄筋 (大分類 10): level 3 1,505日 with 645日 (3年) as 職長 or 班長; level 4 2,150日 with 645日 as
  職長 (https://constr-greenfile.com/ccustekkin/amp). Level 4's 職長 days are this module's default
  too: the general summaries above stop short of level 4's leader days, and 職長 645日 is the
  pattern of the standards that state it.
- 内装仕上 (大分類 43, 小分類 01 02 04 06 07 08 11 12 13 14): level 3 1,075日 (5年) with 645日 as
  職長・班長 (https://cla-kawasaki.com/archives/1757).
- CCUS also credits experience before the card (from the oldest registered qualification to the
  registration date, https://zenken-aichi.com/2024/06-03/29006.html). The gate does not know it:
  the counts here are the days recorded through GenbaGate, a floor, not the body's final figure.

Some standards ask for 1,720日 (8年) at level 3; none was found stated in the sources above, so no
row claims it. A standard that differs is one more ``Standard`` in ``STANDARDS``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from server.domain.roster import LEADER_POSITIONS

DAYS_PER_YEAR = 215  # the standards' year: 645日 = 3年, 2,150日 = 10年
TOP_LEVEL = 4
FOREMAN_POSITIONS = frozenset({"foreman", "foreman_safety"})  # 職長 (and 職長・安全衛生責任者); 班長 is not


class Leadership(StrEnum):
    """Which leader days a level asks for."""

    LEADER = "leader"  # 職長又は班長
    FOREMAN = "foreman"  # 職長 only


LEADERSHIP_LABELS = {Leadership.LEADER: "職長又は班長", Leadership.FOREMAN: "職長"}


@dataclass(frozen=True)
class Requirement:
    """What one level asks of the record: days of work, and days in a leader position."""

    level: int
    work_days: int
    leader_days: int = 0
    leadership: Leadership = Leadership.LEADER


@dataclass(frozen=True)
class Standard:
    """One 能力評価基準: the trades whose days it counts, and what levels 2-4 need.

    ``trades`` None: the default standard, for every trade without a row of its own; it counts the
    days booked under the evaluated trade's 大分類 (the 分野 is a family of trades)."""

    key: str
    name: str
    trades: frozenset[tuple[str, str]] | None
    requirements: tuple[Requirement, ...]
    source: str

    def requirement(self, level: int) -> Requirement | None:
        return next((r for r in self.requirements if r.level == level), None)

    def covers(self, trade: tuple[str, str] | None, evaluated: tuple[str, str] | None) -> bool:
        """Whether a day booked under ``trade`` counts when the worker is evaluated in ``evaluated``."""
        if trade is None:
            return False
        if self.trades is not None:
            return trade in self.trades
        return evaluated is None or trade[0] == evaluated[0]


DEFAULT = Standard(
    "default", "標準（多くの能力評価基準）", None,
    (Requirement(2, 645), Requirement(3, 1505, 215), Requirement(4, 2150, 645, Leadership.FOREMAN)),
    "https://yumetas-office.com/2022/03/31/level-judgment/",
)
STANDARDS: tuple[Standard, ...] = (
    Standard(
        "rebar", "鉄筋技能者", frozenset({("10", "01")}),
        (Requirement(2, 645), Requirement(3, 1505, 645), Requirement(4, 2150, 645, Leadership.FOREMAN)),
        "https://constr-greenfile.com/ccustekkin/amp",
    ),
    Standard(
        "interior", "内装仕上技能者",
        frozenset(("43", minor) for minor in ("01", "02", "04", "06", "07", "08", "11", "12", "13", "14")),
        (Requirement(2, 645), Requirement(3, 1075, 645), Requirement(4, 2150, 645, Leadership.FOREMAN)),
        "https://cla-kawasaki.com/archives/1757",
    ),
)


def standard_for(trade: tuple[str, str] | None) -> Standard:
    """The standard a worker evaluated in ``trade`` is measured against (the default when none is specific)."""
    if trade is not None:
        for s in STANDARDS:
            if s.trades is not None and trade in s.trades:
                return s
    return DEFAULT


@dataclass(frozen=True)
class CareerDay:
    """One attendance record as the count reads it."""

    work_day: date
    valid: bool
    position: str | None
    trade: tuple[str, str] | None


@dataclass(frozen=True)
class Tally:
    """Distinct calendar days: of work, as 職長 or 班長, as 職長."""

    work_days: int
    leader_days: int
    foreman_days: int

    def leader(self, kind: Leadership) -> int:
        return self.foreman_days if kind == Leadership.FOREMAN else self.leader_days


def tally(records: Iterable[CareerDay], standard: Standard, evaluated: tuple[str, str] | None) -> Tally:
    """Count what the standard counts: valid records under its trades, one per calendar day; a day is
    a leader day when any counted record that day has a leader 立場."""
    work: set[date] = set()
    leader: set[date] = set()
    foreman: set[date] = set()
    for r in records:
        if not r.valid or not standard.covers(r.trade, evaluated):
            continue
        work.add(r.work_day)
        if r.position in LEADER_POSITIONS:
            leader.add(r.work_day)
        if r.position in FOREMAN_POSITIONS:
            foreman.add(r.work_day)
    return Tally(len(work), len(leader), len(foreman))


def years(days: int) -> float:
    """Days as the standards' years (215 days each), to one decimal."""
    return round(days / DAYS_PER_YEAR, 1)


@dataclass(frozen=True)
class LevelProgress:
    """One level's day conditions against the tally: what is asked and what is still missing."""

    requirement: Requirement
    work_days_short: int
    leader_days_short: int

    @property
    def met(self) -> bool:
        """Both day conditions met (the level still needs its qualifications)."""
        return self.work_days_short == 0 and self.leader_days_short == 0


@dataclass(frozen=True)
class Progress:
    """A worker's days against a standard: every level's conditions, and the next level's when the
    current level is known."""

    standard: Standard
    tally: Tally
    current_level: int | None
    levels: tuple[LevelProgress, ...]

    @property
    def next_level(self) -> int | None:
        if self.current_level is None or self.current_level >= TOP_LEVEL:
            return None
        return self.current_level + 1

    @property
    def next(self) -> LevelProgress | None:
        level = self.next_level
        return next((p for p in self.levels if p.requirement.level == level), None)


def progress(records: Iterable[CareerDay], evaluated: tuple[str, str] | None, current_level: int | None) -> Progress:
    """The worker's days (``records``: its attendance records) towards each level of the standard for
    ``evaluated`` (the trade it is evaluated in); ``current_level``: its CCUS level, None when unknown
    to the reader (a personal item, not disclosed to it): then no "next level" is named."""
    if current_level is not None and not 1 <= current_level <= TOP_LEVEL:
        raise ValueError(f"a CCUS level is 1 to {TOP_LEVEL}, not {current_level}")
    standard = standard_for(evaluated)
    counted = tally(records, standard, evaluated)
    levels = tuple(
        LevelProgress(req, max(0, req.work_days - counted.work_days),
                      max(0, req.leader_days - counted.leader(req.leadership)))
        for req in standard.requirements
    )
    return Progress(standard, counted, current_level, levels)
