"""A tap arriving at the server: whether it is accepted, and when it happened. Pure, no I/O.

The gate's wall clock is trusted only when it was synchronised; a Pi has no RTC, so a tap taken
before NTP sync carries the boot's monotonic time instead, and one synchronised reading of the same
boot (a later tap or status: wall time and monotonic time together) dates it exactly:
``reading.at - (reading.mono_ms - tap.mono_ms)``. That formula lives here once (``redate``); the
ingest applies it to a batch's own taps and the store to taps kept from earlier batches.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from server.domain.attendance import DayRule, correction_deadline, work_day

# A gate clock outside these is broken, not late: refused with a reason rather than stored.
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)
MAX_MONO_MS = 2**53  # JSON-safe; 285,000 years of uptime


@dataclass(frozen=True)
class GateRecord:
    """What the server knows of the gate a tap came from (None: not known at all)."""

    retired: bool
    placed: bool  # on a site


UNKNOWN_DEVICE = "unknown device"
NOT_PLACED = "device not placed on a site"
# Refusals the 元請 can fix by registering or placing the gate. The gate told the worker the tap was
# recorded; such a tap is kept (held) and becomes a record when the gate is placed, never refused.
HOLDABLE = frozenset({UNKNOWN_DEVICE, NOT_PLACED})


def refusal(topic_device_id: str, body_device_id: str, gate: GateRecord | None, at: datetime,
            mono_ms: int) -> str | None:
    """Why a tap cannot be stored as a tap of a site, or None. The site is never taken from the tap:
    it is the gate's. A reason in HOLDABLE means: keep it until the gate is placed (``is_held``)."""
    if body_device_id != topic_device_id:
        return "device_id in the body differs from the topic"
    if not EARLIEST <= at <= LATEST or mono_ms > MAX_MONO_MS:
        return "time out of range"  # a broken clock: stored, it would break every day it touches
    if gate is None:
        return UNKNOWN_DEVICE
    if gate.retired:
        return "device retired"
    if not gate.placed:
        return NOT_PLACED
    return None


def is_held(reason: str | None) -> bool:
    """Whether a refused tap is answered ``held``: kept until something the server waits for happens
    (its gate registered or placed: HOLDABLE; a synchronised reading of its boot: CLOCK_UNSET)."""
    return reason in HOLDABLE or reason == CLOCK_UNSET


# -- the time window ---------------------------------------------------------------------------------
# A tap's time decides its work day, and a work day can be changed only until its 事後補正 deadline
# (the end of the next month): a tap dated later than the server's now (beyond a skew for two NTP
# clocks and the trip) or before that deadline would write a day nobody may correct any more, or one
# that has not happened. Such a tap is refused with the reason and kept for the 元請 (held_taps), who
# can enter the day by a correction while it is open. A gate clock that was not synchronised is no
# evidence either way: its tap waits (held) for a synchronised reading of the same boot to date it.
TOO_NEW = "time in the future"
TOO_OLD = "time past the correction deadline"
CLOCK_UNSET = "clock not set"
MAX_AHEAD = timedelta(minutes=10)

REASON_JA = {
    UNKNOWN_DEVICE: "未登録のゲート",
    NOT_PLACED: "現場に配置されていないゲート",
    TOO_NEW: "時刻が未来",
    TOO_OLD: "事後補正の期限切れの日付",
    CLOCK_UNSET: "ゲートの時刻が未設定（時刻同期待ち）",
}


def plausible_reading(at: datetime, mono_ms: int, now: datetime) -> bool:
    """Whether a synchronised clock reading (a status) may date other taps: not ahead of the server's
    clock beyond the skew (a reading dated 2099 would carry every tap of its boot there). An old one
    is fine: a retained status read after a restart is a true reading of its moment."""
    return EARLIEST <= at <= now + MAX_AHEAD and mono_ms <= MAX_MONO_MS


def time_refusal(at: datetime, trusted: bool, now: datetime, rule: DayRule) -> str | None:
    """Why a tap's (effective) time cannot make a work day of a site with ``rule``, or None."""
    if at > now + MAX_AHEAD:
        outside = TOO_NEW
    elif now.astimezone(rule.tz).date() > correction_deadline(work_day(at, rule)):
        outside = TOO_OLD
    else:
        return None
    return outside if trusted else CLOCK_UNSET


@dataclass(frozen=True)
class ClockReading:
    """A synchronised reading of one boot's clock: wall time and monotonic time together."""

    boot_id: str
    at: datetime
    mono_ms: int

    def newer_than(self, other: ClockReading | None) -> bool:
        """Whether this reading replaces ``other`` as the gate's reference: another boot always
        (the gate rebooted), the same boot when later (NTP may have slewed since)."""
        return other is None or other.boot_id != self.boot_id or self.mono_ms > other.mono_ms


MAX_UPTIME = timedelta(days=3660)  # ten years of one boot: a gap beyond is corrupt or forged, not a clock


def redate(reading: ClockReading, mono_ms: int) -> datetime | None:
    """When a tap of the reading's boot happened, from its monotonic time; None when the gap is
    beyond any uptime (it would also overflow a datetime): that tap cannot be dated by this reading."""
    gap = reading.mono_ms - mono_ms
    if abs(gap) > MAX_UPTIME / timedelta(milliseconds=1):
        return None
    try:
        return reading.at - timedelta(milliseconds=gap)
    except OverflowError:  # a reading near year 1 or 9999: no date of this world
        return None


def redate_within(reading: ClockReading, mono_ms: int, now: datetime, rule: DayRule) -> datetime | None:
    """``redate``, when the result lies in the time window (``time_refusal``); else None: a reading
    never moves a tap to a day nobody may correct or that has not come (the tap keeps its own time,
    unverified)."""
    dated = redate(reading, mono_ms)
    if dated is None or time_refusal(dated, True, now, rule) is not None:
        return None
    return dated


def tap_time(reference: ClockReading | None, at: datetime, clock_synced: bool, boot_id: str,
             mono_ms: int, now: datetime, rule: DayRule) -> tuple[datetime, bool]:
    """(effective time, trusted) of a new tap: its own time when its clock was synchronised, else
    re-dated from the gate's reference of the same boot, else its own time, untrusted (re-dated
    later if a reading of that boot arrives)."""
    if clock_synced:
        return at, True
    if reference is not None and reference.boot_id == boot_id and (
            dated := redate_within(reference, mono_ms, now, rule)):
        return dated, True
    return at, False
