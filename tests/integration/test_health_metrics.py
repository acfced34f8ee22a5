"""An operator sees trouble: /healthz looks at the database and the broker, /metrics counts what the
ingest did (by outcome and refusal), what waits in its queue, when each gate was last heard from,
and the refusals at the API edge (login throttling among them)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from mosquitto import PrivateMosquitto, free_port
from mqtt_peers import mqtt_client, wait_for
from prometheus_client.parser import text_string_to_metric_families
from world import PASSWORD, Api

from protocol.messages import Card, DeviceStatus, TapEvent, encode
from protocol.topics import topic
from server.api.app import create_app
from server.config import MqttConfig
from server.ingest import MqttIngest
from server.services.context import Context
from server.store.database import Store

BUF = "cd" * 16
UID = "0114A1B2C3D4E5F6"
AT = datetime.now(UTC) - timedelta(hours=1)  # in the server's past (its time window), on its own clock


def _tap(seq: int, device: str = "gate-01", body_device: str | None = None) -> bytes:
    return encode(TapEvent(device_id=body_device or device, buffer_id=BUF, seq=seq, card=Card(tech="felica", uid=UID),
                           direction="in", at=AT, clock_synced=True,
                           boot_id="b", mono_ms=seq))


def _metrics(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(r.text) for s in family.samples}


def _value(m: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return m.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
def ingest(api: Api, mosquitto: PrivateMosquitto) -> Iterator[MqttIngest]:
    server = MqttIngest(api.ctx, MqttConfig(host=mosquitto.host, port=mosquitto.port, config_debounce_s=0.3),
                        client_id="genba_ingest_metrics")
    server.start()
    wait_for(server.connected.is_set, "the ingest connected")
    yield server
    server.stop()


@pytest.fixture
def served(api: Api, ingest: MqttIngest) -> Iterator[TestClient]:
    """The API and the ingest in one process, as `genba-server run` starts them."""
    with TestClient(create_app(api.ctx, ingest=ingest), raise_server_exceptions=False) as c:
        yield c


def test_healthz_reports_the_database_and_the_broker_it_runs_with(
        api: Api, ingest: MqttIngest, served: TestClient) -> None:
    r = served.get("/healthz")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "ok"
    assert body["database"]["ok"] is True and body["database"]["latency_ms"] >= 0
    assert body["broker"] == {"state": "connected", "client_id": "genba_ingest_metrics"}
    ingest.stop()  # the broker link gone: the API still answers, and says what is missing
    r = served.get("/healthz")
    assert r.status_code == 200 and r.json()["status"] == "degraded"
    assert r.json()["broker"]["state"] == "disconnected"


def test_healthz_of_an_api_without_an_ingest_says_so(api: Api) -> None:
    body = api.client.get("/healthz").json()
    assert body["status"] == "ok" and body["broker"] == {"state": "not_in_this_process"}
    with TestClient(create_app(api.ctx, mqtt_configured=False)) as c:
        assert c.get("/healthz").json()["broker"] == {"state": "not_configured"}


@pytest.mark.parametrize("url", ["sqlite:////nonexistent-genba-dir/genba.db", "postgres"])
def test_healthz_answers_503_when_the_database_cannot_be_read(url: str, tmp_path: Path) -> None:
    if url == "postgres":  # a PostgreSQL server that is not there: nothing listens on the port
        url = f"postgresql+psycopg://genba@127.0.0.1:{free_port()}/genba?connect_timeout=5"
    ctx = Context(Store(url), fast_hashing=True)
    try:
        with TestClient(create_app(ctx), raise_server_exceptions=False) as c:
            r = c.get("/healthz")
            assert r.status_code == 503, r.text
            body = r.json()
            assert body["status"] == "unavailable" and body["database"]["ok"] is False
            assert body["database"]["error"]
            assert c.get("/metrics").status_code == 200  # the metrics still answer, the gates unread
    finally:
        ctx.store.dispose()


def test_metrics_count_what_the_ingest_did_and_when_each_gate_was_last_heard(
        api: Api, mosquitto: PrivateMosquitto, ingest: MqttIngest, served: TestClient) -> None:
    prime = api.company("(株)基本建設")
    site = api.site(prime)
    prime.owner.ok("POST", f"/sites/{site.id}/devices", {"device_id": "gate-01", "name": "正門"}, status=201)
    worker = api.worker(prime, "鳶田 一郎")
    prime.owner.ok("POST", f"/workers/{worker['id']}/cards", {"uid": UID}, status=201)
    before = _metrics(served)  # the counters are the process's: compare, never assume zero
    gate = mqtt_client(mosquitto, "gate-01")
    gate.loop_start()
    wait_for(gate.is_connected, "the gate connected")
    try:
        gate.publish(topic("gate-01", "tap"), _tap(1), qos=1).wait_for_publish(5)
        wait_for(lambda: ingest.counters.recorded == 1, "the tap recorded")
        gate.publish(topic("gate-01", "tap"), _tap(1), qos=1).wait_for_publish(5)  # a re-send
        gate.publish(topic("gate-01", "tap"), b"{not json", qos=1).wait_for_publish(5)
        gate.publish(topic("gate-01", "tap"), _tap(2, body_device="gate-02"), qos=1).wait_for_publish(5)
        gate.publish(topic("gate-09", "tap"), _tap(1, device="gate-09"), qos=1).wait_for_publish(5)  # unknown gate
        status = DeviceStatus(device_id="gate-01", state="online", at=datetime.now(UTC), buffer_depth=3,
                              reader="ok", clock_synced=True)
        gate.publish(topic("gate-01", "status"), encode(status), qos=1).wait_for_publish(5)
        wait_for(lambda: ingest.counters.duplicate == 1 and ingest.counters.held == 1
                 and ingest.counters.rejected.get("not_json") == 1 and sum(ingest.counters.rejected.values()) == 2,
                 "the re-send, the unknown gate, the bad body, the tap of another gate")
        wait_for(lambda: prime.owner.ok("GET", f"/sites/{site.id}/devices")[0]["buffer_depth"] == 3,
                 "the gate's status stored")
    finally:
        gate.disconnect()
        gate.loop_stop()
    after = _metrics(served)

    def grew(name: str, **labels: str) -> float:
        return _value(after, name, **labels) - _value(before, name, **labels)

    assert grew("genba_ingest_taps_total", outcome="recorded") == 1
    assert grew("genba_ingest_taps_total", outcome="duplicate") == 1
    assert grew("genba_ingest_taps_total", outcome="held") == 1
    assert grew("genba_ingest_taps_total", outcome="rejected") == 1
    assert grew("genba_ingest_rejections_total", reason="not_json") == 1  # a body, never a tap
    assert grew("genba_ingest_rejections_total", reason="device_id in the body differs from the topic") == 1
    assert grew("genba_ingest_messages_total", kind="tap") == 5
    assert grew("genba_ingest_messages_total", kind="status") == 1
    assert grew("genba_ingest_batches_total") >= 1
    assert _value(after, "genba_ingest_backlog", client_id="genba_ingest_metrics") == 0
    assert _value(after, "genba_broker_connected", client_id="genba_ingest_metrics") == 1
    seen = _value(after, "genba_gate_last_seen_timestamp_seconds", device_id="gate-01", site_id=str(site.id))
    assert abs(seen - datetime.now(UTC).timestamp()) < 600
    assert _value(after, "genba_gate_online", device_id="gate-01", site_id=str(site.id)) == 1
    assert _value(after, "genba_gate_buffer_depth", device_id="gate-01", site_id=str(site.id)) == 3


def test_metrics_count_refused_and_throttled_logins(api: Api) -> None:
    api.ctx.max_failed_logins = 2
    company = api.company("(株)基本建設")
    login_id = company.owner.account["login_id"]
    before = _metrics(api.client)
    for _ in range(2):
        api.anonymous.fail("POST", "/auth/login", {"login_id": login_id, "password": "genba-Wrong-0000"},
                           status=401, code="login_failed")
    r = api.anonymous.call("POST", "/auth/login", {"login_id": login_id, "password": PASSWORD})
    assert (r.status_code, r.json()["code"]) == (429, "login_throttled"), r.text
    assert int(r.headers["Retry-After"]) == r.json()["details"]["retry_after_s"] >= 1
    after = _metrics(api.client)

    def grew(name: str, **labels: str) -> float:
        return _value(after, name, **labels) - _value(before, name, **labels)

    assert grew("genba_api_refusals_total", status="401", code="login_failed") == 2
    assert grew("genba_api_refusals_total", status="429", code="login_throttled") == 1
    assert grew("genba_login_throttled_total") == 1
