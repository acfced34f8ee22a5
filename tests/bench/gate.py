"""`make bench` (gate): the tap path's time from card read to LED on, next to the physical floor.

Measured in one run on the same disk, printed side by side:

- tap path: Gate.on_card() for a card, to the moment the feedback LED's pin goes high (gpiozero mock
  pins stamped at the state change), with the buffer on disk (synchronous=FULL), p50/p99;
- floor: one bare synchronous SQLite INSERT + COMMIT with the stdlib driver, same settings, same disk;
  the settings are the tap thread's (WAL, synchronous=FULL, wal_autocheckpoint=0), and both files get
  the same PASSIVE checkpoint outside the timed taps every CHECKPOINT_TAPS taps, as the gate's
  housekeeping thread does while no card is tapped (the first commit after one restarts the WAL and
  syncs its header: both pay that in the timed path). The buffer's checkpoint empties the WAL only after
  a quiet minute (no acknowledged UID left in it): in a rush of taps it is PASSIVE like the floor's;
- the first taps after such a quiet minute, apart: their commits grow the emptied -wal file again;
- the gate as `genba-gate run` leaves it: start-up objects frozen out of the garbage collector;
- taps are GAP_S apart (untimed, the same gap before each floor insert): no reader presents two cards
  within 20 ms, and back to back the previous tap's gpiozero beep thread (started after the LED, one per
  beep) is still starting up when the next card arrives and takes the GIL from the tap thread's commit;
  that contention does not exist at a gate (`--gap 0` shows it);
- peak memory (VmHWM) of a running `genba-gate run --simulate` after a burst of taps.

No limit is asserted: the numbers are for reading, on this machine or on the Pi (run it there: the
SD card's flush time is what dominates the tap path).
"""

from __future__ import annotations

import argparse
import gc
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from gpiozero.pins.mock import MockFactory, MockPin

from firmware.buffer import BareInsert, Buffer
from firmware.clock import Clock
from firmware.config import GateConfig, Pins
from firmware.feedback import Feedback
from firmware.gate import CHECKPOINT_TAPS, Gate
from firmware.reader.base import CardRead
from firmware.voice import Voice
from protocol.messages import DeviceConfig, SiteRef, card_digest

KEY = "5a" * 16


class StampedPin(MockPin):
    """A mock pin that remembers when it last went high (perf_counter), for latency."""

    rose_at = 0.0

    def _change_state(self, value: bool) -> bool:
        changed = bool(super()._change_state(value))
        if changed and value:
            self.rose_at = time.perf_counter()
        return changed


class NoPublisher:
    def __init__(self, *_: Any, **__: Any) -> None:
        pass

    def start(self) -> None: ...
    def kick(self) -> None: ...
    def publish_status(self) -> None: ...
    def resync(self) -> None: ...
    def stop(self) -> None: ...


class IdleReader:
    def open(self) -> None: ...
    def read(self, timeout: float) -> None:
        time.sleep(timeout)

    def close(self) -> None: ...


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


class TapPath:
    """The gate's tap path on mock pins and a real buffer file, kept open between rounds."""

    def __init__(self, data_dir: Path) -> None:
        pins = Pins(led_red=17, led_green=27, led_blue=22, led_amber=None, buzzer=18, motion=None)
        cfg = GateConfig(device_id="bench-01", data_dir=data_dir, direction="in", debounce_s=0, pins=pins)
        factory = MockFactory(pin_class=StampedPin)
        self.voice = Voice(cfg.voice, data_dir / "voice", simulate=True)  # no audio device: the clip is skipped
        self.feedback = Feedback(cfg.pins, self.voice, pin_factory=factory)
        self.gate = Gate(cfg, reader=IdleReader(), feedback=self.feedback, clock=Clock(synced=True),
                         publisher_factory=NoPublisher)
        self.known, self.unknown = "0114000000000001", "0114000000000002"
        # On a site (a config without one is a gate the server does not know: 未登録, its own blinking
        # pattern, where no tap turns the green LED on by itself).
        self.gate._config = DeviceConfig(device_id="bench-01", version=1, site=SiteRef(id=1, name="ベンチ現場"),
                                         roster_key=KEY, roster={card_digest(KEY, self.known): "ok"})
        self.green, self.red = factory.pin(27), factory.pin(17)
        self.housekeeping = Buffer(self.gate.buffer_path)  # the housekeeping thread's connection
        self._i = 0
        # As `genba-gate run` does once the gate is built (firmware/cli.py): the start-up objects out of
        # the collector's way, so that a full collection over them never lands in a timed tap or insert.
        gc.collect()
        gc.freeze()

    def checkpoint(self) -> None:
        self.housekeeping.checkpoint()

    def time(self, n: int, gap_s: float = 0.0) -> list[float]:
        latencies: list[float] = []
        for _ in range(n):
            if gap_s:
                time.sleep(gap_s)
            self._i += 1
            # Alternate green (entry) and red (unknown card) so the LED pin measured is low before the tap.
            uid, pin = (self.known, self.green) if self._i % 2 == 0 else (self.unknown, self.red)
            card = CardRead("felica", uid)  # the reader's output: made before it calls the gate
            t0 = time.perf_counter()
            self.gate.on_card(card)
            deadline = t0 + 2.0
            while pin.rose_at < t0 and time.perf_counter() < deadline:  # type: ignore[attr-defined]
                time.sleep(0)
            if pin.rose_at < t0:  # type: ignore[attr-defined]
                # Not a slow tap: the gate is in a state whose pattern this tap does not start (the
                # bench once timed a gate without a site, 未登録, and printed its blink period).
                raise RuntimeError(f"the {'green' if pin is self.green else 'red'} LED did not turn on within 2 s "
                                   "of the tap: the bench's gate is not in the state it means to measure")
            latencies.append(pin.rose_at - t0)  # type: ignore[attr-defined]
        return latencies

    def close(self) -> None:
        self.housekeeping.close()
        self.feedback.close()
        self.voice.close()


