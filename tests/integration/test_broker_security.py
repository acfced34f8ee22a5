"""The broker as `genba-provision broker-config` writes it, attacked with one gate's credentials.

Every attack found against the earlier anonymous / password-only broker is tried here against a
real Mosquitto started on the generated configuration (TLS, two password files, the ACL): reading
everything, storing taps in another gate's name, taking another gate's seqs, planting a retained
config, commanding another gate, moving its clock, publishing as the server, taking its client id.
Each must be refused, and the gate that owns its credentials must still connect and be recorded.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from mosquitto import PrivateMosquitto, free_port
from mqtt_peers import wait_for
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from world import Api

from protocol.messages import Ack, Card, DeviceConfig, DeviceStatus, TapEvent, decode, encode
from protocol.topics import topic
from provisioning import pki
from provisioning.broker import BrokerDir, BrokerSettings
from server.config import MqttConfig
from server.ingest import MqttIngest

BUF = "cd" * 16
UID = "0114A1B2C3D4E5F6"
NOT_AUTHORIZED = 135  # MQTT 5 reason code 0x87
ACCEPTED = {0, 16}  # success, or "no matching subscribers" (also a success)


@pytest.fixture
def backend() -> str:
    """The broker is the subject here, not the store: SQLite is enough."""
    return "sqlite"


def tap(device: str, seq: int, at: datetime | None = None) -> bytes:
    return encode(TapEvent(device_id=device, buffer_id=BUF, seq=seq, card=Card(tech="felica", uid=UID),
                           direction="in", at=at or datetime.now(UTC), clock_synced=True,
                           boot_id="boot-1", mono_ms=seq))


@dataclass
class Site:
    dir: BrokerDir
    broker: PrivateMosquitto
    passwords: dict[str, str]
    server: dict[str, Any] = field(default_factory=dict)

    @property
    def gate_port(self) -> int:
        return self.dir.settings().gate_port

    @property
    def server_port(self) -> int:
        return self.dir.settings().server_port


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    bd = BrokerDir(tmp_path / "broker")
    gate_port, server_port = free_port(), free_port()
    mq_dir = tmp_path / "mosquitto"
    bd.create(BrokerSettings(gate_host="127.0.0.1", gate_port=gate_port, gate_bind="127.0.0.1",
                             server_port=server_port, pid_file=str(mq_dir / "mosquitto.pid")))
    passwords = {g: bd.add_gate(g) for g in ("gate-a", "gate-b")}
    broker = PrivateMosquitto(mq_dir, dropin=bd.dropin, port=gate_port).start()
    server = tomllib.loads(bd.server_mqtt.read_text(encoding="utf-8"))["mqtt"]
    try:
        yield Site(bd, broker, passwords, server)
    finally:
        broker.stop()
        print(f"--- mosquitto log ---\n{broker.log_tail(80)}")


class Peer:
    """One MQTT client with given credentials; records what the broker answered and delivered."""

    def __init__(self, port: int, username: str | None, password: str | None, *, ca_file: Path | None,
                 client_id: str = "", tls: bool = True) -> None:
        self.connected = threading.Event()
        self.answered = threading.Event()
        self.reason: Any = None
        self.disconnects: list[Any] = []
        self.messages: list[tuple[str, bytes, bool]] = []
        self.subacks: dict[int, list[int]] = {}
        self.pubacks: dict[int, int] = {}
        self.client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id,
                                  protocol=MQTTProtocolVersion.MQTTv5)
        if username is not None:
            self.client.username_pw_set(username, password)
        if tls:
            self.client.tls_set(ca_certs=str(ca_file) if ca_file else None)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda c, u, f, rc, p: (self.disconnects.append(rc), self.answered.set())
        self.client.on_message = lambda c, u, m: self.messages.append((m.topic, bytes(m.payload), bool(m.retain)))
        self.client.on_subscribe = lambda c, u, mid, rcs, p: self.subacks.__setitem__(mid, [r.value for r in rcs])
        self.client.on_publish = lambda c, u, mid, rc, p: self.pubacks.__setitem__(mid, rc.value)
        self.error: Exception | None = None
        try:
            self.client.connect("127.0.0.1", port, keepalive=30)
        except (OSError, ssl.SSLError) as exc:
            self.error = exc
            self.answered.set()
            return
        self.client.loop_start()
        self.answered.wait(10)

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        self.reason = reason
        if not reason.is_failure:
            self.connected.set()
        self.answered.set()

    @property
    def accepted(self) -> bool:
        return self.connected.is_set() and self.client.is_connected()

    def subscribe(self, filt: str) -> list[int]:
        _, mid = self.client.subscribe(filt, qos=1)
        return list(wait_for(lambda: self.subacks.get(mid), f"the SUBACK for {filt}"))

    def publish(self, name: str, payload: bytes, retain: bool = False) -> int:
        info = self.client.publish(name, payload, qos=1, retain=retain)
        return int(wait_for(lambda: info.mid in self.pubacks and (self.pubacks[info.mid],), f"PUBACK on {name}")[0])

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def gate(site: Site, name: str, **kw: Any) -> Peer:
    return Peer(site.gate_port, name, site.passwords[name], ca_file=site.dir.ca_file, client_id=name, **kw)


def server(site: Site, client_id: str = "observer") -> Peer:
    return Peer(site.server_port, site.server["username"], site.server["password"], ca_file=site.dir.ca_file,
                client_id=client_id)


def test_one_gates_credentials_reach_only_that_gates_topics(site: Site) -> None:
    srv = server(site)
    victim = gate(site, "gate-b")
    attacker = gate(site, "gate-a")
    try:
        assert srv.accepted and victim.accepted and attacker.accepted
        # The server's retained config for the victim, and what the server listens to.
        good_config = encode(DeviceConfig(device_id="gate-b", version=3, roster_key="ab" * 16, roster={}))
        assert srv.publish(topic("gate-b", "config"), good_config, retain=True) in ACCEPTED
        assert srv.subscribe("genba/v1/devices/+/tap") == [1]
        assert srv.subscribe("genba/v1/devices/+/status") == [1]
        assert srv.subscribe("$share/genba-ingest/genba/v1/devices/+/tap") == [1]
        for kind in ("ack", "config", "cmd"):
            assert victim.subscribe(topic("gate-b", kind)) == [1]
        wait_for(lambda: any(t.endswith("/config") for t, _, _ in victim.messages), "the victim's config")

        # Reading everything, or another gate's acks, config and commands. Mosquitto 2.0.11 grants
        # the SUBSCRIBE and checks read access on every message it would deliver (retained ones
        # included): the subscription exists, nothing ever arrives through it.
        filters = ["#", "genba/v1/devices/#", "genba/v1/devices/+/tap", "$share/genba-ingest/genba/v1/devices/+/tap",
                   "$SYS/#", *[topic("gate-b", k) for k in ("ack", "config", "cmd", "tap", "status")]]
        subacks = {f: attacker.subscribe(f) for f in filters}
        # Traffic the attacker would love to read: the victim's tap and status, the server's answers.
        assert victim.publish(topic("gate-b", "tap"), tap("gate-b", 41)) in ACCEPTED
        assert victim.publish(topic("gate-b", "status"), encode(DeviceStatus(
            device_id="gate-b", state="online", at=datetime.now(UTC))), retain=True) in ACCEPTED
        for kind in ("ack", "cmd"):
            assert srv.publish(topic("gate-b", kind), b'{"v":1}') in ACCEPTED
        wait_for(lambda: len([t for t, _, _ in victim.messages if t.endswith(("/ack", "/cmd"))]) == 2,
                 "the victim got its ack and command")
        wait_for(lambda: len([t for t, _, _ in srv.messages if "gate-b" in t]) >= 2, "the server got tap and status")
        time.sleep(0.3)
        assert attacker.messages == [], f"the attacker read {attacker.messages} through {subacks}"
        srv.messages.clear()
        victim.messages.clear()

        # Writing in the victim's name or as the server: refused at PUBLISH (PUBACK 0x87, not routed).
        forged_status = DeviceStatus(device_id="gate-b", state="online", at=datetime(2026, 1, 1, 1, tzinfo=UTC),
                                     clock_synced=True, boot_id="boot-1", mono_ms=1)
        evil_config = encode(DeviceConfig(device_id="gate-b", version=99, roster_key="ee" * 16, roster={}))
        attempts = [
            (topic("gate-b", "tap"), tap("gate-b", 1), False),          # a tap in another gate's name
            *[(topic("gate-b", "tap"), tap("gate-b", s), False) for s in range(2, 6)],  # its next seqs
            (topic("gate-b", "config"), evil_config, True),              # a planted retained config
            (topic("gate-b", "cmd"), b'{"v":1,"device_id":"gate-b","command":"resync"}', False),
            (topic("gate-b", "status"), encode(forged_status), True),    # its clock moved by a status
            (topic("gate-b", "ack"), b'{"v":1}', False),                 # acks in the server's name
            (topic("gate-a", "ack"), b'{"v":1}', False),                 # ... even on its own topics
            (topic("gate-a", "config"), evil_config, True),
            (topic("gate-a", "cmd"), b"{}", False),
            ("genba/v1/other", b"x", False),
        ]
        for name, payload, retain in attempts:
            assert attacker.publish(name, payload, retain) == NOT_AUTHORIZED, name

        # Its own tap goes through (the control: the observer sees what is allowed).
        assert attacker.publish(topic("gate-a", "tap"), tap("gate-a", 1)) in ACCEPTED
        wait_for(lambda: any(t == topic("gate-a", "tap") for t, _, _ in srv.messages), "gate-a's own tap")
        time.sleep(0.3)
        assert [t for t, _, _ in srv.messages if "gate-b" in t] == []
        assert victim.messages == []  # no config, command or ack planted
        assert attacker.messages == []

        # The retained config a newcomer reads is still the server's.
        late = Peer(site.gate_port, "gate-b", site.passwords["gate-b"], ca_file=site.dir.ca_file, client_id="x")
        late.subscribe(topic("gate-b", "config"))
        got = wait_for(lambda: late.messages, "the retained config")
        assert decode(DeviceConfig, got[0][1]).version == 3
        late.close()
        assert not victim.accepted  # `late` took over the gate-b session: client id = username
    finally:
        for p in (srv, victim, attacker):
            p.close()


def test_a_gate_in_the_ingests_shared_subscription_takes_no_tap_from_it(site: Site) -> None:
    """Mosquitto 2.0 lets any client join any $share group; a gate in the ingest's group would be
    handed every other tap and, lacking read access, drop it for the whole group. The group's name
    is a secret of the server's config (server-mqtt.toml), so the gate joins only groups of its own."""
    group = site.server["share_group"]
    assert group.startswith("genba-ingest-") and len(group) > 20
    srv = server(site, "genba_ingest")
    assert srv.subscribe(f"$share/{group}/genba/v1/devices/+/tap") == [1]  # the only subscription it has
    attacker = gate(site, "gate-a")
    victim = gate(site, "gate-b")
    try:
        for guess in ("genba-ingest", "genba_ingest", "ingest", group[:-1]):
            attacker.subscribe(f"$share/{guess}/genba/v1/devices/+/tap")
        for seq in range(1, 11):
            assert victim.publish(topic("gate-b", "tap"), tap("gate-b", seq)) in ACCEPTED
        wait_for(lambda: len(srv.messages) == 10, "all ten taps at the ingest")
        assert attacker.messages == []
    finally:
        for p in (srv, attacker, victim):
            p.close()


