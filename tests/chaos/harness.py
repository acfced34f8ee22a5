"""The chaos suite's machinery: real processes on loopback, a scripted day, and the verification.

Everything here is the product as it runs on a site: `genba-gate run --simulate` children (cards on
stdin, feedback on stdout), `genba-server run` (and `genba-server ingest`) children on a SQLite file or
a private PostgreSQL, a private Mosquitto, and between the gates and the broker a TCP proxy on loopback
that can cut the network while the broker stays up. No part of the product is mocked.

What a row checks, and where it reads it (the honest observables):

- a tap got positive feedback when the gate printed ``tap <seq> <signal>`` (it prints that right after
  the LED/voice, and only after the tap's COMMIT on the SD card); the gate's buffer on its data dir is
  the superset of those (a SIGKILL between the COMMIT and the print leaves a durable tap the worker may
  not have seen). ``sent`` counts the buffer rows, and every printed tap must be one of them;
- at the server, taps by (device, buffer_id, seq): every buffer row stored exactly once, nothing stored
  that no gate holds, no tap_conflicts (a seq reused with other content), no tap stored twice under two
  seqs (same device, card, time and monotonic stamp);
- the attendance records, canonical (worker, work day, entry HH:MM, exit HH:MM in JST), equal those of
  a clean run of the same script; a record missing or different counts as lost, an extra one as a
  duplicate;
- tap → Ack from the gate's own bookkeeping (the buffer's created_at and acked_at, real UTC time);
  drain from the moment the fault ended to the last Ack.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT / "tests" / "support") not in sys.path:  # pytest puts it there; `make chaos` runs outside pytest
    sys.path.insert(0, str(ROOT / "tests" / "support"))

from mosquitto import PrivateMosquitto, free_port  # noqa: E402  (tests/support)
from mqtt_peers import stop_process, wait_for  # noqa: E402

from chaos.table import Row  # noqa: E402

BIN = Path(sys.executable).parent
GATE = BIN / "genba-gate"
SERVER = BIN / "genba-server"
JST = ZoneInfo("Asia/Tokyo")
NOT_SAVED = "say 記録できませんでした"  # the tap_not_saved sentence (firmware/feedback.py)
ALREADY = "say 記録済みです"  # the duplicate sentence: the debounce took the card
ANSWER_TIMEOUT_S = 20.0
DRAIN_TIMEOUT_S = 90.0


def utcnow() -> datetime:
    return datetime.now(UTC)


# --- child processes ---------------------------------------------------------------------------------


class Child:
    """A child process whose output is collected line by line; ``expected_exit`` is set by the suite
    before it stops or kills it, so a process that ends without it is counted as a crash."""

    def __init__(self, argv: list[str], *, stdin: bool = False, env: dict[str, str] | None = None,
                 name: str = "") -> None:
        self.name = name or Path(argv[0]).name
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE if stdin else subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, bufsize=1, env={**os.environ, **(env or {})},
        )
        self.lines: list[str] = []
        self.stderr: list[str] = []
        self.expected_exit = False
        self.changed = threading.Condition()
        self._watchers: list[Callable[[str], None]] = []
        self._pumps = [threading.Thread(target=self._pump, args=(stream, into), daemon=True)
                       for stream, into in ((self.proc.stdout, self.lines), (self.proc.stderr, self.stderr))]
        for t in self._pumps:
            t.start()

    def _pump(self, stream: Any, into: list[str]) -> None:
        for line in stream:
            line = line.rstrip("\n")
            for watch in list(self._watchers):
                watch(line)
            with self.changed:
                into.append(line)
                self.changed.notify_all()
        with self.changed:
            self.changed.notify_all()

    def drained(self, timeout: float = 5.0) -> None:
        """After the process ended: until its last lines are read."""
        for t in self._pumps:
            t.join(timeout)

    def watch(self, fn: Callable[[str], None]) -> None:
        self._watchers.append(fn)

    def saw(self, text: str) -> bool:
        return any(text in line for line in list(self.lines) + list(self.stderr))

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    @property
    def crashed(self) -> bool:
        return self.proc.poll() is not None and not self.expected_exit

    def stop(self) -> int:
        self.expected_exit = True
        return stop_process(self.proc)  # type: ignore[arg-type]

    def kill(self) -> None:
        self.expected_exit = True
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def tail(self, n: int = 30) -> str:
        return "\n".join((list(self.lines) + list(self.stderr))[-n:])


class Gate(Child):
    """`genba-gate run --simulate`: cards in on stdin, what the gate shows out on stdout."""

    def __init__(self, config: Path, device_id: str) -> None:
        super().__init__([str(GATE), "run", "--simulate", "--config", str(config), "--clock-synced", "yes"],
                         stdin=True, name=device_id)
        self.device_id = device_id

    def answers(self) -> list[tuple[str, int | None]]:
        """What each card was told, in order: ('tap', seq), ('not_saved', None) or ('already', None)."""
        out: list[tuple[str, int | None]] = []
        for line in list(self.lines):
            if line.startswith("tap "):
                out.append(("tap", int(line.split()[1])))
            elif line.startswith(NOT_SAVED):
                out.append(("not_saved", None))
            elif line.startswith(ALREADY):
                out.append(("already", None))
        return out

    def printed_seqs(self) -> list[int]:
        return [seq for kind, seq in self.answers() if kind == "tap" and seq is not None]

    def send(self, text: str) -> bool:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(text)
            self.proc.stdin.flush()
            return True
        except (BrokenPipeError, ValueError, OSError):
            return False

    def wait_answers(self, n: int, timeout: float = ANSWER_TIMEOUT_S) -> bool:
        """Until ``n`` answers were printed (True) or the gate died / the time ran out (False)."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while len(self.answers()) < n:
                left = deadline - time.monotonic()
                if left <= 0 or not self.alive:
                    return len(self.answers()) >= n
                self.changed.wait(min(left, 0.2))
        return True


