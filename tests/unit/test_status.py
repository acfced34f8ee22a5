"""`genba-gate status`'s file: written atomically on change, believed only while its process lives.

The processes are real: a child `sleep` stands in for a gate that wrote the file, and is killed to make
the gate that "crashed". Nothing about /proc is faked.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from firmware.clock import read_boot_id
from firmware.status import (
    STATUS_FILE,
    Liveness,
    StatusFile,
    idle_label,
    process_alive,
    process_start_ticks,
    read_status,
)


@pytest.fixture
def child() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(["sleep", "60"])
    yield proc
    proc.kill()
    proc.wait()


def _file_of(pid: int, data: Path, **changes: object) -> Path:
    """A status file as the gate with this PID writes it."""
    body = {"v": 1, "state": "running", "pid": pid, "start_ticks": process_start_ticks(pid),
            "boot_id": read_boot_id(), "connected": True, "config_version": 3} | changes
    path = data / STATUS_FILE
    path.write_text(json.dumps(body), encoding="utf-8")
    return path


def test_a_live_gate_process_reads_as_running(tmp_path: Path, child: subprocess.Popen[bytes]) -> None:
    _file_of(child.pid, tmp_path)
    reading = read_status(tmp_path)
    assert reading.liveness is Liveness.RUNNING and reading.state["config_version"] == 3


def test_a_gate_killed_without_a_word_reads_as_crashed(tmp_path: Path, child: subprocess.Popen[bytes]) -> None:
    _file_of(child.pid, tmp_path)
    child.kill()
    child.wait()
    assert read_status(tmp_path).liveness is Liveness.CRASHED


def test_a_reused_pid_or_another_boot_is_not_the_gate(tmp_path: Path, child: subprocess.Popen[bytes]) -> None:
    ticks = process_start_ticks(child.pid)
    assert ticks is not None and process_alive(child.pid, ticks, read_boot_id())
    # The same PID, started at another time: another process got the gate's PID after it died.
    _file_of(child.pid, tmp_path, start_ticks=ticks - 1)
    assert read_status(tmp_path).liveness is Liveness.CRASHED
    # The same PID and start tick, but written before a reboot.
    _file_of(child.pid, tmp_path, boot_id="00000000-0000-0000-0000-000000000000")
    assert read_status(tmp_path).liveness is Liveness.CRASHED


def test_no_file_a_stopped_gate_and_an_old_format_file(tmp_path: Path) -> None:
    assert read_status(tmp_path).liveness is Liveness.ABSENT
    status = StatusFile(tmp_path / STATUS_FILE)
    status.update({"connected": True})
    assert read_status(tmp_path).liveness is Liveness.RUNNING  # this very process wrote it
    status.stopped({"connected": False})
    reading = read_status(tmp_path)
    assert reading.liveness is Liveness.STOPPED and reading.state["stopped_at"]
    # what the gate wrote before this format: no PID, so nothing says whether it runs
    (tmp_path / STATUS_FILE).write_text(json.dumps({"connected": True, "reader": "ok"}), encoding="utf-8")
    assert read_status(tmp_path).liveness is Liveness.UNREADABLE
    (tmp_path / STATUS_FILE).write_text("{half a fi", encoding="utf-8")
    assert read_status(tmp_path).liveness is Liveness.UNREADABLE


def test_the_file_names_this_process_and_is_rewritten_only_when_something_changes(tmp_path: Path) -> None:
    status = StatusFile(tmp_path / STATUS_FILE)
    assert status.update({"unsent": 1, "idle": "ready"}) is True
    first = json.loads((tmp_path / STATUS_FILE).read_text(encoding="utf-8"))
    assert first["pid"] == os.getpid() and first["start_ticks"] == process_start_ticks(os.getpid())
    assert first["state"] == "running" and first["unsent"] == 1
    assert status.update({"unsent": 1, "idle": "ready"}) is False
    assert status.update({"unsent": 2, "idle": "ready"}) is True
    assert json.loads((tmp_path / STATUS_FILE).read_text(encoding="utf-8"))["unsent"] == 2


def test_a_reader_never_sees_half_a_file(tmp_path: Path) -> None:
    status = StatusFile(tmp_path / STATUS_FILE)
    status.update({"unsent": 0, "padding": "x" * 20_000})
    done = threading.Event()
    seen: list[int] = []

    def write() -> None:
        for n in range(1, 400):
            status.update({"unsent": n, "padding": "x" * 20_000})
        done.set()

    writer = threading.Thread(target=write)
    writer.start()
    while not done.is_set():
        seen.append(json.loads((tmp_path / STATUS_FILE).read_text(encoding="utf-8"))["unsent"])  # never a ValueError
    writer.join()
    assert seen == sorted(seen) and read_status(tmp_path).state["unsent"] == 399
    assert [p.name for p in tmp_path.iterdir()] == [STATUS_FILE]  # no temporary file left behind


def test_a_status_file_that_cannot_be_written_is_logged_not_raised(tmp_path: Path,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    status = StatusFile(blocker / STATUS_FILE)
    assert status.update({"unsent": 1}) is False
    assert status.update({"unsent": 2}) is False
    assert len([r for r in caplog.records if "could not write" in r.message]) == 1  # once, not every second


def test_idle_states_are_shown_by_value_so_new_ones_need_no_edit() -> None:
    assert idle_label("ready") == "待機中（正常） (ready)"
    assert idle_label("reader_failed") == "カードリーダー異常 (reader_failed)"
    assert idle_label("a_state_added_later") == "a_state_added_later"
    assert idle_label(None) == "-"
