"""The gate's publisher against a real Mosquitto and a stand-in for the server's ingest.

The stand-in (``Ingest``) is a paho client on the server's shared tap subscription that answers with
Acks as the real server does after its commit, with knobs for the ways a real one misbehaves: late,
twice, never, or for seqs the gate never had. The gate side is the real Buffer on a temp file.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from mosquitto import PrivateMosquitto, TlsFiles
from mqtt_peers import DEVICE, RECONNECT, Ingest, Watcher, wait_for

from firmware.buffer import Buffer, TapRecord
from firmware.config import GateConfig
from firmware.publisher import Publisher
from protocol.messages import Command, DeviceConfig, DeviceStatus, SiteRef, encode
from protocol.topics import topic

REPO = Path(__file__).resolve().parents[2]
JST = timezone(timedelta(hours=9))
MORNING = datetime(2026, 11, 25, 7, 58, 12, tzinfo=JST)
ACK_TIMEOUT_S = 0.5


class GateSide:
    """What the gate does around the publisher: records taps in the Buffer, kicks, collects the callbacks."""

    def __init__(self, cfg: GateConfig) -> None:
        self.cfg = cfg
        self.buffer = Buffer(cfg.data_dir / "buffer.db")
        self.configs: list[DeviceConfig] = []
        self.commands: list[Command] = []
        self.connection: list[bool] = []
        self.publisher = Publisher(
            cfg, cfg.data_dir / "buffer.db",
            on_config=self.configs.append, on_command=self.commands.append, on_connection=self.connection.append,
            status=self.status, reconnect_delay_s=RECONNECT,
        )
        self._n = 0

    def status(self) -> DeviceStatus:
        return DeviceStatus(device_id=self.cfg.device_id, state="online", at=datetime.now(JST), firmware="test-fw",
                            reader="ok", clock_synced=True, boot_id="boot-1", direction="in", buffer_depth=999)

    def tap(self, *, uid: str | None = None, tech: str = "felica", direction: str = "in", shown: str | None = "entry",
            clock_synced: bool = True) -> TapRecord:
        self._n += 1
        record = self.buffer.record(tech=tech, uid=uid or f"0114A1B2C3D4{self._n:04X}", direction=direction,
                                    at=MORNING + timedelta(seconds=self._n), clock_synced=clock_synced,
                                    boot_id="boot-1", mono_ms=1000 * self._n, shown=shown)
        self.publisher.kick()
        return record

    def unacked(self) -> dict[int, TapRecord]:
        return {r.seq: r for r in self.buffer.unacked(limit=1000)}

    def delivered(self) -> bool:
        return self.buffer.depth() == 0

    def close(self) -> None:
        self.publisher.stop()
        self.buffer.close()


def outcomes(gate: GateSide) -> dict[int, str | None]:
    """The server's final word per tap, as the buffer holds it."""
    return {row["seq"]: row["outcome"] for row in gate.buffer.db["taps"].rows}


def gate_config(broker: PrivateMosquitto, data_dir: Path, **kw: Any) -> GateConfig:
    data_dir.mkdir(parents=True, exist_ok=True)
    fields: dict[str, Any] = dict(device_id=DEVICE, broker_url=broker.url, data_dir=data_dir,
                                  ack_timeout_s=ACK_TIMEOUT_S, batch_size=10)
    fields.update(kw)
    return GateConfig(**fields)


@pytest.fixture
def ingest(mosquitto: PrivateMosquitto) -> Iterator[Ingest]:
    server = Ingest(mosquitto)
    yield server
    server.close()


@pytest.fixture
def gate(mosquitto: PrivateMosquitto, tmp_path: Path) -> Iterator[GateSide]:
    side = GateSide(gate_config(mosquitto, tmp_path / "gate"))
    yield side
    side.close()


# --- delivery ------------------------------------------------------------------------------------


def test_a_tap_reaches_the_server_with_every_field_and_is_delivered_on_its_ack(
        gate: GateSide, ingest: Ingest) -> None:
    gate.publisher.start()
    first = gate.tap(tech="iso14443a", uid="04A1B2C3D4E5F6", direction="out", shown="exit", clock_synced=False)
    second = gate.tap(shown=None)

    wait_for(gate.delivered, "both taps acknowledged")
    buffer_id = gate.buffer.buffer_id
    assert ingest.received[:2] == [first.to_event(DEVICE, buffer_id), second.to_event(DEVICE, buffer_id)]
    assert ingest.received[0].card.tech == "iso14443a" and ingest.received[0].clock_synced is False
    assert outcomes(gate) == {first.seq: "recorded", second.seq: "recorded"}
    assert gate.connection == [True]


