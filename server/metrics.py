"""What an operator's Prometheus scrapes (``GET /metrics``): the one home of every metric's name,
labels and meaning, so the API, the ingest and the docs agree.

Counters and the ingest's gauges live in this process's ``REGISTRY``: each server process (``run``,
and every ``genba-server ingest`` worker) counts what *it* did, and Prometheus adds them up. The
gates' last contact is read from the database at scrape time instead (``gate_families``), so any API
process reports every gate, whichever ingest heard it.

Labels are bounded sets: outcomes, refusal reasons and error codes are the server's own fixed
strings; device IDs are the registered gates. Nothing personal (no names, card UIDs or worker IDs)
is ever a label.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

#: The text exposition's content type (format 0.0.4).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

disable_created_metrics()  # no *_created series: noise for a scraper that only takes rates
REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)  # CPU, memory, open files of this server process

# --- the ingest ------------------------------------------------------------------------------------

OUTCOMES = ("recorded", "duplicate", "conflict", "held", "rejected")

INGEST_TAPS = Counter(
    "genba_ingest_taps", "Taps the ingest answered, by outcome (counted after their transaction committed)",
    ["outcome"], registry=REGISTRY)
INGEST_REJECTIONS = Counter(
    "genba_ingest_rejections", "Messages and taps the ingest refused, by reason (the Ack's or the log's reason)",
    ["reason"], registry=REGISTRY)
INGEST_MESSAGES = Counter(
    "genba_ingest_messages", "MQTT messages the ingest took from the broker, by kind (tap, status, other)",
    ["kind"], registry=REGISTRY)
INGEST_BATCHES = Counter(
    "genba_ingest_batches", "Batches the ingest processed (one transaction each, up to 500 taps)",
    registry=REGISTRY)
INGEST_BATCH_FAILURES = Counter(
    "genba_ingest_batch_failures",
    "Batches whose transaction failed: their taps were stored one by one, or left for the gates to re-send",
    registry=REGISTRY)
INGEST_BATCH_SECONDS = Histogram(
    "genba_ingest_batch_seconds", "Time to validate, store and acknowledge one batch",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0), registry=REGISTRY)
for _outcome in OUTCOMES:
    INGEST_TAPS.labels(_outcome)  # every outcome exported from the start: rate() is never empty
for _kind in ("tap", "status", "other"):
    INGEST_MESSAGES.labels(_kind)

# --- the API edge ----------------------------------------------------------------------------------

API_REFUSALS = Counter(
    "genba_api_refusals", "Requests the API refused or failed (4xx, 5xx), by HTTP status and the body's code",
    ["status", "code"], registry=REGISTRY)
LOGIN_THROTTLED = Counter(
    "genba_login_throttled",
    "Logins and password resets refused because one client or login ID tried too often (HTTP 429)",
    registry=REGISTRY)


class TapCounts(Protocol):
    """What ``services.ingest.Counters`` holds; read here without importing the service."""

    recorded: int
    duplicate: int
    conflict: int
    held: int
    rejected: dict[str, int]


def count_taps(counts: TapCounts) -> None:
    """Add what one committed batch did (a fresh ``Counters`` the service filled) to the metrics."""
    for outcome in ("recorded", "duplicate", "conflict", "held"):
        n = getattr(counts, outcome)
        if n:
            INGEST_TAPS.labels(outcome).inc(n)
    for reason, n in counts.rejected.items():
        count_rejection(reason, n, tap=True)


def count_rejection(reason: str, n: int = 1, *, tap: bool = False) -> None:
    """A refused message (``tap=False``: a body that never became a tap, a bad status) or tap."""
    INGEST_REJECTIONS.labels(reason[:80]).inc(n)
    if tap:
        INGEST_TAPS.labels("rejected").inc(n)


def count_refusal(status: int, code: str) -> None:
    """One refusal answered by the API (any 4xx/5xx in the error shape)."""
    API_REFUSALS.labels(str(status), code[:80]).inc()
    if status == 429 and code.endswith("throttled"):
        LOGIN_THROTTLED.inc()


class BrokerLink(Protocol):
    """An ingest as the health check and the metrics see it (``server.ingest.MqttIngest``)."""

    @property
    def client_id(self) -> str: ...

    def broker_connected(self) -> bool: ...

    def backlog(self) -> int: ...


class _Ingests(Collector):
    """The live ingests of this process: their queue (messages taken from the broker, not yet
    stored and acknowledged) and their broker connection, per MQTT client id."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._live: dict[int, BrokerLink] = {}

    def track(self, ingest: BrokerLink) -> None:
        with self._lock:
            self._live[id(ingest)] = ingest

    def forget(self, ingest: BrokerLink) -> None:
        with self._lock:
            self._live.pop(id(ingest), None)

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            live = list(self._live.values())
        backlog = GaugeMetricFamily("genba_ingest_backlog",
                                    "Messages received from the broker and waiting in the ingest's queue",
                                    labels=["client_id"])
        connected = GaugeMetricFamily("genba_broker_connected", "1 while the ingest is connected to the broker",
                                      labels=["client_id"])
        for ingest in live:
            backlog.add_metric([ingest.client_id], ingest.backlog())
            connected.add_metric([ingest.client_id], 1.0 if ingest.broker_connected() else 0.0)
        yield backlog
        yield connected


INGESTS = _Ingests()
REGISTRY.register(INGESTS)


# --- the gates, from the database at scrape time ---------------------------------------------------


@dataclass(frozen=True)
class GateSeen:
    """One registered gate's last contact, as the devices table knows it."""

    device_id: str
    site_id: int | None
    online: bool
    last_seen_at: datetime | None
    buffer_depth: int | None


def gate_families(gates: Sequence[GateSeen]) -> list[Metric]:
    last_seen = GaugeMetricFamily("genba_gate_last_seen_timestamp_seconds",
                                  "When the gate last reported its status (Unix time)", labels=["device_id", "site_id"])
    online = GaugeMetricFamily("genba_gate_online",
                               "1 while the gate is online (its status is fresh and no Last Will came)",
                               labels=["device_id", "site_id"])
    depth = GaugeMetricFamily("genba_gate_buffer_depth", "Taps waiting in the gate's buffer, by its last status",
                              labels=["device_id", "site_id"])
    for g in gates:
        labels = [g.device_id, "" if g.site_id is None else str(g.site_id)]
        if g.last_seen_at is not None:
            last_seen.add_metric(labels, g.last_seen_at.timestamp())
        online.add_metric(labels, 1.0 if g.online else 0.0)
        if g.buffer_depth is not None:
            depth.add_metric(labels, float(g.buffer_depth))
    return [last_seen, online, depth]


class _Fixed(Collector):
    def __init__(self, families: Iterable[Metric]) -> None:
        self._families = list(families)

    def collect(self) -> Iterator[Metric]:
        yield from self._families


def render(extra: Iterable[Metric] = ()) -> bytes:
    """This process's metrics, then the ``extra`` families read for this scrape (the gates)."""
    out = generate_latest(REGISTRY)
    families = list(extra)
    if families:
        scrape = CollectorRegistry(auto_describe=False)
        scrape.register(_Fixed(families))
        out += generate_latest(scrape)
    return out
