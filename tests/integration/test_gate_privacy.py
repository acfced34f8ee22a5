"""What a stolen SD card tells: a real gate (`genba-gate run --simulate`, a child process) on a private
Mosquitto with password logins, set up from a provisioning bundle, gets 100 taps acknowledged and stops.
Then every file under its data folder and its config folder is read as bytes (the SQLite file with its
free pages, the -wal and -shm files, the status file, voice clips, everything) and searched for the
100 card UIDs (hex upper and lower case, raw bytes), the roster key and the broker password.

One more tap is left unacknowledged at the end: its UID must still be found (it has to be sent), which
is also the proof that the search finds a UID where there is one.
"""

from __future__ import annotations

import secrets
import sqlite3
import stat
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from mosquitto import PrivateMosquitto
from mqtt_peers import Ingest, mqtt_client, stop_process, wait_for

from firmware.buffer import ACKED_UID_PREFIX, Buffer, acked_uid_digest
from protocol.messages import DeviceConfig, SiteRef, card_digest, encode
from protocol.topics import topic
from provisioning import pki
from provisioning.bundle import Network, write_bundle

pytestmark = pytest.mark.slow

GATE = Path(sys.executable).with_name("genba-gate")
DEVICE = "gate-01"
INGEST_USER, INGEST_PASSWORD = "ingest", "ingest-" + secrets.token_hex(8)
N_TAPS = 100