def test_the_brokers_puback_alone_does_not_deliver_a_tap_and_it_is_sent_again(
        gate: GateSide, ingest: Ingest) -> None:
    ingest.acking = False
    gate.publisher.start()
    tap = gate.tap()

    wait_for(lambda: ingest.seqs().count(tap.seq) >= 2, "the unacknowledged tap sent again after the ack timeout")
    # The publisher counts a send after the broker took it, so the server may see the message first.
    wait_for(lambda: gate.unacked()[tap.seq].sent_count >= 2, "the second send counted in the buffer")
    assert not gate.unacked()[tap.seq].acked

    ingest.ack(tap.seq)
    wait_for(gate.delivered, "the tap delivered once the server acknowledges it")


def test_taps_taken_while_the_broker_is_down_all_arrive_in_order_after_it_restarts(
        mosquitto: PrivateMosquitto, tmp_path: Path) -> None:
    # A plain subscription with a persistent session: after the restart the gate may reconnect before
    # the ingest does, and Mosquitto drops what nobody of a shared subscription is online for (the gate
    # sends it again after its ack timeout, so nothing is lost, but the first arrival is out of order:
    # CI saw seq 4 arrive last). The order asserted here is the gate's, not the reconnect race's.
    ingest = Ingest(mosquitto, ack_delay_s=0.2, duplicate_acks=True, unknown_seq_in_acks=True, shared=False)
    gate = GateSide(gate_config(mosquitto, tmp_path / "gate", batch_size=4))
    try:
        gate.publisher.start()
        for _ in range(3):
            gate.tap()
        wait_for(gate.delivered, "the first taps delivered")

        mosquitto.stop()
        wait_for(lambda: not gate.publisher.connected, "the publisher noticing the broker is gone")
        offline = [gate.tap() for _ in range(10)]  # the gate keeps recording while offline
        assert gate.buffer.depth() == 10
        mosquitto.start()

        wait_for(gate.delivered, "every tap delivered after the restart")
        assert sorted(set(ingest.seqs())) == list(range(1, 14))
        assert ingest.first_seen() == list(range(1, 14))  # in seq order, none lost
        assert gate.connection == [True, False, True]
        buffer_id = gate.buffer.buffer_id
        assert all(e == r.to_event(DEVICE, buffer_id) for r in offline for e in ingest.received if e.seq == r.seq)
    finally:
        gate.close()
        ingest.close()


def test_a_tap_in_flight_when_the_connection_drops_is_sent_again_after_the_reconnect(
        mosquitto: PrivateMosquitto, tmp_path: Path) -> None:
    ingest = Ingest(mosquitto, acking=False, shared=False)
    # An ack timeout far beyond this test: only the reconnect can cause the second send.
    gate = GateSide(gate_config(mosquitto, tmp_path / "gate", ack_timeout_s=600))
    try:
        gate.publisher.start()
        tap = gate.tap()
        wait_for(lambda: tap.seq in ingest.seqs(), "the tap at the server, its Ack never sent")

        mosquitto.stop()
        wait_for(lambda: not gate.publisher.connected, "the disconnect")
        mosquitto.start()
        wait_for(lambda: ingest.seqs().count(tap.seq) >= 2, "the tap sent again after the reconnect")
        assert tap.seq in gate.unacked()

        ingest.ack(tap.seq)
        wait_for(gate.delivered, "the tap delivered")
    finally:
        gate.close()
        ingest.close()


def test_late_repeated_unknown_and_foreign_acks_are_harmless(gate: GateSide, ingest: Ingest) -> None:
    ingest.acking = False
    gate.publisher.start()
    one, two = gate.tap(), gate.tap()
    wait_for(lambda: {one.seq, two.seq} <= set(ingest.seqs()), "both taps at the server")

    ingest.ack(one.seq, two.seq, device_id="gate-99")  # on our topic, but addressed to another gate
    ingest.ack(999_999)  # a seq this gate never had
    ingest.ack(two.seq, outcome="duplicate")
    ingest.ack(two.seq, outcome="duplicate")
    wait_for(lambda: two.seq not in gate.unacked(), "the ack for the second tap")
    assert one.seq in gate.unacked()  # the foreign ack changed nothing

    ingest.ack(one.seq)  # late: the tap was probably sent again meanwhile
    wait_for(gate.delivered, "the late ack applied")
    ingest.ack(one.seq, outcome="rejected")  # a repeat may not change the server's first answer
    ingest.acking = True
    three = gate.tap()
    wait_for(gate.delivered, "a later tap still delivered")
    assert outcomes(gate) == {one.seq: "recorded", two.seq: "duplicate", three.seq: "recorded"}