class Server(Child):
    """`genba-server run` (HTTP API + ingest) or `genba-server ingest` (a second worker)."""

    def __init__(self, config: Path, *args: str, command: str = "run", env: dict[str, str] | None = None) -> None:
        super().__init__([str(SERVER), command, "--config", str(config), *args], env=env, name=f"server-{command}")
        self.command = command

    def wait_up(self, timeout: float = 60) -> Server:
        def up() -> bool:
            if not self.alive:
                raise AssertionError(f"{self.name} exited with {self.proc.returncode}:\n{self.tail()}")
            return self.saw("ingest connected") and (self.command != "run" or self.saw("Uvicorn running"))

        wait_for(up, f"{self.name} up", timeout)
        return self

    def ingest_counts(self) -> tuple[int, int] | None:
        """(recorded, duplicate) from the ingest's last words at a clean stop; None if it never said them
        (killed, or still running)."""
        for line in reversed(list(self.lines) + list(self.stderr)):
            m = re.search(r"ingest stopped: recorded (\d+), duplicate (\d+)", line)
            if m:
                return int(m.group(1)), int(m.group(2))
        return None

    def http_500s(self) -> int:
        return sum(1 for line in list(self.lines) + list(self.stderr) if '" 500' in line)


def stop_all(children: list[Child], timeout: float = 20.0) -> None:
    """SIGTERM to every live child at once, then wait for each (SIGKILL after ``timeout``)."""
    live = [c for c in children if c.alive]
    for c in live:
        c.expected_exit = True
        with contextlib.suppress(ProcessLookupError):
            c.proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for c in live:
        try:
            c.proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            c.proc.kill()
            c.proc.wait()
    for c in children:
        if not c.alive:
            c.drained()


# --- the network between the gates and the broker ---------------------------------------------------------


