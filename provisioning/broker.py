"""The broker's configuration folder: TLS material, two password files, the ACL, the Mosquitto
drop-in, and the few settings provisioning needs to write gate bundles.

    DIR/broker.toml        provisioning's settings: where gates and the server reach the broker
    DIR/genbagate.conf     the Mosquitto drop-in (link it into /etc/mosquitto/conf.d/)
    DIR/ca.pem             the site's CA certificate (public: every gate bundle carries it)
    DIR/private/ca.key     the CA key (0600; only `broker-config --renew` needs it)
    DIR/server.pem, .key   the broker's certificate and key
    DIR/passwd-gates       one account per gate ($7$ hashes), read by the gates' listener only
    DIR/passwd-server      the server's accounts, read by the server's listener only
    DIR/acl                who publishes and subscribes to what (provisioning/acl.py)
    DIR/server-mqtt.toml   the [mqtt] table for genba-server's config, with its password (0600)

Two listeners, each with its own password file (``per_listener_settings true``):
- the gates' listener (8883, TLS) knows only gate accounts and sets ``use_username_as_clientid``, so
  a gate cannot take another gate's client id and with it the other's session (it would kick the
  other gate off and inherit its queue);
- the server's listener (8884, TLS, loopback by default) knows only server accounts, so a gate's
  password is worth nothing there, and several ingest workers choose their own client ids.

Every change is: write the files atomically, then SIGHUP the broker. Mosquitto re-reads the password
files and the ACL on SIGHUP and disconnects a connected client whose account is gone or whose
password no longer matches, so a retired or rotated gate is cut off at once (tested with the real
broker).
"""

from __future__ import annotations

import grp
import os
import secrets
import signal
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path

from protocol.messages import MAX_CONFIG_BYTES
from protocol.topics import check_device_id
from provisioning import pki
from provisioning.acl import render_acl
from provisioning.errors import BrokerError
from provisioning.passwd import PasswordFile, new_password, write_private

DEFAULT_DIR = Path("/etc/genbagate/broker")
SERVER_ACCOUNT = "genba_server"
DEBIAN_PID_FILE = "/run/mosquitto/mosquitto.pid"


@dataclass
class BrokerSettings:
    """What gates and the server are told about the broker (kept in DIR/broker.toml)."""

    gate_host: str  # the name or address gates connect to (in the broker's certificate)
    gate_port: int = 8883
    gate_bind: str = ""  # "" = every interface
    server_host: str = "127.0.0.1"
    server_port: int = 8884
    server_bind: str = "127.0.0.1"
    pid_file: str = DEBIAN_PID_FILE
    extra_names: list[str] = field(default_factory=list)  # more names/addresses for the certificate
    server_accounts: list[str] = field(default_factory=lambda: [SERVER_ACCOUNT])

    @property
    def gate_url(self) -> str:
        return f"mqtts://{self.gate_host}:{self.gate_port}"

    def to_toml(self) -> str:
        out = ["# genba-provision's own settings for this broker; change with `genba-provision broker-config`."]
        for key, value in asdict(self).items():
            if isinstance(value, list):
                out.append(f"{key} = [{', '.join(_q(v) for v in value)}]")
            elif isinstance(value, int):
                out.append(f"{key} = {value}")
            else:
                out.append(f"{key} = {_q(value)}")
        return "\n".join(out) + "\n"


def _q(s: str) -> str:
    """A TOML basic string (json's escaping is TOML's for what we write)."""
    import json

    return json.dumps(s, ensure_ascii=False)


def _broker_group() -> int | None:
    """Debian's Mosquitto drops to the user `mosquitto` and re-reads the password files and ACL as
    that user on SIGHUP: files it needs are root:mosquitto 0640 when we run as root."""
    if os.geteuid() != 0:
        return None
    try:
        return grp.getgrnam("mosquitto").gr_gid
    except KeyError:
        return None