def test_malformed_bodies_are_logged_and_ignored_and_the_publisher_carries_on(
        gate: GateSide, ingest: Ingest, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="genba.publisher")
    gate.publisher.start()
    wait_for(lambda: gate.publisher.connected, "the connection")
    ingest.send_ack(DEVICE, b"{not json")
    ingest.send_ack(DEVICE, json.dumps({"v": 1, "device_id": DEVICE, "acks": [{"seq": 1, "outcome": "maybe"}]}))
    ingest.client.publish(topic(DEVICE, "config"), b'{"v": 2}', qos=1)
    ingest.client.publish(topic(DEVICE, "cmd"), b'{"v": 1, "id": "c1", "name": "selfdestruct"}', qos=1)
    ingest.client.publish(topic(DEVICE, "cmd"), b"\xff\xfe", qos=1)
    ingest.client.publish(topic(DEVICE, "cmd"), encode(Command(id="c2", name="identify")), qos=1)

    wait_for(lambda: gate.commands, "the valid command after the broken ones")
    assert gate.commands == [Command(id="c2", name="identify")]
    assert gate.configs == []
    tap = gate.tap()
    wait_for(gate.delivered, "a tap delivered after the malformed messages")
    assert tap.seq in ingest.seqs()
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert sum("malformed ack" in w for w in warnings) == 2
    assert sum("malformed config" in w for w in warnings) == 1
    assert sum("malformed command" in w for w in warnings) == 2


# --- config, commands, status -------------------------------------------------------------------------


def test_the_retained_config_is_received_on_connect_and_only_once(
        mosquitto: PrivateMosquitto, gate: GateSide, ingest: Ingest) -> None:
    config = DeviceConfig(device_id=DEVICE, version=7, site=SiteRef(id=3, name="渋谷駅前再開発"), direction="in",
                          name="北ゲート", roster_key="00ff", roster={"ab" * 16: "ok"})
    ingest.client.publish(topic(DEVICE, "config"), encode(config), qos=1, retain=True).wait_for_publish(5)
    ingest.client.publish(topic("gate-02", "config"), encode(config.model_copy(update={"device_id": "gate-02"})),
                          qos=1, retain=True).wait_for_publish(5)

    gate.publisher.start()
    wait_for(lambda: gate.configs, "the retained config")
    assert gate.configs == [config]

    mosquitto.stop()
    wait_for(lambda: not gate.publisher.connected, "the disconnect")
    mosquitto.start()
    wait_for(lambda: gate.connection == [True, False, True], "the reconnect")
    ingest.client.publish(topic(DEVICE, "cmd"), encode(Command(id="after", name="resync")), qos=1)
    wait_for(lambda: gate.commands, "a command after the reconnect")  # the config, if repeated, came before it
    assert gate.configs == [config]  # the same retained config again is not a new config


def test_status_is_retained_online_on_connect_and_offline_after_a_clean_stop(
        mosquitto: PrivateMosquitto, gate: GateSide) -> None:
    watcher = Watcher(mosquitto, topic(DEVICE, "status"))
    try:
        gate.tap()  # no server: it stays in the buffer
        gate.publisher.start()
        online = wait_for(lambda: watcher.last_status(), "the online status")
        assert online.state == "online" and online.firmware == "test-fw" and online.reader == "ok"
        assert online.buffer_depth == 1 and online.oldest_unacked_seq == 1  # from the buffer, not the callback
        assert online.last_tap_at == MORNING + timedelta(seconds=1)

        gate.publisher.publish_status()
        wait_for(lambda: len(watcher.statuses()) >= 2, "the status published on request")

        gate.publisher.stop()
        wait_for(lambda: watcher.last_status() and watcher.last_status().state == "offline",  # type: ignore[union-attr]
                 "the offline status published before the clean disconnect")
        assert gate.connection == [True, False]
    finally:
        watcher.close()
    late = Watcher(mosquitto, topic(DEVICE, "status"), client_id="late-watcher")
    try:
        wait_for(lambda: late.messages, "the retained status for a newcomer")
        assert late.messages[-1][1] is True and late.last_status().state == "offline"  # type: ignore[union-attr]
    finally:
        late.close()


CHILD_GATE = """
import json, sys, threading
from pathlib import Path
from datetime import datetime, timezone
from firmware.config import GateConfig
from firmware.publisher import Publisher
from protocol.messages import DeviceStatus

cfg = GateConfig.model_validate(json.loads(sys.argv[1]))
publisher = Publisher(
    cfg, cfg.data_dir / "buffer.db", on_config=print, on_command=print, on_connection=print,
    status=lambda: DeviceStatus(device_id=cfg.device_id, state="online", at=datetime.now(timezone.utc)),
)
publisher.start()
threading.Event().wait()
"""


