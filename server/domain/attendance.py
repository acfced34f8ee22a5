"""就業履歴: how taps at the gate become one attendance record per worker, site and work day.

Pure rules, no I/O: the ingest stores each raw tap (idempotently on device and seq), then hands
every tap of one worker, site and work day to ``build_record`` and stores what comes back. Because
the record is rebuilt from all of the day's taps, a re-sent or repeated tap can never add a
second record or move the exit; and because CCUS counts 就業日数 (and the 元請's site fee) as
distinct days with any record, the counts below follow from the same one-record-per-day rule.

Times stay aware datetimes throughout; the site's timezone (Asia/Tokyo unless configured) only
decides which calendar day a moment belongs to.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from server.domain.accounts import Actor, Role
from server.domain.roster import LEADER_POSITIONS, EntryFields, Validity
from server.domain.roster import validity as roster_validity
from server.domain.visibility import Visibility
from server.errors import Conflict, Forbidden, InvalidInput

__all__ = [
    "AttendanceDay",
    "DayLike",
    "DayRule",
    "Direction",
    "Tap",
    "Validity",
    "build_record",
    "build_records",
    "check_corrected_record",
    "check_correction",
    "check_may_decide",
    "check_may_submit",
    "check_correction_window",
    "corrected",
    "day_window",
    "parse_boundary",
    "correction_deadline",
    "count_leader_days",
    "count_work_days",
    "site_fee_days",
    "validity",
    "work_day",
]

JST = ZoneInfo("Asia/Tokyo")


class Direction(StrEnum):
    """What a gate was installed as: an entry gate, an exit gate, or one gate for both."""

    IN = "in"
    OUT = "out"
    AUTO = "auto"  # one reader for both ways: the first tap of the day enters, the last one leaves


def _require_aware(at: datetime) -> None:
    # A naive time has no day: 23:30 naive could be either side of midnight in JST.
    if at.tzinfo is None or at.utcoffset() is None:
        raise InvalidInput(
            "naive_time", ja="時刻にタイムゾーンがありません", en="the time has no UTC offset", at=at.isoformat()
        )


@dataclass(frozen=True)
class Tap:
    """One card touch as the server knows it after validation and clock correction.

    ``clock_trusted`` is False when the device clock was not synchronised and the server could not
    correct the time afterwards (no later sync on the same boot): such a tap still counts as
    presence, but its time, and even its day, may be wrong. ``worker_id`` is None for a card not
    yet linked to a worker; those taps are kept and attributed when the card is linked.
    """

    seq: int
    direction: Direction
    at: datetime
    clock_trusted: bool
    worker_id: int | None
    site_id: int

    def __post_init__(self) -> None:
        _require_aware(self.at)
        # Accept the wire's plain strings, but refuse anything that is not a gate direction.
        try:
            object.__setattr__(self, "direction", Direction(self.direction))
        except ValueError:
            raise InvalidInput(
                "unknown_direction",
                ja=f"ゲートの方向が不正です: {self.direction}（in / out / auto）",
                en=f"unknown gate direction {self.direction!r}",
                allowed=[d.value for d in Direction],
            ) from None


@dataclass(frozen=True)
class DayRule:
    """A site's setting for where one work day ends and the next begins.

    ``boundary`` is a local time of day: taps before it belong to the previous work day, so a
    night shift that crosses midnight stays on the day it started. A site chooses it between its
    latest night-shift exit and its earliest morning entry (04:00 unless set; a site whose night
    shift ends at 05:00 sets e.g. 06:00). ``min_exit_gap`` applies to ``auto`` gates only: a last
    tap closer than this to the first one is a double tap, not an exit.
    """

    boundary: time = time(4, 0)
    tz: ZoneInfo = JST
    min_exit_gap: timedelta = timedelta(minutes=10)

    def __post_init__(self) -> None:
        if self.boundary.tzinfo is not None:
            raise InvalidInput(
                "boundary_has_timezone",
                ja="日付の区切り時刻は現場の現地時刻で指定してください",
                en="the day boundary is a local time of day, without a timezone",
            )
        if self.min_exit_gap < timedelta(0):
            raise InvalidInput(
                "negative_exit_gap", ja="退場とみなす最小間隔が負です", en="the minimum exit gap is negative"
            )


def parse_boundary(text: str) -> time:
    """A site's day boundary as typed by its manager ("04:00", "6:30"): a local time on the minute."""
    try:
        hours, minutes = (int(part) for part in str(text).strip().split(":"))
        return time(hours, minutes)
    except ValueError:
        raise InvalidInput(
            "invalid_day_boundary",
            ja="日付の区切り時刻は HH:MM で指定してください（例: 04:00。夜勤が 05:00 に終わる現場は 06:00 など）",
            en="the day boundary is HH:MM, e.g. 04:00 (a site whose night shift ends at 05:00 uses e.g. 06:00)",
            value=str(text)[:20],
        ) from None