def test_a_gates_oversized_message_gets_it_disconnected(site: Site) -> None:
    attacker = gate(site, "gate-a")
    try:
        attacker.client.publish(topic("gate-a", "tap"), b"x" * (5 << 20), qos=1)
        wait_for(lambda: attacker.disconnects, "the broker's answer to a 5 MiB message")
    finally:
        attacker.close()


def test_a_gate_cannot_take_another_gates_client_id(site: Site) -> None:
    victim = gate(site, "gate-b")
    attacker = Peer(site.gate_port, "gate-a", site.passwords["gate-a"], ca_file=site.dir.ca_file, client_id="gate-b")
    try:
        assert attacker.accepted
        time.sleep(0.5)
        assert victim.accepted and victim.disconnects == []  # the broker named the attacker gate-a
    finally:
        victim.close()
        attacker.close()


def test_refused_wrong_password_anonymous_plain_tcp_wrong_ca_and_gates_on_the_server_listener(
        site: Site, tmp_path: Path) -> None:
    wrong = Peer(site.gate_port, "gate-a", "not-the-password", ca_file=site.dir.ca_file)
    assert not wrong.accepted and wrong.reason is not None and wrong.reason.value == NOT_AUTHORIZED
    anon = Peer(site.gate_port, None, None, ca_file=site.dir.ca_file)
    assert not anon.accepted
    # Plain TCP to the TLS port: the broker never answers MQTT there.
    plain = Peer(site.gate_port, "gate-a", site.passwords["gate-a"], ca_file=None, tls=False)
    time.sleep(0.5)
    assert not plain.accepted
    # A broker certificate from another CA: the gate refuses to talk (a rogue broker on the site Wi-Fi).
    other_ca = tmp_path / "other-ca.pem"
    other_ca.write_bytes(pki.make_ca("somebody else").cert_pem)
    rogue = Peer(site.gate_port, "gate-a", site.passwords["gate-a"], ca_file=other_ca)
    assert not rogue.accepted and isinstance(rogue.error, ssl.SSLCertVerificationError)
    # A gate's password on the server's listener, and the server's on the gates' listener.
    assert not gate_on(site, site.server_port, "gate-a").accepted
    s = Peer(site.gate_port, site.server["username"], site.server["password"], ca_file=site.dir.ca_file)
    assert not s.accepted
    with socket.create_connection(("127.0.0.1", site.gate_port), timeout=5) as sock:
        sock.sendall(b"\x10\x0c\x00\x04MQTT\x05\x02\x00\x3c\x00\x00\x00")  # an MQTT CONNECT in clear
        sock.settimeout(3)
        try:
            answer = sock.recv(10)
        except (TimeoutError, ConnectionResetError):
            answer = b""
        assert not answer.startswith(b"\x20")  # never a CONNACK
    for p in (wrong, anon, plain, rogue, s):
        p.close()


