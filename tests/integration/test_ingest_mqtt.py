"""The server's MQTT side in-process against a real Mosquitto: bad input is counted and answered,
never a crash; statuses become device state; the roster push is debounced and versioned."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from mosquitto import PrivateMosquitto
from mqtt_peers import Watcher, mqtt_client, wait_for
from world import Api, Company, Site

from protocol.messages import Ack, Card, DeviceConfig, DeviceStatus, TapEvent, card_digest, decode, encode
from protocol.topics import topic
from server.config import MqttConfig
from server.ingest import MqttIngest

BUF = "ab" * 16
UID = "0114A1B2C3D4E5F6"
AT = datetime.now(UTC) - timedelta(hours=1)  # in the server's past (its time window), on its own clock


def tap(seq: int, device: str = "gate-01", body_device: str | None = None) -> bytes:
    return encode(TapEvent(device_id=body_device or device, buffer_id=BUF, seq=seq, card=Card(tech="felica", uid=UID),
                           direction="in", at=AT, clock_synced=True,
                           boot_id="b", mono_ms=seq))


@pytest.fixture
def server(api: Api, mosquitto: PrivateMosquitto) -> Iterator[MqttIngest]:
    ingest = MqttIngest(api.ctx, MqttConfig(host=mosquitto.host, port=mosquitto.port, config_debounce_s=0.3))
    ingest.start()
    wait_for(ingest.connected.is_set, "the ingest connected")
    yield ingest
    ingest.stop()


def _site_with_gate(api: Api) -> tuple[Company, Site, dict[str, Any]]:
    prime = api.company("(株)基本建設")
    site = api.site(prime)
    prime.owner.ok("POST", f"/sites/{site.id}/devices", {"device_id": "gate-01", "name": "正門"}, status=201)
    worker = api.worker(prime, "鳶田 一郎")
    prime.owner.ok("POST", f"/workers/{worker['id']}/cards", {"uid": UID}, status=201)
    return prime, site, worker


def _publisher(broker: PrivateMosquitto, name: str):  # type: ignore[no-untyped-def]
    client = mqtt_client(broker, name)
    client.loop_start()
    wait_for(client.is_connected, "a test client")
    return client


def test_bad_bodies_are_counted_and_answered_and_a_good_tap_still_goes_through(
        api: Api, mosquitto: PrivateMosquitto, server: MqttIngest) -> None:
    _site_with_gate(api)
    acks = Watcher(mosquitto, topic("gate-01", "ack"), "ack-watcher")
    stray = Watcher(mosquitto, topic("gate-99", "ack"), "stray-watcher")
    gate = _publisher(mosquitto, "gate-01")
    try:
        gate.publish(topic("gate-01", "tap"), b"{not json", qos=1).wait_for_publish(5)
        # These two escaped decode() once (RecursionError, ValueError) and dropped the whole batch.
        gate.publish(topic("gate-01", "tap"), b"[" * 5000, qos=1).wait_for_publish(5)
        gate.publish(topic("gate-01", "tap"), b'{"v": 1, "seq": ' + b"9" * 5000 + b"}", qos=1).wait_for_publish(5)
        gate.publish(topic("gate-01", "tap"), b'{"v": 1, "pad": "' + b"x" * 70_000 + b'"}', qos=1).wait_for_publish(5)
        gate.publish(topic("gate-01", "tap"), b'{"v": 9}', qos=1).wait_for_publish(5)
        gate.publish(topic("gate-01", "tap"), tap(1, body_device="gate-02"), qos=1).wait_for_publish(5)
        gate.publish(topic("gate-99", "tap"), tap(1, device="gate-99"), qos=1).wait_for_publish(5)
        gate.publish(topic("gate-01", "tap"), tap(2), qos=1).wait_for_publish(5)
        wait_for(lambda: server.counters.recorded == 1, "the good tap recorded")
        wait_for(lambda: sum(server.counters.rejected.values()) == 6, "the six bad ones counted")
        assert server.counters.rejected == {
            "not_json": 3, "too_large": 1, "unsupported_version": 1,
            "device_id in the body differs from the topic": 1,
        }
        assert server.counters.held == 1  # the unregistered gate's tap: kept until the 元請 registers it
        # One Ack per batch: the two taps may come back in one message or in two.
        got = wait_for(lambda: [i for p, _ in acks.messages for i in decode(Ack, p).acks]
                       if sum(len(decode(Ack, p).acks) for p, _ in acks.messages) >= 2 else None,
                       "the Acks to gate-01")
        outcomes = sorted((i.seq, i.outcome) for i in got)
        assert outcomes == [(1, "rejected"), (2, "recorded")]  # a refused tap is answered, not hidden
        answer = decode(Ack, wait_for(lambda: stray.messages, "the unknown gate's answer")[0][0]).acks[0]
        assert (answer.outcome, answer.reason) == ("held", "unknown device")
        # A re-send of the good tap: answered again as a duplicate, stored once.
        gate.publish(topic("gate-01", "tap"), tap(2), qos=1).wait_for_publish(5)
        wait_for(lambda: server.counters.duplicate == 1, "the duplicate")
    finally:
        gate.disconnect()
        gate.loop_stop()
        acks.close()
        stray.close()


def test_status_and_last_will_become_the_gates_state(api: Api, mosquitto: PrivateMosquitto, server: MqttIngest) -> None:
    prime, site, _ = _site_with_gate(api)
    gate = _publisher(mosquitto, "gate-01")
    try:
        status = DeviceStatus(device_id="gate-01", state="online", at=datetime.now(UTC), buffer_depth=7,
                              reader="ok", clock_synced=True)
        gate.publish(topic("gate-01", "status"), encode(status), qos=1, retain=True).wait_for_publish(5)

        def state() -> dict[str, Any]:
            rows: list[dict[str, Any]] = prime.owner.ok("GET", f"/sites/{site.id}/devices")
            return rows[0]

        wait_for(lambda: state()["online"] and state()["buffer_depth"] == 7, "the gate online with its backlog")
        offline = status.model_copy(update={"state": "offline"})
        gate.publish(topic("gate-01", "status"), encode(offline), qos=1, retain=True).wait_for_publish(5)
        wait_for(lambda: state()["state_label"] == "オフライン", "the Last Will shown")
        unknown = Watcher(mosquitto, topic("gate-77", "config"), "unknown-config-watcher")
        try:
            gate.publish(topic("gate-77", "status"), encode(status.model_copy(update={"device_id": "gate-77"})),
                         qos=1).wait_for_publish(5)
            wait_for(lambda: server.counters.rejected.get("unknown_device") == 1, "an unknown gate's status counted")
            # The unknown gate is told at once that it is on no site (it shows 未登録), and nothing is
            # left retained on the broker for a device ID nobody registered.
            told = wait_for(lambda: _configs(unknown), "the unknown gate's answer")[0]
            assert (told.device_id, told.site, told.roster) == ("gate-77", None, {})
            assert [retained for _, retained in unknown.messages] == [False]
        finally:
            unknown.close()
    finally:
        gate.disconnect()
        gate.loop_stop()


def _configs(w: Watcher) -> list[DeviceConfig]:
    return [decode(DeviceConfig, p) for p, _ in list(w.messages) if p]


def test_the_roster_push_is_debounced_versioned_and_keeps_its_version_across_restarts(
        api: Api, mosquitto: PrivateMosquitto, server: MqttIngest) -> None:
    prime, site, worker = _site_with_gate(api)
    watcher = Watcher(mosquitto, topic("gate-01", "config"), "config-watcher")
    try:
        first = wait_for(lambda: _configs(watcher), "the first config")[-1]
        key = first.roster_key
        assert first.site is not None and first.site.id == site.id
        assert first.roster == {card_digest(key, UID): "not_on_roster"}  # the company is on the site, he is not
        assert UID not in encode(first).decode() and "鳶田" not in encode(first).decode()  # digests, no names
        entry = api.on_roster(site, prime, worker, position=None)
        for position in ("general", "foreman", "subforeman", "foreman"):  # a burst of edits
            prime.owner.ok("PATCH", f"/roster/{entry['id']}", {"position": position})
        latest = wait_for(lambda: [c for c in _configs(watcher) if c.roster.get(card_digest(key, UID)) == "ok"],
                          "the roster status pushed")[-1]
        assert latest.version > first.version
        assert len(_configs(watcher)) <= 3  # the burst settled into one or two publishes, not five
    finally:
        watcher.close()
    server.stop()
    again = MqttIngest(api.ctx, MqttConfig(host=mosquitto.host, port=mosquitto.port, client_id="genba_ingest_b"))
    again.start()
    watcher = Watcher(mosquitto, topic("gate-01", "config"), "config-watcher-2")
    try:
        wait_for(lambda: _configs(watcher), "the retained config")
        prime.owner.ok("POST", "/devices/gate-01/retire")
        retired = wait_for(lambda: [c for c in _configs(watcher) if c.site is None], "the retired gate's config")[-1]
        assert retired.roster == {} and retired.version == latest.version + 1
    finally:
        watcher.close()
        again.stop()


def test_a_batch_that_fails_is_stored_tap_by_tap_and_only_the_tap_at_fault_is_refused(
        api: Api, mosquitto: PrivateMosquitto, server: MqttIngest, monkeypatch: pytest.MonkeyPatch) -> None:
    from server import ingest as entrypoint
    from server.errors import InvalidInput

    _site_with_gate(api)
    real = entrypoint.ingest_batch

    def flaky(ctx: Any, items: Any, counters: Any = None) -> Any:
        if any(e.seq == 2 for _, e in items):  # a tap the store refuses (whatever the reason)
            raise InvalidInput("value_out_of_range", ja="値が範囲外です", en="a value is out of range")
        return real(ctx, items, counters)

    monkeypatch.setattr(entrypoint, "ingest_batch", flaky)
    acks = Watcher(mosquitto, topic("gate-01", "ack"), "ack-watcher")
    gate = _publisher(mosquitto, "gate-01")
    try:
        # Whether the three arrive in one batch or several, the tap at fault is refused alone.
        for seq in (1, 2, 3):
            gate.publish(topic("gate-01", "tap"), tap(seq), qos=1).wait_for_publish(5)
        got = wait_for(lambda: [i for p, _ in acks.messages for i in decode(Ack, p).acks]
                       if sum(len(decode(Ack, p).acks) for p, _ in acks.messages) >= 3 else None, "three answers")
        assert sorted((i.seq, i.outcome) for i in got) == [(1, "recorded"), (2, "rejected"), (3, "recorded")]
        assert server.counters.rejected == {"unstorable: value_out_of_range": 1}
    finally:
        gate.disconnect()
        gate.loop_stop()
        acks.close()
