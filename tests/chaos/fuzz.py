"""`make chaos`, the MQTT input: a fuzzer floods the topics the server reads while a real gate taps.

What runs, all real and each its own process: a private Mosquitto (with the production broker's queue
limits), ``genba-server ingest`` on a fresh SQLite file, ``genba-gate run --simulate`` for ``gate-01``
(registered on a site, its workers' cards on the roster) tapping a card every ``TAP_EVERY_S``, and this
process publishing hypothesis-generated bodies as fast as the broker takes them at QoS 1.

The bodies (``bodies()``) are drawn by hypothesis strategies: random bytes, JSON of random shape, TapEvents
with exactly one thing wrong (a field of the wrong type, an integer past 64 bits, nesting thousands deep, a
string past the 64 KiB limit, a date that is not one, seq 0 / negative / 2^63, a time in year 1 or 9999
whose UTC overflows, UTF-16 / UTF-32 / a BOM / a broken UTF-8 byte / NaN / trailing garbage / a
truncated body), DeviceStatus bodies likewise, and valid taps of gates nobody registered and of
``gate-01`` itself under a forged buffer_id. Every body goes out on several routes (``ROUTES``): the
registered gate's tap and status topics, the tap and status topics of the device the body names (or of
an unknown gate), and a topic whose device id is not one. Hypothesis draws a body in about a
millisecond, so the corpus is ``ceil(messages / routes)`` bodies; each (topic, body) pair is sent once.

What is checked, as the gate sees it: every tap the gate showed the worker as recorded is stored at the
server exactly once under the gate's own buffer (lost, duplicates), neither the ingest nor the gate died
(crashes), the gate's tap → Ack (p99) during the flood and the drain after it. The forged valid taps of
``gate-01`` carry other buffer_ids, so they never touch the gate's keys; they are counted apart and must be
stored exactly as the protocol says (one row per distinct key, none of an unstorable one). The ingest's
counters by reason come from its own "ingest stopped" summary line.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import queue
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from protocol.errors import ProtocolError
from protocol.messages import INT64_MAX, DeviceStatus, TapEvent, decode
from protocol.topics import PREFIX

from .table import Row

DEVICE = "gate-01"
UNKNOWN = "gate-99"  # a well-formed device id nobody registered
TAP_EVERY_S = 0.2  # the gate's steady pace: 5 taps a second, each card every CARDS * TAP_EVERY_S
CARDS = 30
JST = timezone(timedelta(hours=9))
BIN = Path(sys.executable).parent
SMALL = 8 * 1024  # bodies above this go out on the gate's tap topic only (the broker's traffic stays sane)

# --- the bodies ---------------------------------------------------------------------------------------

HEX = "0123456789abcdef"
INT_EDGES = [0, -1, -(2**63), 2**63 - 1, 2**63, 2**64, 10**30, -(10**30), 2**1000]
BAD_DATES = [
    "2026-13-01T08:00:00+09:00", "2026-02-30T08:00:00+09:00", "2026-11-25T08:00:00", "2026-11-25", "08:00",
    "yesterday", "", "0000-01-01T00:00:00Z", "2026-11-25T08:00:00+24:00", "2026-11-25T25:61:61Z",
    "2026-11-25T08:00:00.1234567890123Z", "+12026-01-01T00:00:00Z", "2026-11-25 08:00:00+09:00",
    "2026-W48-3T08:00:00Z", "２０２６-11-25T08:00:00+09:00", "NaN",
]
TAP_FIELDS = ["v", "device_id", "buffer_id", "seq", "card", "direction", "at", "clock_synced", "boot_id",
              "mono_ms", "shown"]
STATUS_FIELDS = ["v", "device_id", "state", "at", "uptime_s", "buffer_depth", "oldest_unacked_seq",
                 "oldest_unacked_at", "last_tap_at", "reader", "clock_synced", "boot_id", "mono_ms",
                 "config_version", "direction", "firmware", "disk_ok"]


_DEEP = re.compile(r'"@@deep(\d+)@@"')


def _deepen(text: str) -> str:
    """Arrays nested thousands deep (json.dumps cannot write them): a marker value becomes [[[…1…]]]."""
    return _DEEP.sub(lambda m: "[" * int(m.group(1)) + "1" + "]" * int(m.group(1)), text)


_offsets = st.integers(-(24 * 60 - 1), 24 * 60 - 1).map(lambda m: timezone(timedelta(minutes=m)))
_EPOCH = datetime(1970, 1, 1)
# Strategies are built from cheap draws (integers, sampled_from, binary): hypothesis' datetimes, text and
# from_regex cost ~1-3 ms a draw, and the corpus is tens of thousands of bodies.
_any_time = st.tuples(st.integers(-62_135_000_000, 253_402_000_000), _offsets).map(
    lambda t: (_EPOCH + timedelta(seconds=t[0])).replace(tzinfo=t[1]))  # year 1 to 9999: UTC may overflow
_today = st.integers(1_577_836_800, 2_051_222_400).map(lambda s: datetime.fromtimestamp(s, JST))
_NOW = int(time.time())
_recent = st.integers(_NOW - 2 * 86400, _NOW + 60).map(lambda s: datetime.fromtimestamp(s, JST))  # storable
_device_ids = st.tuples(st.sampled_from(["gate", "gw", "door", "0x", "a-b"]), st.integers(0, 10**6)).map(
    lambda t: f"{t[0]}-{t[1]:02d}").filter(lambda d: d != DEVICE)
_bad_device_ids = st.one_of(
    st.sampled_from(["GATE-01", "gate_01", "g", "ga", "-gate", "gate 01", "ゲート01", "gate-" + "x" * 70, ".",
                     "gate-01.", "gate-01 "]),
    st.binary(min_size=1, max_size=6).map(lambda b: "Z" + b.hex()),
)
_buffer_ids = st.binary(min_size=16, max_size=16).map(bytes.hex)
_uids = st.binary(min_size=4, max_size=10).map(lambda b: b.hex().upper())
_short_text = st.one_of(st.sampled_from(["boot-1", "", "b", "x" * 64, "x" * 65, "起動", "\u0000", "\ud800"]),
                        st.text(max_size=6))
_json_leaf = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20))
_json = st.recursive(_json_leaf, lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c,
                                                                                     max_size=4), max_leaves=12)
_bad_value = st.one_of(
    st.none(), st.booleans(), st.sampled_from(INT_EDGES), st.integers(), st.floats(), _short_text,
    st.sampled_from(BAD_DATES), st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=4),
                                                                                      st.integers(), max_size=2),
    st.integers(50, 6000).map(lambda n: f"@@deep{n}@@"),
    st.sampled_from([300, 4096, 65_000, 70_000]).map(lambda n: "字" * (n // 3)),
    _any_time.map(lambda d: d.isoformat()),
    st.sampled_from(["1", "1.0", "true", "0x10", "1e3", " 1", "-0"]),
)


def _tap(device: st.SearchStrategy[str], at: st.SearchStrategy[datetime] = _today) -> st.SearchStrategy[dict]:
    return st.fixed_dictionaries(
        {"v": st.just(1), "device_id": device, "buffer_id": _buffer_ids, "seq": st.integers(1, INT64_MAX),
         "card": st.fixed_dictionaries({"tech": st.sampled_from(["felica", "iso14443a", "iso14443b"]),
                                        "uid": _uids}),
         "direction": st.sampled_from(["in", "out", "auto"]), "at": at.map(lambda d: d.isoformat()),
         "clock_synced": st.booleans(), "boot_id": _short_text.filter(bool),
         "mono_ms": st.integers(0, INT64_MAX)},
        optional={"shown": st.none() | _short_text},
    )


def _status(device: st.SearchStrategy[str]) -> st.SearchStrategy[dict]:
    return st.fixed_dictionaries(
        {"v": st.just(1), "device_id": device, "state": st.sampled_from(["online", "offline"]),
         "at": _today.map(lambda d: d.isoformat())},
        optional={"uptime_s": st.integers(0, INT64_MAX), "buffer_depth": st.integers(0, INT64_MAX),
                  "reader": st.sampled_from(["ok", "starting", "missing", "failed"]), "clock_synced": st.booleans(),
                  "config_version": st.integers(0, INT64_MAX), "boot_id": _short_text},
    )


@st.composite
def _mutated(draw: st.DrawFn, base: st.SearchStrategy[dict], fields: list[str]) -> dict:
    """A valid body with exactly one thing wrong."""
    body = dict(draw(base))
    how = draw(st.sampled_from(["set", "set", "set", "drop", "extra", "card", "at"]))
    name = draw(st.sampled_from(fields))
    if how == "set":
        body[name] = draw(_bad_value)
    elif how == "drop":
        body.pop(name, None)
    elif how == "extra":
        body[draw(st.sampled_from(["extra", "V", "seq ", "device-id", "__proto__", "", "ｖ"]))] = draw(_bad_value)
    elif how == "card" and "card" in body:
        card = dict(body["card"])
        card[draw(st.sampled_from(["tech", "uid", "extra"]))] = draw(
            st.one_of(_bad_value, _uids.map(str.lower), _uids.map(lambda u: u[:-1]), st.just("0114A1B2C3D4E5F6G7")))
        body["card"] = card
    else:
        body["at"] = draw(_any_time).isoformat()  # valid by the schema, maybe not storable
    return body


@st.composite
def _serialised(draw: st.DrawFn, value: st.SearchStrategy[Any]) -> bytes:
    """JSON as a gate should send it, or the same with the encoding broken in one way."""
    v = draw(value)
    text = _deepen(json.dumps(v, ensure_ascii=draw(st.booleans())))  # NaN/Infinity come out as bare tokens
    how = draw(st.sampled_from(["utf8"] * 6 + ["utf16", "utf32", "bom", "badbyte", "trailing", "truncated",
                                               "dupv", "whitespace"]))
    if how == "utf16":
        return text.encode("utf-16", "surrogatepass")
    if how == "utf32":
        return text.encode("utf-32", "surrogatepass")
    if how == "bom":
        return text.encode("utf-8-sig", "surrogatepass")
    raw = text.encode("utf-8", "surrogatepass")  # a lone surrogate: bytes that are not UTF-8
    if how == "badbyte" and raw:
        i = draw(st.integers(0, len(raw) - 1))
        return raw[:i] + draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x00"])) + raw[i + 1:]
    if how == "trailing":
        return raw + draw(st.sampled_from([b"}", b" garbage", b"\n{}", b"\x00"]))
    if how == "truncated" and raw:
        return raw[: draw(st.integers(0, len(raw) - 1))]
    if how == "dupv" and text.startswith("{") and len(text) > 2:
        return ('{"v": 2, ' + text[1:]).encode("utf-8", "surrogatepass")
    if how == "whitespace":
        return (" \n\t" + text + "\r\n").encode("utf-8", "surrogatepass")
    return raw


#: What one fuzz case is; ``kind`` says which strategy made it (for the note).
BODIES = st.one_of(
    st.tuples(st.just("bytes"), st.binary(max_size=300)),
    st.tuples(st.just("json"), _serialised(_json)),
    st.tuples(st.just("tap-1-wrong"), _serialised(_mutated(_tap(st.just(DEVICE) | _device_ids), TAP_FIELDS))),
    st.tuples(st.just("tap-1-wrong"), _serialised(_mutated(_tap(st.just(DEVICE)), TAP_FIELDS))),
    st.tuples(st.just("tap-1-wrong"), _serialised(_mutated(_tap(st.just(DEVICE)), TAP_FIELDS))),
    st.tuples(st.just("tap-extreme-at"), _tap(st.just(DEVICE), _any_time).map(lambda d: json.dumps(d).encode())),
    st.tuples(st.just("tap-unknown-gate"), _tap(_device_ids).map(lambda d: json.dumps(d).encode())),
    st.tuples(st.just("tap-forged-buffer"), _tap(st.just(DEVICE), _recent).map(lambda d: json.dumps(d).encode())),
    st.tuples(st.just("status-1-wrong"), _serialised(_mutated(_status(st.just(DEVICE) | _device_ids),
                                                               STATUS_FIELDS))),
    st.tuples(st.just("status"), _status(st.just(DEVICE) | _device_ids).map(lambda d: json.dumps(d).encode())),
)


@dataclass(frozen=True)
class Case:
    kind: str
    body: bytes
    bad_device: str  # for the route whose topic names no possible device


def bodies(n: int, seed_value: int = 17) -> list[Case]:
    """``n`` fuzz cases from hypothesis: one @given run, generate phase only, seeded (the same corpus for the
    same seed), no database, no shrinking (nothing is asserted inside; the system under test is elsewhere)."""
    out: list[Case] = []

    @seed(seed_value)
    @settings(max_examples=n, database=None, phases=[Phase.generate], deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(BODIES, _bad_device_ids)
    def collect(case: tuple[str, bytes], bad_device: str) -> None:
        out.append(Case(case[0], case[1], bad_device))

    collect()
    return out[:n]


def _claimed_device(body: bytes) -> str | None:
    """The well-formed device id a JSON body names, if any: its tap/status route uses that device's topic."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return None
    d = data.get("device_id") if isinstance(data, dict) else None
    return d if isinstance(d, str) and re.fullmatch(r"[a-z0-9][a-z0-9-]{2,62}", d) else None


