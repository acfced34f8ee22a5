"""The MQTT entrypoint: taps and statuses in, Acks and retained configs out.

Threads and their jobs (paho-mqtt 2.x, MQTT 5):

- paho's network thread runs the callbacks. They only put messages on a queue; nothing there
  touches the database or waits.
- the processor takes what has arrived (up to ``BATCH`` messages), validates each body with the
  protocol models, stores the taps in one transaction (``services.ingest.ingest_batch``) and only
  after the commit publishes the Acks and acknowledges the MQTT messages to the broker (manual
  PUBACK). Statuses become the device's last known state (and clock references).
- the config pusher watches the audit log for changes (every roster, card, device or site edit
  writes one) and, once edits have settled for ``config_debounce_s``, publishes each changed
  gate's retained DeviceConfig.

Where a crash can happen and why it is safe:

- before the commit: nothing is stored and nothing acknowledged; the broker redelivers the
  un-PUBACKed message on the next session, and the gate re-sends anyway when no Ack comes.
- a batch that fails is stored again tap by tap: a tap the store refuses for a reason of its own
  is answered ``rejected`` with the reason, one that fails because the database is down gets no
  Ack (and is PUBACKed, so the broker does not stall): the gate re-sends it after its timeout.
- between the commit and the Ack: the taps are stored; the gate re-sends after its ack timeout,
  the store finds (device, buffer, seq) already there and answers ``duplicate``: counted once.
- two ingest processes: the shared subscription gives each message to one of them, and a re-send
  may reach the other; the unique key and ON CONFLICT DO NOTHING make the second a duplicate, and
  the record rebuild locks the (site, worker) it rebuilds (see services/records).

Mosquitto does not queue for an offline member of a shared subscription: while every ingest
process is down, taps are lost *in the broker*, not at the gate, which still holds them in its
buffer and re-sends them after its ack timeout.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from protocol.errors import ProtocolError
from protocol.messages import Ack, AckItem, DeviceStatus, TapEvent, decode, encode
from protocol.topics import STATUS_SUBSCRIPTION, parse, tap_subscription, topic
from server import metrics
from server.config import MqttConfig
from server.errors import GenbaError
from server.services import devices
from server.services.context import Context
from server.services.ingest import Counters, ingest_batch, release_all_placed
from server.services.records import attribute_orphans

log = logging.getLogger("genba.ingest")

QOS = 1
BATCH = 500  # taps per transaction at most
SESSION_EXPIRY_S = 24 * 3600  # the broker keeps our subscription (and queued statuses) this long
SUMMARY_EVERY_S = 60.0
RESYNC_EVERY_S = 300.0  # republish configs that drifted without an audit entry (e.g. manual SQL)
SWEEP_EVERY_S = 10.0  # taps of a card linked while they were being stored (see attribute_orphans)

# Test-only fault injection: exit right after the first commit that recorded a tap, before its Ack
# is published (the crash the ingest must survive). Never set in production.
CRASH_AFTER_COMMIT = "GENBA_INGEST_CRASH_AFTER_COMMIT"
# Store errors that say "not now" (a lock held too long, a concurrent writer won): the tap gets no
# Ack and the gate re-sends it. Answering them `rejected` would make a passing lock lose the tap.
TRANSIENT = frozenset({"database_busy", "concurrent_change"})


_PAHO_LOG = logging.getLogger("genba.ingest.paho")
# paho 2.2's loop thread runs once more between disconnect() and loop_stop() when the socket closes
# first (seen over TLS) and logs "Client is not connected" as an error; a lost connection is
# reported by on_disconnect instead, so this line only ever says "we are stopping".
_PAHO_LOG.addFilter(lambda record: "Client is not connected" not in record.getMessage())


@dataclass(frozen=True)
class _Incoming:
    topic: str
    payload: bytes
    mid: int
    qos: int


class MqttIngest:
    """The server's MQTT side. ``start()`` returns at once (connecting and reconnecting in the
    background); ``stop()`` drains what has arrived and disconnects."""

    def __init__(self, ctx: Context, cfg: MqttConfig, client_id: str | None = None) -> None:
        self.ctx = ctx
        self.cfg = cfg
        self.counters = Counters()
        self.connected = threading.Event()
        self._queue: queue.Queue[_Incoming | None] = queue.Queue()
        self._stop = threading.Event()
        self._crash_after_commit = bool(os.environ.get(CRASH_AFTER_COMMIT))
        self._client = self._make_client(client_id or cfg.client_id)
        self._processor = threading.Thread(target=self._process_loop, name="ingest-processor", daemon=True)
        self._pusher = ConfigPusher(ctx, self._publish_config, cfg.config_debounce_s)

    # --- lifecycle ----------------------------------------------------------------------------

    @property
    def client_id(self) -> str:
        return self._client_id

    def broker_connected(self) -> bool:
        """For /healthz and the metrics: subscribed and able to publish Acks and configs now."""
        return self.connected.is_set()

    def backlog(self) -> int:
        """Messages taken from the broker and not yet stored and acknowledged (the queue)."""
        return self._queue.qsize()

    def start(self) -> None:
        metrics.INGESTS.track(self)
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = SESSION_EXPIRY_S
        self._client.connect_async(self.cfg.host, self.cfg.port, keepalive=self.cfg.keepalive_s,
                                   clean_start=False, properties=props)
        self._client.loop_start()
        self._processor.start()
        self._pusher.start()
        log.info("ingest connecting to %s:%d as %s", self.cfg.host, self.cfg.port, self._client_id)

    def stop(self, timeout: float = 10.0) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        self._pusher.stop()
        self._queue.put(None)
        self._processor.join(timeout)
        self._client.disconnect()
        self._client.loop_stop()
        self.connected.clear()
        metrics.INGESTS.forget(self)
        log.info("ingest stopped: %s", self.counters.summary())

    # --- paho (network thread: queue puts only) -----------------------------------------------

    def _make_client(self, client_id: str) -> mqtt.Client:
        self._client_id = client_id
        client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id,
                             protocol=MQTTProtocolVersion.MQTTv5)
        client.manual_ack_set(True)  # PUBACK only after the commit
        # At most 5 s between tries: while the ingest is away Mosquitto keeps nothing for its shared
        # subscription, so every second it is late is a second the gates' taps wait for a re-send.
        client.reconnect_delay_set(1, 5)
        client.enable_logger(_PAHO_LOG)
        if self.cfg.username:
            client.username_pw_set(self.cfg.username, self.cfg.password)
        if self.cfg.ca_file:
            client.tls_set(ca_certs=self.cfg.ca_file)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        return client

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            log.error("broker refused the connection: %s (check [mqtt] username/password)", reason)
            return
        client.subscribe([(tap_subscription(self.cfg.share_group), QOS), (STATUS_SUBSCRIPTION, QOS)])
        self.connected.set()
        self._pusher.republish_all()  # a broker that lost its retained messages gets them again
        log.info("ingest connected (session present: %s)", getattr(flags, "session_present", "?"))

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        self.connected.clear()
        if not self._stop.is_set():
            log.warning("ingest lost the broker (%s); reconnecting", reason)

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        self._queue.put(_Incoming(message.topic, bytes(message.payload), message.mid, message.qos))

    # --- processing (processor thread) --------------------------------------------------------

    def _process_loop(self) -> None:
        last_summary = time.monotonic()
        while True:
            batch = self._take()
            if batch is None:
                return
            started = time.perf_counter()
            try:
                self._process(batch)
            except Exception:  # a bug or a database outage: no Ack (the gate re-sends), never a dead thread
                log.exception("ingest batch of %d failed; the gates will re-send", len(batch))
                metrics.INGEST_BATCH_FAILURES.inc()
                self._puback(batch)
                time.sleep(1.0)
            metrics.INGEST_BATCHES.inc()
            metrics.INGEST_BATCH_SECONDS.observe(time.perf_counter() - started)
            if time.monotonic() - last_summary > SUMMARY_EVERY_S:
                last_summary = time.monotonic()
                log.info("ingest: %s", self.counters.summary())

    def _take(self) -> list[_Incoming] | None:
        first = self._queue.get()
        if first is None:
            return None
        batch = [first]
        while len(batch) < BATCH:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                self._queue.put(None)  # finish this batch, then stop
                break
            batch.append(item)
        return batch

    def _process(self, batch: list[_Incoming]) -> None:
        taps: list[tuple[str, TapEvent]] = []
        for m in batch:
            where = parse(m.topic)
            metrics.INGEST_MESSAGES.labels(where[1] if where is not None and where[1] in ("tap", "status")
                                           else "other").inc()
            if where is None:
                self._reject(m, "unknown_topic", "not one of our topics")
            elif where[1] == "tap":
                try:
                    taps.append((where[0], decode(TapEvent, m.payload)))
                except ProtocolError as exc:
                    self._reject(m, exc.code, exc.detail)
            elif where[1] == "status":
                self._status(m, where[0])
        if taps:
            try:
                answered: list[tuple[tuple[str, TapEvent], AckItem | None]] = list(
                    zip(taps, self._ingest(taps), strict=True))
            except GenbaError as exc:
                metrics.INGEST_BATCH_FAILURES.inc()
                if exc.code not in TRANSIENT:
                    log.exception("a batch of %d taps failed; storing them one by one", len(taps))
                    answered = [(item, self._store_alone(item)) for item in taps]
                else:
                    # The store is busy (or lost a race): one by one, each would wait the busy
                    # timeout again. No Ack: the gates re-send after their ack timeout.
                    log.warning("a batch of %d taps not stored (%s); the gates will re-send", len(taps), exc.code)
                    answered = []
            except Exception:
                log.exception("a batch of %d taps failed; storing them one by one", len(taps))
                metrics.INGEST_BATCH_FAILURES.inc()
                answered = [(item, self._store_alone(item)) for item in taps]
            # Committed. A crash from here until the publish below is the one the gate's re-send covers.
            if self._crash_after_commit and any(a is not None and a.outcome == "recorded" for _, a in answered):
                log.error("%s set: exiting after the commit, before the Ack", CRASH_AFTER_COMMIT)
                os._exit(70)
            self._publish_acks([(item, a) for item, a in answered if a is not None])
        self._puback(batch)

    def _store_alone(self, item: tuple[str, TapEvent]) -> AckItem | None:
        """One tap in its own transaction, after its batch failed. A tap the store refuses for a
        reason of its own is answered ``rejected`` with that reason (the gate stops re-sending it
        and logs it); a failure of the database itself gets no Ack, so the gate re-sends later."""
        device_id, event = item
        try:
            return self._ingest([item])[0]
        except GenbaError as exc:
            if exc.code in TRANSIENT:  # a lock or a concurrent writer: try again later, never final
                log.warning("tap %s seq %d not stored (%s); the gate will re-send", device_id, event.seq, exc.code)
                return None
            return self._unstorable(device_id, event, exc)
        except (ValueError, OverflowError) as exc:
            return self._unstorable(device_id, event, exc)
        except Exception:
            log.exception("tap %s seq %d not stored (database unavailable?); the gate will re-send", device_id,
                          event.seq)
            return None

    def _ingest(self, taps: list[tuple[str, TapEvent]]) -> list[AckItem]:
        """The service stores the taps; what it counted (only once committed) goes to this process's
        summary and to the metrics."""
        counted = Counters()
        acks = ingest_batch(self.ctx, taps, counted)
        self.counters.add(counted)
        metrics.count_taps(counted)
        return acks

    def _unstorable(self, device_id: str, event: TapEvent, exc: Exception) -> AckItem:
        """A tap the store refuses for a reason of its own: answered ``rejected``, final at the gate."""
        code = getattr(exc, "code", type(exc).__name__)
        self.counters.reject(f"unstorable: {code}")
        metrics.count_rejection(f"unstorable: {code}", tap=True)
        log.error("tap %s/%s seq %d cannot be stored: %s", device_id, event.buffer_id, event.seq, exc)
        return AckItem(seq=event.seq, outcome="rejected", reason=f"the server cannot store it: {code}"[:200])

    def _status(self, m: _Incoming, device_id: str) -> None:
        if not m.payload:
            return  # a retained status being cleared
        try:
            status = decode(DeviceStatus, m.payload)
        except ProtocolError as exc:
            self._reject(m, exc.code, exc.detail)
            return
        if status.device_id != device_id:
            self._reject(m, "device_mismatch", f"body says {status.device_id}")
            return
        # One status the store refuses (or cannot take now) is refused alone: it never fails the
        # batch it came in, whose taps would wait for their gates' re-sends. A status is a snapshot
        # the gate sends again (on every change, and each minute), so one not stored loses nothing.
        try:
            known = devices.record_status(self.ctx, status)
        except GenbaError as exc:
            self._reject(m, "status_not_stored" if exc.code in TRANSIENT else "unstorable", exc.code)
            return
        except (ValueError, OverflowError) as exc:
            self._reject(m, "unstorable", type(exc).__name__)
            return
        if not known:
            self._reject(m, "unknown_device", "status of a gate not registered on any site")
            if status.state == "online" and self.connected.is_set():
                # Not retained: nothing is left on the broker for a device ID nobody registered.
                self._client.publish(topic(device_id, "config"), encode(devices.unregistered_config(device_id)),
                                     qos=QOS, retain=False)

    def _reject(self, m: _Incoming, code: str, detail: str) -> None:
        self.counters.reject(code)
        metrics.count_rejection(code)  # never a tap: a body that did not become one, or a status
        log.warning("rejected %s (%d bytes): %s: %s", m.topic, len(m.payload), code, detail)

    def _publish_acks(self, answered: list[tuple[tuple[str, TapEvent], AckItem]]) -> None:
        grouped: dict[tuple[str, str], list[AckItem]] = {}
        for (device_id, event), item in answered:
            grouped.setdefault((device_id, event.buffer_id), []).append(item)
        for (device_id, buffer_id), items in grouped.items():
            for start in range(0, len(items), 1000):
                body = Ack(device_id=device_id, buffer_id=buffer_id, acks=items[start:start + 1000])
                self._client.publish(topic(device_id, "ack"), encode(body), qos=QOS)

    def _puback(self, batch: list[_Incoming]) -> None:
        for m in batch:
            if m.qos > 0:
                self._client.ack(m.mid, m.qos)

    def _publish_config(self, device_id: str, payload: bytes) -> bool:
        if not self.connected.is_set():
            return False
        info = self._client.publish(topic(device_id, "config"), payload, qos=QOS, retain=True)
        return info.rc == mqtt.MQTT_ERR_SUCCESS


class ConfigPusher:
    """Roster push, debounced: a burst of edits (a whole roster imported) is one publish per gate.
    Also the ingest's housekeeping: the sweep for taps of cards linked while they were stored."""

    def __init__(self, ctx: Context, publish: Callable[[str, bytes], bool], debounce_s: float) -> None:
        self.ctx = ctx
        self.publish = publish
        self.debounce_s = debounce_s
        self.published: dict[str, int] = {}  # touched by the pusher's thread only
        self._forget = False
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="config-pusher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(5)

    def republish_all(self) -> None:
        """From paho's thread on (re)connect: the pusher's own thread forgets what it published."""
        self._forget = True
        self._wake.set()

    def _loop(self) -> None:
        seen: int | None = -1
        changed_at: float | None = time.monotonic()  # publish once at start
        last_full = last_sweep = time.monotonic()
        while not self._stop.is_set():
            self._wake.wait(0.5)
            force = self._wake.is_set()
            self._wake.clear()
            if self._forget:
                self._forget = False
                self.published.clear()
            try:
                newest = devices.change_marker(self.ctx)
                if newest != seen:
                    seen, changed_at = newest, time.monotonic()
                if time.monotonic() - last_full > RESYNC_EVERY_S:
                    force = True
                settled = changed_at is not None and time.monotonic() - changed_at >= self.debounce_s
                if settled or force:
                    last_full = time.monotonic()
                    self._push()
                    changed_at = None
                if time.monotonic() - last_sweep > SWEEP_EVERY_S:
                    last_sweep = time.monotonic()
                    found = attribute_orphans(self.ctx)
                    if found:
                        log.info("attributed %d taps of cards linked meanwhile", found)
                    released = release_all_placed(self.ctx)
                    if released:
                        log.info("stored %d held taps of gates placed meanwhile", released)
            except Exception:
                log.exception("config push failed; retrying")
                changed_at = time.monotonic()

    def _push(self) -> None:
        for cfg in devices.configs_to_publish(self.ctx, self.published):
            if self.publish(cfg.device_id, encode(cfg)):
                self.published[cfg.device_id] = cfg.version
                log.info("config v%d for %s: %d cards", cfg.version, cfg.device_id, len(cfg.roster))
