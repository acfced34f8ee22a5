"""The parts of provisioning that need no broker running: Mosquitto's password format, the ACL,
the broker folder kept across re-runs, the bundle's checks, and the CLI's refusals."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509

from protocol.topics import check_device_id
from provisioning.acl import render_acl
from provisioning.broker import SERVER_ACCOUNT, BrokerDir, BrokerSettings
from provisioning.bundle import Network
from provisioning.errors import BrokerError, ProvisionError
from provisioning.gates import next_device_id
from provisioning.passwd import PasswordFile, hash_password, verify


def test_our_hashes_are_mosquitto_passwds_and_back(tmp_path: Path) -> None:
    pw = tmp_path / "passwd"
    pw.write_text("")
    subprocess.run(["mosquitto_passwd", "-b", str(pw), "alice", "s3cret-pass"], check=True)
    theirs = PasswordFile(pw)
    assert theirs.verify("alice", "s3cret-pass") and not theirs.verify("alice", "wrong")
    ours = hash_password("s3cret-pass")
    assert ours.startswith("$7$101$") and verify("s3cret-pass", ours) and not verify("s3cret-passX", ours)
    assert hash_password("x") != hash_password("x")  # salted


def test_the_acl_names_no_gate_and_no_gate_can_be_named_like_the_server() -> None:
    acl = render_acl([SERVER_ACCOUNT])
    assert "pattern write genba/v1/devices/%u/tap" in acl and "pattern read genba/v1/devices/%u/cmd" in acl
    assert "pattern write genba/v1/devices/%u/ack" not in acl  # a gate never writes acks, configs, commands
    assert f"user {SERVER_ACCOUNT}\ntopic read genba/v1/devices/+/tap" in acl
    with pytest.raises(ValueError):
        check_device_id(SERVER_ACCOUNT)


def settings(tmp_path: Path) -> BrokerSettings:
    return BrokerSettings(gate_host="broker.genba.example", pid_file=str(tmp_path / "none.pid"))


def test_broker_config_again_keeps_the_ca_and_the_accounts_and_hides_the_secrets(tmp_path: Path) -> None:
    bd = BrokerDir(tmp_path / "broker")
    first = bd.create(settings(tmp_path))
    assert first is not None  # the server's password, made once
    bd.add_gate("gate-01")
    ca, cert = bd.ca_file.read_bytes(), (bd.path / "server.pem").read_bytes()
    assert bd.create(settings(tmp_path)) is None
    assert bd.ca_file.read_bytes() == ca and (bd.path / "server.pem").read_bytes() == cert
    assert bd.gates() == ["gate-01"]
    bd.create(settings(tmp_path), renew_certificate=True)
    assert bd.ca_file.read_bytes() == ca and (bd.path / "server.pem").read_bytes() != cert
    names = x509.load_pem_x509_certificate((bd.path / "server.pem").read_bytes()).extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value
    assert "broker.genba.example" in names.get_values_for_type(x509.DNSName)
    for secret in ("passwd-gates", "passwd-server", "server.key", "server-mqtt.toml", "private/ca.key"):
        mode = stat.S_IMODE((bd.path / secret).stat().st_mode)
        assert mode & 0o007 == 0, f"{secret} is readable by others ({oct(mode)})"
    assert stat.S_IMODE((bd.path / "private").stat().st_mode) == 0o700


def test_adding_a_gate_twice_or_rotating_an_unknown_one_is_told(tmp_path: Path) -> None:
    bd = BrokerDir(tmp_path / "broker")
    bd.create(settings(tmp_path))
    bd.add_gate("gate-01")
    with pytest.raises(BrokerError) as err:
        bd.add_gate("gate-01")
    assert err.value.code == "gate_exists" and "device rotate" in err.value.message
    with pytest.raises(BrokerError) as err:
        bd.add_gate("gate-02", replace=True)
    assert err.value.code == "gate_unknown"
    with pytest.raises(BrokerError) as err:
        bd.reload()
    assert err.value.code == "broker_not_running" and "systemctl reload mosquitto" in err.value.message
    with pytest.raises(BrokerError) as err:
        BrokerDir(tmp_path / "nothing").add_gate("gate-03")
    assert err.value.code == "broker_dir_missing" and "broker-config" in err.value.message


def test_gate_ids_follow_the_site_and_the_network_is_checked() -> None:
    assert next_device_id("40224614116771", {"40224614116771-01"}) == "40224614116771-02"
    check_device_id(next_device_id("40224614116771", set()))
    for bad in (dict(wifi_ssid="AP", wifi_psk="short"), dict(address="192.168.10.21"), dict(address="nonsense"),
                dict(wifi_ssid="x" * 33), dict(address="10.0.0.2/24", gateway="10.0.0.999")):
        with pytest.raises(ProvisionError):
            Network(**bad)  # type: ignore[arg-type]
    assert Network(wifi_ssid="AP", wifi_psk="a" * 64).interface == "wlan0"


def cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "provisioning.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **env}, stdin=subprocess.DEVNULL)


def test_the_cli_says_what_to_do_next(tmp_path: Path) -> None:
    r = cli("device", "add", "--site", "40224614116771", "--name", "正門", "--direction", "in", "--ethernet",
            "--login", "kihon-owner", "--broker-dir", str(tmp_path / "nowhere"))
    assert r.returncode == 2 and "broker-config" in r.stderr and "Traceback" not in r.stderr
    r = cli("broker-config", "--out", str(tmp_path / "b"))
    assert r.returncode == 2 and "--host" in r.stderr
    r = cli("broker-config", "--out", str(tmp_path / "b"), "--host", "127.0.0.1")
    assert r.returncode == 0 and "systemctl restart mosquitto" in r.stdout
    r = cli("device", "add", "--site", "40224614116771", "--name", "正門", "--direction", "in",
            "--login", "kihon-owner", "--broker-dir", str(tmp_path / "b"))
    assert r.returncode == 2 and "--wifi-ssid" in r.stderr
    r = cli("device", "add", "--site", "40224614116771", "--name", "正門", "--direction", "in", "--ethernet",
            "--login", "kihon-owner", "--broker-dir", str(tmp_path / "b"))
    assert r.returncode == 2 and "GENBA_PASSWORD" in r.stderr  # never asked on the command line
    r = cli("device", "add", "--site", "40224614116771", "--name", "正門", "--direction", "in", "--wifi-ssid", "AP",
            "--no-server", "--id", "gate-01", "--broker-dir", str(tmp_path / "b"), "--no-reload",
            "--out", str(tmp_path / "bundle"), GENBA_WIFI_PSK="wifi-pass-123")
    assert r.returncode == 0, r.stderr
    assert "wifi-pass-123" not in r.stdout + r.stderr
    assert 'wifi_psk = "wifi-pass-123"' in (tmp_path / "bundle" / "network.toml").read_text()
    assert "wifi-pass-123" not in (tmp_path / "b" / "gates" / "gate-01.toml").read_text()  # the record keeps none
    assert "systemctl reload mosquitto" in r.stdout
    assert "gate-01" in cli("device", "list", "--broker-dir", str(tmp_path / "b")).stdout


def test_a_server_client_id_that_a_gate_could_take_is_refused() -> None:
    from server.config import MqttConfig

    with pytest.raises(ValueError, match="underscore"):
        MqttConfig(client_id="genba-ingest")
    assert MqttConfig().client_id == "genba_ingest"


def test_wifi_values_cannot_break_out_of_the_first_boot_script(tmp_path: Path) -> None:
    from provisioning.flash import firstrun_sh, network_config

    for ssid in ("x\nGENBA_NM\ntouch /tmp/PWNED\n:", "tab\there", "nul\x00"):
        with pytest.raises(ProvisionError):
            Network(wifi_ssid=ssid, wifi_psk="good-pass-123")
    with pytest.raises(ProvisionError):
        Network(wifi_ssid="AP", wifi_psk="pass\nword-123")
    with pytest.raises(ProvisionError):
        Network(wifi_ssid="AP", wifi_psk="パスワードです12")  # WPA passphrases are ASCII
    odd = Network(wifi_ssid=" 現場'AP\" $(x) GENBA_NM ", wifi_psk=" back\\slash'\"`$ ")
    script = firstrun_sh("gate-01", odd, [])
    assert subprocess.run(["bash", "-n"], input=script, text=True).returncode == 0
    body = script.split("<<'GENBA_NM'\n", 1)[1].split("\nGENBA_NM\n", 1)[0]
    assert "ssid=\\s現場'AP\" $(x) GENBA_NM\\s" in body and "psk=\\sback\\\\slash'\"`$\\s" in body
    import yaml

    net = yaml.safe_load(network_config(odd))["network"]
    assert net["wifis"]["wlan0"]["access-points"] == {odd.wifi_ssid: {"password": odd.wifi_psk}}


def test_retire_cuts_the_gate_off_even_when_the_server_cannot_be_reached(tmp_path: Path) -> None:
    cli("broker-config", "--out", str(tmp_path / "b"), "--host", "127.0.0.1")
    cli("device", "add", "--site", "40224614116771", "--name", "正門", "--direction", "in", "--ethernet",
        "--no-server", "--id", "gate-01", "--broker-dir", str(tmp_path / "b"), "--no-reload",
        "--out", str(tmp_path / "bundle"))
    r = cli("device", "retire", "gate-01", "--broker-dir", str(tmp_path / "b"), "--no-reload",
            "--server", "http://127.0.0.1:9", "--login", "kihon-owner", GENBA_PASSWORD="x")
    assert r.returncode == 1
    assert "もう接続できません" in r.stdout and "サーバーでの退役はできませんでした" in r.stderr
    assert BrokerDir(tmp_path / "b").gates() == []
    r = cli("flash", "--image", str(tmp_path / "none.img"), "--bundle", str(tmp_path / "bundle"),
            "--wheels", str(tmp_path), "--ssh-key", str(tmp_path / "missing.pub"))
    assert r.returncode == 2 and "ファイルを開けません" in r.stderr and "Traceback" not in r.stderr
