"""`make bench`: a gate's backlog drained after an outage, through the real gate publisher.

A gate kept 10,000 taps on its SD card while the broker was down (a night's outage, a mobile router
off). The broker comes back: how long until the server has acknowledged every one? Measured with the
gate's own Publisher and Buffer (send window, reconnect delay), a private Mosquitto, and the real
MqttIngest on SQLite (synchronous=FULL) and on a private PostgreSQL when one can be started.

The gate's publisher runs in its own process, as it does on its own machine in the field (in one
process with the server it took the server's interpreter lock for its own bookkeeping, ~0.6 ms of
the server's time per tap instead of ~0.3 ms); the broker is down long enough (OUTAGE_S) for the
gate's reconnect delay to have grown to its cap, as after a real outage, so the time to the first
Ack includes the wait for the gate's next attempt.

Printed beside the floor measured in the same run: the same taps published by a bare paho client
straight from memory to a bare responder (no gate buffer, no database, one process), so the
difference is what the gate's bookkeeping, its reconnect wait and the server's work cost. No limit
is asserted.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ingest import _world, broker_floor  # tests/bench/ingest.py

from firmware.buffer import Buffer
from firmware.config import GateConfig
from firmware.publisher import Publisher
from protocol.messages import DeviceStatus
from provisioning.devbroker import PrivateMosquitto
from server.config import MqttConfig
from server.ingest import MqttIngest
from server.store import migrate

JST = UTC  # the taps' wall time does not matter here; their day does, and all fall on one
# Broker down this long before it starts: the reconnect delay doubles from RECONNECT_MIN_S and reaches
# its cap (firmware.publisher.RECONNECT_MAX_S) within 0.5 + 1 + 2 s at most.
OUTAGE_S = 8.0


def run_gate(device: str, broker_url: str, data_dir: str, stop: Any) -> None:
    """The gate's publisher in a child process, until ``stop`` is set."""
    logging.disable(logging.WARNING)  # its "disconnected" at the end is not a result
    cfg = GateConfig(device_id=device, broker_url=broker_url, data_dir=Path(data_dir))

    def status() -> DeviceStatus:
        return DeviceStatus(device_id=device, state="online", at=datetime.now(UTC))

    publisher = Publisher(cfg, cfg.data_dir / "buffer.db", on_config=lambda c: None, on_command=lambda c: None,
                          on_connection=lambda up: None, status=status)
    publisher.start()
    stop.wait()
    publisher.stop()


def drain(base: Path, url: str, taps: int) -> tuple[float, float]:
    """(seconds from the broker's start to the last Ack, seconds to the first Ack)."""
    migrate.upgrade(url)
    ctx, gates, cards = _world(url, 1, taps)
    device = gates[0]
    broker = PrivateMosquitto(base / f"broker-{len(list(base.iterdir()))}", extra_config="max_queued_messages 0")
    cfg = GateConfig(device_id=device, broker_url=f"mqtt://127.0.0.1:{broker.port}", data_dir=base / f"gate-{device}")
    cfg.data_dir.mkdir(parents=True, exist_ok=True)
    buf = Buffer(cfg.data_dir / "buffer.db")
    # Yesterday morning: in the past (a tap ahead of the server's clock is refused), and correctable.
    at = (datetime.now(UTC) - timedelta(days=1)).replace(hour=0, minute=10, second=0, microsecond=0)
    # Filling the backlog is set-up, not what is timed: each tap its own commit (as at the gate), but
    # without waiting for the disk, then the buffer's own setting back.
    buf.db.conn.execute("PRAGMA synchronous = OFF")
    for k in range(taps):
        buf.record(tech="felica", uid=cards[k], direction="auto", at=at + timedelta(seconds=k), clock_synced=True,
                   boot_id="bench", mono_ms=k, shown="entry")
    buf.db.conn.execute("PRAGMA synchronous = FULL")
    assert buf.depth() == taps

    # The gate starts while the broker is down: it retries with its own (jittered) reconnect delay.
    spawn = multiprocessing.get_context("spawn")
    stop = spawn.Event()
    gate = spawn.Process(target=run_gate, args=(device, cfg.broker_url, str(cfg.data_dir), stop), name="gate")
    gate.start()
    server = MqttIngest(ctx, MqttConfig(host=broker.host, port=broker.port, config_debounce_s=60))
    time.sleep(OUTAGE_S)
    start = time.perf_counter()
    broker.start()
    server.start()
    first = float("nan")
    elapsed = float("nan")
    deadline = start + 600
    while time.perf_counter() < deadline:
        depth = buf.depth()
        if depth < taps and first != first:  # the first Ack (NaN != NaN until set)
            first = time.perf_counter() - start
        if depth == 0:
            elapsed = time.perf_counter() - start
            break
        time.sleep(0.05)
    stop.set()
    gate.join(timeout=30)
    if gate.is_alive():  # a publisher that does not stop must not hang the bench
        gate.terminate()
        gate.join()
    server.stop()
    broker.close()
    buf.close()
    ctx.store.dispose()
    return elapsed, first


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--taps", type=int, default=10_000, help="taps buffered at the gate")
    p.add_argument("--no-postgres", action="store_true", help="SQLite only")
    args = p.parse_args(argv)
    base = Path(tempfile.mkdtemp(prefix="genba-drain-", dir=Path.cwd()))
    results: list[tuple[str, float, float]] = []
    try:
        with PrivateMosquitto(base / "broker-floor", extra_config="max_queued_messages 0") as broker:
            floor = broker_floor(broker, 1, args.taps)  # msg/s of one client's bare round trips
        results.append(("sqlite", *drain(base, f"sqlite:///{base / 'drain.db'}", args.taps)))
        if not args.no_postgres:
            sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))
            from pgserver import PrivatePostgres  # tests/support/pgserver.py

            with PrivatePostgres() as pg:
                results.append(("postgresql", *drain(base, pg.create_database("drain"), args.taps)))
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print(f"drain bench: {args.taps} taps buffered at one gate while the broker was down, then the broker starts")
    print(f"  {'floor: the same number of bare QoS 1 round trips, one client':58} {args.taps / floor:8.2f} s")
    for backend, total, first in results:
        print(f"  {'gate buffer → ingest (' + backend + '), every tap acknowledged':58} {total:8.2f} s"
              f"   (first Ack after {first:.2f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