def routes(case: Case) -> list[str]:
    """The topics one body goes out on (see the module docstring)."""
    if len(case.body) > SMALL:
        return [f"{PREFIX}/{DEVICE}/tap"]
    other = _claimed_device(case.body)
    other = other if other and other != DEVICE else UNKNOWN
    return [f"{PREFIX}/{DEVICE}/tap", f"{PREFIX}/{DEVICE}/status", f"{PREFIX}/{other}/tap",
            f"{PREFIX}/{other}/status", f"{PREFIX}/{case.bad_device or 'X'}/tap"]


ROUTES = 5  # topics per small body (``routes``)


CHUNK = 1500  # bodies per hypothesis run in a drawing process


class Corpus:
    """The fuzz messages, drawn by hypothesis in two child processes, in chunks of ``CHUNK`` bodies (one
    seeded @given run each) that the blast sends as they come: hypothesis spends ~1-3 ms a body, mostly its
    own per-example overhead, so drawing overlaps with setting the world up and with the ingest's work.

    The children are plain ``python -c`` processes that import this module and write each chunk to stdout
    as a pickle (multiprocessing's spawn would re-run the caller's ``__main__``, which a script may not
    guard)."""

    def __init__(self, messages: int, seed_value: int = 17) -> None:
        self.messages = messages
        self.drawing_s = 0.0
        self._extra_seed = seed_value * 1000 + 999
        wanted = math.ceil(messages / ROUTES * 1.03)  # a few large bodies take one route only
        size = min(CHUNK, math.ceil(wanted / 4))  # both processes draw from the start, the blast starts early
        jobs = [(min(size, wanted - start), seed_value * 1000 + n)
                for n, start in enumerate(range(0, wanted, size))]
        self._order = [n % 2 for n in range(len(jobs))]
        code = (f"import sys; sys.path[:0] = {sys.path!r}; import importlib; "
                f"importlib.import_module({__name__!r})._draw_chunks(sys.argv[1])")
        self._children = [
            subprocess.Popen([sys.executable, "-c", code, json.dumps(jobs[k::2])], stdout=subprocess.PIPE,
                             stdin=subprocess.DEVNULL)
            for k in (0, 1)
        ]
        # Read ahead: a child blocks on a full pipe, and the chunks should be drawn while the world is built.
        self._ready: list[queue.Queue[Any]] = [queue.Queue(), queue.Queue()]
        for child, ready in zip(self._children, self._ready, strict=True):
            threading.Thread(target=self._read, args=(child, ready), daemon=True, name="chaos-corpus").start()

    @staticmethod
    def _read(child: subprocess.Popen[bytes], ready: queue.Queue[Any]) -> None:
        import pickle

        assert child.stdout is not None
        while True:
            try:
                ready.put(pickle.load(child.stdout))
            except (EOFError, OSError, ValueError):
                ready.put(None)
                return

    def chunks(self) -> Iterator[list[tuple[str, bytes, str]]]:
        """Lists of (topic, body, kind) until at least ``messages`` were handed out."""
        given = 0
        order = list(self._order)
        while given < self.messages:
            if order:
                k = order.pop(0)
                got = self._ready[k].get()
                if got is None:
                    raise RuntimeError(f"the fuzz body generator exited with {self._children[k].wait()}")
                cases, spent = got
            else:  # more large bodies than the margin: top up here
                self._extra_seed += 1
                started = time.monotonic()
                cases = [(c.kind, c.body, c.bad_device) for c in bodies(200, self._extra_seed)]
                spent = time.monotonic() - started
            self.drawing_s += spent
            chunk = [(t, body, kind) for kind, body, bad in cases for t in routes(Case(kind, body, bad))]
            given += len(chunk)
            yield chunk

    def close(self) -> None:
        for child in self._children:
            if child.poll() is None:
                child.kill()
            child.wait()
            if child.stdout is not None:
                child.stdout.close()


