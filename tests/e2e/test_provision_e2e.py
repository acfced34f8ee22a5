"""An installer's day with `genba-provision`, every part a real process: the broker configured by
`broker-config`, a gate added through the running server's API as the 元請, the gate running on its
bundle and recorded, its password rotated (the old one stops), and the gate retired (cut off)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from mosquitto import PrivateMosquitto, free_port
from mqtt_peers import wait_for
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from test_gate_e2e import GateProcess
from test_ingest_e2e import ServerProcess, depth
from world import PASSWORD, Api

from server.services.context import Context
from server.store import tables as t

pytestmark = pytest.mark.slow

PROVISION = Path(sys.executable).with_name("genba-provision")
CARD = "0114A1B2C3D4E5F6"


def provision(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(PROVISION), *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL)


@pytest.fixture
def backend() -> str:
    return "sqlite"


class Office:
    def __init__(self, tmp_path: Path, db_url: str, ctx: Context) -> None:
        self.tmp = tmp_path
        self.ctx = ctx
        self.broker_dir = tmp_path / "broker"
        mq = tmp_path / "mosquitto"
        self.gate_port, server_port = free_port(), free_port()
        r = provision("broker-config", "--out", str(self.broker_dir), "--host", "127.0.0.1", "--port",
                      str(self.gate_port), "--bind", "127.0.0.1", "--server-port", str(server_port),
                      "--pid-file", str(mq / "mosquitto.pid"))
        assert r.returncode == 0, r.stderr
        assert "genbagate.conf" in r.stdout and "server-mqtt.toml" in r.stdout
        self.broker = PrivateMosquitto(mq, dropin=self.broker_dir / "genbagate.conf", port=self.gate_port).start()
        self.http_port = free_port()
        mqtt = (self.broker_dir / "server-mqtt.toml").read_text()
        config = tmp_path / "server.toml"
        config.write_text(f'database_url = "{db_url}"\n[http]\nport = {self.http_port}\n{mqtt}'
                          "config_debounce_s = 0.2\n")
        self.server = ServerProcess(config)
        wait_for(lambda: self.server.saw("ingest connected") and self.server.saw("Uvicorn running"),
                 "the server up on its own broker account", 60)
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.http_port}", timeout=30)
        self.api = Api.bootstrap(self.http, ctx)  # type: ignore[arg-type]
        self.gates: list[GateProcess] = []

    def run_gate(self, bundle: Path) -> GateProcess:
        """The bundle's gate.toml as first boot installs it; here the CA and data folder are local."""
        text = (bundle / "gate.toml").read_text()
        text = text.replace('"/etc/genbagate/ca.pem"', f'"{bundle / "ca.pem"}"')
        text = text.replace('"/var/lib/genbagate"', f'"{self.tmp / "gate-data"}"')
        cfg = self.tmp / f"gate-{len(self.gates)}.toml"
        cfg.write_text(text + "ack_timeout_s = 1\n[pins]\nmotion = false\n")
        # The credentials as first boot installs them: private/secrets.toml next to the config.
        (self.tmp / "private").mkdir(mode=0o700, exist_ok=True)
        (self.tmp / "private" / "secrets.toml").write_bytes((bundle / "secrets.toml").read_bytes())
        gate = GateProcess(cfg)
        self.gates.append(gate)
        return gate

    def close(self) -> None:
        for g in self.gates:
            g.stop()
        self.server.stop()
        self.broker.stop()
        self.http.close()


@pytest.fixture
def office(tmp_path: Path, db_url: str, ctx: Context) -> Iterator[Office]:
    o = Office(tmp_path, db_url, ctx)
    try:
        yield o
    finally:
        o.close()
        print("--- server ---\n" + "\n".join(o.server.lines[-60:]))
        print("--- broker ---\n" + o.broker.log_tail(60))
        for g in o.gates:
            print("--- gate ---\n" + "\n".join((g.lines + g.stderr)[-30:]))


def taps(ctx: Context, device_id: str) -> int:
    with Session(ctx.store.engine) as s:
        q = select(func.count()).select_from(t.Tap).join(t.Device, t.Device.id == t.Tap.device_pk)
        return int(s.scalar(q.where(t.Device.device_id == device_id)) or 0)