class BrokerDir:
    def __init__(self, path: Path) -> None:
        # Absolute: the drop-in names its files by path, and Mosquitto does not run from here.
        self.path = Path(path).absolute()

    # --- layout -------------------------------------------------------------------------------
    @property
    def settings_file(self) -> Path:
        return self.path / "broker.toml"

    @property
    def ca_file(self) -> Path:
        return self.path / "ca.pem"

    @property
    def gates_passwd(self) -> Path:
        return self.path / "passwd-gates"

    @property
    def server_passwd(self) -> Path:
        return self.path / "passwd-server"

    @property
    def dropin(self) -> Path:
        return self.path / "genbagate.conf"

    @property
    def server_mqtt(self) -> Path:
        return self.path / "server-mqtt.toml"

    def exists(self) -> bool:
        return self.settings_file.is_file()

    def settings(self) -> BrokerSettings:
        if not self.exists():
            raise BrokerError(
                "broker_dir_missing",
                f"ブローカーの設定フォルダ {self.path} がありません。先に `genba-provision broker-config --out {self.path}"
                " --host ブローカーのホスト名` を実行してください",
                f"no broker configuration in {self.path}: run `genba-provision broker-config` first",
            )
        data = tomllib.loads(self.settings_file.read_text(encoding="utf-8"))
        return BrokerSettings(**data)

    # --- creating -----------------------------------------------------------------------------
    def create(self, settings: BrokerSettings, *, renew_certificate: bool = False) -> str | None:
        """Write (or re-write) everything. Existing accounts and the CA are kept; the server's
        password is made once. Returns the server account's password when it was made now."""
        self.path.mkdir(parents=True, exist_ok=True)
        os.chmod(self.path, 0o755)  # the broker (user mosquitto) must reach the files it reads
        group = _broker_group()
        private = self.path / "private"
        private.mkdir(mode=0o700, exist_ok=True)
        ca_key = private / "ca.key"
        if ca_key.exists() and self.ca_file.exists():
            ca = pki.KeyPair(self.ca_file.read_bytes(), ca_key.read_bytes())
        else:
            ca = pki.make_ca(f"GenbaGate broker CA {settings.gate_host}")
            write_private(ca_key, ca.key_pem, mode=0o600)
            write_private(self.ca_file, ca.cert_pem, mode=0o644)
        names = _unique([settings.gate_host, *settings.extra_names, settings.server_host, "localhost", "127.0.0.1"])
        cert_file, key_file = self.path / "server.pem", self.path / "server.key"
        if renew_certificate or not cert_file.exists() or not key_file.exists() or self._names_changed(names):
            leaf = pki.make_server_cert(ca, names)
            write_private(key_file, leaf.key_pem, mode=0o640 if group is not None else 0o600, group=group)
            write_private(cert_file, leaf.cert_pem, mode=0o644)
        write_private(self.settings_file, settings.to_toml(), mode=0o644)
        made = None
        server = PasswordFile(self.server_passwd)
        for account in settings.server_accounts:
            if account not in server:
                password = new_password()
                server.set(account, password)
                if account == SERVER_ACCOUNT:
                    made = password
                    self._write_server_mqtt(settings, account, password)
        self._save(server)
        if not self.gates_passwd.exists():
            self._save(PasswordFile(self.gates_passwd))
        write_private(self.path / "acl", render_acl(settings.server_accounts), mode=0o644)
        write_private(self.dropin, self.render_dropin(settings), mode=0o644)
        return made

    def _names_changed(self, names: list[str]) -> bool:
        from cryptography import x509

        cert = x509.load_pem_x509_certificate((self.path / "server.pem").read_bytes())
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        have = {str(v) for v in san.get_values_for_type(x509.DNSName)}
        have |= {str(v) for v in san.get_values_for_type(x509.IPAddress)}
        return not set(names) <= have

    def _write_server_mqtt(self, settings: BrokerSettings, account: str, password: str) -> None:
        text = (
            "# The [mqtt] table for genba-server's config (server.toml): copy it there.\n"
            "# It holds the server's broker password: keep this file 0600.\n"
            "[mqtt]\n"
            f"host = {_q(settings.server_host)}\n"
            f"port = {settings.server_port}\n"
            f"username = {_q(account)}\n"
            f"password = {_q(password)}\n"
            f"ca_file = {_q(str(self.ca_file))}\n"
            f"share_group = {_q('genba-ingest-' + secrets.token_hex(12))}\n"
        )
        write_private(self.server_mqtt, text, mode=0o600)

    def render_dropin(self, s: BrokerSettings) -> str:
        tls = [
            f"cafile {self.ca_file}",
            f"certfile {self.path / 'server.pem'}",
            f"keyfile {self.path / 'server.key'}",
            "tls_version tlsv1.2",
            "allow_anonymous false",
            f"acl_file {self.path / 'acl'}",
        ]
        lines = [
            "# GenbaGate broker: written by `genba-provision broker-config`; regenerate rather than edit.",
            f"# Install on Debian: ln -s {self.dropin} /etc/mosquitto/conf.d/genbagate.conf",
            "# and `systemctl restart mosquitto` once; gates added, rotated or retired need only a reload.",
            "per_listener_settings true",
            # The ingest's session may hold a burst of taps while it restarts; the default of 1,000 per
            # client drops the rest (the gates re-send them, but later). Bounded, not unlimited.
            "max_queued_messages 100000",
            # ... and bounded in bytes, so one stolen gate's flood cannot fill the broker's memory.
            "max_queued_bytes 268435456",
            # The largest message is a site's roster config (protocol.messages.MAX_CONFIG_BYTES, 4 MiB);
            # anything bigger disconnects its sender. Global in Mosquitto 2.0 (the ingest refuses a
            # tap over 64 KiB with a reason).
            f"max_packet_size {MAX_CONFIG_BYTES + 64 * 1024}",
            "",
            "# Gates: TLS only, one account each, the client id forced to the username (= device id).",
            f"listener {s.gate_port}{' ' + s.gate_bind if s.gate_bind else ''}",
            *tls,
            f"password_file {self.gates_passwd}",
            "use_username_as_clientid true",
            "",
            "# The GenbaGate server (ingest workers): server accounts only; keep it off the gates' network.",
            f"listener {s.server_port}{' ' + s.server_bind if s.server_bind else ''}",
            *tls,
            f"password_file {self.server_passwd}",
        ]
        return "\n".join(lines) + "\n"

    def _save(self, pw: PasswordFile) -> None:
        group = _broker_group()
        pw.save(mode=0o640 if group is not None else 0o600, group=group)

    # --- gates --------------------------------------------------------------------------------
    def gates(self) -> list[str]:
        return PasswordFile(self.gates_passwd).users()

    def add_gate(self, device_id: str, *, replace: bool = False) -> str:
        """A new account for the gate; returns its password (shown to nobody: it goes in the bundle)."""
        self.settings()
        check_device_id(device_id)
        pw = PasswordFile(self.gates_passwd)
        if device_id in pw and not replace:
            raise BrokerError(
                "gate_exists",
                f"ゲート {device_id} のブローカーアカウントはすでにあります。作り直すには `genba-provision device rotate"
                f" {device_id}` を使ってください",
                f"gate {device_id} already has a broker account: use `device rotate`",
            )
        if device_id not in pw and replace:
            raise BrokerError("gate_unknown", f"ゲート {device_id} のブローカーアカウントがありません",
                              f"gate {device_id} has no broker account")
        password = new_password()
        pw.set(device_id, password)
        self._save(pw)
        return password

    def remove_gate(self, device_id: str) -> bool:
        pw = PasswordFile(self.gates_passwd)
        removed = pw.remove(device_id)
        if removed:
            self._save(pw)
        return removed

    # --- the running broker -------------------------------------------------------------------
    def reload(self) -> int:
        """SIGHUP the broker (what `systemctl reload mosquitto` does): it re-reads the password
        files and the ACL and drops clients that are no longer allowed. Returns its pid."""
        pid_file = Path(self.settings().pid_file)
        try:
            pid = int(pid_file.read_text().strip())
        except (OSError, ValueError):
            raise BrokerError(
                "broker_not_running",
                f"ブローカーのPIDファイル {pid_file} が読めません。Mosquitto が動いているか確認し、"
                "`systemctl reload mosquitto` を実行してください（変更はファイルには書き込み済みです）",
                f"cannot read {pid_file}: is Mosquitto running? run `systemctl reload mosquitto` (files are written)",
            ) from None
        try:
            os.kill(pid, signal.SIGHUP)
        except ProcessLookupError:
            raise BrokerError(
                "broker_not_running",
                f"ブローカー (PID {pid}) が動いていません。Mosquitto を起動してください（変更はファイルには書き込み済みです）",
                f"no broker process {pid}: start Mosquitto (files are written)",
            ) from None
        except PermissionError:
            raise BrokerError(
                "broker_reload_denied",
                "ブローカーを再読み込みする権限がありません。root で実行するか `systemctl reload mosquitto` を実行してください",
                "not allowed to signal the broker: run as root or `systemctl reload mosquitto`",
            ) from None
        return pid


def _unique(items: list[str]) -> list[str]:
    seen: list[str] = []
    for i in items:
        if i and i not in seen:
            seen.append(i)
    return seen