def parse_time_zone(text: str) -> ZoneInfo:
    """A site's time zone as an IANA name ("Asia/Tokyo"): where its work days begin and end and the
    zone every time shown about the site is printed in, with its offset. A site abroad (a Japanese
    contractor's site in another country) keeps its own; everything else is Asia/Tokyo."""
    name = str(text).strip()
    try:
        if not name or name.startswith("/") or ".." in name:
            raise ValueError(name)
        return ZoneInfo(name)
    except (ValueError, ZoneInfoNotFoundError):
        raise InvalidInput(
            "invalid_time_zone",
            ja="現場のタイムゾーンは IANA の名前で指定してください（例: Asia/Tokyo）",
            en="the site's time zone is an IANA name, e.g. Asia/Tokyo",
            value=name[:64],
        ) from None


def work_day(at: datetime, rule: DayRule) -> date:
    """The work day a moment belongs to: its local date, or the day before when before the boundary."""
    _require_aware(at)
    local = at.astimezone(rule.tz)
    if local.time() < rule.boundary:
        return local.date() - timedelta(days=1)
    return local.date()


def day_window(day: date, rule: DayRule) -> tuple[datetime, datetime]:
    """The moments a work day covers, [start, end): from its boundary to the next day's.

    Built in the site's timezone, so a DST change (not in Japan, but a configured zone may have
    one) gives a 23- or 25-hour day rather than a shifted one.
    """
    start = datetime.combine(day, rule.boundary, tzinfo=rule.tz)
    end = datetime.combine(day + timedelta(days=1), rule.boundary, tzinfo=rule.tz)
    return start, end


@dataclass(frozen=True)
class AttendanceDay:
    """One 就業履歴 as the taps say it (trade, position and validity come from the roster, later).

    ``entry_seq``/``exit_seq`` name the taps the times came from, so the record's history can show
    what the device said next to any approved correction.
    """

    worker_id: int | None
    site_id: int
    work_day: date
    entry_at: datetime | None
    exit_at: datetime | None
    entry_seq: int | None
    exit_seq: int | None
    tap_count: int
    clock_unverified: bool


def build_record(taps: Iterable[Tap], rule: DayRule) -> AttendanceDay:
    """The one record for all taps of one worker on one site and work day, however many there are.

    - Entry: the earliest tap that is not on an exit gate ("in" or "auto").
    - Exit: the latest "out" tap, or the last "auto" tap when it comes at least ``min_exit_gap``
      after the entry, whichever is later. An "in" tap never becomes an exit, so a worker who only
      passed the entry gate has no exit rather than a wrong one.
    - Identical taps (a re-delivery) are counted once; the ingest already dedupes on
      (device, seq), this only keeps the rule true for any caller.
    """
    unique = sorted(set(taps), key=lambda t: (t.at, t.seq))
    if not unique:
        raise InvalidInput("no_taps", ja="打刻がありません", en="a record needs at least one tap")
    first = unique[0]
    day = work_day(first.at, rule)
    for t in unique:
        if (t.worker_id, t.site_id) != (first.worker_id, first.site_id) or work_day(t.at, rule) != day:
            raise InvalidInput(
                "mixed_taps",
                ja="異なる技能者・現場・就業日の打刻は一つの就業履歴にできません",
                en="taps of different workers, sites or work days cannot make one record",
                seq=t.seq,
            )

    entry = next((t for t in unique if t.direction != Direction.OUT), None)
    exits = [t for t in unique if t.direction == Direction.OUT]
    autos = [t for t in unique if t.direction == Direction.AUTO]
    if autos and entry is not None:
        last = autos[-1]
        if last is not entry and last.at - entry.at >= rule.min_exit_gap:
            exits.append(last)
    exit_ = max(exits, key=lambda t: (t.at, t.seq), default=None)

    return AttendanceDay(
        worker_id=first.worker_id,
        site_id=first.site_id,
        work_day=day,
        entry_at=entry.at if entry else None,
        exit_at=exit_.at if exit_ else None,
        entry_seq=entry.seq if entry else None,
        exit_seq=exit_.seq if exit_ else None,
        tap_count=len(unique),
        clock_unverified=any(not t.clock_trusted for t in unique),
    )