def gate_on(site: Site, port: int, name: str) -> Peer:
    return Peer(port, name, site.passwords[name], ca_file=site.dir.ca_file, client_id=name)


def test_a_retired_gate_is_cut_off_at_once_and_a_rotated_password_replaces_the_old(site: Site) -> None:
    a = gate(site, "gate-a")
    b = gate(site, "gate-b")
    assert a.accepted and b.accepted
    site.dir.remove_gate("gate-a")
    site.dir.reload()
    wait_for(lambda: not a.client.is_connected() and a.disconnects, "the retired gate disconnected")
    again = gate(site, "gate-a")
    assert not again.accepted
    new = site.dir.add_gate("gate-b", replace=True)
    site.dir.reload()
    wait_for(lambda: b.disconnects, "the old password's session dropped")
    assert not gate(site, "gate-b").accepted  # the old password
    site.passwords["gate-b"] = new
    fresh = gate(site, "gate-b")
    assert fresh.accepted
    for p in (a, b, again, fresh):
        p.close()


def test_the_owning_gate_still_connects_and_its_taps_are_recorded(site: Site, api: Api) -> None:
    prime = api.company("(株)基本建設")
    s = api.site(prime)
    prime.owner.ok("POST", f"/sites/{s.id}/devices", {"device_id": "gate-b", "name": "正門"}, status=201)
    cfg = MqttConfig(host="127.0.0.1", port=site.server_port, username=site.server["username"],
                     password=site.server["password"], ca_file=site.server["ca_file"],
                     share_group=site.server["share_group"], config_debounce_s=0.2)
    ingest = MqttIngest(api.ctx, cfg)
    ingest.start()
    attacker = gate(site, "gate-a")
    victim = gate(site, "gate-b")
    try:
        wait_for(ingest.connected.is_set, "the ingest connected over TLS with its own account")
        victim.subscribe(topic("gate-b", "ack"))
        victim.subscribe(topic("gate-b", "config"))
        wait_for(lambda: any(t.endswith("/config") for t, _, _ in victim.messages), "the roster push")
        for seq in range(1, 6):  # the attacker tries to take the next five seqs first
            assert attacker.publish(topic("gate-b", "tap"), tap("gate-b", seq)) == NOT_AUTHORIZED
        for seq in range(1, 6):
            assert victim.publish(topic("gate-b", "tap"), tap("gate-b", seq)) in ACCEPTED

        def outcomes() -> list[str]:
            return [i.outcome for t, p, _ in victim.messages if t.endswith("/ack") for i in decode(Ack, p).acks]

        wait_for(lambda: len(outcomes()) == 5, "five Acks")
        assert outcomes() == ["recorded"] * 5
        assert ingest.counters.recorded == 5 and ingest.counters.duplicate == 0
    finally:
        attacker.close()
        victim.close()
        ingest.stop()
