"""Time as the gate knows it: wall clock, whether NTP has set it, the boot and a monotonic count.

A Raspberry Pi has no RTC: after a power cut it boots with a stale clock until NTP answers. Each
tap therefore carries (at, clock_synced, boot_id, mono_ms); the server can re-date taps taken
before sync from a later synchronised status of the same boot (same boot_id: mono_ms is comparable).

Nothing here may block the tap path: the sync state is refreshed in the background and read from
memory.
"""

from __future__ import annotations

import logging
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path

log = logging.getLogger("genba.gate.clock")

BOOT_ID_FILE = Path("/proc/sys/kernel/random/boot_id")
# systemd-timesyncd touches this file once it has synchronised (systemd >= 239).
TIMESYNC_FLAG = Path("/run/systemd/timesync/synchronized")


def read_boot_id() -> str:
    try:
        return BOOT_ID_FILE.read_text().strip()
    except OSError:
        return f"proc-{uuid.uuid4()}"  # not Linux: unique per process, so mono_ms is never compared across runs


def ntp_synchronized() -> bool:
    """timedatectl's NTPSynchronized, or timesyncd's flag file; False when neither can tell."""
    if TIMESYNC_FLAG.exists():
        return True
    try:
        out = subprocess.run(
            ["timedatectl", "show", "-p", "NTPSynchronized", "--value"],
            capture_output=True, text=True, timeout=5, check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return out.stdout.strip() == "yes"


class LocalNow:
    """The wall clock in the system's time zone, as a tap stamps it. ``datetime.astimezone()`` without a
    zone asks the C library for the local offset (localtime()) on every call, about 25 us of a tap's
    way to the LED on a cold CPU; the offset changes twice a year at most, so it is looked up again
    once a minute (and whenever the clock steps back). The instant is always exact; right after a
    daylight-saving switch the offset it is written with may be the old one for up to a minute."""

    REFRESH = timedelta(minutes=1)

    def __init__(self) -> None:
        self._zone: tzinfo | None = None
        self._since = self._until = datetime.min.replace(tzinfo=UTC)

    def __call__(self) -> datetime:
        now = datetime.now(UTC)
        if not self._since <= now < self._until:
            local = now.astimezone()
            self._zone, self._since, self._until = local.tzinfo, now, now + self.REFRESH
            return local
        return now.astimezone(self._zone)


class SimulatedTime:
    """A wall clock for simulation that can be set (the sim reader's ``!clock``) and then runs at
    real speed, so a demo plays a morning and an evening within seconds. Monotonic time is not
    touched: it is the real one, as on a gate whose wall clock was stepped by NTP."""

    def __init__(self) -> None:
        self._offset_s = 0.0
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            offset = self._offset_s
        return datetime.fromtimestamp(time.time() + offset, UTC).astimezone()

    def set(self, at: datetime) -> None:
        with self._lock:
            self._offset_s = at.timestamp() - time.time()
        log.info("simulated clock set to %s", at.isoformat())


@dataclass(frozen=True)
class Stamp:
    at: datetime
    clock_synced: bool
    boot_id: str
    mono_ms: int


class Clock:
    """The gate's clock. ``synced`` can be forced (simulation, tests) instead of asking the system."""

    def __init__(
        self,
        now: Callable[[], datetime] | None = None,
        synced: bool | None = None,
        probe: Callable[[], bool] = ntp_synchronized,
        refresh_s: float = 30.0,
    ) -> None:
        self._now = now if now is not None else LocalNow()
        self._forced = synced
        self._probe = probe
        self._refresh_s = refresh_s
        self._synced = bool(synced)
        self.boot_id = read_boot_id()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._forced is not None:
            return
        self._synced = self._probe()
        self._thread = threading.Thread(target=self._watch, name="clock", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(self._refresh_s):
            try:
                synced = self._probe()
            except Exception:  # a probe failure must not end the watcher
                log.exception("clock sync probe failed")
                continue
            if synced != self._synced:
                log.info("clock synchronised: %s", synced)
            self._synced = synced

    @property
    def synced(self) -> bool:
        return self._synced

    def stamp(self) -> Stamp:
        return Stamp(self._now(), self._synced, self.boot_id, time.monotonic_ns() // 1_000_000)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