WARMUP = 50  # taps (and inserts) discarded first: the first ones grow the files and fill the caches
GAP_S = 0.02
ROUNDS = 10  # the subject and the floor alternate, so both see the same disk, cache and neighbours


def alternate(subject: TapPath, floor: BareInsert, n: int, rounds: int = ROUNDS,
              gap_s: float = 0.0) -> tuple[list[float], list[float]]:
    subject.time(WARMUP)
    floor.time(WARMUP)
    path: list[float] = []
    bare: list[float] = []
    pending = WARMUP
    per_round = max(1, n // rounds)
    for _ in range(rounds):
        if pending >= CHECKPOINT_TAPS:  # between rounds, untimed, the same for both
            subject.checkpoint()
            floor.checkpoint()
            pending = 0
        path += subject.time(per_round, gap_s)
        bare += floor.time(per_round, gap_s)
        pending += per_round
    return path, bare


QUIET_TAPS = 10  # taps timed after each emptied WAL
QUIET_ROUNDS = 10


def first_taps_after_quiet(subject: TapPath, gap_s: float) -> list[float]:
    """The first taps of a rush: after a quiet minute the buffer truncates its WAL (no acknowledged UID
    left in it, firmware/buffer.py), and until the next checkpoint every commit appends to the file.
    Printed apart, not in the ratio: the same taps as the rest of the rush, on a file that grows."""
    latencies: list[float] = []
    for _ in range(QUIET_ROUNDS):
        subject.housekeeping._truncate_wal(wait_ms=1000)  # what checkpoint() does after a quiet minute
        latencies += subject.time(QUIET_TAPS, gap_s)
    return latencies


def peak_memory(data_dir: Path, taps: int) -> float:
    cfg = data_dir / "gate.toml"
    cfg.write_text(
        f'device_id = "bench-02"\nbroker_url = "mqtt://127.0.0.1:1"\ndata_dir = "{data_dir / "run"}"\n'
        'debounce_s = 0\n[pins]\nmotion = false\n',
        encoding="utf-8",
    )
    gate = subprocess.Popen(
        [str(Path(sys.executable).with_name("genba-gate")), "run", "--simulate", "--config", str(cfg),
         "--clock-synced", "yes"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    assert gate.stdin is not None and gate.stdout is not None
    for n in range(taps):
        gate.stdin.write(f"0114{n:012X}\n")
    gate.stdin.flush()
    seen = 0
    for line in gate.stdout:
        if line.startswith("tap "):
            seen += 1
            if seen == taps:
                break
    status = Path(f"/proc/{gate.pid}/status").read_text()
    hwm_kib = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:"))
    gate.terminate()
    gate.wait(timeout=30)
    return hwm_kib / 1024


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dir", type=Path, help="directory on the disk to measure (default: a temp dir here)")
    p.add_argument("-n", type=int, default=1000, help="taps to time")
    p.add_argument("--rounds", type=int, default=ROUNDS, help=f"rounds the taps are split in (default {ROUNDS})")
    p.add_argument("--gap", type=float, default=GAP_S,
                   help=f"seconds between taps, untimed (default {GAP_S}; 0: back to back)")
    p.add_argument("--no-memory", action="store_true", help="skip the running gate's peak memory")
    args = p.parse_args(argv)
    base = Path(tempfile.mkdtemp(prefix="genba-bench-", dir=args.dir or Path.cwd()))
    try:
        subject, bare_insert = TapPath(base / "gate"), BareInsert(base / "floor.db")
        try:
            path, floor = alternate(subject, bare_insert, args.n, args.rounds, args.gap)
            after_quiet = first_taps_after_quiet(subject, args.gap)
        finally:
            subject.close()
            bare_insert.close()
        mem = None if args.no_memory else peak_memory(base, 500)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    ms = 1000
    print(f"gate bench on {base.parent} ({args.n} taps each)")
    print(f"  {'':44} {'p50':>9} {'p99':>9} {'mean':>9}")
    print(f"  {'tap path: card read → LED on (buffer FULL)':44} {pct(path, 50) * ms:8.3f}ms {pct(path, 99) * ms:8.3f}ms"
          f" {statistics.fmean(path) * ms:8.3f}ms")
    print(f"  {'floor: bare sqlite3 INSERT+COMMIT, same disk':44} {pct(floor, 50) * ms:8.3f}ms"
          f" {pct(floor, 99) * ms:8.3f}ms {statistics.fmean(floor) * ms:8.3f}ms")
    p50, p99 = pct(path, 50) / pct(floor, 50), pct(path, 99) / pct(floor, 99)
    print(f"  {'ratio tap path / floor':44} {p50:8.2f}x {p99:8.2f}x")
    print(f"  (after {WARMUP} warm-up taps each, {args.gap * 1000:g} ms apart; tap path and floor alternated in"
          f" {args.rounds} rounds on warm files;")
    print(f"  both WAL, synchronous=FULL, wal_autocheckpoint=0, a checkpoint every {CHECKPOINT_TAPS} taps"
          " between rounds)")
    print(f"  {f'tap path, first {QUIET_TAPS} taps after a quiet minute':44} {pct(after_quiet, 50) * ms:8.3f}ms"
          f" {pct(after_quiet, 99) * ms:8.3f}ms {statistics.fmean(after_quiet) * ms:8.3f}ms")
    print("  (the WAL emptied for privacy once no tap came for a minute: their commits grow the -wal file again)")
    if mem is not None:
        print(f"  running gate peak memory after 500 taps (VmHWM): {mem:.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