class Proxy:
    """A TCP proxy on loopback, gates → broker. ``cut()`` drops every connection at once and refuses new
    ones (accepted and closed with a reset) until ``heal()``: the site's router lost its uplink while the
    broker stayed up. The server talks to the broker directly."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = free_port()
        self._open = threading.Event()
        self._open.set()
        self._lock = threading.Lock()
        self._socks: set[socket.socket] = set()
        self._closed = False
        self._listener = socket.create_server(("127.0.0.1", self.port), reuse_port=False)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            if not self._open.is_set():
                self._reset(conn)
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=2)
                upstream.settimeout(None)
            except OSError:  # the broker is down: the gate sees its connection fail
                self._reset(conn)
                continue
            with self._lock:
                self._socks |= {conn, upstream}
            for a, b in ((conn, upstream), (upstream, conn)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            with contextlib.suppress(OSError):  # a reset or closed side ends the pipe: both are dropped
                while data := src.recv(65536):
                    dst.sendall(data)
        finally:
            for s in (src, dst):
                self._drop(s)

    @staticmethod
    def _reset(s: socket.socket) -> None:
        with contextlib.suppress(OSError):
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # RST
            s.close()

    def _drop(self, s: socket.socket) -> None:
        with self._lock:
            self._socks.discard(s)
        with contextlib.suppress(OSError):
            s.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            s.close()

    def cut(self) -> None:
        self._open.clear()
        with self._lock:
            socks = list(self._socks)
        for s in socks:
            self._drop(s)

    def heal(self) -> None:
        self._open.set()

    def close(self) -> None:
        self._closed = True
        self.cut()
        with contextlib.suppress(OSError):
            self._listener.close()


# --- the world on the server ------------------------------------------------------------------------------


@dataclass
class World:
    """The demo site with the chaos gates registered and ``n_workers`` of the 元請's workers on its roster,
    each with a card. ``directions[i]`` is gate i's direction (in / out, alternating)."""

    gates: list[str]
    directions: list[str]
    workers: list[int]
    cards: list[str]
    site_id: int


def build_world(url: str, n_gates: int, n_workers: int) -> World:
    """Migrate and fill the database at ``url`` through the services (the demo's builder for the site,
    bulk inserts for the workers: set-up, not what is measured)."""
    from sqlalchemy import insert, select
    from sqlalchemy.orm import Session as DbSession

    from server import demo
    from server.services import devices
    from server.services.context import Context
    from server.store import migrate
    from server.store import tables as t
    from server.store.database import Store

    migrate.upgrade(url)
    ctx = Context(Store(url), fast_hashing=True)
    try:
        info = demo.build(ctx)
        prime = info["companies"]["kihon"]  # type: ignore[index]
        sid = int(info["site_id"])  # type: ignore[call-overload]
        gates = [f"chaos-{i + 1:02d}" for i in range(n_gates)]
        directions = ["in" if i % 2 == 0 else "out" for i in range(n_gates)]
        for i, (g, d) in enumerate(zip(gates, directions, strict=True)):
            devices.register(ctx, prime.actor, sid, g, f"カオス {i + 1} {'入場' if d == 'in' else '退場'}", d)
        now = utcnow()
        first = 200_000
        ids = list(range(first, first + n_workers))
        cards = [f"0116{w:012X}" for w in ids]
        with DbSession(ctx.store.engine) as s, s.begin():
            root = s.scalar(select(t.HierarchyNode.id).where(t.HierarchyNode.site_id == sid,
                                                             t.HierarchyNode.parent_id.is_(None)))
            s.execute(insert(t.Worker), [{"id": w, "ccus_id": f"6{w:013d}", "name": f"作業員 {w}",
                                          "employer_id": prime.id, "created_at": now} for w in ids])
            s.execute(insert(t.Card), [{"uid": c, "tech": "felica", "worker_id": w, "issued_at": now}
                                       for w, c in zip(ids, cards, strict=True)])
            s.execute(insert(t.RosterEntry), [{"site_id": sid, "node_id": root, "worker_id": w, "trade_major": "06",
                                               "trade_minor": "01", "position": "general", "hazardous": [],
                                               "health_checks": [], "qualification_ids": [],
                                               "registered_by_company_id": prime.id, "created_at": now,
                                               "updated_at": now} for w in ids])
    finally:
        ctx.store.dispose()
    return World(gates, directions, ids, cards, sid)


# --- the scripted day -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScriptTap:
    gate: int  # index into World.gates
    worker: int  # index into World.workers
    at: datetime  # the time the script says it is at that gate (JST)