class Gate:
    """`genba-gate run --simulate`: cards in on stdin, one `tap <seq> <signal>` line per tap out."""

    def __init__(self, config: Path) -> None:
        self.proc = subprocess.Popen(
            [str(GATE), "run", "--simulate", "--config", str(config), "--clock-synced", "yes"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1,
        )
        self.lines: list[str] = []
        self.stderr: list[str] = []
        threading.Thread(target=self._pump, args=(self.proc.stdout, self.lines), daemon=True).start()
        threading.Thread(target=self._pump, args=(self.proc.stderr, self.stderr), daemon=True).start()

    @staticmethod
    def _pump(stream: object, into: list[str]) -> None:
        for line in stream:  # type: ignore[attr-defined]
            into.append(line.rstrip("\n"))

    def card(self, uid: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(uid + "\n")
        self.proc.stdin.flush()

    def taps(self) -> int:
        return sum(1 for line in list(self.lines) if line.startswith("tap "))


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[PrivateMosquitto]:
    """A broker with password logins only: the gate's account and the server's."""
    password = "gate-" + secrets.token_hex(12)
    b = PrivateMosquitto(tmp_path / "mosquitto", users={DEVICE: password, INGEST_USER: INGEST_PASSWORD}).start()
    b.gate_password = password  # type: ignore[attr-defined]
    try:
        yield b
    finally:
        b.stop()
        print(f"--- mosquitto ---\n{b.log_tail(40)}")


def install_gate(tmp_path: Path, broker: PrivateMosquitto) -> tuple[Path, Path]:
    """The gate's files as provisioning and first boot lay them out: etc/gate.toml (no secret in it) and
    etc/private/secrets.toml (0600 in a 0700 folder); the data folder apart. Returns (config, data_dir)."""
    bundle = write_bundle(tmp_path / "bundle", device_id=DEVICE, broker_url=broker.url,
                          password=broker.gate_password,  # type: ignore[attr-defined]
                          ca_pem=pki.make_ca("test").cert_pem, direction="in", network=Network())
    etc, data = tmp_path / "etc", tmp_path / "data"
    (etc / "private").mkdir(parents=True, mode=0o700)
    text = bundle.gate_toml.read_text(encoding="utf-8")
    assert not {"username", "password"} & set(tomllib.loads(text))  # the bundle's gate.toml holds no secret
    text = text.replace('"/etc/genbagate/ca.pem"', f'"{bundle.ca_file}"').replace('"/var/lib/genbagate"', f'"{data}"')
    config = etc / "gate.toml"
    config.write_text(text + "ack_timeout_s = 1\ndebounce_s = 0\n[pins]\nmotion = false\n", encoding="utf-8")
    secrets_file = etc / "private" / "secrets.toml"
    secrets_file.write_bytes(bundle.secrets_toml.read_bytes())
    secrets_file.chmod(0o600)
    return config, data


def publish_config(broker: PrivateMosquitto, config: DeviceConfig) -> None:
    client = mqtt_client(broker, "test-server-config", username=INGEST_USER, password=INGEST_PASSWORD)
    client.loop_start()
    try:
        wait_for(client.is_connected, "the server's client")
        client.publish(topic(DEVICE, "config"), encode(config), qos=1, retain=True).wait_for_publish(10)
    finally:
        client.disconnect()
        client.loop_stop()


def every_file(*roots: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for root in roots for p in sorted(root.rglob("*")) if p.is_file()}


def forms(uid: str) -> list[bytes]:
    """A UID as it could be stored: hex upper and lower case, ASCII and UTF-16, and the raw bytes."""
    out = []
    for text in (uid.upper(), uid.lower()):
        out += [text.encode("ascii"), text.encode("utf-16-le")]
    return [*out, bytes.fromhex(uid)]


def found_in(files: dict[Path, bytes], needle_forms: list[bytes]) -> list[Path]:
    return [p for p, content in files.items() if any(f in content for f in needle_forms)]


def test_after_100_acknowledged_taps_no_file_of_the_gate_holds_a_uid_a_key_or_the_password(
        tmp_path: Path, broker: PrivateMosquitto) -> None:
    config, data = install_gate(tmp_path, broker)
    etc = config.parent
    uids = [f"01{secrets.token_hex(7).upper()}" for _ in range(N_TAPS)]
    pending_uid = f"01{secrets.token_hex(7).upper()}"
    roster_key = secrets.token_hex(16)
    publish_config(broker, DeviceConfig(device_id=DEVICE, version=1, site=SiteRef(id=1, name="エプロ建設工事"),
                                        direction="in", roster_key=roster_key,
                                        roster={card_digest(roster_key, u): "ok" for u in uids}))
    ingest = Ingest(broker, username=INGEST_USER, password=INGEST_PASSWORD)
    gate = Gate(config)
    try:
        wait_for(lambda: any("config version 1" in line for line in gate.stderr), "the roster at the gate", 30)
        for uid in uids:
            gate.card(uid)
            time.sleep(0.01)
        wait_for(lambda: gate.taps() == N_TAPS, "every tap recorded at the gate", 60)
        assert all(" entry" in line for line in gate.lines if line.startswith("tap "))  # judged by the roster
        wait_for(lambda: {e.card.uid for e in ingest.received} >= set(uids), "every tap at the server", 60)
        wait_for(lambda: _depth(data) == 0, "every tap acknowledged at the gate", 60)
        # One tap the server does not answer: it must keep its UID, to be sent again.
        ingest.acking = False
        gate.card(pending_uid)
        wait_for(lambda: gate.taps() == N_TAPS + 1, "the last tap recorded", 30)
        wait_for(lambda: any(e.card.uid == pending_uid for e in ingest.received), "the last tap sent", 30)
    finally:
        code = stop_process(gate.proc)
        ingest.close()
        print("--- gate ---\n" + "\n".join(gate.stderr[-40:]))
    assert code == 0

    files = every_file(data, etc)
    names = {p.relative_to(tmp_path).as_posix() for p in files}
    print("searched:", ", ".join(f"{n} ({len(files[tmp_path / n])} bytes)" for n in sorted(names)))
    assert "data/buffer.db" in names and "etc/private/secrets.toml" in names, names
    # The search finds a UID where there is one: the unacknowledged tap's, in the buffer.
    assert found_in(files, forms(pending_uid)), "the unacknowledged tap lost its UID"
    leaks = {uid: found_in(files, forms(uid)) for uid in uids}
    assert {uid: where for uid, where in leaks.items() if where} == {}
    # Nor its log (the journal, on the same SD card): the gate logs no card UID at its default level.
    log_text = "\n".join(gate.stderr).upper()
    assert [u for u in [*uids, pending_uid] if u in log_text] == []

    secrets_file = etc / "private" / "secrets.toml"
    assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(secrets_file.parent.stat().st_mode) == 0o700
    password = broker.gate_password.encode()  # type: ignore[attr-defined]
    assert found_in(files, [password]) == [secrets_file]
    assert found_in(files, [roster_key.encode(), roster_key.upper().encode(), bytes.fromhex(roster_key)]) \
        == [secrets_file]

    # What the buffer keeps of an acknowledged tap: the digest under the gate's own key, from the secrets file.
    uid_key = bytes.fromhex(tomllib.loads(secrets_file.read_text())["uid_key"])
    with Buffer(data / "buffer.db") as buf:
        rows = {r["seq"]: r["card_uid"] for r in buf.db.query("SELECT seq, card_uid FROM taps")}
    assert len(rows) == N_TAPS + 1
    assert {acked_uid_digest(uid_key, u) for u in uids} == {v for v in rows.values() if v.startswith(ACKED_UID_PREFIX)}
    assert pending_uid in rows.values()


def test_a_gate_whose_config_still_holds_the_password_connects_and_says_to_move_it(
        tmp_path: Path, broker: PrivateMosquitto) -> None:
    """An installed gate's old gate.toml (username/password in it, no secrets file yet) keeps working."""
    data = tmp_path / "data"
    ca = tmp_path / "ca.pem"
    ca.write_bytes(pki.make_ca("test").cert_pem)
    config = tmp_path / "gate.toml"
    config.write_text(
        f'device_id = "{DEVICE}"\nbroker_url = "{broker.url}"\nusername = "{DEVICE}"\n'
        f'password = "{broker.gate_password}"\nca_file = "{ca}"\ndata_dir = "{data}"\n'  # type: ignore[attr-defined]
        'direction = "in"\nack_timeout_s = 1\n[pins]\nmotion = false\n', encoding="utf-8")
    ingest = Ingest(broker, username=INGEST_USER, password=INGEST_PASSWORD)
    gate = Gate(config)
    uid = f"01{secrets.token_hex(7).upper()}"
    try:
        gate.card(uid)
        wait_for(lambda: _depth(data) == 0 and gate.taps() == 1, "the tap delivered with the TOML's password", 30)
        assert any("Move them to" in line and "secrets.toml" in line for line in gate.stderr)
    finally:
        assert stop_process(gate.proc) == 0
        ingest.close()
    made = tmp_path / "private" / "secrets.toml"  # the gate made its own keys file beside the config
    assert stat.S_IMODE(made.stat().st_mode) == 0o600 and "uid_key" in made.read_text()
    assert not found_in(every_file(data), forms(uid))


def _depth(data: Path) -> int:
    """Unacknowledged taps, read-only: a Buffer of the test's own would checkpoint the WAL at close and so
    do part of the gate's work for it."""
    if not (data / "buffer.db").exists():
        return -1
    conn = sqlite3.connect(f"file:{data / 'buffer.db'}?mode=ro", uri=True)
    try:
        return int(conn.execute("SELECT count(*) FROM taps WHERE acked_at IS NULL").fetchone()[0])
    except sqlite3.OperationalError:  # the gate is still creating the file
        return -1
    finally:
        conn.close()