def build_records(taps: Iterable[Tap], rule: DayRule) -> list[AttendanceDay]:
    """Group any taps by (worker, site, work day) and build one record per group, in day order.

    Taps of unlinked cards (worker None) are left out: a record needs a worker, and those taps are
    attributed when the card is linked.
    """
    groups: dict[tuple[int, int, date], list[Tap]] = {}
    for t in taps:
        if t.worker_id is not None:
            groups.setdefault((t.worker_id, t.site_id, work_day(t.at, rule)), []).append(t)
    return [build_record(groups[k], rule) for k in sorted(groups, key=lambda k: (k[2], k[0], k[1]))]


def _reason(code: str, ja: str, en: str) -> dict[str, str]:
    return {"code": code, "message": ja, "message_en": en}


def validity(
    record: AttendanceDay, roster_state: EntryFields | None, period: tuple[date, date], card_linked: bool
) -> Validity:
    """Whether the day counts for skill evaluation (能力評価), and every reason when it does not.

    ``roster_state`` is the roster entry in force on the work day (None: not on the roster);
    ``period`` is the site's 就業履歴蓄積期間, both ends included. An unverified clock makes the day
    invalid until corrected, because the device may have put the tap on the wrong day altogether.
    The record is still kept and shown: validity explains, it never deletes.
    """
    reasons: list[dict[str, str]] = []
    if not card_linked:
        reasons.append(
            _reason("card_not_linked", "カードが技能者に紐付けられていません", "the card is not linked to a worker")
        )
    if roster_state is None:
        reasons.append(
            _reason(
                "not_on_roster",
                "この現場の作業員名簿（施工体制技能者登録）に登録されていません",
                "the worker is not on this site's roster",
            )
        )
    else:
        reasons.extend(roster_validity(roster_state).reasons)
    start, end = period
    if not start <= record.work_day <= end:
        reasons.append(
            _reason(
                "outside_period",
                f"就業日が就業履歴蓄積期間（{start.isoformat()}〜{end.isoformat()}）の外です",
                f"the work day is outside the site's accumulation period ({start.isoformat()} to {end.isoformat()})",
            )
        )
    if record.clock_unverified:
        reasons.append(
            _reason(
                "clock_unverified",
                "入退場デバイスの時刻が未確認の打刻があります（事後補正で確認してください）",
                "a tap was taken with an unverified device clock (confirm by a correction)",
            )
        )
    return Validity(not reasons, tuple(reasons))


def correction_deadline(day: date) -> date:
    """The last day a correction (事後補正) may be submitted: the end of the month after the work day.

    参考資料5: 就労翌月末まで. The deadline is inclusive.
    """
    year, month = (day.year + 1, 1) if day.month == 12 else (day.year, day.month + 1)
    return date(year, month, calendar.monthrange(year, month)[1])


def check_correction_window(day: date, now: datetime, rule: DayRule) -> None:
    """A correction (事後補正) is after the fact: only for a work day that has begun, and until its
    deadline. A correction for a day ahead would put a work day (and a site-fee day) on record
    before anyone worked it. Refused saying which day or deadline, so the UI can show it."""
    start, _ = day_window(day, rule)
    if now < start:
        raise InvalidInput(
            "correction_day_not_begun",
            ja=f"まだ始まっていない就業日（{day.isoformat()}）の事後補正はできません",
            en=f"the work day {day.isoformat()} has not begun; a correction is only for days that have",
            work_day=day.isoformat(),
        )
    deadline = correction_deadline(day)
    if now.astimezone(rule.tz).date() > deadline:
        raise Conflict(
            "correction_deadline_passed",
            ja=f"事後補正の申請期限（就労翌月末: {deadline.isoformat()}）を過ぎています",
            en=f"the correction deadline (end of the month after the work day: {deadline.isoformat()}) has passed",
            deadline=deadline.isoformat(),
            work_day=day.isoformat(),
        )


def check_correction(day: date, entry_at: datetime | None, exit_at: datetime | None, rule: DayRule,
                     now: datetime) -> None:
    """A correction's times must describe that work day: at least one of them, both inside the day's
    window (boundary to boundary) and not later than now (it says what happened), and the exit after
    the entry."""
    if entry_at is None and exit_at is None:
        raise InvalidInput(
            "correction_needs_time",
            ja="入場時刻・退場時刻の少なくとも一方を入力してください",
            en="give an entry time, an exit time, or both",
        )
    start, end = day_window(day, rule)
    for label_ja, label_en, at in (("入場", "entry", entry_at), ("退場", "exit", exit_at)):
        if at is None:
            continue
        _require_aware(at)
        if not start <= at < end:
            raise InvalidInput(
                "correction_outside_day",
                ja=f"{label_ja}時刻が就業日 {day.isoformat()} の範囲"
                f"（{start.strftime('%m/%d %H:%M')}〜{end.strftime('%m/%d %H:%M')}）の外です",
                en=f"the {label_en} time is outside work day {day.isoformat()}"
                f" ({start.isoformat()} to {end.isoformat()})",
                work_day=day.isoformat(),
            )
        if at > now:
            raise InvalidInput(
                "correction_time_in_future",
                ja=f"{label_ja}時刻が現在より後です（事後補正は起きたことの記録です）",
                en=f"the {label_en} time is later than now; a correction records what happened",
                work_day=day.isoformat(),
            )
    if entry_at is not None and exit_at is not None and exit_at <= entry_at:
        raise InvalidInput(
            "exit_before_entry",
            ja="退場時刻は入場時刻より後にしてください",
            en="the exit time must be after the entry time",
        )