def test_a_gate_that_dies_leaves_its_last_will_status_offline(
        mosquitto: PrivateMosquitto, tmp_path: Path) -> None:
    cfg = gate_config(mosquitto, tmp_path / "gate")
    Buffer(cfg.data_dir / "buffer.db").close()
    watcher = Watcher(mosquitto, topic(DEVICE, "status"))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen([sys.executable, "-c", CHILD_GATE, cfg.model_dump_json()], cwd=REPO, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: any(s.state == "online" for s in watcher.statuses()), "the child gate online")
        child.kill()  # power cut: no DISCONNECT, the broker sees the socket die
        child.wait()
        will = wait_for(lambda: [s for s in watcher.statuses() if s.state == "offline"], "the Last Will")
        assert will[-1].device_id == DEVICE
        assert watcher.messages[-1][1] is False  # delivered live; a newcomer gets it retained:
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        watcher.close()
    late = Watcher(mosquitto, topic(DEVICE, "status"), client_id="late-watcher")
    try:
        wait_for(lambda: late.messages, "the retained Will")
        assert late.messages[-1][1] is True and late.last_status().state == "offline"  # type: ignore[union-attr]
    finally:
        late.close()


# --- credentials and TLS from the config --------------------------------------------------------------


def test_username_and_password_from_the_config_are_used(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="genba.publisher")
    users = {DEVICE: "s3cret-gate", "ingest": "s3cret-server"}
    with PrivateMosquitto(tmp_path / "broker", users=users) as broker:
        ingest = Ingest(broker, username="ingest", password="s3cret-server")
        intruder = GateSide(gate_config(broker, tmp_path / "intruder", username=DEVICE, password="guess"))
        gate = GateSide(gate_config(broker, tmp_path / "gate", username=DEVICE, password="s3cret-gate"))
        try:
            intruder.publisher.start()
            wait_for(lambda: any("refused" in r.getMessage() for r in caplog.records), "the broker refusing a guess")
            intruder.close()
            assert intruder.connection == []

            gate.publisher.start()
            gate.tap()
            wait_for(gate.delivered, "a tap delivered over the authenticated connection")
        finally:
            gate.close()
            ingest.close()


def make_tls(directory: Path) -> TlsFiles:
    """A throw-away CA and a broker certificate for 127.0.0.1 (EC keys: fast)."""
    directory.mkdir(parents=True)
    ca_key, ca, key, csr, cert = (directory / n for n in ("ca.key", "ca.pem", "broker.key", "broker.csr",
                                                          "broker.pem"))
    ext = directory / "ext.cnf"
    ext.write_text("subjectAltName=IP:127.0.0.1\n", encoding="utf-8")

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run("req", "-x509", *ec, "-keyout", str(ca_key), "-out", str(ca), "-days", "2", "-subj", "/CN=genba test CA")
    run("req", *ec, "-keyout", str(key), "-out", str(csr), "-subj", "/CN=127.0.0.1")
    run("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial",
        "-out", str(cert), "-days", "2", "-extfile", str(ext))
    return TlsFiles(ca_file=ca, cert_file=cert, key_file=key)


def test_a_tls_broker_is_reached_with_the_configured_ca(tmp_path: Path) -> None:
    assert shutil.which("openssl"), "openssl makes the test CA"
    tls = make_tls(tmp_path / "pki")
    with PrivateMosquitto(tmp_path / "broker", tls=tls) as broker:
        assert broker.url.startswith("mqtts://")
        ingest = Ingest(broker)
        gate = GateSide(gate_config(broker, tmp_path / "gate", ca_file=tls.ca_file))
        try:
            gate.publisher.start()
            gate.tap()
            wait_for(gate.delivered, "a tap delivered over TLS")
        finally:
            gate.close()
            ingest.close()


def test_resync_resends_what_is_in_flight_at_once_not_at_its_ack_timeout(
        mosquitto: PrivateMosquitto, tmp_path: Path) -> None:
    server = Ingest(mosquitto, acking=False)
    side = GateSide(gate_config(mosquitto, tmp_path / "gate", ack_timeout_s=60))
    try:
        side.tap()
        side.publisher.start()
        wait_for(lambda: server.seqs() == [1], "the first send")
        side.publisher.resync()  # as the server's resync command does
        wait_for(lambda: server.seqs() == [1, 1], "the re-send, long before the 60 s ack timeout", timeout=10)
    finally:
        side.close()
        server.close()
