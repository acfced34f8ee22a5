"""`make bench` (server): ingest throughput next to the broker's own floor.

Measured in one run, on this machine, the floor and the ingest on SQLite and PostgreSQL alternated in
ROUNDS rounds (medians printed with their range), side by side:

- floor: the broker's QoS 1 round trip with no database: N clients publish at once, one responder on
  a shared subscription answers each message (QoS 1) to the sender, as the server answers a tap;
- ingest: N simulated gates publish TapEvents at once through the same kind of private Mosquitto,
  every tap a different worker on the roster (a morning rush), the real MqttIngest stores them
  (SQLite, synchronous=FULL, each worker's record built) and Acks after commit; taps/s counted
  from the first publish until every gate has its Acks, started once every gate has its config;
- the same on a private PostgreSQL (tests/support/pgserver.py, fsync off as the tests run it);
- with --month, a month's attendance for 100, 1,000 and 10,000 workers built and read here
  (tests/bench/month.py, in `make bench`, times the month view beside its floor).

No limit is asserted: the numbers are for reading. The database sits in a temp dir on this disk.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from sqlalchemy import insert, select
from sqlalchemy.orm import Session as DbSession

from protocol.messages import Ack, Card, TapEvent, decode, encode
from protocol.topics import topic
from provisioning.devbroker import PrivateMosquitto
from server.config import MqttConfig
from server.domain import attendance as rules
from server.domain.accounts import Actor, Role
from server.ingest import MqttIngest
from server.services import attendance, devices
from server.services.context import Context
from server.store import migrate
from server.store import tables as t
from server.store.database import Store

JST = rules.JST


def client(broker: PrivateMosquitto, name: str) -> mqtt.Client:
    c = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=name,
                    protocol=MQTTProtocolVersion.MQTTv5)
    c.max_inflight_messages_set(100)
    c.connect(broker.host, broker.port)
    c.loop_start()
    return c


def wait(check: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.005)
    return False


def broker_floor(broker: PrivateMosquitto, n_devices: int, per_device: int) -> float:
    """Messages/s for publish → shared-subscription responder → reply to the sender, all QoS 1."""
    responder = client(broker, "bench-responder")
    responder.on_message = lambda c, u, m: c.publish(m.topic.replace("/req", "/resp"), m.payload, qos=1)
    responder.subscribe("$share/bench/bench/+/req", qos=1)
    got = [0] * n_devices
    senders = []
    for i in range(n_devices):
        c = client(broker, f"bench-floor-{i}")
        c.on_message = lambda c, u, m, i=i: got.__setitem__(i, got[i] + 1)
        c.subscribe(f"bench/d{i}/resp", qos=1)
        senders.append(c)
    time.sleep(0.5)
    body = b"x" * 300  # about a TapEvent's size
    start = time.perf_counter()
    for _ in range(per_device):
        for i, c in enumerate(senders):
            c.publish(f"bench/d{i}/req", body, qos=1)
    ok = wait(lambda: sum(got) >= n_devices * per_device, 120)
    elapsed = time.perf_counter() - start
    for c in [*senders, responder]:
        c.disconnect()
        c.loop_stop()
    return (sum(got) / elapsed) if ok else float("nan")


def _world(url: str, n_devices: int, n_workers: int) -> tuple[Context, list[str], list[str]]:
    """The demo site plus ``n_workers`` more of the 元請's own workers on its roster, each with a card,
    so that each tap of a burst is a different worker (as at a gate in the morning)."""
    from server import demo

    ctx = Context(Store(url))
    info = demo.build(ctx)
    prime = info["companies"]["kihon"]  # type: ignore[index]
    sid = int(info["site_id"])  # type: ignore[call-overload]
    gates = []
    for i in range(n_devices):
        gates.append(f"bench-{i:03d}")
        devices.register(ctx, prime.actor, sid, gates[-1], f"ベンチ {i}", "auto")
    now = datetime.now(UTC)
    with DbSession(ctx.store.engine) as s, s.begin():  # bulk-loaded: raw Core inserts
        root = s.scalar(select(t.HierarchyNode.id).where(t.HierarchyNode.site_id == sid,
                                                         t.HierarchyNode.parent_id.is_(None)))
        first = 100_000
        ids = range(first, first + n_workers)
        s.execute(insert(t.Worker), [{"id": w, "ccus_id": f"7{w:013d}", "name": f"技能者 {w}",
                                      "employer_id": prime.id, "created_at": now} for w in ids])
        s.execute(insert(t.Card), [{"uid": f"0115{w:012X}", "tech": "felica", "worker_id": w, "issued_at": now}
                                   for w in ids])
        s.execute(insert(t.RosterEntry), [{"site_id": sid, "node_id": root, "worker_id": w, "trade_major": "06",
                                           "trade_minor": "01", "position": "general", "hazardous": [],
                                           "health_checks": [], "qualification_ids": [],
                                           "registered_by_company_id": prime.id, "created_at": now,
                                           "updated_at": now} for w in ids])
    return ctx, gates, [f"0115{w:012X}" for w in ids]


def ingest_throughput(base: Path, broker: PrivateMosquitto, n_devices: int, per_device: int,
                      url: str | None = None) -> float:
    url = url or f"sqlite:///{base / 'ingest.db'}"
    migrate.upgrade(url)
    ctx, gates, cards = _world(url, n_devices, n_devices * per_device)
    server = MqttIngest(ctx, MqttConfig(host=broker.host, port=broker.port, config_debounce_s=60))
    server.start()
    wait(server.connected.is_set, 30)
    # A morning rush comes long after the server started: the gates have their config. Pushing it
    # (a roster of every worker, digested per gate) must not run inside the timed burst.
    wait(lambda: len(server._pusher.published) >= n_devices, 60)
    acked = [0] * n_devices
    pubs = []
    for i, device in enumerate(gates):
        c = client(broker, device)

        def on_ack(c: Any, u: Any, m: Any, i: int = i) -> None:
            acked[i] += len(decode(Ack, m.payload).acks)

        c.on_message = on_ack
        c.subscribe(topic(device, "ack"), qos=1)
        pubs.append(c)
    time.sleep(0.5)
    buffer_id = uuid.uuid4().hex
    # Yesterday morning: in the past (a tap ahead of the server's clock is refused), and correctable.
    day = (datetime.now(JST) - timedelta(days=1)).replace(hour=7, minute=0, second=0, microsecond=0)
    bodies = [[encode(TapEvent(device_id=device, buffer_id=buffer_id, seq=k + 1,
                               card=Card(tech="felica", uid=cards[(i * per_device + k) % len(cards)]),
                               direction="auto", at=day + timedelta(seconds=k), clock_synced=True,
                               boot_id="bench", mono_ms=k))
               for k in range(per_device)] for i, device in enumerate(gates)]
    start = time.perf_counter()
    for k in range(per_device):
        for i, c in enumerate(pubs):
            c.publish(topic(gates[i], "tap"), bodies[i][k], qos=1)
    ok = wait(lambda: sum(acked) >= n_devices * per_device, 300)
    elapsed = time.perf_counter() - start
    for c in pubs:
        c.disconnect()
        c.loop_stop()
    server.stop()
    ctx.store.dispose()
    return (sum(acked) / elapsed) if ok else float("nan")


def month_taps(workers: int, first: date) -> list[rules.Tap]:
    taps = []
    seq = 0
    for d in range(22):
        day = first + timedelta(days=d + d // 5 * 2)  # weekdays
        start = datetime(day.year, day.month, day.day, 7, 50, tzinfo=JST)
        for w in range(workers):
            seq += 1
            taps.append(rules.Tap(seq, rules.Direction.IN, start + timedelta(seconds=w % 900), True, w + 1, 1))
            seq += 1
            taps.append(rules.Tap(seq, rules.Direction.OUT, start + timedelta(hours=9, seconds=w % 900), True,
                                  w + 1, 1))
    return taps


def load_month(url: str, workers: int, first: date) -> None:
    """One site, one company, ``workers`` workers and their month of records, bulk-loaded with raw
    Core inserts (the ingest's rebuild cost is in the throughput bench, not here)."""
    migrate.upgrade(url)
    store = Store(url)
    now = datetime.now(UTC)
    with DbSession(store.engine) as s, s.begin():
        s.execute(insert(t.Company), [{"id": 1, "ccus_id": "10000000000001", "name": "(株)元請", "created_at": now}])
        s.execute(insert(t.Site), [{"id": 1, "ccus_id": "40000000000001", "name": "ベンチ現場", "prime_id": 1,
                                    "order_type": "private", "period_start": first,
                                    "period_end": first + timedelta(400),
                                    "disclosed_items": [], "day_boundary": "04:00", "created_at": now}])
        s.execute(insert(t.HierarchyNode), [{"id": 1, "site_id": 1, "company_id": 1, "status": "registered",
                                             "invited_at": now, "version": 1}])
        s.execute(insert(t.Worker), [{"id": w, "ccus_id": f"8{w:013d}", "name": f"技能者 {w}", "employer_id": 1,
                                      "created_at": now} for w in range(1, workers + 1)])
        rows: list[dict[str, Any]] = []
        for r in rules.build_records(month_taps(workers, first), rules.DayRule()):
            rows.append({"site_id": 1, "worker_id": r.worker_id, "work_day": r.work_day,
                         "entry_at": r.entry_at.astimezone(UTC) if r.entry_at else None,
                         "exit_at": r.exit_at.astimezone(UTC) if r.exit_at else None,
                         "tap_count": 2, "clock_unverified": False, "employer_id": 1, "node_id": 1, "tier": 0,
                         "on_roster": True, "trade_major": "06", "trade_minor": "01", "position": "general",
                         "valid": True, "reasons": [], "updated_at": now})
        s.execute(insert(t.Attendance), rows)
    store.dispose()


def month_read(base: Path, workers: int, first: date) -> float:
    """site_month over a month of records, bulk-loaded."""
    url = f"sqlite:///{base / f'month{workers}.db'}"
    load_month(url, workers, first)
    ctx = Context(Store(url))
    actor = Actor(account_id=0, role=Role.COMPANY_OWNER, company_id=1)
    start = time.perf_counter()
    out = attendance.site_month(ctx, actor, 1, first.strftime("%Y-%m"))
    elapsed = time.perf_counter() - start
    assert len(out["workers"]) == workers
    ctx.store.dispose()
    return elapsed


ROUNDS = 3  # floor, SQLite and PostgreSQL alternate, each measured ROUNDS times; medians printed


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--devices", type=int, default=10, help="simulated gates publishing at once")
    # 10 x 500: a burst of a few seconds. With 10 x 200 (about 1.3 s) the first small batches and the
    # last Acks were a large share of it, and the ratio moved by 0.2 from run to run.
    p.add_argument("--taps", type=int, default=500, help="taps per gate")
    p.add_argument("--rounds", type=int, default=ROUNDS, help=f"alternating rounds (default {ROUNDS})")
    p.add_argument("--dir", type=Path, help="directory on the disk to measure (default: a temp dir here)")
    p.add_argument("--no-postgres", action="store_true", help="SQLite only")
    p.add_argument("--month", action="store_true",
                   help="also the month of 就業履歴 as built here (tests/bench/month.py times it beside its floor)")
    args = p.parse_args(argv)
    base = Path(tempfile.mkdtemp(prefix="genba-bench-", dir=args.dir or Path.cwd()))
    floors: list[float] = []
    ingests: list[float] = []
    pg_ingests: list[float] = []
    month = []
    try:
        # Mosquitto queues at most 1,000 messages per client by default and drops the rest: a burst
        # of more taps than that towards one subscriber would measure the drop, not the throughput.
        unlimited = "max_queued_messages 0"
        with contextlib.ExitStack() as stack:
            pg = None
            if not args.no_postgres:
                sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))
                from pgserver import PrivatePostgres  # tests/support/pgserver.py: a private server, never the machine's

                pg = stack.enter_context(PrivatePostgres())
            for r in range(args.rounds):
                with PrivateMosquitto(base / f"broker-floor-{r}", extra_config=unlimited) as broker:
                    floors.append(broker_floor(broker, args.devices, args.taps))
                with PrivateMosquitto(base / f"broker-ingest-{r}", extra_config=unlimited) as broker:
                    ingests.append(ingest_throughput(base, broker, args.devices, args.taps,
                                                     f"sqlite:///{base / f'ingest-{r}.db'}"))
                if pg is not None:
                    with PrivateMosquitto(base / f"broker-pg-{r}", extra_config=unlimited) as broker:
                        pg_ingests.append(ingest_throughput(base, broker, args.devices, args.taps,
                                                            pg.create_database(f"bench{r}")))
        if args.month:
            first = date(2026, 11, 2)
            for workers in (100, 1_000, 10_000):
                taps = month_taps(workers, first)
                start = time.perf_counter()
                records = rules.build_records(taps, rules.DayRule())
                build_s = time.perf_counter() - start
                month.append((workers, len(taps), len(records), build_s, month_read(base, workers, first)))
    finally:
        shutil.rmtree(base, ignore_errors=True)
    total = args.devices * args.taps
    floor = statistics.median(floors)

    def row(label: str, values: list[float], unit: str) -> None:
        spread = f"({min(values):.0f}–{max(values):.0f})" if len(values) > 1 else ""
        print(f"  {label:58} {statistics.median(values):9.0f} {unit:6} {spread}")

    print(f"ingest bench: {args.devices} gates x {args.taps} taps = {total} taps, QoS 1, private Mosquitto;"
          f" medians of {args.rounds} alternating rounds (min–max)")
    row("floor: broker round trip (publish → responder → reply)", floors, "msg/s")
    row("ingest: taps stored, record rebuilt, Ack after commit", ingests, "taps/s")
    print(f"  {'ratio ingest / floor':58} {statistics.median(ingests) / floor:9.2f}")
    if pg_ingests:
        row("ingest on PostgreSQL (private server, fsync off)", pg_ingests, "taps/s")
        print(f"  {'ratio ingest on PostgreSQL / floor':58} {statistics.median(pg_ingests) / floor:9.2f}")
    if month:
        print("month of 就業履歴 (22 work days, in + out per day):")
        print(f"  {'workers':>8} {'taps':>9} {'records':>9} {'build (pure)':>14} {'month view (DB)':>16}")
        for workers, taps, records, build_s, read_s in month:
            print(f"  {workers:8d} {taps:9d} {records:9d} {build_s * 1000:12.1f}ms {read_s * 1000:14.1f}ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