def corrected(
    record: AttendanceDay | None, worker_id: int, site_id: int, day: date,
    entry_at: datetime | None, exit_at: datetime | None,
) -> AttendanceDay:
    """The record after an approved correction: each time given replaces the device's; a time not
    given stays as the device said. A corrected day's clock is confirmed by the 元請's approval.
    Without a device record this is 直接入力: the day exists by the correction alone."""
    base = record or AttendanceDay(worker_id, site_id, day, None, None, None, None, 0, False)
    return AttendanceDay(
        worker_id=base.worker_id,
        site_id=base.site_id,
        work_day=base.work_day,
        entry_at=entry_at or base.entry_at,
        exit_at=exit_at or base.exit_at,
        entry_seq=None if entry_at else base.entry_seq,
        exit_seq=None if exit_at else base.exit_seq,
        tap_count=base.tap_count,
        clock_unverified=False,
    )


def check_corrected_record(record: AttendanceDay) -> None:
    """The record a correction would leave must still make sense: an exit after the entry (a
    correction of the entry alone is checked against the exit the gate recorded, and so on)."""
    if record.entry_at is not None and record.exit_at is not None and record.exit_at <= record.entry_at:
        raise InvalidInput(
            "correction_inverts_record",
            ja=f"補正後の退場時刻（{record.exit_at.astimezone(JST).strftime('%H:%M')}）が"
            f"入場時刻（{record.entry_at.astimezone(JST).strftime('%H:%M')}）より前になります",
            en="after this correction the exit would not be after the entry",
        )


class DayLike(Protocol):
    """What the counts need of a record: an AttendanceDay, or a stored row with these columns."""

    @property
    def worker_id(self) -> int | None: ...
    @property
    def site_id(self) -> int: ...
    @property
    def work_day(self) -> date: ...


def count_work_days(records: Iterable[DayLike]) -> int:
    """就業日数: distinct (worker, day) pairs with any record; for one worker, distinct days.

    Two sites on the same day are one day, however many taps. The caller passes the records that
    count (e.g. only valid ones for skill evaluation); unattributed records (worker None) never do.
    """
    return len({(r.worker_id, r.work_day) for r in records if r.worker_id is not None})


def count_leader_days(records: Iterable[tuple[DayLike, str | None]]) -> int:
    """Days as 職長/班長, counted separately for skill levels 3 and 4.

    Each record comes with the 立場 of the roster entry in force that day (the caller joins them).
    A day counts once if the worker was a leader on any site that day.
    """
    return len(
        {
            (r.worker_id, r.work_day)
            for r, position in records
            if r.worker_id is not None and position in LEADER_POSITIONS
        }
    )


def site_fee_days(records: Iterable[DayLike]) -> int:
    """Worker-days the 元請 is charged for: one per worker, site and day with a record.

    Unlike ``count_work_days`` the site matters: the fee is per site, so one worker on two sites on
    the same day is charged on each.
    """
    return len({(r.worker_id, r.site_id, r.work_day) for r in records if r.worker_id is not None})


def check_may_submit(actor: Actor, worker_id: int, employer_id: int, site_id: int) -> None:
    """参考資料5: the worker, or their employer (所属事業者), asks for a correction; nobody else.
    A 現場管理者 of the employer only for the sites bound to its ID."""
    if actor.role == Role.WORKER and actor.worker_id == worker_id:
        return
    if actor.is_company and actor.company_id == employer_id and actor.bound_to(site_id):
        return
    raise Forbidden(
        "correction_not_allowed",
        ja="事後補正を申請できるのは技能者本人または所属事業者です",
        en="only the worker or their employer may ask for a correction",
    )


def check_may_decide(actor: Actor, prime_id: int, site_id: int) -> None:
    """The site's 元請 approves or rejects (事業者責任者, 階層管理者, or a 現場管理者 bound to the site)."""
    if Visibility(actor).is_prime(site_id, prime_id):
        return
    raise Forbidden(
        "correction_prime_only",
        ja="事後補正の承認・否認は元請（この現場の担当者）のみが行えます",
        en="only the site's prime contractor approves or rejects corrections",
    )
