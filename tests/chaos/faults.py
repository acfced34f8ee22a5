"""The faults `make chaos` puts a scripted day through, one function per row.

Each plays the same day (tests/chaos/harness.py: every worker in through an entry gate, out and back in
at lunch, out in the evening) on a fresh database, broker and gates, injects its fault while the gates go
on tapping, waits until every gate's buffer is acknowledged, and compares what the server stored with what
the gates hold and with a clean run of the same script.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from chaos import harness as h
from chaos.table import Row

CRASH_ENV = {"GENBA_INGEST_CRASH_AFTER_COMMIT": "1"}  # server/ingest.py: exit between commit and Ack
OUTAGE_S = 4.0  # how long the broker is down, the network cut, the disk full


@dataclass
class Env:
    """What every row shares: the world's template database (copied per row) and the clean run's records."""

    base: Path
    quick: bool
    n_gates: int
    n_workers: int
    day: date
    template: Path = field(init=False)
    voice: Path = field(init=False)
    world: h.World = field(init=False)
    clean: set[h.Canon] | None = None
    pg: Any = None  # a PrivatePostgres (tests/support/pgserver.py), started when a row needs one
    _rows: int = 0

    def __post_init__(self) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        self.template = self.base / "template.db"
        self.world = h.build_world(f"sqlite:///{self.template}", self.n_gates, self.n_workers)
        self.voice = self.base / "voice-cache"
        h.render_voice(self.voice)

    def row_dir(self, name: str) -> Path:
        self._rows += 1
        return self.base / f"{self._rows:02d}-{name}"

    def sqlite(self, d: Path) -> str:
        d.mkdir(parents=True, exist_ok=True)
        return h.copy_sqlite(self.template, d / "genba.db")

    def postgres(self, name: str) -> tuple[str, h.World]:
        if self.pg is None:
            from pgserver import PrivatePostgres  # tests/support (on sys.path: see harness)

            self.pg = PrivatePostgres()
            self.pg.__enter__()
        url = self.pg.create_database(name)
        return url, h.build_world(url, self.n_gates, self.n_workers)

    def close(self) -> None:
        if self.pg is not None:
            self.pg.__exit__(None, None, None)


def _run(env: Env, name: str, slug: str, fault: Callable[[h.Stage], None] | None, *, note: str = "",
         stage_kw: dict[str, Any] | None = None, burst: set[int] | None = None, when: float = 0.35,
         shift: Callable[[list[list[h.ScriptTap]]], dict[h.ScriptTap, timedelta]] | None = None,
         db: tuple[str, h.World] | None = None, extra: Callable[[h.Stage], None] | None = None,
         notes: Callable[[h.Stage, Row], str] | None = None) -> Row:
    """One row: a fresh stage, the script with ``fault`` injected, drain, verify against the clean run."""
    d = env.row_dir(slug)
    url, world = db if db is not None else (env.sqlite(d), env.world)
    phases = h.scripted_day(world, env.day)
    # The clean run is compared with what the rules make of the script; every other row with the clean run
    # (or, should the clean run have failed to run at all, with the script's records).
    model = h.expected_records(world, [(t, t.at) for p in phases for t in p])
    expected = env.clean if env.clean is not None else model
    t0 = time.monotonic()
    steps: list[str] = []

    def step(what: str) -> None:
        steps.append(f"{what} {time.monotonic() - t0:.1f}")

    try:
        with h.stage(d, world, url, voice_cache=env.voice, **(stage_kw or {})) as s:
            step("up")
            if extra is not None:
                extra(s)
            if shift is not None:
                s.shift = shift(phases)
                expected = h.expected_records(world, [(t, t.at + s.shift.get(t, timedelta(0)))
                                                      for p in phases for t in p])
            s.play(phases, fault=fault, when=when, burst=burst)
            step("played")
            drained = s.drain()
            step("drained")
            row, records = h.verify(s, name, expected, note=note, drained=drained)
            more = notes(s, row) if notes is not None else ""  # after verify: every gate has stopped
            row.note = "; ".join(x for x in (row.note, more) if x)
            step("verified")
        step("closed")
        if os.environ.get("CHAOS_VERBOSE"):
            print(f"    {slug}: " + ", ".join(steps) + " s", file=sys.stderr)
    except Exception as exc:  # the row failed to run at all: say so, never a pass
        traceback.print_exc()
        return Row(name=name, sent=0, recorded=0, crashes=1, note=f"the row could not run: {exc!r}"[:400])
    if env.clean is None and fault is None and shift is None:
        env.clean = records
    return row


# --- the rows -----------------------------------------------------------------------------------------------


def clean_run(env: Env) -> Row:
    return _run(env, f"clean run ({env.n_gates} gates, {env.n_workers} workers)", "clean", None,
                note="the reference: the records every other row must equal")


def broker_restart(env: Env) -> Row:
    """Twice: a clean stop (SIGTERM: Mosquitto saves its sessions), and later a crash (SIGKILL: only its
    last autosave survives, so the sessions and the Acks queued for the gates are gone)."""

    def fault(s: h.Stage) -> None:
        s.broker.stop()
        time.sleep(OUTAGE_S)
        s.broker.start()
        time.sleep(2.0)
        s.broker.kill()
        time.sleep(OUTAGE_S / 2)
        s.broker.start()

    return _run(env, "broker stopped and restarted mid-day", "broker", fault,
                note=f"Mosquitto stopped (SIGTERM) for {OUTAGE_S:.0f} s, 2 s later SIGKILLed and down "
                f"{OUTAGE_S / 2:.0f} s, while the gates tapped on")


def server_killed(env: Env) -> Row:
    """Twice: once exactly between the ingest's COMMIT and its Ack (the server runs with its own fault hook,
    which exits there as abruptly as a SIGKILL: os._exit, no cleanup, at the first tap it commits), once
    with a real SIGKILL at a random moment while the taps flow in."""
    rng = random.Random(17)

    def crash_hook(s: h.Stage) -> None:
        s.server.expected_exit = True  # the suite asked for this exit (checked below)

    def fault(s: h.Stage) -> None:
        crashing = s.servers[0]
        h.wait_for(lambda: not crashing.alive, "the ingest to die after its commit", 60)
        if crashing.proc.returncode != 70:
            crashing.expected_exit = False
        killed = s.start_server()
        time.sleep(rng.uniform(1.0, 3.0))
        killed.kill()
        s.start_server()

    def notes(s: h.Stage, row: Row) -> str:
        hook, killed = s.servers[0].proc.returncode, s.servers[1].proc.returncode
        return (f"the ingest exited between its commit and its Ack (exit {hook}, its fault hook), then one was "
                f"SIGKILLed mid-flow (exit {killed}); restarted each time")

    return _run(env, "server killed between commit and Ack", "server", fault, notes=notes, when=0.0,
                stage_kw={"server_env": CRASH_ENV}, extra=crash_hook)


def gate_killed(env: Env) -> Row:
    """SIGKILL at the entry gate while a queue of cards is being read (all its cards of a phase written at
    once); the gate is started again on the same SD card, as systemd does, and the workers who were told
    nothing tap again."""
    done = threading.Event()
    info: dict[str, int] = {}

    def fault(s: h.Stage) -> None:
        gate = s.gates[0]
        already = len(gate.printed_seqs())
        per_phase = sum(1 for t in h.scripted_day(s.world, env.day)[0] if t.gate == 0)
        target = already + max(1, per_phase // 2)
        fired = threading.Event()

        def watch(line: str) -> None:
            if line.startswith("tap ") and not fired.is_set() and len(gate.printed_seqs()) + 1 >= target:
                fired.set()
                s.kill_gate(0)
                info["killed_after"] = len(gate.printed_seqs()) + 1
                info["max_seq"] = int(line.split()[1])
                done.set()

        gate.watch(watch)
        if not done.wait(120):
            raise AssertionError("the entry gate's burst never came")
        s.restart_gate(0)

    def notes(s: h.Stage, row: Row) -> str:
        first = s.all_gates[0]
        after = [seq for g in s.all_gates[len(s.world.gates):] if g.device_id == first.device_id
                 for seq in g.printed_seqs()]
        reused = info.get("max_seq", 0) >= min(after, default=10**9)
        return (f"SIGKILL after {info.get('killed_after', '?')} answered taps of its burst (last seq "
                f"{info.get('max_seq', '?')}); restarted at seq {min(after, default='?')}"
                + ("; A SEQ WAS REUSED" if reused else ""))

    return _run(env, "gate SIGKILLed mid-burst", "gate-kill", fault, burst={0}, notes=notes)


def network_cut(env: Env) -> Row:
    def fault(s: h.Stage) -> None:
        s.proxy.cut()
        time.sleep(OUTAGE_S)
        s.proxy.heal()

    return _run(env, "network cut, broker up", "net", fault,
                note=f"every gate↔broker connection reset and new ones refused for {OUTAGE_S:.0f} s "
                "(a TCP proxy on loopback)")


def disk_full(env: Env) -> Row:
    name = "gate's SD card full"
    if not h.is_root():
        return Row(name=name + " (NOT RUN)", sent=0, recorded=0,
                   note="not run: mounting a small tmpfs for the gate's data dir needs root")

    def fault(s: h.Stage) -> None:
        gate = s.gates[0]
        before = sum(1 for k, _ in gate.answers() if k == "not_saved")
        ballast = h.fill_disk(s.data_dirs[0])
        deadline = time.monotonic() + OUTAGE_S
        while time.monotonic() < deadline and sum(1 for k, _ in gate.answers() if k == "not_saved") < before + 3:
            time.sleep(0.05)
        time.sleep(0.5)
        ballast.unlink()

    def notes(s: h.Stage, row: Row) -> str:
        told = s.outcomes[0].told
        refused = sum(1 for _, k, _ in told if k == "not_saved")
        lies = _refused_but_stored(s)
        row.duplicates += lies  # the worker was told 記録できませんでした, taps again: stored twice
        return (f"tmpfs filled by a ballast file; {refused} taps told 記録できませんでした (no positive "
                f"feedback, tapped again after the space came back)"
                + (f"; {lies} REFUSED TAPS WERE STORED" if lies else ""))

    return _run(env, name, "disk", fault, stage_kw={"tmpfs_gate": 0}, notes=notes)


def _refused_but_stored(s: h.Stage) -> int:
    """Taps the gate printed no `tap` line for but that sit in its buffer: with a full disk the answer
    must be the truth (a refused tap is not saved)."""
    rows = h.read_buffer(s.world.gates[0], s.data_dirs[0] / "buffer.db")
    printed = {seq for g in s.all_gates if g.device_id == s.world.gates[0] for seq in g.printed_seqs()}
    return sum(1 for r in rows if r.seq not in printed)


def clock_jumps(env: Env) -> Row:
    """The entry gate's clock jumps 3 h ahead mid-morning, then 6 h back (3 h behind), then right again;
    the exit gate's the same in the evening. The gates say their clock is synchronised, so the server takes
    their times as they are (server/domain/taps.py tap_time): what the rules promise is records built from
    the times the gates stamped, each tap once, seqs in order whatever the wall clock did. So this row is
    compared with the records of the script's taps at the stamped times (the clean run's, shifted), not with
    the clean run's."""

    def shift(phases: list[list[h.ScriptTap]]) -> dict[h.ScriptTap, timedelta]:
        out: dict[h.ScriptTap, timedelta] = {}
        ins = [i for i, d in enumerate(env.world.directions) if d == "in"]
        outs = [i for i, d in enumerate(env.world.directions) if d == "out"]
        for phase, gate in ((phases[0], ins[0]), (phases[3], outs[0])):
            mine = [t for t in phase if t.gate == gate]
            q = max(1, len(mine) // 4)
            for t in mine[q:2 * q]:
                out[t] = timedelta(hours=3)
            for t in mine[2 * q:3 * q]:
                out[t] = timedelta(hours=-3)
        return out

    def notes(s: h.Stage, row: Row) -> str:
        jumped = len(s.shift)
        moved = len(h.expected_records(s.world, [(t, t.at + s.shift.get(t, timedelta(0))) for p in
                                                 h.scripted_day(s.world, env.day) for t in p]) - (env.clean or set()))
        return (f"{jumped} taps stamped ±3 h off the script's time, {moved} records moved by it; compared with "
                "the records of the stamped times (the server trusts a synchronised gate clock)")

    return _run(env, "gate clocks jump +3 h and −3 h", "clock", None, shift=shift, notes=notes)


def two_ingest_workers(env: Env) -> Row:
    """PostgreSQL, `genba-server run` and a second `genba-server ingest` on the shared subscription. The
    second one starts with the commit→exit hook: it dies between its first COMMIT and that Ack, while the
    first may already be storing the gate's re-send of the same tap; it is started again, then the broker
    restarts mid-burst."""
    name = "2 ingest workers (PostgreSQL), broker restart"
    try:
        db = env.postgres(f"chaos{env._rows + 1}")
    except Exception as exc:
        return Row(name=name + " (NOT RUN)", sent=0, recorded=0, crashes=0,
                   note=f"not run: no private PostgreSQL could start: {exc!r}"[:300])

    def ingest(s: h.Stage, env_vars: dict[str, str] | None = None) -> h.Server:
        worker = h.Server(s.config, "--client-id", "genba_ingest_2", command="ingest", env=env_vars)
        s.servers.append(worker)
        return worker.wait_up()

    def second(s: h.Stage) -> None:
        ingest(s, CRASH_ENV).expected_exit = True  # checked in the fault: it must be the hook's exit

    def fault(s: h.Stage) -> None:
        crashing = next(p for p in s.servers if p.command == "ingest")
        h.wait_for(lambda: not crashing.alive, "the second ingest to die after its commit", 60)
        if crashing.proc.returncode != 70:
            crashing.expected_exit = False
        ingest(s)
        s.broker.stop()
        time.sleep(OUTAGE_S)
        s.broker.start()

    def notes(s: h.Stage, row: Row) -> str:
        # `genba-server ingest` logs its counters when it stops (`run` never gets there: uvicorn re-raises
        # the SIGTERM after its own shutdown, before cmd_run's `finally: ingest.stop()`).
        workers = [p for p in s.servers if p.command == "ingest"]
        counted = workers[-1].ingest_counts()
        share = f", the restarted second one stored {counted[0]} of the {row.recorded}" if counted else ""
        return (f"`genba-server run` + `genba-server ingest --client-id genba_ingest_2`; the second exited "
                f"between commit and Ack (exit {workers[0].proc.returncode}){share}; broker down {OUTAGE_S:.0f} s")

    return _run(env, name, "pg-2workers", fault, db=db, extra=second, notes=notes, when=0.05)


FAULTS: list[Callable[[Env], Row]] = [clean_run, broker_restart, server_killed, gate_killed, network_cut,
                                      disk_full, clock_jumps, two_ingest_workers]
QUICK: list[Callable[[Env], Row]] = [clean_run, server_killed, gate_killed, network_cut, disk_full]


def rows(quick: bool, base: Path | None = None, only: list[str] | None = None,
         progress: Callable[[Row, float], None] | None = None, gates: int | None = None,
         workers: int | None = None) -> list[Row]:
    """Every fault's row (``quick``: fewer gates, workers and faults, for `make test`)."""
    own = base is None
    base = base or Path(tempfile.mkdtemp(prefix="genba-chaos-"))
    n_gates, n_workers = (2, 8) if quick else (4, 40)
    n_gates, n_workers = max(2, gates or n_gates), min(60, workers or n_workers)  # 60: the morning ends by 08:00
    # Yesterday: the whole day (and its +3 h clock jump) lies before the server's clock, which refuses taps
    # from the future, and well within the day's correction deadline (the end of the following month).
    day = (datetime.now(h.JST) - timedelta(days=1)).date()
    env = Env(base, quick, n_gates, n_workers, day)
    out: list[Row] = []
    try:
        for fn in QUICK if quick else FAULTS:
            if only and fn.__name__ not in only and fn is not clean_run:
                continue
            t0 = time.monotonic()
            row = fn(env)
            out.append(row)
            if progress is not None:
                progress(row, time.monotonic() - t0)
    finally:
        env.close()
        if own:
            with contextlib.suppress(OSError):
                shutil.rmtree(base, ignore_errors=True)
    return out