def scripted_day(world: World, day: date) -> list[list[ScriptTap]]:
    """Four phases, every worker once in each: in through an entry gate in the morning, out and back in
    at lunch, out through an exit gate in the evening. Each tap at HH:MM:30, so a gate's stamp (the
    script's time plus how long the gate took to read the line) keeps its minute even on a slow machine."""
    ins = [i for i, d in enumerate(world.directions) if d == "in"]
    outs = [i for i, d in enumerate(world.directions) if d == "out"]

    def at(hh: int, mm: int, plus_min: int) -> datetime:
        return datetime.combine(day, dtime(hh, mm, 30), tzinfo=JST) + timedelta(minutes=plus_min)

    n = len(world.workers)
    return [
        [ScriptTap(ins[w % len(ins)], w, at(7, 0, w)) for w in range(n)],
        [ScriptTap(outs[w % len(outs)], w, at(11, 0, w)) for w in range(n)],
        [ScriptTap(ins[(w + 1) % len(ins)], w, at(12, 10, w)) for w in range(n)],
        [ScriptTap(outs[(w + 1) % len(outs)], w, at(17, 0, w)) for w in range(n)],
    ]


Canon = tuple[int, str, str | None, str | None]  # worker id, work day, entry HH:MM, exit HH:MM (JST)


def expected_records(world: World, taps: list[tuple[ScriptTap, datetime]]) -> set[Canon]:
    """What the server's rules (server/domain/attendance.py build_record) make of taps stamped at the given
    times, with this script's gates (in / out, no auto): entry = the earliest 'in', exit = the latest 'out'.
    What the clean run must produce, and the clock-jump row, whose taps carry other times than the script's."""
    by_worker: dict[int, list[tuple[str, datetime]]] = {}
    for tap, stamped in taps:
        by_worker.setdefault(tap.worker, []).append((world.directions[tap.gate], stamped))
    out: set[Canon] = set()
    for w, ts in by_worker.items():
        ins = [a for d, a in ts if d == "in"]
        outs = [a for d, a in ts if d == "out"]
        first = min(a for _, a in ts).astimezone(JST)
        day = (first - timedelta(hours=4)).date().isoformat()  # the site's day boundary, 04:00
        out.add((world.workers[w], day, _hm(min(ins)) if ins else None, _hm(max(outs)) if outs else None))
    return out


def _hm(at: datetime | None) -> str | None:
    return None if at is None else at.astimezone(JST).strftime("%H:%M")


# --- one row's stage ------------------------------------------------------------------------------------


@dataclass
class Outcome:
    """What the feeder saw at one gate slot."""

    told: list[tuple[ScriptTap, str, datetime]] = field(default_factory=list)  # tap, answer, stamped time
    refused: list[ScriptTap] = field(default_factory=list)


