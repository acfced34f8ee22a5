"""Stand-ins for the other side of the wire, for tests: the server's ingest (Acks after 'commit')
and a watcher of a device topic. Shared by the publisher tests and the gate's end-to-end tests."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from mosquitto import PrivateMosquitto
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from protocol.messages import Ack, AckItem, DeviceStatus, TapEvent, decode, encode
from protocol.topics import TAP_SUBSCRIPTION, topic

DEVICE = "gate-01"
RECONNECT = (1, 2)  # paho's reconnect backoff in these tests: min 1 s, max 2 s


def wait_for(check: Callable[[], Any], what: str, timeout: float = 20.0) -> Any:
    """Poll until ``check()`` is truthy; the timeout only guards against a hung test."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def stop_process(proc: subprocess.Popen[str], timeout: float = 20.0) -> int:
    """SIGTERM a child (gate or server) and wait; SIGKILL it if it does not end. Its exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def mqtt_client(broker: PrivateMosquitto, client_id: str, *, persistent: bool = False,
                username: str | None = None, password: str | None = None) -> mqtt.Client:
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id,
                         protocol=MQTTProtocolVersion.MQTTv5)
    client.reconnect_delay_set(*RECONNECT)
    if username:
        client.username_pw_set(username, password)
    if broker.tls:
        client.tls_set(ca_certs=str(broker.tls.ca_file))
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 3600 if persistent else 0
    client.connect_async(broker.host, broker.port, clean_start=not persistent, properties=props)
    return client


class Ingest:
    """The server's side of the wire, reduced to what the gate can observe: Acks after 'commit'."""

    def __init__(self, broker: PrivateMosquitto, *, acking: bool = True, ack_delay_s: float = 0.0,
                 duplicate_acks: bool = False, unknown_seq_in_acks: bool = False, shared: bool = True,
                 **login: str) -> None:
        self.acking = acking
        # Mosquitto does not queue for an offline member of a shared subscription; a plain
        # subscription with a persistent session is queued for, which a test may need to be
        # independent of who reconnects first after a broker restart.
        self.subscription = TAP_SUBSCRIPTION if shared else TAP_SUBSCRIPTION.split("/", 2)[2]
        self.ack_delay_s = ack_delay_s
        self.duplicate_acks = duplicate_acks
        self.unknown_seq_in_acks = unknown_seq_in_acks
        self.received: list[TapEvent] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = mqtt_client(broker, "test-ingest", persistent=True, **login)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.loop_start()
        wait_for(self._subscribed.is_set, "the ingest's subscription")

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        client.subscribe(self.subscription, qos=1)

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        event = decode(TapEvent, message.payload)
        with self._lock:
            self.received.append(event)
        if not self.acking:
            return
        items = [AckItem(seq=event.seq, outcome="recorded")]
        if self.unknown_seq_in_acks:
            items.append(AckItem(seq=event.seq + 100_000, outcome="recorded"))
        body = encode(Ack(device_id=event.device_id, buffer_id=event.buffer_id, acks=items))
        for _ in range(2 if self.duplicate_acks else 1):
            timer = threading.Timer(self.ack_delay_s, self.send_ack, (event.device_id, body))
            timer.daemon = True
            timer.start()

    def send_ack(self, device_id: str, body: bytes | str) -> None:
        self.client.publish(topic(device_id, "ack"), body, qos=1)

    def ack(self, *seqs: int, device_id: str = DEVICE, outcome: str = "recorded", buffer_id: str | None = None) -> None:
        """Ack by hand, for the buffer of the taps received so far (or the given one)."""
        buffer_id = buffer_id or next(e.buffer_id for e in reversed(self.received))
        items = [AckItem(seq=s, outcome=outcome) for s in seqs]  # type: ignore[arg-type]
        self.send_ack(DEVICE, encode(Ack(device_id=device_id, buffer_id=buffer_id, acks=items)))

    def seqs(self) -> list[int]:
        with self._lock:
            return [e.seq for e in self.received]

    def first_seen(self) -> list[int]:
        seen: list[int] = []
        for seq in self.seqs():
            if seq not in seen:
                seen.append(seq)
        return seen

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class Watcher:
    """Someone on the broker looking at one of the gate's topics (retained messages included)."""

    def __init__(self, broker: PrivateMosquitto, topic_name: str, client_id: str = "test-watcher") -> None:
        self.messages: list[tuple[bytes, bool]] = []
        self._subscribed = threading.Event()
        self.client = mqtt_client(broker, client_id)
        self.client.on_connect = lambda c, *a: c.subscribe(topic_name, qos=1)
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.client.on_message = lambda c, u, m: self.messages.append((bytes(m.payload), bool(m.retain)))
        self.client.loop_start()
        wait_for(self._subscribed.is_set, f"a subscription to {topic_name}")

    def statuses(self) -> list[DeviceStatus]:
        return [decode(DeviceStatus, payload) for payload, _ in list(self.messages)]

    def last_status(self) -> DeviceStatus | None:
        found = self.statuses()
        return found[-1] if found else None

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