def _draw_chunks(jobs_json: str) -> None:
    """In a drawing child: each (n, seed) job's bodies, pickled to stdout as (plain tuples, seconds)."""
    import pickle

    out = sys.stdout.buffer
    for n, seed_value in json.loads(jobs_json):
        started = time.monotonic()
        cases = [(c.kind, c.body, c.bad_device) for c in bodies(n, seed_value)]
        pickle.dump((cases, time.monotonic() - started), out)
        out.flush()


# --- the world and its processes ----------------------------------------------------------------------


def _support_on_path() -> None:
    """tests/support (world, mosquitto) is on sys.path under pytest; `make chaos` runs outside it."""
    support = str(Path(__file__).resolve().parents[1] / "support")
    if support not in sys.path:
        sys.path.insert(0, support)


@dataclass
class World:
    db_url: str
    cards: list[str]


def build_world(work: Path) -> World:
    """A 元請's site with gate-01 registered and CARDS workers on its roster, each with a card; through
    the HTTP API in-process, as tests/support/world.py speaks it."""
    _support_on_path()
    from fastapi.testclient import TestClient
    from world import Api

    from server.api.app import create_app
    from server.services.context import Context
    from server.store import migrate
    from server.store.database import Store

    url = f"sqlite:///{work / 'genba.db'}"
    migrate.upgrade(url)
    ctx = Context(Store(url), fast_hashing=True)
    cards = [f"0114{n:012X}" for n in range(1, CARDS + 1)]
    try:
        with TestClient(create_app(ctx), raise_server_exceptions=False) as client:
            api = Api.bootstrap(client, ctx)
            prime = api.company("(株)基本建設")
            today = date.today()
            site = api.site(prime, period_start=(today - timedelta(days=365)).isoformat(),
                            period_end=(today + timedelta(days=365)).isoformat())
            prime.owner.ok("POST", f"/sites/{site.id}/devices",
                           {"device_id": DEVICE, "name": "正門ゲート", "direction": "in"}, status=201)
            for n, uid in enumerate(cards):
                worker = api.worker(prime, f"鳶田 {n + 1}郎")
                prime.owner.ok("POST", f"/workers/{worker['id']}/cards", {"uid": uid}, status=201)
                api.on_roster(site, prime, worker)
    finally:
        ctx.store.dispose()
    return World(url, cards)


