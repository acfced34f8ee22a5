"""A gate's bundle: everything one gate needs to come up at its site, in one folder.

    BUNDLE/gate.toml      the gate's config as `genba-gate run --config` reads it (no secret in it)
    BUNDLE/secrets.toml   the gate's broker username and password (0600); first boot installs it as
                          /etc/genbagate/private/secrets.toml, where the gate adds its own keys
    BUNDLE/ca.pem         the broker's CA certificate
    BUNDLE/network.toml   how the gate reaches the network: Wi-Fi SSID and passphrase, or Ethernet;
                          DHCP or a fixed address (0600 when it holds a passphrase)

`genba-provision flash` turns it into the first-boot files of a Raspberry Pi OS image. The folder is
0700: it holds the gate's password until the card is flashed; delete it afterwards (`device rotate`
makes a new one if a card must be flashed again).
"""

from __future__ import annotations

import ipaddress
import json
import tomllib
from dataclasses import dataclass
from pathlib import Path

from protocol.topics import check_device_id
from provisioning.errors import ProvisionError
from provisioning.passwd import write_private

GATE_CA_PATH = "/etc/genbagate/ca.pem"
GATE_DATA_DIR = "/var/lib/genbagate"
GATE_SECRETS_PATH = "/etc/genbagate/private/secrets.toml"  # what the gate reads by default (firmware/config.py)


def _q(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)


@dataclass(frozen=True)
class Network:
    """The gate's network. Wi-Fi when ``wifi_ssid`` is set, Ethernet otherwise (both DHCP unless
    ``address`` is given as CIDR, e.g. 192.168.10.21/24, with ``gateway`` and ``dns``)."""

    wifi_ssid: str | None = None
    wifi_psk: str | None = None
    country: str = "JP"  # the Wi-Fi regulatory domain: channels 12-14 are legal in Japan
    address: str | None = None
    gateway: str | None = None
    dns: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.wifi_ssid is not None:
            # No control characters: the SSID and passphrase end up in YAML and in a shell heredoc
            # (Bookworm's firstrun.sh); a newline there could end the heredoc and run as root.
            if not 1 <= len(self.wifi_ssid.encode("utf-8")) <= 32 or not self.wifi_ssid.isprintable():
                raise ProvisionError("bad_ssid", "Wi-Fi の SSID は 1〜32 バイトの表示できる文字です",
                                     "an SSID is 1 to 32 bytes of printable characters")
            if self.wifi_psk is not None and not (_is_passphrase(self.wifi_psk) or _is_hex64(self.wifi_psk)):
                raise ProvisionError("bad_psk", "Wi-Fi のパスフレーズは 8〜63 文字の半角英数記号です",
                                     "a WPA passphrase is 8 to 63 printable ASCII characters")
        if not (len(self.country) == 2 and self.country.isascii() and self.country.isalpha()):
            raise ProvisionError("bad_country", "国コードは JP のような2文字です", "a country code is two letters")
        if self.address is not None:
            try:
                iface = ipaddress.ip_interface(self.address)
            except ValueError:
                raise ProvisionError("bad_address", f"固定アドレスは 192.168.10.21/24 の形で指定してください: {self.address}",
                                     f"give a fixed address as ADDRESS/PREFIX: {self.address}") from None
            if iface.network.prefixlen == iface.max_prefixlen:
                raise ProvisionError("bad_address", "固定アドレスにはプレフィックス長（/24 など）が必要です",
                                     "a fixed address needs its prefix length (/24)")
            for a in (self.gateway, *self.dns):
                if a is not None:
                    try:
                        ipaddress.ip_address(a)
                    except ValueError:
                        raise ProvisionError("bad_address", f"IPアドレスではありません: {a}",
                                             f"not an IP address: {a}") from None

    @property
    def interface(self) -> str:
        return "wlan0" if self.wifi_ssid else "eth0"

    def to_toml(self) -> str:
        lines = [f"interface = {_q(self.interface)}", f"country = {_q(self.country)}"]
        if self.wifi_ssid is not None:
            lines.append(f"wifi_ssid = {_q(self.wifi_ssid)}")
        if self.wifi_psk is not None:
            lines.append(f"wifi_psk = {_q(self.wifi_psk)}")
        if self.address:
            lines.append(f"address = {_q(self.address)}")
        if self.gateway:
            lines.append(f"gateway = {_q(self.gateway)}")
        if self.dns:
            lines.append(f"dns = [{', '.join(_q(d) for d in self.dns)}]")
        return "\n".join(lines) + "\n"

    @classmethod
    def from_toml(cls, text: str) -> Network:
        d = tomllib.loads(text)
        return cls(wifi_ssid=d.get("wifi_ssid"), wifi_psk=d.get("wifi_psk"), country=d.get("country", "JP"),
                   address=d.get("address"), gateway=d.get("gateway"), dns=tuple(d.get("dns", ())))


def _is_passphrase(s: str) -> bool:
    """WPA2-PSK: 8 to 63 characters of printable ASCII (32-126), spaces included."""
    return 8 <= len(s) <= 63 and all(32 <= ord(c) <= 126 for c in s)


def _is_hex64(s: str) -> bool:
    return len(s) == 64 and all(c in "0123456789abcdefABCDEF" for c in s)


@dataclass(frozen=True)
class Bundle:
    path: Path

    @property
    def gate_toml(self) -> Path:
        return self.path / "gate.toml"

    @property
    def ca_file(self) -> Path:
        return self.path / "ca.pem"

    @property
    def network_toml(self) -> Path:
        return self.path / "network.toml"

    @property
    def secrets_toml(self) -> Path:
        """The broker credentials. A bundle written before they moved here has none (they are in gate.toml)."""
        return self.path / "secrets.toml"

    def device_id(self) -> str:
        return str(tomllib.loads(self.gate_toml.read_text(encoding="utf-8"))["device_id"])

    def network(self) -> Network:
        return Network.from_toml(self.network_toml.read_text(encoding="utf-8"))

    def check(self) -> None:
        for f in (self.gate_toml, self.ca_file, self.network_toml):
            if not f.is_file():
                raise ProvisionError("bundle_incomplete", f"バンドル {self.path} に {f.name} がありません。"
                                     "`genba-provision device add` で作り直してください",
                                     f"bundle {self.path} lacks {f.name}")
        self.network()


def write_bundle(path: Path, *, device_id: str, broker_url: str, password: str, ca_pem: bytes, direction: str,
                 network: Network, reader: str = "usb") -> Bundle:
    check_device_id(device_id)
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.chmod(0o700)
    gate = "\n".join([
        f"# GenbaGate gate {device_id}: written by genba-provision. The broker password is in secrets.toml,",
        f"# installed as {GATE_SECRETS_PATH}.",
        f"device_id = {_q(device_id)}",
        f"broker_url = {_q(broker_url)}",
        f"ca_file = {_q(GATE_CA_PATH)}",
        f"data_dir = {_q(GATE_DATA_DIR)}",
        f"direction = {_q(direction)}",
        f"reader = {_q(reader)}",
    ]) + "\n"
    secrets = "\n".join([
        "# GenbaGate gate secrets: broker credentials and the gate's keys. Keep this file 0600.",
        f"username = {_q(device_id)}",
        f"password = {_q(password)}",
    ]) + "\n"
    write_private(path / "gate.toml", gate, mode=0o600)
    write_private(path / "secrets.toml", secrets, mode=0o600)
    write_private(path / "ca.pem", ca_pem, mode=0o644)
    write_private(path / "network.toml", network.to_toml(), mode=0o600)
    return Bundle(path)