class Stage:
    """One row: a broker, the proxy, a server on its own database, the gates; the script played through it.

    ``gates[i]`` is the live process of slot i; a killed gate is replaced by a new process on the same data
    dir (``restart_gate``), as systemd would. ``all_gates`` keeps every process that ran, for the checks.
    """

    def __init__(self, base: Path, world: World, db_url: str, *, tmpfs_gate: int | None = None,
                 tmpfs_mb: int = 24, server_env: dict[str, str] | None = None,
                 voice_cache: Path | None = None) -> None:
        self.base, self.world, self.db_url = base, world, db_url
        self.voice_cache = voice_cache
        self.servers: list[Server] = []
        self.mounts: list[Path] = []
        self.data_dirs: list[Path] = []
        self.gates: list[Gate] = []
        self.all_gates: list[Gate] = []
        self.proxy: Proxy | None = None
        self._alive = [threading.Event() for _ in world.gates]
        self.shift: dict[ScriptTap, timedelta] = {}  # the gate's clock off the script's time at these taps
        self.fault_over = threading.Event()
        self.fault_over.set()
        self.fault_end: datetime | None = None
        self.outcomes = [Outcome() for _ in world.gates]
        base.mkdir(parents=True, exist_ok=True)
        self.broker = PrivateMosquitto(base / "broker")
        try:
            self._start(server_env, tmpfs_gate, tmpfs_mb)
        except BaseException:
            self.close()
            raise

    def _start(self, server_env: dict[str, str] | None, tmpfs_gate: int | None, tmpfs_mb: int) -> None:
        self.broker.start()
        self.proxy = Proxy(self.broker.port)
        self.config = self.base / "server.toml"
        self.config.write_text(
            f'database_url = "{self.db_url}"\n[http]\nport = {free_port()}\n'
            f'[mqtt]\nhost = "127.0.0.1"\nport = {self.broker.port}\nconfig_debounce_s = 0.2\n',
            encoding="utf-8",
        )
        self.server = self.start_server(server_env, wait=False)  # comes up while the gates start
        for i, device in enumerate(self.world.gates):
            data = self.base / device
            if tmpfs_gate == i:
                data.mkdir(parents=True, exist_ok=True)
                subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={tmpfs_mb}m", "tmpfs", str(data)], check=True)
                self.mounts.append(data)
            if self.voice_cache is not None and self.voice_cache.is_dir():  # a gate that ran before: voice rendered
                shutil.copytree(self.voice_cache, data / "voice", dirs_exist_ok=True)
            self.data_dirs.append(data)
            self.gates.append(self._spawn_gate(i))
            self._alive[i].set()
        self.server.wait_up()
        for g in self.gates:  # the roster push: every gate judges cards by the server's roster
            wait_for(lambda g=g: any("cards on the roster" in line for line in g.stderr),
                     f"the roster pushed to {g.device_id}", 60)

    # -- processes --

    def start_server(self, env: dict[str, str] | None = None, wait: bool = True) -> Server:
        server = Server(self.config, env=env)
        self.servers.append(server)
        if wait:
            server.wait_up()
        self.server = server
        return server

    def _gate_config(self, i: int) -> Path:
        cfg = self.base / f"{self.world.gates[i]}.toml"
        cfg.write_text("\n".join([
            f'device_id = "{self.world.gates[i]}"',
            f'broker_url = "mqtt://127.0.0.1:{self._proxy.port}"',
            f'data_dir = "{self.data_dirs[i]}"',
            'direction = "auto"',  # the server's device record decides
            "debounce_s = 0.3",
            "ack_timeout_s = 1",
            "[pins]",
            "motion = false",
        ]) + "\n", encoding="utf-8")
        return cfg

    @property
    def _proxy(self) -> Proxy:
        assert self.proxy is not None
        return self.proxy

    def _spawn_gate(self, i: int) -> Gate:
        gate = Gate(self._gate_config(i), self.world.gates[i])
        self.all_gates.append(gate)
        return gate

    def kill_gate(self, i: int) -> None:
        self._alive[i].clear()
        self.gates[i].kill()

    def restart_gate(self, i: int) -> None:
        self.gates[i] = self._spawn_gate(i)
        g = self.gates[i]
        wait_for(lambda: any("config version" in line for line in g.stderr), f"{g.device_id} restarted", 60)
        self._alive[i].set()

    # -- the script --

    def play(self, phases: list[list[ScriptTap]], *, fault: Callable[[Stage], None] | None = None,
             when: float = 0.35, burst: set[int] | None = None, pace_s: float = 0.1) -> None:
        """Tap the script, every gate at once (one thread per gate; at each gate one card after the other,
        waiting for its answer, as workers queue at a reader). ``fault`` runs once ``when`` of all taps were
        answered, while the gates go on; it returns when the fault is over. Gates in ``burst`` get each
        phase's cards written at once (a queue at the reader that does not wait), so a kill lands mid-burst.
        A tap refused (disk full) is tapped again once the fault is over; a tap without an answer (its gate
        was killed) is tapped again on the restarted gate: what the worker, told nothing, would do. The next
        worker steps up ``pace_s`` after an answer, so the day lasts long enough for a fault to fall into it."""
        total = sum(len(p) for p in phases)
        trigger = max(1, int(total * when))
        answered = [0]
        lock = threading.Lock()
        fired = threading.Event()
        fault_thread: threading.Thread | None = None
        errors: list[BaseException] = []

        def count(n: int = 1) -> None:
            nonlocal fault_thread
            with lock:
                answered[0] += n
                go = fault is not None and not fired.is_set() and answered[0] >= trigger
                if go:
                    fired.set()
            if go:
                assert fault is not None

                def run_fault() -> None:
                    self.fault_over.clear()
                    try:
                        fault(self)
                    except BaseException as exc:  # noqa: BLE001  (reported by play)
                        errors.append(exc)
                    finally:
                        self.fault_end = utcnow()
                        self.fault_over.set()

                fault_thread = threading.Thread(target=run_fault, daemon=True)
                fault_thread.start()

        for phase in phases:
            threads = []
            for i in range(len(self.world.gates)):
                mine = [tap for tap in phase if tap.gate == i]
                feeder = self._burst if burst and i in burst else self._serial
                th = threading.Thread(target=self._guard, args=(feeder, i, mine, count, pace_s, errors), daemon=True)
                th.start()
                threads.append(th)
            for th in threads:
                th.join()
            if errors:
                break
        if fault is not None and not fired.is_set():
            count(0)
            fired.set()
        if fault_thread is not None:
            fault_thread.join()
        if errors:
            raise errors[0]
        if fault is None:
            self.fault_end = utcnow()

    @staticmethod
    def _guard(feeder: Callable[..., None], *args: Any) -> None:
        errors: list[BaseException] = args[-1]
        try:
            feeder(*args[:-1])
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    def _wait_alive(self, i: int, timeout: float = 120.0) -> None:
        if not self._alive[i].wait(timeout):
            raise AssertionError(f"{self.world.gates[i]} was not started again")

    def _line(self, tap: ScriptTap) -> tuple[str, datetime]:
        stamped = tap.at + self.shift.get(tap, timedelta(0))
        return f"!clock {stamped.isoformat()}\n{self.world.cards[tap.worker]}\n", stamped

    def _serial(self, i: int, taps: list[ScriptTap], count: Callable[[int], None], pace_s: float) -> None:
        out = self.outcomes[i]
        pending = list(taps)
        retry: list[ScriptTap] = []
        refusals: Counter[ScriptTap] = Counter()
        while pending or retry:
            if not pending:
                self.fault_over.wait()
                time.sleep(0.5)
                pending, retry = retry, []
            tap = pending.pop(0)
            self._wait_alive(i)
            gate = self.gates[i]
            before = len(gate.answers())
            text, stamped = self._line(tap)
            if gate.send(text) and gate.wait_answers(before + 1):
                kind = gate.answers()[before][0]
                out.told.append((tap, kind, stamped))
                count(1)
                time.sleep(pace_s)
                if kind == "not_saved":
                    out.refused.append(tap)
                    retry.append(tap)
                    refusals[tap] += 1
                    if refusals[tap] > 10:
                        raise AssertionError(f"{gate.device_id} still refuses taps after the fault:\n{gate.tail()}")
                continue
            if gate.alive:
                raise AssertionError(f"{gate.device_id} gave no answer to a card:\n{gate.tail()}")
            pending.insert(0, tap)  # killed: tapped again on the restarted gate
            self._wait_alive(i)

    def _burst(self, i: int, taps: list[ScriptTap], count: Callable[[int], None], pace_s: float) -> None:
        out = self.outcomes[i]
        pending = list(taps)
        while pending:
            self._wait_alive(i)
            gate = self.gates[i]
            before = len(gate.answers())
            lines = []
            for tap in pending:
                text, stamped = self._line(tap)
                lines.append((text, stamped))
            gate.send("".join(text for text, _ in lines))
            seen = before
            while seen < before + len(pending):
                if not gate.wait_answers(seen + 1):
                    break
                seen += 1
                count(1)
            got = gate.answers()[before:seen]
            for (kind, _), tap, (_, stamped) in zip(got, pending, lines, strict=False):
                out.told.append((tap, kind, stamped))
                if kind != "tap":
                    raise AssertionError(f"{gate.device_id}: a burst card was told {kind}")
            pending = pending[len(got):]
            if pending:
                if gate.alive:
                    raise AssertionError(f"{gate.device_id} stopped answering mid-burst:\n{gate.tail()}")
                self._wait_alive(i)

    # -- after the day --

    def drain(self, timeout: float = DRAIN_TIMEOUT_S) -> bool:
        """Until every gate's buffer is acknowledged (True), or the time is up (False)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(self.depth(i) == 0 for i in range(len(self.world.gates))):
                return True
            time.sleep(0.1)
        return False

    def depth(self, i: int) -> int:
        path = self.data_dirs[i] / "buffer.db"
        try:
            conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=5)
            try:
                return int(conn.execute("SELECT count(*) FROM taps WHERE acked_at IS NULL").fetchone()[0])
            finally:
                conn.close()
        except sqlite3.Error:
            return -1

    def close(self) -> None:
        stop_all(self.all_gates)
        stop_all(self.servers)
        if self.proxy is not None:
            self.proxy.close()
        self.broker.close()
        for m in self.mounts:
            subprocess.run(["umount", "-l", str(m)], check=False)


# --- verification -----------------------------------------------------------------------------------------


@dataclass
class BufferRow:
    device: str
    buffer_id: str
    seq: int
    created_at: datetime
    acked_at: datetime | None


def read_buffer(device: str, path: Path) -> list[BufferRow]:
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=10)
    try:
        buffer_id = bytes(conn.execute("SELECT value FROM meta WHERE key = 'buffer_id'").fetchone()[0]).decode()
        rows = conn.execute("SELECT seq, created_at, acked_at FROM taps ORDER BY seq").fetchall()
    finally:
        conn.close()
    return [BufferRow(device, buffer_id, seq, datetime.fromisoformat(c), datetime.fromisoformat(a) if a else None)
            for seq, c, a in rows]


@dataclass
class ServerView:
    taps: list[tuple[str, str, int, str, datetime, int, str]]  # device, buffer, seq, card, at, mono_ms, boot
    conflicts: int
    records: set[Canon]
    tap_counts: int  # sum of tap_count over the records of the script's workers
    worker_taps: int  # taps of the script's workers


def read_server(db_url: str, world: World) -> ServerView:
    from sqlalchemy import create_engine, func, select

    from server.store import tables as t

    engine = create_engine(db_url)
    try:
        with engine.connect() as c:
            taps = c.execute(
                select(t.Device.device_id, t.Tap.buffer_id, t.Tap.seq, t.Tap.card_uid, t.Tap.at, t.Tap.mono_ms,
                       t.Tap.boot_id).join(t.Device, t.Device.id == t.Tap.device_pk)
                .where(t.Device.device_id.in_(world.gates))).all()
            conflicts = c.scalar(select(func.count()).select_from(t.TapConflict)
                                 .join(t.Device, t.Device.id == t.TapConflict.device_pk)
                                 .where(t.Device.device_id.in_(world.gates))) or 0
            recs = c.execute(select(t.Attendance.worker_id, t.Attendance.work_day, t.Attendance.entry_at,
                                    t.Attendance.exit_at, t.Attendance.tap_count)
                             .where(t.Attendance.worker_id.in_(world.workers))).all()
            worker_taps = c.scalar(select(func.count()).select_from(t.Tap)
                                   .where(t.Tap.worker_id.in_(world.workers))) or 0
    finally:
        engine.dispose()

    def aware(x: datetime | None) -> datetime | None:
        return None if x is None else (x if x.tzinfo else x.replace(tzinfo=UTC))

    records = {(w, d.isoformat(), _hm(aware(e)), _hm(aware(x))) for w, d, e, x, _ in recs}
    return ServerView([(d, b, s, u, aware(a), m, bo) for d, b, s, u, a, m, bo in taps],  # type: ignore[misc]
                      int(conflicts), records, sum(n for *_, n in recs), int(worker_taps))


def verify(stage: Stage, name: str, expected: set[Canon] | None, *, note: str = "",
           drained: bool = True, extra_crashes: int = 0) -> tuple[Row, set[Canon]]:
    """Stop the gates, read every buffer and the server's database, and make the row (see the module doc)."""
    stop_all(stage.all_gates)
    crashes = sum(1 for p in [*stage.all_gates, *stage.servers] if p.crashed) + extra_crashes
    crashed_names = [p.name for p in [*stage.all_gates, *stage.servers] if p.crashed]
    rows: list[BufferRow] = []
    for device, data in zip(stage.world.gates, stage.data_dirs, strict=True):
        rows += read_buffer(device, data / "buffer.db")
    server = read_server(stage.db_url, stage.world)
    stop_all(stage.servers)

    stored = Counter((d, b, s) for d, b, s, *_ in server.taps)
    held = {(r.device, r.buffer_id, r.seq) for r in rows}
    lost = sum(1 for k in held if stored[k] == 0)
    duplicates = sum(n - 1 for n in stored.values() if n > 1)  # impossible by the unique key; counted anyway
    duplicates += sum(1 for k in stored if k not in held)  # stored, but no gate holds such a tap
    duplicates += server.conflicts  # a seq reused with other content
    same = Counter((d, u, a, m, bo) for d, _, _, u, a, m, bo in server.taps)
    duplicates += sum(n - 1 for n in same.values() if n > 1)  # one tap stored under two seqs
    # Every tap a gate printed is on its SD card, and a seq is printed once per buffer.
    buffer_ids = {d: {r.buffer_id for r in rows if r.device == d} for d in stage.world.gates}
    seqs = {(r.device, r.seq) for r in rows}
    for g in stage.all_gates:
        printed = g.printed_seqs()
        lost += sum(1 for seq in printed if (g.device_id, seq) not in seqs)
    for device in stage.world.gates:
        printed = [seq for g in stage.all_gates if g.device_id == device for seq in g.printed_seqs()]
        if len(buffer_ids[device]) == 1:
            duplicates += len(printed) - len(set(printed))
    problems = []
    if expected is not None and server.records != expected:
        missing = expected - server.records
        extra = server.records - expected
        lost += len(missing)
        changed = {(w, d) for w, d, _, _ in missing}
        duplicates += sum(1 for w, d, _, _ in extra if (w, d) not in changed)  # a record no clean run has
        problems.append(f"records differ from the expected ones: {len(missing)} missing or changed, {len(extra)} extra "
                        f"(e.g. {sorted(missing)[:2]} vs {sorted(extra)[:2]})")
    if server.tap_counts != server.worker_taps:
        problems.append(f"records count {server.tap_counts} taps, the server holds {server.worker_taps}")
        duplicates += max(0, server.tap_counts - server.worker_taps)
    if not drained:
        problems.append("not drained within the time allowed")
    if crashed_names:
        problems.append("died: " + ", ".join(crashed_names))
    latencies = sorted((r.acked_at - r.created_at).total_seconds() for r in rows if r.acked_at is not None)
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] if latencies else None
    last_ack = max((r.acked_at for r in rows if r.acked_at is not None), default=None)
    drain = None
    if last_ack is not None and stage.fault_end is not None:
        drain = max(0.0, (last_ack - stage.fault_end).total_seconds())
    row = Row(name=name, sent=len(rows), recorded=sum(1 for k in held if stored[k] >= 1), duplicates=duplicates,
              lost=lost, crashes=crashes, http_500=sum(s.http_500s() for s in stage.servers), p99_ack_s=p99,
              drain_s=drain, note="; ".join(x for x in [note, *problems] if x))
    return row, server.records