class Child:
    """A child process whose output goes to a file (the ingest logs a line per refused body)."""

    def __init__(self, args: list[str], log: Path, stdin: bool = False) -> None:
        self.log = log
        with log.open("wb") as out:
            self.proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.PIPE if stdin else subprocess.DEVNULL)
        self.died: int | None = None  # exit code when it ended without being asked to

    def alive(self) -> bool:
        if self.died is None and self.proc.poll() is not None:
            self.died = self.proc.returncode
        return self.died is None

    def text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def wait_for(self, needle: str, what: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        offset = 0
        with self.log.open("rb") as f:
            while True:
                f.seek(offset)
                chunk = f.read()
                if needle.encode() in chunk:
                    return
                offset = max(0, offset + len(chunk) - len(needle) - 1)
                if not self.alive():
                    raise RuntimeError(f"{what}: the process died ({self.died}):\n{self.text()[-3000:]}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"timed out waiting for {what}:\n{self.text()[-3000:]}")
                time.sleep(0.05)

    def stop(self, timeout: float = 30.0) -> int:
        self.alive()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def _gate_depth(buffer: Path) -> int:
    with contextlib.closing(sqlite3.connect(f"file:{buffer}?mode=ro", uri=True, timeout=10)) as db:
        return int(db.execute("SELECT count(*) FROM taps WHERE acked_at IS NULL").fetchone()[0])


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass
class Outcome:
    """What one run measured, before it becomes a Row."""

    messages: int = 0
    shown: list[int] = field(default_factory=list)  # seqs the gate printed as taps, in order
    stored: Counter[int] = field(default_factory=Counter)  # seq → rows at the server (gate's buffer)
    p99_s: float | None = None
    drain_s: float | None = None
    crashes: int = 0
    notes: list[str] = field(default_factory=list)


def _summary(log: str) -> dict[str, Any]:
    """The ingest's own counters from its "ingest stopped: ..." line (services.ingest.Counters.summary)."""
    found = re.findall(r"ingest stopped: recorded (\d+), duplicate (\d+), conflict (\d+), held (\d+), "
                       r"rejected (.*)$", log, re.MULTILINE)
    if not found:
        return {}
    recorded, duplicate, conflict, held, rejected = found[-1]
    reasons: dict[str, int] = {}
    if rejected != "none":
        for part in re.split(r", (?=[^,]+: \d+(?:, |$))", rejected):
            reason, _, n = part.rpartition(": ")
            reasons[reason] = int(n)
    return {"recorded": int(recorded), "duplicate": int(duplicate), "conflict": int(conflict),
            "held": int(held), "rejected": reasons}


def _expected_forged(sent: list[tuple[str, bytes, str]]) -> set[tuple[str, int]]:
    """Keys of the bodies that are valid taps of gate-01 sent on its own tap topic: what the server may store."""
    keys = set()
    own = f"{PREFIX}/{DEVICE}/tap"
    for topic_name, body, _ in sent:
        if topic_name != own:
            continue
        try:
            event = decode(TapEvent, body)
        except ProtocolError:
            continue
        if event.device_id == DEVICE:
            keys.add((event.buffer_id, event.seq))
    return keys


def _valid_statuses(sent: list[tuple[str, bytes, str]]) -> int:
    n = 0
    for topic_name, body, _ in sent:
        if topic_name.endswith("/status") and body:
            try:
                status = decode(DeviceStatus, body)
            except ProtocolError:
                continue
            n += status.device_id == topic_name.split("/")[-2]
    return n


class Tapper:
    """A worker at the gate every ``TAP_EVERY_S``: card UIDs on the simulated gate's stdin, round robin."""

    def __init__(self, gate: Child, cards: list[str]) -> None:
        self.gate, self.cards, self.n = gate, cards, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="chaos-gate-tapper", daemon=True)

    def tap(self) -> None:
        assert self.gate.proc.stdin is not None
        self.gate.proc.stdin.write(self.cards[self.n % len(self.cards)].encode() + b"\n")
        self.gate.proc.stdin.flush()
        self.n += 1

    def _loop(self) -> None:
        while not self._stop.wait(TAP_EVERY_S) and self.gate.alive():
            self.tap()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


def run(messages: int, seed_value: int = 17) -> Row:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
    from sqlalchemy import create_engine, text

    from protocol.messages import MAX_CONFIG_BYTES
    from provisioning.devbroker import PrivateMosquitto

    work = Path(tempfile.mkdtemp(prefix="genba-chaos-fuzz-"))
    out = Outcome()
    broker = ingest = gate = None
    drawing = Corpus(messages, seed_value)  # two child processes draw while the world is set up
    try:
        # The production broker's limits (provisioning/broker.py): a 100,000-message queue per client.
        broker = PrivateMosquitto(work / "mosquitto", extra_config="\n".join([
            "max_queued_messages 100000", "max_queued_bytes 268435456",
            f"max_packet_size {MAX_CONFIG_BYTES + 64 * 1024}"])).start()
        world = build_world(work)
        (work / "server.toml").write_text(
            f'database_url = "{world.db_url}"\n[mqtt]\nhost = "{broker.host}"\nport = {broker.port}\n'
            'config_debounce_s = 0.2\nclient_id = "genba_ingest_chaos"\n', encoding="utf-8")
        ingest = Child([str(BIN / "genba-server"), "ingest", "--config", str(work / "server.toml")],
                       work / "ingest.log")
        ingest.wait_for("ingest connected", "the ingest connected", 60)
        (work / "gate.toml").write_text("\n".join([
            f'device_id = "{DEVICE}"', f'broker_url = "{broker.url}"', f'data_dir = "{work / "gate"}"',
            'direction = "in"', "debounce_s = 0.3", "ack_timeout_s = 5", "[pins]", "motion = false"]) + "\n",
            encoding="utf-8")
        gate = Child([str(BIN / "genba-gate"), "run", "--simulate", "--config", str(work / "gate.toml"),
                      "--clock-synced", "yes"], work / "gate.log", stdin=True)
        buffer = work / "gate" / "buffer.db"
        gate.wait_for("led off", "the gate idle", 60)
        tapper = Tapper(gate, world.cards)
        # One tap through the whole path before the flood: the gate has its roster and the ingest Acks.
        deadline = time.monotonic() + 60
        tapper.tap()
        while not (buffer.exists() and "tap 1 entry" in gate.text() and _gate_depth(buffer) == 0):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the first tap was not acknowledged:\n{gate.text()[-2000:]}")
            if "tap 1 " in gate.text() and "tap 1 entry" not in gate.text():
                raise RuntimeError(f"the gate had no roster for its first tap:\n{gate.text()[-2000:]}")
            time.sleep(0.05)

        fuzzer = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="chaos_fuzzer",
                             protocol=MQTTProtocolVersion.MQTTv5)
        fuzzer.max_inflight_messages_set(200)
        fuzzer.max_queued_messages_set(0)
        fuzzer.connect(broker.host, broker.port)
        fuzzer.loop_start()
        tapper.start()
        started = time.monotonic()
        sent: list[tuple[str, bytes, str]] = []
        pending: deque[mqtt.MQTTMessageInfo] = deque()
        for chunk in drawing.chunks():
            for topic_name, body, _ in chunk:
                pending.append(fuzzer.publish(topic_name, body, qos=1))
                while pending and pending[0].is_published():
                    pending.popleft()
                if len(pending) > 5000:  # paho's queue stays short: the broker paces the fuzzer
                    pending.popleft().wait_for_publish(120)
            sent += chunk
            if not ingest.alive():
                break
        for info in pending:
            info.wait_for_publish(120)
        fuzzer.publish(f"{PREFIX}/zz-chaos-end/tap", b"end of the flood", qos=1).wait_for_publish(30)
        blast_end_utc = datetime.now(UTC)
        out.messages = len(sent)
        tapper.stop()
        fuzzer.disconnect()
        fuzzer.loop_stop()
        with contextlib.suppress(RuntimeError):  # the ingest died: counted below as a crash
            ingest.wait_for("zz-chaos-end/tap", "the ingest through the flood", 600)
        processed_s = time.monotonic() - started
        deadline = time.monotonic() + 120
        while _gate_depth(buffer) and time.monotonic() < deadline and gate.alive() and ingest.alive():
            time.sleep(0.1)
        if gate.stop() not in (0, None) or gate.died is not None:
            out.crashes += 1
            out.notes.append(f"the gate exited with {gate.proc.returncode}")
        if ingest.stop() != 0 or ingest.died is not None:
            out.crashes += 1
            out.notes.append(f"the ingest died ({ingest.died}) or exited with {ingest.proc.returncode}")
        out.shown = [int(m) for m in re.findall(r"^tap (\d+) \S+$", gate.text(), re.MULTILINE)]
        with contextlib.closing(sqlite3.connect(f"file:{buffer}?mode=ro", uri=True)) as db:
            rows = db.execute("SELECT seq, created_at, acked_at, outcome FROM taps").fetchall()
            gate_buffer = next(iter(db.execute("SELECT value FROM meta WHERE key = 'buffer_id'").fetchone()))
        gate_buffer = gate_buffer.decode() if isinstance(gate_buffer, bytes) else str(gate_buffer)
        waits = sorted((_utc(a) - _utc(c)).total_seconds() for _, c, a, _ in rows if a)
        if waits:
            out.p99_s = waits[min(len(waits) - 1, math.ceil(0.99 * len(waits)) - 1)]
            last_ack = max(_utc(a) for _, _, a, _ in rows if a)
            out.drain_s = max(0.0, (last_ack - blast_end_utc).total_seconds())
        unacked = [seq for seq, _, a, _ in rows if not a]
        if unacked:
            out.notes.append(f"{len(unacked)} taps still unacknowledged at the gate after 120 s")
        refused = Counter(o for _, _, a, o in rows if a and o not in ("recorded", "duplicate"))
        if refused:
            out.notes.append(f"gate taps answered {dict(refused)}")

        engine = create_engine(world.db_url)
        try:
            with engine.connect() as db:
                stored = db.execute(text(
                    "SELECT t.buffer_id, t.seq, count(*) FROM taps t JOIN devices d ON d.id = t.device_pk "
                    "WHERE d.device_id = :d GROUP BY t.buffer_id, t.seq"), {"d": DEVICE}).all()
                held = db.execute(text("SELECT count(*) FROM held_taps")).scalar_one()
        finally:
            engine.dispose()
        forged_stored: set[tuple[str, int]] = set()
        for buffer_id, seq, n in stored:
            if buffer_id == gate_buffer:
                out.stored[int(seq)] += int(n)
            else:
                forged_stored.add((buffer_id, int(seq)))
                if n > 1:
                    out.notes.append(f"forged key {buffer_id}/{seq} stored {n} times")
        expected = _expected_forged(sent)
        if any(b == gate_buffer for b, _ in expected):
            out.notes.append("a fuzz body forged the gate's own buffer_id (counts below are muddled)")
        unexpected = forged_stored - expected
        summary = _summary(ingest.text())
        rejected = summary.get("rejected", {})
        kinds = Counter(k for _, _, k in sent)
        out.notes.append(
            f"{len(sent):,} messages = {len({b for _, b, _ in sent}):,} hypothesis bodies × up to {ROUTES} topics "
            f"({', '.join(f'{k} {n:,}' for k, n in kinds.most_common())}); drawn in {drawing.drawing_s:.0f} s of "
            f"2 processes, sent and processed in {processed_s:.0f} s")
        if summary:
            out.notes.append(
                f"ingest counted: recorded {summary['recorded']:,}, duplicate {summary['duplicate']:,}, "
                f"conflict {summary['conflict']:,}, held {summary['held']:,}; rejected "
                + ", ".join(f"{r} {n:,}" for r, n in sorted(rejected.items(), key=lambda x: -x[1])))
        else:
            out.notes.append("no 'ingest stopped' summary in the ingest's log")
        out.notes.append(
            f"forged valid gate-01 taps (other buffer_ids): {len(expected):,} distinct keys sent, "
            f"{len(forged_stored):,} stored, {len(expected - forged_stored):,} refused by the server's rules"
            + (f", {len(unexpected)} stored that were never valid: {sorted(unexpected)[:3]}" if unexpected else ""))
        out.notes.append(f"held taps of unknown gates: {held:,}; valid statuses sent: {_valid_statuses(sent):,}")
        errors = len(re.findall(r" ERROR ", ingest.text()))
        tracebacks = ingest.text().count("Traceback")
        if errors or tracebacks:
            out.notes.append(f"ingest log: {errors} ERROR lines, {tracebacks} tracebacks (see below)")
            kinds_of_error = Counter(
                re.sub(r"\d+", "N", re.sub(r"[0-9a-f]{32}", "<buffer>", line.split(" ERROR ", 1)[1]))[:200]
                for line in ingest.text().splitlines() if " ERROR " in line)
            out.notes += [f"{n}× {message}" for message, n in kinds_of_error.most_common(4)]
    finally:
        drawing.close()
        for child in (gate, ingest):
            if child is not None and child.proc.poll() is None:
                child.proc.kill()
                child.proc.wait()
        if broker is not None:
            broker.stop()
        if os.environ.get("GENBA_CHAOS_KEEP"):
            print(f"chaos fuzz work dir kept: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return _row(out)


def _row(out: Outcome) -> Row:
    shown = set(out.shown)
    lost = len([s for s in shown if not out.stored.get(s)])
    duplicates = sum(n - 1 for n in out.stored.values() if n > 1) + (len(out.shown) - len(shown))
    return Row(
        name=f"MQTT fuzzer ({out.messages:,} bodies) + 1 gate tapping",
        sent=len(shown), recorded=len([s for s in shown if out.stored.get(s)]), duplicates=duplicates, lost=lost,
        crashes=out.crashes, p99_ack_s=out.p99_s, drain_s=out.drain_s, note="; ".join(out.notes),
    )


def rows(quick: bool) -> list[Row]:
    """quick (inside `make test`): 5,000 bodies; full (`make chaos`): 100,000."""
    return [run(5_000 if quick else 100_000)]
