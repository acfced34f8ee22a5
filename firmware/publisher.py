"""The gate's link to the server: taps out, Acks / config / commands in, over MQTT 5 (paho-mqtt 2.x).

Delivery is at-least-once with the server's application Ack as the only proof: the broker's PUBACK
says nothing about the server's database, so a tap stays unacknowledged in the Buffer until an Ack
for its seq arrives on ``.../ack``. paho's session lives in memory only; the SQLite Buffer is the
truth, and everything not acknowledged is sent again after ``ack_timeout_s`` or a reconnect. The
server deduplicates on (device_id, seq), so a duplicate costs a message, never a record.

Threads, and why there are three:

- paho's network thread (``loop_start``) runs the paho callbacks. They never block, never wait for
  a publish, never touch the Buffer and never run user code: they only put events on queues (and
  re-subscribe in ``on_connect``, as a broker may have lost the session).
- the *sender* thread owns this Publisher's Buffer connection (one connection per thread) and all
  the bookkeeping: it publishes the unacknowledged taps in seq order, a window of ``batch_size``
  taps at a time, marks them sent, applies Acks (``mark_acked``), re-sends on timeout or reconnect
  with exponential backoff, and publishes the retained status.
- the *dispatch* thread decodes config and command bodies and calls ``on_config``, ``on_command``
  and ``on_connection``, so a slow gate callback can delay neither the network loop nor the taps.

MQTT details that matter (from the paho and Mosquitto docs):

- ``CallbackAPIVersion.VERSION2`` (paho 2.x still defaults to VERSION1's signatures);
- ``clean_start=False`` *and* a ``SessionExpiryInterval`` > 0: in MQTT 5 an expiry of 0 ends the
  session at disconnect whatever clean_start says; with the session kept, Acks the server sends while
  the gate is away wait at the broker (up to its ``max_queued_messages``, 1000 by default);
- the Last Will (retained DeviceStatus with state=offline) is only sent when the connection dies; a
  clean ``disconnect()`` suppresses it, so ``stop()`` publishes the offline status itself first.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from firmware.buffer import Buffer, TapRecord
from firmware.config import GateConfig
from protocol.errors import ProtocolError
from protocol.messages import Ack, AckItem, Command, DeviceConfig, DeviceStatus, decode, encode
from protocol.topics import KINDS, Kind, topic

log = logging.getLogger("genba.publisher")

QOS = 1
SESSION_EXPIRY_S = 7 * 24 * 3600  # the broker keeps our subscriptions and queued Acks this long while we are away
KEEPALIVE_S = 30  # a dead link (no FIN, e.g. a pulled cable) is noticed within 1.5 × this
IDLE_POLL_S = 1.0  # also picks up taps recorded without a kick()
MAX_RESEND_S = 300.0  # the ack timeout doubles up to this while the server stays silent
MAX_PAUSE_S = 30.0  # backoff cap after a failed publish or buffer error
STOP_PUBLISH_WAIT_S = 3.0  # how long stop() waits for the broker to take the offline status
# Reconnect delay: from about 1 s, doubling, capped at a few seconds, each gate on its own random
# schedule (drawn anew after every successful connect). A broker that comes back after a restart
# then sees the site's gates return within seconds, spread out rather than all at once; paho's own
# default grows to 60 s or more, which left taps waiting long after the broker was back. The cap is
# what a long outage costs on top of the drain (2.25 s on average, 3 s at most: `make bench`'s drain
# was 9 s for 10,000 taps with a 3-5 s cap); while the broker is down, 100 gates at this cap try
# about 45 connections a second, each refused at once.
RECONNECT_MIN_S = (0.5, 1.5)
RECONNECT_MAX_S = (1.5, 3.0)
INFLIGHT = 100  # QoS 1 publishes paho keeps in flight at once (its default is 20)


def jittered_reconnect_delay() -> tuple[float, float]:
    return random.uniform(*RECONNECT_MIN_S), random.uniform(*RECONNECT_MAX_S)


class Publisher:
    """paho-mqtt 2.x (CallbackAPIVersion.VERSION2), MQTT 5, QoS 1, clean_start=False with SessionExpiryInterval>0,
    TLS + username/password from GateConfig. Last Will = DeviceStatus(state=offline) retained on .../status.
    Publishes unacknowledged taps from the Buffer in seq order, in batches (GateConfig.batch_size), marks them
    delivered only on the server's Ack (topic .../ack; not the broker's PUBACK), re-sends what is not acked
    after ack_timeout_s or a reconnect. Subscribes (in on_connect) to its own ack, config and cmd topics.
    Malformed ack/config/cmd bodies are logged and ignored. Never blocks or waits inside a paho callback.

    ``status`` is called on the sender thread; the buffer fields of what it returns (buffer_depth,
    oldest_unacked_*, last_tap_at) are replaced with the sender's own fresh reading of the Buffer, and
    ``state`` is set to online/offline as the case may be. ``on_config``, ``on_command`` and
    ``on_connection`` run on the dispatch thread, in arrival order; an identical retained config that
    comes again on a reconnect is passed on only once.
    """

    def __init__(
        self,
        cfg: GateConfig,
        buffer_path: Path,
        *,
        on_config: Callable[[DeviceConfig], None],
        on_command: Callable[[Command], None],
        on_connection: Callable[[bool], None],
        status: Callable[[], DeviceStatus],
        on_acks: Callable[[list[AckItem]], None] | None = None,
        reconnect_delay_s: tuple[float, float] | None = None,  # None: jittered_reconnect_delay()
        keepalive_s: int = KEEPALIVE_S,
    ) -> None:
        self.cfg = cfg
        self.buffer_path = Path(buffer_path)
        self._on_config = on_config
        self._on_command = on_command
        self._on_connection = on_connection
        self._status_fn = status
        self._on_acks = on_acks
        self._reconnect_delay = reconnect_delay_s
        self._keepalive = keepalive_s
        self._topics: dict[Kind, str] = {kind: topic(cfg.device_id, kind) for kind in KINDS}
        self._events: queue.Queue[tuple[str, Any]] = queue.Queue()  # → sender thread
        self._dispatch: queue.Queue[tuple[str, Any] | None] = queue.Queue()  # → dispatch thread
        self._connected = False  # written by paho's thread only
        self._client = self._make_client()
        self._sender = threading.Thread(target=self._send_loop, name="publisher-sender", daemon=True)
        self._dispatcher = threading.Thread(target=self._dispatch_loop, name="publisher-dispatch", daemon=True)
        self._started = False
        # Sender-thread state (touched by no other thread).
        self._buf: Buffer | None = None  # the sender thread's own connection
        self._link_up = False
        self._sent_at: dict[int, float] = {}  # seq → monotonic time of its last send on this connection
        self._resend_after = cfg.ack_timeout_s
        self._pause_until = 0.0
        self._failures = 0
        self._unsendable: set[int] = set()  # seqs the wire contract refuses (logged once)

    # --- public API (any thread) ------------------------------------------------------------------

    def start(self) -> None:
        """Open the sender's Buffer, connect in the background (retrying with backoff) and start sending."""
        if self._started:
            return
        self._started = True
        self._dispatcher.start()
        self._sender.start()

    def kick(self) -> None:
        """A new tap is in the buffer: send soon. Returns at once."""
        self._events.put(("kick", None))

    def resync(self) -> None:
        """The server asks for everything unacknowledged again now (e.g. after it lost a batch):
        in-flight taps are re-sent at once instead of at their ack timeout. Returns at once."""
        self._events.put(("resync", None))

    def publish_status(self) -> None:
        """Publish the retained status now (if connected; it is published on every connect anyway)."""
        self._events.put(("status", None))

    def stop(self, timeout: float = 10.0) -> None:
        """Publish status offline (the Will is not sent on a clean disconnect), disconnect, end the threads."""
        if not self._started:
            return
        self._started = False
        self._events.put(("stop", None))
        self._sender.join(timeout)
        if self._sender.is_alive():
            log.error("sender thread did not stop within %.0f s", timeout)
        self._client.loop_stop()
        self._dispatch.put(None)
        self._dispatcher.join(timeout)

    @property
    def alive(self) -> bool:
        """The sender thread runs (for the gate's watchdog: a dead sender means nothing is delivered)."""
        return self._sender.is_alive()

    @property
    def connected(self) -> bool:
        return self._connected

    # --- paho client and its callbacks (paho's network thread: queue puts only) --------------------

    def _make_client(self) -> mqtt.Client:
        client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=self.cfg.device_id,
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        paho_log = logging.getLogger("genba.publisher.paho")
        if paho_log.isEnabledFor(logging.DEBUG):
            # Only when debugging: paho is chatty and logs every failed reconnect attempt as an ERROR.
            client.enable_logger(paho_log)
        # Bound paho's in-memory queue: the Buffer is the truth and re-fills it; a full queue is a backoff.
        client.max_queued_messages_set(max(100, 4 * self.cfg.batch_size))
        client.max_inflight_messages_set(INFLIGHT)
        # Exponential from min to max, reset on a successful CONNACK (paho takes floats despite its hints).
        client.reconnect_delay_set(*(self._reconnect_delay or jittered_reconnect_delay()))  # type: ignore[arg-type]
        if self.cfg.username:
            client.username_pw_set(self.cfg.username, self.cfg.password)
        if self.cfg.broker[2]:
            client.tls_set(ca_certs=str(self.cfg.ca_file) if self.cfg.ca_file else None)
        client.on_connect = self._cb_connect
        client.on_connect_fail = self._cb_connect_fail
        client.on_disconnect = self._cb_disconnect
        client.on_message = self._cb_message
        client.on_subscribe = self._cb_subscribe
        return client

    def _cb_connect(self, client: mqtt.Client, userdata: Any, flags: mqtt.ConnectFlags,
                    reason: Any, properties: Any) -> None:
        try:
            if reason.is_failure:
                log.warning("broker refused the connection: %s", reason)
                return
            client.subscribe([(self._topics[k], QOS) for k in ("ack", "config", "cmd")])
            if self._reconnect_delay is None:  # a new random schedule for the next outage
                client.reconnect_delay_set(*jittered_reconnect_delay())  # type: ignore[arg-type]
            log.info("connected to %s (session %s)", self.cfg.broker_url,
                     "resumed" if flags.session_present else "new")
            self._connected = True
            self._events.put(("connected", flags.session_present))
            self._dispatch.put(("connection", True))
        except Exception:  # an exception here would end paho's loop
            log.exception("on_connect failed")

    def _cb_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        log.info("cannot reach the broker at %s; retrying", self.cfg.broker_url)

    def _cb_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        try:
            if self._connected:
                log.warning("disconnected from the broker: %s", reason)
                self._connected = False
                self._dispatch.put(("connection", False))
            self._events.put(("disconnected", None))
        except Exception:
            log.exception("on_disconnect failed")

    def _cb_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, reasons: list[Any], properties: Any) -> None:
        for code in reasons:
            if code.is_failure:
                log.error("the broker refused a subscription: %s (check the device's ACL)", code)

    def _cb_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        try:
            payload = bytes(message.payload)
            if message.topic == self._topics["ack"]:
                self._events.put(("ack", payload))
            elif message.topic == self._topics["config"]:
                self._dispatch.put(("config", payload))
            elif message.topic == self._topics["cmd"]:
                self._dispatch.put(("cmd", payload))
            else:
                log.debug("ignored a message on %s", message.topic)
        except Exception:
            log.exception("on_message failed")

    # --- dispatch thread ----------------------------------------------------------------------------

    def _dispatch_loop(self) -> None:
        last_config: bytes | None = None
        while (item := self._dispatch.get()) is not None:
            kind, payload = item
            try:
                if kind == "connection":
                    self._on_connection(payload)
                elif kind == "config":
                    if payload == last_config:
                        continue  # the retained config again, after a reconnect
                    config = self._decode(DeviceConfig, payload, "config")
                    if config is not None:
                        last_config = payload
                        self._on_config(config)
                elif kind == "cmd":
                    command = self._decode(Command, payload, "command")
                    if command is not None:
                        self._on_command(command)
            except Exception:
                log.exception("the gate's %s handler failed", kind)

    def _decode(self, model: type[Any], payload: bytes, what: str) -> Any:
        try:
            message = decode(model, payload)
        except ProtocolError as exc:
            log.warning("ignored a malformed %s (%d bytes): %s", what, len(payload), exc)
            return None
        device_id = getattr(message, "device_id", self.cfg.device_id)
        if device_id != self.cfg.device_id:
            log.warning("ignored a %s addressed to %s", what, device_id)
            return None
        return message

    # --- sender thread ------------------------------------------------------------------------------

    def _send_loop(self) -> None:
        try:
            self._buf = self._open_buffer()
            if self._buf is None:
                return  # stopped before the buffer could be opened
            self._set_will()
            host, port, _ = self.cfg.broker
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = SESSION_EXPIRY_S
            self._client.connect_async(host, port, keepalive=self._keepalive, clean_start=False, properties=props)
            self._client.loop_start()
            while True:
                kinds = self._next_events()
                if "stop" in kinds:
                    self._shutdown()
                    return
                try:
                    self._send_due()
                except Exception:
                    log.exception("sending taps failed")
                    self._back_off()
        except Exception:
            log.exception("the publisher's sender thread failed")
        finally:
            if self._buf is not None:
                self._buf.close()

    def _open_buffer(self) -> Buffer | None:
        """The sender's own connection; a buffer that cannot be opened (full disk, broken SD card) is retried
        with backoff rather than ending the thread, until stop()."""
        while True:
            try:
                return Buffer(self.buffer_path)
            except Exception:
                log.exception("cannot open the tap buffer %s; retrying", self.buffer_path)
                self._back_off()
            try:
                # Nothing else can happen yet (paho is not started): wait for stop() or the retry.
                if self._events.get(timeout=max(0.01, self._pause_until - time.monotonic()))[0] == "stop":
                    return None
            except queue.Empty:
                pass

    def _next_events(self) -> list[str]:
        """Wait for the next event (or the next re-send deadline) and handle everything queued."""
        try:
            events = [self._events.get(timeout=self._wait_s())]
        except queue.Empty:
            return ["tick"]
        while True:
            try:
                events.append(self._events.get_nowait())
            except queue.Empty:
                break
        kinds = []
        for kind, item in events:
            kinds.append(kind)
            if kind == "stop":
                continue
            try:
                self._handle(kind, item)
            except Exception:
                log.exception("publisher event %s failed", kind)
        return kinds

    def _handle(self, kind: str, item: Any) -> None:
        if kind == "connected":
            self._link_up = True
            # Whatever was in flight may or may not have reached the server: all of it is due again.
            self._sent_at.clear()
            self._resend_after = self.cfg.ack_timeout_s
            self._pause_until = 0.0
            self._failures = 0
            self._publish_status("online")
        elif kind == "disconnected":
            self._link_up = False
            self._set_will()
        elif kind == "ack":
            self._apply_ack(item)
        elif kind == "status":
            self._publish_status("online")
        elif kind == "resync":
            self._sent_at.clear()  # everything unacknowledged is due in the send pass that follows
            self._resend_after = self.cfg.ack_timeout_s
            self._pause_until = 0.0
            self._publish_status("online")
        # "kick": nothing to do but the send pass that follows every event

    def _wait_s(self) -> float:
        now = time.monotonic()
        wait = IDLE_POLL_S
        if self._link_up and self._sent_at:
            wait = min(wait, min(self._sent_at.values()) + self._resend_after - now)
        if self._pause_until > now:
            wait = max(wait, self._pause_until - now)
        return max(wait, 0.01)

    def _send_due(self) -> None:
        """Publish, in seq order, the taps of the window (the oldest batch_size unacknowledged) that were
        never sent on this connection or whose Ack is overdue."""
        buf = self._require_buffer()
        now = time.monotonic()
        if not self._link_up or now < self._pause_until:
            return
        window = buf.unacked(limit=self.cfg.batch_size)
        live = {r.seq for r in window}
        for seq in [s for s in self._sent_at if s not in live]:  # acknowledged (or pruned) meanwhile
            del self._sent_at[seq]
        due = [r for r in window if r.seq not in self._unsendable
               and (r.seq not in self._sent_at or now - self._sent_at[r.seq] >= self._resend_after)]
        if not due:
            return
        resending = [r.seq for r in due if r.seq in self._sent_at]
        if resending:
            log.info("no Ack for seq %s within %.1f s: sending again", _span(resending), self._resend_after)
            self._resend_after = min(self._resend_after * 2, max(self.cfg.ack_timeout_s, MAX_RESEND_S))
        sent: list[int] = []
        try:
            for record in due:
                rc = self._publish_tap(record)
                if rc is None:
                    continue
                if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                    if rc == MQTTErrorCode.MQTT_ERR_NO_CONN:
                        log.info("connection lost while sending seq %d", record.seq)
                    else:
                        log.warning("paho refused seq %d: %s; backing off", record.seq, mqtt.error_string(rc))
                        self._back_off()
                    return  # never skip ahead of a tap that was not handed over: keep seq order
                self._sent_at[record.seq] = now
                sent.append(record.seq)
            self._failures = 0
        finally:
            if sent:
                buf.mark_sent(sent)
                log.debug("sent seq %s", _span(sent))

    def _publish_tap(self, record: TapRecord) -> MQTTErrorCode | None:
        try:
            payload = encode(record.to_event(self.cfg.device_id, self._require_buffer().buffer_id))
        except Exception:
            # A row the wire contract refuses can never be delivered; it must not hold up the others.
            log.exception("tap seq %d cannot be encoded; it stays in the buffer unsent", record.seq)
            self._unsendable.add(record.seq)
            return None
        return self._client.publish(self._topics["tap"], payload, qos=QOS).rc

    def _apply_ack(self, payload: bytes) -> None:
        try:
            ack = decode(Ack, payload)
        except ProtocolError as exc:
            log.warning("ignored a malformed ack (%d bytes): %s", len(payload), exc)
            return
        if ack.device_id != self.cfg.device_id or ack.buffer_id != self._require_buffer().buffer_id:
            log.warning("ignored an ack addressed to %s / buffer %s", ack.device_id, ack.buffer_id)
            return
        changed = self._require_buffer().mark_acked((a.seq, a.outcome, a.reason) for a in ack.acks)
        for a in ack.acks:
            self._sent_at.pop(a.seq, None)
            if a.outcome in ("rejected", "conflict"):
                log.warning("the server answered seq %d %s: %s", a.seq, a.outcome, a.reason)
            elif a.outcome == "held":
                log.warning("the server holds seq %d until this gate is placed: %s", a.seq, a.reason)
        if self._on_acks is not None:
            try:
                self._on_acks(list(ack.acks))  # the gate learns from them whether the server knows it
            except Exception:
                log.exception("on_acks failed")
        if changed:
            self._resend_after = self.cfg.ack_timeout_s  # the server is answering: back to the short timeout
        log.debug("ack for %d taps, %d new", len(ack.acks), changed)

    def _back_off(self) -> None:
        self._failures += 1
        self._pause_until = time.monotonic() + min(0.5 * 2 ** (self._failures - 1), MAX_PAUSE_S)

    def _require_buffer(self) -> Buffer:
        if self._buf is None:
            raise RuntimeError("the Buffer is opened by the sender thread")
        return self._buf

    def _status(self, state: str) -> DeviceStatus:
        try:
            base = self._status_fn()
        except Exception:
            log.exception("the gate's status callback failed; sending a minimal status")
            base = DeviceStatus(device_id=self.cfg.device_id, state="online", at=datetime.now(UTC))
        update: dict[str, Any] = {"device_id": self.cfg.device_id, "state": state}
        try:
            buf = self._require_buffer()
            oldest = buf.oldest_unacked()
            last = buf.last_tap()
            update |= {
                "buffer_depth": buf.depth(),
                "oldest_unacked_seq": oldest.seq if oldest else None,
                "oldest_unacked_at": oldest.at if oldest else None,
                "last_tap_at": last.at if last else None,
            }
        except Exception:
            log.exception("cannot read the buffer for the status; sending the gate's figures")
        return base.model_copy(update=update)

    def _publish_status(self, state: str) -> mqtt.MQTTMessageInfo | None:
        if not self._link_up:
            return None
        info = self._client.publish(self._topics["status"], encode(self._status(state)),
                                    qos=QOS, retain=True)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            log.info("status not published: %s", mqtt.error_string(info.rc))
        return info

    def _set_will(self) -> None:
        """(Re)arm the Last Will with a fresh offline status; paho sends it with the next CONNECT (paho's
        network thread reads these attributes only when it builds that packet)."""
        payload = encode(self._status("offline"))
        self._client.will_set(self._topics["status"], payload, qos=QOS, retain=True)

    def _shutdown(self) -> None:
        if self._link_up:
            info = self._publish_status("offline")
            if info is not None and info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS:
                try:
                    info.wait_for_publish(STOP_PUBLISH_WAIT_S)  # the sender thread, not a paho callback
                except (RuntimeError, ValueError) as exc:
                    log.warning("offline status not confirmed: %s", exc)
        self._client.disconnect()
        self._client.loop_stop()
        self._link_up = False


def _span(seqs: list[int]) -> str:
    return f"{seqs[0]}" if len(seqs) == 1 else f"{seqs[0]}..{seqs[-1]} ({len(seqs)})"