def test_an_installer_adds_a_gate_that_is_recorded_then_rotates_and_retires_it(office: Office) -> None:
    prime = office.api.company("(株)基本建設")
    site = office.api.site(prime)
    login = prime.owner.account["login_id"]
    creds = {"GENBA_PASSWORD": PASSWORD}
    broker = ["--broker-dir", str(office.broker_dir)]
    server = ["--server", f"http://127.0.0.1:{office.http_port}", "--login", login]

    # Refused before anything is written: a site this 元請 does not have, a wrong password.
    r = provision("device", "add", "--site", "99999999999999", "--name", "正門", "--direction", "in", "--ethernet",
                  *server, *broker, env=creds)
    assert r.returncode == 2 and "現場 99999999999999 が見つかりません" in r.stderr
    r = provision("device", "add", "--site", site.ccus_id, "--name", "正門", "--direction", "in", "--ethernet",
                  *server, *broker, env={"GENBA_PASSWORD": "wrong"})
    assert r.returncode == 2 and "login" in r.stderr.lower()
    assert (office.broker_dir / "passwd-gates").read_text() == ""

    bundle = office.tmp / "bundle"
    r = provision("device", "add", "--site", site.ccus_id, "--name", "正門ゲート", "--direction", "in", "--ethernet",
                  "--out", str(bundle), *server, *broker, env=creds)
    assert r.returncode == 0, r.stderr
    device_id = f"{site.ccus_id}-01"
    assert f"ゲート {device_id} を登録しました" in r.stdout
    gate_toml = tomllib.loads((bundle / "gate.toml").read_text())
    secrets_toml = tomllib.loads((bundle / "secrets.toml").read_text())
    assert gate_toml["broker_url"] == f"mqtts://127.0.0.1:{office.gate_port}" and secrets_toml["username"] == device_id
    assert "password" not in gate_toml and secrets_toml["password"] not in r.stdout + r.stderr  # never printed
    assert stat.S_IMODE((bundle / "gate.toml").stat().st_mode) == 0o600
    assert stat.S_IMODE((bundle / "secrets.toml").stat().st_mode) == 0o600
    assert stat.S_IMODE(bundle.stat().st_mode) == 0o700
    devices = prime.owner.ok("GET", f"/sites/{site.id}/devices")
    assert [(d["device_id"], d["name"], d["direction"]) for d in devices] == [(device_id, "正門ゲート", "in")]
    assert device_id in provision("device", "list", *broker).stdout

    # The gate on its bundle: online over TLS with its own account, its tap recorded.
    gate = office.run_gate(bundle)
    wait_for(lambda: gate.saw("led off") or any("config version" in x for x in gate.stderr), "the gate configured")
    gate.card(CARD)
    wait_for(lambda: taps(office.ctx, device_id) == 1, "the tap stored by the server")
    wait_for(lambda: depth(office.tmp, "gate-data") == 0, "the tap acknowledged at the gate")

    # Rotate: a new bundle; the running gate (old password) is cut off and buffers; the new one drains.
    r = provision("device", "rotate", device_id, "--out", str(office.tmp / "bundle2"), *broker)
    assert r.returncode == 0, r.stderr
    new = tomllib.loads((office.tmp / "bundle2" / "secrets.toml").read_text())
    assert new["password"] != secrets_toml["password"]
    wait_for(lambda: any("disconnected from the broker" in x for x in gate.stderr), "the old password's session gone")
    gate.card("0114A1B2C3D4E5F7")
    wait_for(lambda: len(gate.taps()) == 2, "the second tap taken at the gate")
    assert taps(office.ctx, device_id) == 1
    gate.stop()
    gate = office.run_gate(office.tmp / "bundle2")
    wait_for(lambda: taps(office.ctx, device_id) == 2, "the buffered tap delivered with the new password")

    # Retire: the server refuses its taps from now on and the broker drops it at once.
    r = provision("device", "retire", device_id, *server, *broker, env=creds)
    assert r.returncode == 0, r.stderr
    assert "退役させました" in r.stdout
    retired = prime.owner.ok("GET", f"/sites/{site.id}/devices", include_retired="true")
    assert retired[0]["retired"] is True
    assert (office.broker_dir / "passwd-gates").read_text() == ""
    gate.card("0114A1B2C3D4E5F8")
    wait_for(lambda: any("disconnected from the broker" in x for x in gate.stderr), "the retired gate dropped")
    wait_for(lambda: len(gate.taps()) == 1, "the third tap taken at the gate")
    wait_for(lambda: depth(office.tmp, "gate-data") == 1, "kept at the gate, never sent")
    assert taps(office.ctx, device_id) == 2
