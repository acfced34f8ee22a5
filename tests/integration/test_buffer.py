"""The gate's local buffer (firmware/buffer.py) on real SQLite files: durable taps, seq never reused,
acks, pruning, a full disk, two threads on one file, and a writer killed with SIGKILL mid-burst."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from pydantic import ValidationError

from firmware import buffer as buffer_module
from firmware.buffer import SCHEMA_VERSION, Buffer, TapRecord, read_summary
from firmware.errors import BufferFull
from protocol.messages import TapEvent, decode, encode

REPO = Path(__file__).resolve().parents[2]
JST = timezone(timedelta(hours=9))
FELICA_IDM = "0127004A3B2C1D0E"


class Clock:
    """A settable UTC clock for the bookkeeping timestamps (acked_at decides what prune removes)."""

    def __init__(self) -> None:
        self.now = datetime(2025, 4, 1, 7, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "buffer.db"


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def buf(path: Path, clock: Clock):
    b = Buffer(path, clock=clock)
    yield b
    b.close()


def tap(b: Buffer, n: int = 0, **over) -> TapRecord:
    fields = dict(tech="felica", uid=f"0127004A{n:08X}", direction="in",
                  at=datetime(2025, 4, 1, 7, 30, tzinfo=JST) + timedelta(seconds=n),
                  clock_synced=True, boot_id="boot-1", mono_ms=1000 + n, shown="entry")
    fields.update(over)
    return b.record(**fields)


def all_seqs(path: Path) -> list[int]:
    conn = sqlite3.connect(path)
    try:
        return [r[0] for r in conn.execute("SELECT seq FROM taps ORDER BY seq")]
    finally:
        conn.close()


# --- the tap path ---------------------------------------------------------------------------------------


def test_a_recorded_tap_reads_back_with_every_field(buf: Buffer) -> None:
    at = datetime(2025, 4, 1, 7, 58, 12, 345000, tzinfo=JST)
    recorded = buf.record(tech="iso14443a", uid="04a1b2c3d4e5f6", direction="out", at=at, clock_synced=False,
                          boot_id="5f0c1a2b", mono_ms=123456, shown="exit")

    assert recorded.seq == 1
    assert recorded.card_uid == "04A1B2C3D4E5F6"  # upper-case hex, as on the wire
    [back] = buf.unacked()
    assert back == recorded
    assert back.at == at and back.at.utcoffset() == timedelta(hours=9)
    assert (back.card_tech, back.direction, back.clock_synced, back.boot_id, back.mono_ms, back.shown) == (
        "iso14443a", "out", False, "5f0c1a2b", 123456, "exit")
    assert (back.acked, back.outcome, back.sent_count) == (False, None, 0)


def test_every_connection_runs_wal_with_full_sync(path: Path) -> None:
    tap_thread, publisher = Buffer(path), Buffer(path)
    try:
        for b in (tap_thread, publisher):
            assert b.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            assert b.db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
            assert b.db.execute("PRAGMA busy_timeout").fetchone()[0] >= 1000
    finally:
        tap_thread.close()
        publisher.close()


def test_what_the_worker_was_shown_can_be_noted_after_the_insert(buf: Buffer) -> None:
    t = tap(buf, shown=None)
    buf.set_shown(t.seq, "not_on_roster")
    assert buf.last_tap().shown == "not_on_roster"


def test_a_tap_the_wire_contract_would_refuse_is_refused_before_it_is_stored(buf: Buffer) -> None:
    with pytest.raises(ValidationError):
        tap(buf, uid="XYZ")
    with pytest.raises(ValidationError):
        tap(buf, tech="mifare")
    with pytest.raises(ValueError, match="direction"):
        tap(buf, direction="sideways")
    with pytest.raises(ValueError, match="timezone"):
        tap(buf, at=datetime(2025, 4, 1, 7, 30))
    assert buf.depth() == 0
    assert tap(buf).seq == 1


def test_tap_becomes_a_valid_tap_event(buf: Buffer) -> None:
    t = tap(buf, uid=FELICA_IDM)
    event = t.to_event("gate-01", buf.buffer_id)

    assert isinstance(event, TapEvent)
    assert decode(TapEvent, encode(event)) == event
    assert (event.device_id, event.seq, event.card.tech, event.card.uid) == ("gate-01", t.seq, "felica", FELICA_IDM)
    assert (event.direction, event.at, event.clock_synced, event.boot_id, event.mono_ms, event.shown) == (
        "in", t.at, True, "boot-1", t.mono_ms, "entry")
    assert buf.unacked()[0].to_event("gate-01", buf.buffer_id) == event


# --- seq: strictly increasing, never reused -------------------------------------------------------------


def test_seq_keeps_increasing_across_close_and_reopen(path: Path) -> None:
    seen = []
    for _boot in range(3):
        with Buffer(path) as b:
            seen += [tap(b, n).seq for n in range(5)]
    assert seen == list(range(1, 16))


def test_pruning_every_tap_does_not_let_seq_start_over(path: Path, clock: Clock) -> None:
    with Buffer(path, clock=clock) as b:
        taps = [tap(b, n) for n in range(10)]
        b.mark_acked((t.seq, "recorded", None) for t in taps)
        clock.advance(days=31)
        assert b.prune(clock() - timedelta(days=30)) == 10
        assert b.last_tap() is None
    with Buffer(path, clock=clock) as b:
        assert tap(b).seq == 11


# --- what the publisher uses ----------------------------------------------------------------------------


def test_unacked_comes_oldest_first_and_pages_with_after_seq(buf: Buffer) -> None:
    for n in range(7):
        tap(buf, n)
    buf.mark_acked([(2, "recorded", None), (5, "duplicate", None)])

    assert [t.seq for t in buf.unacked()] == [1, 3, 4, 6, 7]
    assert [t.seq for t in buf.unacked(limit=2)] == [1, 3]
    assert [t.seq for t in buf.unacked(limit=2, after_seq=3)] == [4, 6]
    assert buf.unacked(after_seq=7) == []


def test_resends_are_counted_and_acked_taps_are_not_touched(buf: Buffer, clock: Clock) -> None:
    a, b = tap(buf, 1), tap(buf, 2)
    buf.mark_sent([a.seq, b.seq])
    buf.mark_acked([(a.seq, "recorded", None)])
    clock.advance(seconds=10)
    buf.mark_sent([a.seq, b.seq])

    [still_out] = buf.unacked()
    assert still_out.seq == b.seq
    assert still_out.sent_count == 2
    assert still_out.last_sent_at == clock.now
    assert buf.db.execute("SELECT sent_count FROM taps WHERE seq = ?", [a.seq]).fetchone()[0] == 1


def test_the_servers_ack_marks_a_tap_delivered_with_its_outcome(buf: Buffer) -> None:
    for n in range(4):
        tap(buf, n)
    changed = buf.mark_acked([(1, "recorded", None), (2, "duplicate", None), (3, "rejected", "unknown_device")])

    assert changed == 3
    assert buf.depth() == 1
    rows = {r["seq"]: r for r in buf.db["taps"].rows_where("acked_at IS NOT NULL")}
    assert {s: (r["outcome"], r["reason"]) for s, r in rows.items()} == {
        1: ("recorded", None), 2: ("duplicate", None), 3: ("rejected", "unknown_device")}


def test_duplicate_acks_and_acks_for_unknown_seqs_change_nothing(buf: Buffer) -> None:
    t = tap(buf)
    assert buf.mark_acked([(t.seq, "recorded", None)]) == 1
    acked_at = buf.db.execute("SELECT acked_at FROM taps").fetchone()[0]

    assert buf.mark_acked([(t.seq, "recorded", None), (t.seq, "rejected", "late"), (999, "recorded", None)]) == 0
    assert buf.mark_acked([]) == 0
    row = buf.db.execute("SELECT acked_at, outcome, reason FROM taps").fetchone()
    assert row == (acked_at, "recorded", None)
    assert buf.depth() == 0


def test_status_reports_depth_oldest_unacked_and_last_tap(buf: Buffer) -> None:
    assert (buf.depth(), buf.oldest_unacked(), buf.last_tap()) == (0, None, None)
    first, _, last = tap(buf, 1), tap(buf, 2), tap(buf, 3)
    buf.mark_acked([(first.seq, "recorded", None), (last.seq, "recorded", None)])

    assert buf.depth() == 1
    assert buf.oldest_unacked().seq == 2
    assert buf.last_tap().seq == last.seq and buf.last_tap().acked


# --- housekeeping ---------------------------------------------------------------------------------------


def test_prune_removes_only_acked_taps_older_than_the_cutoff(buf: Buffer, clock: Clock) -> None:
    old_acked, old_unacked = tap(buf, 1), tap(buf, 2)
    buf.mark_acked([(old_acked.seq, "recorded", None)])
    clock.advance(days=20)
    recent_acked = tap(buf, 3)
    buf.mark_acked([(recent_acked.seq, "recorded", None)])
    clock.advance(days=15)

    assert buf.prune(clock() - timedelta(days=30)) == 1
    assert all_seqs(buf.path) == [old_unacked.seq, recent_acked.seq]  # an unacked tap stays, however old
    assert buf.prune(clock() - timedelta(days=30)) == 0


def test_the_last_config_survives_a_reboot(path: Path) -> None:
    with Buffer(path) as b:
        assert b.load_config() is None
        b.save_config(b'{"v":1,"version":1}')
        b.save_config(b'{"v":1,"version":2}')
    with Buffer(path) as b:
        assert b.load_config() == b'{"v":1,"version":2}'


def test_a_new_schema_version_migrates_an_existing_buffer_and_keeps_its_taps(path: Path, monkeypatch) -> None:
    with Buffer(path) as b:
        tap(b)
        assert b.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION

    def add_reader_column(db) -> None:
        db["taps"].add_column("reader", str)

    monkeypatch.setattr(buffer_module, "MIGRATIONS", [*buffer_module.MIGRATIONS, add_reader_column])
    monkeypatch.setattr(buffer_module, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    with Buffer(path) as b:
        assert b.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 1
        assert "reader" in b.db["taps"].columns_dict
        assert [t.seq for t in b.unacked()] == [1]
        assert tap(b).seq == 2  # still AUTOINCREMENT
    with Buffer(path) as b:  # opening again runs nothing twice
        assert b.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 1


# --- a full disk ----------------------------------------------------------------------------------------


def test_a_full_disk_raises_buffer_full_and_the_next_tap_is_recorded_once_space_is_back(buf: Buffer) -> None:
    # SQLite's max_page_count makes this connection's database "full" exactly like ENOSPC does (SQLITE_FULL).
    pages = buf.db.execute("PRAGMA page_count").fetchone()[0]
    buf.db.execute(f"PRAGMA max_page_count = {pages}")
    stored = []
    with pytest.raises(BufferFull):
        for n in range(10_000):
            stored.append(tap(buf, n, boot_id="x" * 60).seq)

    assert buf.depth() == len(stored)  # the tap that did not fit is not half there
    assert buf.unacked(limit=10_000)[-1].seq == stored[-1]
    with pytest.raises(BufferFull):
        tap(buf, boot_id="x" * 60)

    buf.db.execute("PRAGMA max_page_count = 1000000")
    after = tap(buf, boot_id="x" * 60)
    assert after.seq == stored[-1] + 1
    assert buf.mark_acked([(after.seq, "recorded", None)]) == 1


# --- two threads, one file ------------------------------------------------------------------------------


def run_threads(*targets) -> list[BaseException]:
    errors: list[BaseException] = []

    def guard(fn):
        def run() -> None:
            try:
                fn()
            except BaseException as exc:  # noqa: BLE001 - reported to the test
                errors.append(exc)
        return run

    threads = [threading.Thread(target=guard(t)) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
        assert not t.is_alive(), "a buffer thread hung"
    return errors


def test_tap_thread_and_publisher_thread_share_the_file(path: Path) -> None:
    n = 300
    Buffer(path).close()
    tapping_done = threading.Event()
    delivered: list[int] = []

    def tap_thread() -> None:
        with Buffer(path) as b:
            for i in range(n):
                tap(b, i)
        tapping_done.set()

    def publisher_thread() -> None:
        with Buffer(path) as b:
            while True:
                batch = b.unacked(limit=25)
                if not batch:
                    if tapping_done.is_set() and b.depth() == 0:
                        return
                    time.sleep(0.001)
                    continue
                b.mark_sent(t.seq for t in batch)
                assert b.mark_acked((t.seq, "recorded", None) for t in batch) == len(batch)
                delivered.extend(t.seq for t in batch)

    assert run_threads(tap_thread, publisher_thread) == []
    assert delivered == list(range(1, n + 1))  # each once, in seq order
    with Buffer(path) as b:
        assert b.depth() == 0


def test_threads_opening_a_new_buffer_at_the_same_moment_all_get_a_working_one(tmp_path: Path) -> None:
    # The first open switches the file to WAL and creates the schema; SQLite does not wait on a busy lock
    # for the WAL switch, so without a retry one of the racing connections fails with "database is locked".
    for attempt in range(100):
        path = tmp_path / f"gate-{attempt}" / "buffer.db"  # the data directory does not exist yet either
        start = threading.Barrier(4)

        def open_and_tap(path: Path = path, start: threading.Barrier = start) -> None:
            start.wait()
            with Buffer(path) as b:
                tap(b)

        assert run_threads(*[open_and_tap] * 4) == []
        assert all_seqs(path) == [1, 2, 3, 4]


def test_two_writers_never_get_the_same_seq(path: Path) -> None:
    Buffer(path).close()
    got: dict[str, list[int]] = {"a": [], "b": []}

    def writer(name: str):
        def run() -> None:
            with Buffer(path) as b:
                for i in range(150):
                    got[name].append(tap(b, i, boot_id=name).seq)
        return run

    assert run_threads(writer("a"), writer("b")) == []
    assert got["a"] == sorted(got["a"]) and got["b"] == sorted(got["b"])
    assert sorted(got["a"] + got["b"]) == list(range(1, 301))
    assert all_seqs(path) == list(range(1, 301))


# --- SIGKILL mid-burst ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_writer_killed_mid_burst_loses_no_confirmed_tap_and_no_seq_is_reused(path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    confirmed: list[int] = []
    for kill_after in (150, 40, 400):
        child = subprocess.Popen([sys.executable, str(REPO / "tests" / "support" / "buffer_writer.py"), str(path)],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
        this_run: list[int] = []
        try:
            while len(this_run) < kill_after:
                line = child.stdout.readline()
                assert line, f"writer died: {child.stderr.read()}"
                this_run.append(int(line))
            child.send_signal(signal.SIGKILL)  # mid-burst: the writer never stops on its own
            out, _ = child.communicate(timeout=60)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
        assert child.returncode == -signal.SIGKILL
        lines = out.split("\n")
        this_run += [int(x) for x in lines[:-1]]  # the last piece may be a half-written line: ignore it

        assert this_run == list(range(this_run[0], this_run[0] + len(this_run)))
        if confirmed:
            assert this_run[0] > confirmed[-1]
        confirmed += this_run

        on_disk = all_seqs(path)
        assert set(confirmed) <= set(on_disk)  # every tap that got feedback survived the kill
        with Buffer(path) as b:
            assert b.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            assert tap(b).seq == on_disk[-1] + 1  # the next tap reuses nothing
        confirmed.append(on_disk[-1] + 1)


def test_a_damaged_buffer_file_is_quarantined_and_a_healthy_one_is_left_alone(tmp_path: Path) -> None:
    from firmware.buffer import quarantine_if_corrupt, quarantined_files

    path = tmp_path / "buffer.db"
    assert quarantine_if_corrupt(path) is None  # none yet
    buf = Buffer(path)
    old_id = buf.buffer_id
    for n in range(300):
        buf.record(tech="felica", uid=f"0114{n:012X}", direction="in", at=datetime.now(UTC), clock_synced=True,
                   boot_id="b", mono_ms=n, shown="entry")
    buf.close()
    assert quarantine_if_corrupt(path) is None
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2:len(raw) // 2 + 4096] = b"\xff" * 4096  # a torn write in the middle of the file
    path.write_bytes(bytes(raw))
    moved = quarantine_if_corrupt(path)
    assert moved is not None and moved.exists() and not path.exists()
    assert quarantined_files(path) == [moved]
    fresh = Buffer(path)
    try:
        assert fresh.buffer_id != old_id and fresh.depth() == 0
    finally:
        fresh.close()


def test_the_status_reads_the_buffer_without_writing_to_it(buf: Buffer, path: Path) -> None:
    first, second, third = tap(buf, 1), tap(buf, 2), tap(buf, 3)
    buf.mark_acked([(first.seq, "recorded", None)])
    files = sorted(p for p in path.parent.iterdir() if p.name.startswith(path.name))
    before = {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in files}
    # While the tap thread holds the write lock: a status that checkpointed or migrated would wait here.
    buf.db.conn.execute("BEGIN IMMEDIATE")
    try:
        summary = read_summary(path)
    finally:
        buf.db.conn.execute("ROLLBACK")
    assert summary.depth == 2
    assert summary.oldest_unacked == (second.seq, second.at) and summary.last_tap == (third.seq, third.at)
    assert {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in files} == before
