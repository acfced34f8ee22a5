"""The running gate's live state for `genba-gate status`: a file written on every change and at stop.

Why a file and not a local socket the gate answers: the question `status` is asked most is "is the gate
running, and if not, what was it doing when it stopped?". A socket answers only while the gate lives; a
file also says *how* it ended (stopped cleanly at 17:02, or still marked running by a process that is
gone: it crashed or was killed) and what it last saw. It needs no listening thread in the gate, works
for any user who may read data_dir (the unit's UMask keeps that to the gate's user and root), and the
gate never waits on a reader.

The file (``data_dir/status.json``) is one JSON object, replaced atomically (written to a temporary file
in the same directory, then renamed over the old one: a reader sees the old or the new state, never
half of one). Not fsynced: after a power cut the process is gone anyway, and a stale or empty file reads
as "not running". It is written

- at start, before the gate says READY;
- whenever what it shows changes: the server connection, the reader's state, the idle state the LED
  shows (whatever Idle values firmware/feedback.py has: written by value, so new ones appear without an
  edit here), the clock, the disk, the config version in use, the count of unsent taps. The gate's
  housekeeping thread writes it: at once when woken by a state change, and within a second for the
  counts it reads from the buffer (it reads them every second);
- at stop, marked ``"state": "stopped"``.

It names the gate's process: its PID, the process's start time (field 22 of /proc/PID/stat, clock ticks
since boot) and the boot id. `read_status` believes ``"running"`` only if /proc/PID still exists, belongs
to the same boot and started at that same tick: a PID reused by another process after a crash or a
reboot is not mistaken for the gate.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from firmware.clock import read_boot_id

log = logging.getLogger("genba.gate.status")

STATUS_FILE = "status.json"
FORMAT = 1
PROC = Path("/proc")

#: What `genba-gate status` prints for the idle states it knows; any other value is printed as it is.
IDLE_LABELS: dict[str, str] = {
    "ready": "待機中（正常）",
    "offline": "オフライン（タッチは保存して後で送信）",
    "reader_failed": "カードリーダー異常",
    "clock_unsynced": "時刻未同期（タッチは記録、時刻に印）",
    "disk_full": "SDカードがいっぱい",
    "unregistered": "未登録（サーバーがこのゲートを知りません。タッチは保留して記録）",
    "unconfigured": "未設定（サーバーから設定が届いていません。タッチは記録）",
}

READER_LABELS: dict[str, str] = {
    "ok": "正常",
    "starting": "起動中",
    "missing": "見つかりません",
    "failed": "故障",
}


def process_start_ticks(pid: int) -> int | None:
    """Field 22 of /proc/PID/stat (starttime, clock ticks after boot); None if there is no such process.

    The command name (field 2) may hold spaces and parentheses, so the fields are counted after its
    last ')'."""
    try:
        stat = (PROC / str(pid) / "stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()
    try:
        return int(fields[19])  # field 3 is fields[0]
    except (IndexError, ValueError):
        return None


def this_process() -> dict[str, Any]:
    """The identity `read_status` checks: PID, start tick, boot id."""
    pid = os.getpid()
    return {"pid": pid, "start_ticks": process_start_ticks(pid), "boot_id": read_boot_id()}


def process_alive(pid: int, start_ticks: int | None, boot_id: str | None) -> bool:
    """Whether the process that wrote a status file is still this one: same boot, PID there, same start."""
    if boot_id and boot_id != read_boot_id():
        return False
    now = process_start_ticks(pid)
    if now is not None:
        return start_ticks is None or now == start_ticks
    if PROC.joinpath("self").exists():
        return False  # Linux with /proc: no such PID
    try:  # no /proc (not Linux): the PID alone
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class StatusFile:
    """Writes ``status.json`` for the gate; thread-safe, and a write that fails is logged, never raised
    (a full SD card must not stop the housekeeping that frees it)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._identity = this_process()
        self._started_at = _now()
        self._last: dict[str, Any] | None = None
        self._failing = False

    def update(self, state: dict[str, Any]) -> bool:
        """Write ``state`` as the running gate's if it differs from the last one written; returns whether it wrote."""
        return self._write(state, "running", force=False)

    def stopped(self, state: dict[str, Any]) -> None:
        """The last write, at stop: the same state marked stopped, with the time."""
        self._write(state | {"stopped_at": _now()}, "stopped", force=True)

    def _write(self, state: dict[str, Any], how: str, *, force: bool) -> bool:
        body = {"v": FORMAT, "state": how, **self._identity, "started_at": self._started_at, **state}
        with self._lock:
            if not force and self._last == body:
                return False
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                text = json.dumps(body | {"updated_at": _now()}, ensure_ascii=False, sort_keys=True)
                tmp.write_text(text, encoding="utf-8")
                os.replace(tmp, self.path)
            except OSError as exc:
                if not self._failing:
                    log.error("could not write %s: %s", self.path, exc)
                self._failing = True
                with contextlib.suppress(OSError):  # no directory to have left it in
                    tmp.unlink(missing_ok=True)
                return False
            if self._failing:
                log.info("%s written again", self.path)
            self._failing = False
            self._last = body
            return True


