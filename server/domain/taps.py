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
    """Whether a refused tap is kept until its gate is registered or placed (see HOLDABLE)."""
    return reason in HOLDABLE


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


def redate(reading: ClockReading, mono_ms: int) -> datetime:
    """When a tap of the reading's boot happened, from its monotonic time."""
    return reading.at - timedelta(milliseconds=reading.mono_ms - mono_ms)


def tap_time(reference: ClockReading | None, at: datetime, clock_synced: bool, boot_id: str,
             mono_ms: int) -> tuple[datetime, bool]:
    """(effective time, trusted) of a new tap: its own time when its clock was synchronised, else
    re-dated from the gate's reference of the same boot, else its own time, untrusted (re-dated
    later if a reading of that boot arrives)."""
    if clock_synced:
        return at, True
    if reference is not None and reference.boot_id == boot_id:
        return redate(reference, mono_ms), True
    return at, False