@contextlib.contextmanager
def stage(base: Path, world: World, db_url: str, **kw: Any) -> Iterator[Stage]:
    s = Stage(base, world, db_url, **kw)
    try:
        yield s
    finally:
        s.close()


def fill_disk(directory: Path) -> Path:
    """A ballast file that takes every free byte of the file system ``directory`` is on (unbuffered
    writes until ENOSPC, down to 512-byte pieces)."""
    ballast = directory / "ballast.bin"
    fd = os.open(ballast, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for size in (1 << 20, 1 << 16, 4096, 512):
            chunk = b"\0" * size
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, chunk)
    finally:
        os.close(fd)
    return ballast


def render_voice(cache: Path, timeout: float = 120.0) -> None:
    """The gate's phrases rendered once into ``cache`` (firmware/voice.py, as a gate does at its first
    start), so each row's fresh gates do not all render them again at once on two cores."""
    from firmware.config import Voice as VoiceConfig
    from firmware.voice import Voice

    voice = Voice(VoiceConfig(), cache, simulate=True)
    try:
        voice.prepare()
        voice.wait_rendered(timeout)
    finally:
        voice.close()


def copy_sqlite(template: Path, to: Path) -> str:
    shutil.copy(template, to)
    return f"sqlite:///{to}"


def is_root() -> bool:
    return os.geteuid() == 0