def gate_state(gate: Any) -> dict[str, Any]:
    """What the status shows of a Gate, built from memory only (cheap: the housekeeping thread calls it
    every second and the file is rewritten only when this changes)."""
    st = gate.status()  # the DeviceStatus the gate publishes: the config version in use, reader, clock, disk, …
    idle = getattr(gate.feedback, "idle", None)
    return {
        "device_id": st.device_id,
        "firmware": st.firmware,
        "connected": bool(gate.stats.connected),
        "reader": st.reader,
        "idle": None if idle is None else str(getattr(idle, "value", idle)),  # any Idle, by its value
        "clock_synced": st.clock_synced,
        "disk_ok": st.disk_ok,
        "direction": st.direction,
        "config_version": st.config_version,
        "unsent": st.buffer_depth,
        "oldest_unacked_seq": st.oldest_unacked_seq,
        "last_tap_at": st.last_tap_at.isoformat() if st.last_tap_at else None,
    }


class Liveness(StrEnum):
    RUNNING = "running"
    STOPPED = "stopped"  # stopped cleanly: the file says so
    CRASHED = "crashed"  # the file says running, its process is gone
    ABSENT = "absent"  # never started with this data_dir
    UNREADABLE = "unreadable"


@dataclass(frozen=True)
class Reading:
    liveness: Liveness
    state: dict[str, Any]
    problem: str = ""


def read_status(data_dir: Path) -> Reading:
    """The status file in ``data_dir``, checked against the process that wrote it."""
    path = Path(data_dir) / STATUS_FILE
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return Reading(Liveness.ABSENT, {})
    except (OSError, ValueError) as exc:
        return Reading(Liveness.UNREADABLE, {}, str(exc))
    if not isinstance(state, dict):
        return Reading(Liveness.UNREADABLE, {}, "not a JSON object")
    if state.get("state") == "stopped":
        return Reading(Liveness.STOPPED, state)
    pid = state.get("pid")
    if state.get("state") != "running" or not isinstance(pid, int):
        # the file of a gate from before this format (written once a minute, no PID): cannot be trusted
        return Reading(Liveness.UNREADABLE, state, "no process named in it")
    if process_alive(pid, state.get("start_ticks"), state.get("boot_id")):
        return Reading(Liveness.RUNNING, state)
    return Reading(Liveness.CRASHED, state)


def idle_label(value: str | None) -> str:
    if value is None:
        return "-"
    return f"{IDLE_LABELS[value]} ({value})" if value in IDLE_LABELS else value


def reader_label(value: str | None) -> str:
    return f"{READER_LABELS.get(value or '', '-')} ({value})" if value else "-"


def _now() -> str:
    return datetime.now(UTC).astimezone().isoformat(timespec="seconds")
