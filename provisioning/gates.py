"""Provisioning's use cases for one gate: add, rotate, retire, list.

Each is the same three steps in an order chosen so that a failure half-way leaves nothing that works
against the site: the server first (it decides who may manage the site's gates, and refuses before
anything is written), then the broker's password file and a reload, then the bundle. A gate whose
server record exists but whose bundle was never written is harmless (it has no credentials); run
``device rotate`` to make its bundle.

The record ``DIR/gates/<device_id>.toml`` keeps what a rotate needs to write the bundle again
(site, direction, reader, network without the Wi-Fi passphrase); it holds no secret.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from protocol.topics import check_device_id
from provisioning.broker import BrokerDir
from provisioning.bundle import Bundle, Network, write_bundle
from provisioning.errors import ProvisionError, ServerError
from provisioning.passwd import write_private
from provisioning.server_client import ServerClient


@dataclass(frozen=True)
class GateRecord:
    device_id: str
    site_id: int | None
    site_ccus_id: str | None
    name: str
    direction: str
    reader: str
    network: Network

    def to_toml(self) -> str:
        safe = Network(**{**self.network.__dict__, "wifi_psk": None})
        head = [
            f"device_id = {json.dumps(self.device_id)}",
            f"name = {json.dumps(self.name, ensure_ascii=False)}",
            f"direction = {json.dumps(self.direction)}",
            f"reader = {json.dumps(self.reader)}",
        ]
        if self.site_id is not None:
            head.append(f"site_id = {self.site_id}")
        if self.site_ccus_id is not None:
            head.append(f"site_ccus_id = {json.dumps(self.site_ccus_id)}")
        return "\n".join(head) + "\n[network]\n" + safe.to_toml()

    @classmethod
    def load(cls, path: Path) -> GateRecord:
        d = tomllib.loads(path.read_text(encoding="utf-8"))
        net = d.get("network", {})
        return cls(d["device_id"], d.get("site_id"), d.get("site_ccus_id"), d.get("name", ""), d["direction"],
                   d.get("reader", "usb"),
                   Network(wifi_ssid=net.get("wifi_ssid"), country=net.get("country", "JP"),
                           address=net.get("address"), gateway=net.get("gateway"), dns=tuple(net.get("dns", ()))))


def _record_path(broker: BrokerDir, device_id: str) -> Path:
    return broker.path / "gates" / f"{device_id}.toml"


def next_device_id(site_ccus_id: str, taken: set[str]) -> str:
    """A readable default: the site's 現場ID and a number (``40224614116771-01``), valid as a
    device id, a topic segment and a hostname."""
    n = 1
    while f"{site_ccus_id}-{n:02d}" in taken:
        n += 1
    return f"{site_ccus_id}-{n:02d}"


def add(broker: BrokerDir, server: ServerClient | None, *, site: str, name: str, direction: str,
        network: Network, out: Path | None = None, device_id: str | None = None, location: str | None = None,
        reader: str = "usb", reload: bool = True) -> dict[str, Any]:
    settings = broker.settings()
    taken = set(broker.gates())
    site_id: int | None = None
    site_ccus: str | None = None
    registered: dict[str, Any] | None = None
    if server is not None:
        found = server.find_site(site)
        site_id, site_ccus = int(found["id"]), str(found["ccus_id"])
        taken |= {d["device_id"] for d in server.devices(site_id)}
        device_id = device_id or next_device_id(site_ccus, taken)
        check_device_id(device_id)
        if device_id in broker.gates():
            raise ProvisionError("gate_exists", f"ゲート {device_id} はすでにあります。バンドルを作り直すには "
                                 f"`genba-provision device rotate {device_id}` を使ってください",
                                 f"gate {device_id} exists: use `device rotate`")
        registered = server.register_device(site_id, device_id, name, direction, location)
    else:
        if device_id is None:
            raise ProvisionError("device_id_required", "--no-server のときは --id でデバイスIDを指定してください",
                                 "give --id with --no-server")
        check_device_id(device_id)
        site_ccus = site if site.isdigit() and len(site) == 14 else None
    password = broker.add_gate(device_id)
    record = GateRecord(device_id, site_id, site_ccus, name, direction, reader, network)
    write_private(_record_path(broker, device_id), record.to_toml(), mode=0o644)
    bundle = write_bundle(out or Path(f"bundle-{device_id}"), device_id=device_id, broker_url=settings.gate_url,
                          password=password, ca_pem=broker.ca_file.read_bytes(), direction=direction,
                          network=network, reader=reader)
    pid = broker.reload() if reload else None
    return {"device_id": device_id, "bundle": bundle, "server": registered, "reloaded": pid}


def rotate(broker: BrokerDir, device_id: str, *, out: Path, network: Network | None = None,
           wifi_psk: str | None = None, reload: bool = True) -> dict[str, Any]:
    """A new password for the gate (the old one stops working at the reload) and a new bundle."""
    path = _record_path(broker, device_id)
    if not path.exists():
        raise ProvisionError("gate_unknown", f"ゲート {device_id} はこのブローカーにありません（`genba-provision device list`）",
                             f"no gate {device_id} on this broker")
    record = GateRecord.load(path)
    net = network or Network(**{**record.network.__dict__, "wifi_psk": wifi_psk})
    password = broker.add_gate(device_id, replace=True)
    bundle = write_bundle(out, device_id=device_id, broker_url=broker.settings().gate_url, password=password,
                          ca_pem=broker.ca_file.read_bytes(), direction=record.direction, network=net,
                          reader=record.reader)
    if network is not None:
        write_private(path, GateRecord(**{**record.__dict__, "network": network}).to_toml(), mode=0o644)
    pid = broker.reload() if reload else None
    return {"device_id": device_id, "bundle": bundle, "reloaded": pid}


def retire(broker: BrokerDir, server: ServerClient | None, device_id: str, *, reload: bool = True) -> dict[str, Any]:
    """Its broker account removed (the reload disconnects it at once and it can never connect
    again), then retired on the server (its taps refused from now on).

    The broker comes first and does not wait for the server: revoking a stolen gate must work while
    the server is down or does not know the gate. A server refusal is reported in ``server_error``
    (the 元請 retires it from the screen later); the credentials are gone either way."""
    removed = broker.remove_gate(device_id)
    rec = _record_path(broker, device_id)
    if rec.exists():
        rec.rename(rec.with_suffix(".retired"))
    pid = broker.reload() if reload else None
    answer, error = None, None
    if server is not None:
        try:
            answer = server.retire_device(device_id)
        except ServerError as exc:
            if exc.code != "device_retired":
                error = exc
    return {"device_id": device_id, "server": answer, "server_error": error, "broker_account_removed": removed,
            "reloaded": pid}


def listing(broker: BrokerDir) -> list[dict[str, Any]]:
    out = []
    for device_id in broker.gates():
        path = _record_path(broker, device_id)
        rec = GateRecord.load(path) if path.exists() else None
        out.append({"device_id": device_id, "name": rec.name if rec else "", "site": rec.site_ccus_id if rec else None,
                    "direction": rec.direction if rec else None,
                    "network": (rec.network.wifi_ssid or "Ethernet") if rec else None})
    return out


__all__ = ["Bundle", "GateRecord", "add", "listing", "next_device_id", "retire", "rotate"]
