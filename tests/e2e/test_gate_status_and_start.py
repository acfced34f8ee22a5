"""`genba-gate status` against a real gate process, and `genba-gate run` on a machine whose pins cannot be used.

Real processes throughout: the gate binary as a child (`run --simulate`, or `run` on gpiozero's mock pin
factory chosen by GPIOZERO_PIN_FACTORY, as systemd would start it), a private Mosquitto, the `status`
command as another child. The one in-process test drives the mock pins directly to see the LED.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
from gpiozero import DigitalInputDevice
from gpiozero.pins.mock import MockFactory
from mosquitto import PrivateMosquitto
from mqtt_peers import wait_for
from test_gate_e2e import DEVICE, GATE, GateProcess, publish_retained, write_config

from firmware.cli import EXIT_HARDWARE
from firmware.cli import main as gate_main
from firmware.feedback import CODE_STEP_S
from protocol.messages import DeviceConfig, SiteRef, encode

pytestmark = pytest.mark.slow

UNIT = Path(__file__).resolve().parents[2] / "systemd" / "genba-gate.service"
KEY = "5a" * 16


def status(cfg: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(GATE), "status", "--config", str(cfg)], capture_output=True, text=True, timeout=30)


def value(out: str, label: str) -> str | None:
    """The value of the `label : value` line of the status output; None when there is no such line."""
    found = [x.split(":", 1)[1].strip() for x in out.splitlines() if x.split(":", 1)[0].strip() == label]
    assert len(found) <= 1, out
    return found[0] if found else None


def line(out: str, label: str) -> str:
    """The value of a line that must be there."""
    found = value(out, label)
    assert found is not None, out
    return found


def config(version: int) -> bytes:
    return encode(DeviceConfig(device_id=DEVICE, version=version, site=SiteRef(id=1, name="エプロ建設工事"),
                               direction="in", name="正門ゲート", roster_key=KEY, roster={}))


def test_status_follows_a_running_gate_through_config_pushes_and_says_when_it_stopped(
        mosquitto: PrivateMosquitto, tmp_path: Path) -> None:
    cfg = write_config(tmp_path, mosquitto)
    gate = GateProcess(cfg)
    try:
        wait_for(lambda: status(cfg).returncode == 0, "status: the gate runs")
        wait_for(lambda: value(status(cfg).stdout, "サーバー接続") == "接続中", "status: connected")
        out = status(cfg).stdout
        assert line(out, "ゲート").startswith(f"動作中（PID {gate.proc.pid}、")
        assert line(out, "設定バージョン").startswith("未受信")
        for version in (1, 2):
            publish_retained(mosquitto, "config", config(version))
            started = time.monotonic()
            wait_for(lambda v=version: value(status(cfg).stdout, "設定バージョン") == str(v),  # type: ignore[misc]
                     f"status: config version {version}", timeout=10)
            assert time.monotonic() - started < 5  # on change, not at the next minute
        out = status(cfg).stdout
        assert line(out, "表示中の状態") == "待機中（正常） (ready)"
        assert line(out, "カードリーダー") == "正常 (ok)" and line(out, "時刻同期") == "同期済み"
        gate.card("0114A1B2C3D4E5F6")
        wait_for(lambda: gate.taps(), "a tap")
        assert line(status(cfg).stdout, "未送信のタッチ").split()[0] in ("0", "1")
    finally:
        assert gate.stop() == 0
    after = status(cfg)
    assert after.returncode == 3, after.stdout
    assert line(after.stdout, "ゲート").startswith("停止しています")
    assert "接続中" not in after.stdout
    assert line(after.stdout, "設定バージョン") == "2（最後の状態）"  # what it was using when it stopped


def test_a_killed_gate_is_reported_as_crashed_never_as_connected(
        mosquitto: PrivateMosquitto, tmp_path: Path) -> None:
    cfg = write_config(tmp_path, mosquitto)
    gate = GateProcess(cfg)
    wait_for(lambda: value(status(cfg).stdout, "サーバー接続") == "接続中", "status: connected")
    gate.kill()  # SIGKILL: no chance to mark the file stopped
    out = status(cfg)
    assert out.returncode == 1, out.stdout
    assert line(out.stdout, "ゲート").startswith("動いていません（異常終了")
    assert "接続中" not in out.stdout


def test_status_of_a_gate_that_never_ran_says_it_is_not_running(tmp_path: Path) -> None:
    cfg = tmp_path / "gate.toml"
    cfg.write_text(f'device_id = "{DEVICE}"\ndata_dir = "{tmp_path / "data"}"\n', encoding="utf-8")
    out = status(cfg)
    assert out.returncode == 3 and line(out.stdout, "ゲート").startswith("起動していません")


# --- missing hardware at start --------------------------------------------------------------------


def _hardware_config(tmp_path: Path, reader: str = "usb") -> Path:
    cfg = tmp_path / "gate.toml"
    cfg.write_text("\n".join([
        f'device_id = "{DEVICE}"', 'broker_url = "mqtt://127.0.0.1:1"', f'data_dir = "{tmp_path / "data"}"',
        f'reader = "{reader}"', "[voice]", "enabled = false",
    ]) + "\n", encoding="utf-8")
    return cfg


def test_run_without_a_pin_library_exits_4_with_a_message_and_the_unit_does_not_restart_it(tmp_path: Path) -> None:
    cfg = _hardware_config(tmp_path)
    env = {**os.environ, "GPIOZERO_PIN_FACTORY": "no-such-pin-library"}
    r = subprocess.run([str(GATE), "run", "--config", str(cfg), "--hardware-hold", "0"], capture_output=True,
                       text=True, timeout=60, env=env)

    assert r.returncode == EXIT_HARDWARE == 4
    assert "Traceback" not in r.stderr
    assert "ハードウェアエラー: ゲートのピン（LED・ブザー・センサー）が使えません" in r.stderr
    assert "BadPinFactory" in r.stderr and "--simulate" in r.stderr
    prevent = re.findall(r"^RestartPreventExitStatus=(.*)$", UNIT.read_text(encoding="utf-8"), re.MULTILINE)
    assert len(prevent) == 1 and str(EXIT_HARDWARE) in prevent[0].split()
    assert re.search(r"^Restart=always$", UNIT.read_text(encoding="utf-8"), re.MULTILINE)  # everything else restarts


def test_a_reader_missing_at_start_is_not_fatal_the_gate_runs_and_status_shows_it(tmp_path: Path) -> None:
    cfg = _hardware_config(tmp_path, reader="tty:nonexistent:pn532")
    env = {**os.environ, "GPIOZERO_PIN_FACTORY": "mock"}  # pins that work, as on a Pi
    proc = subprocess.Popen([str(GATE), "run", "--config", str(cfg), "--clock-synced", "yes"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    try:
        wait_for(lambda: status(cfg).returncode == 0 and "missing" in status(cfg).stdout, "status: reader missing")
        out = status(cfg).stdout
        assert line(out, "カードリーダー") == "見つかりません (missing)"
        assert line(out, "表示中の状態") == "カードリーダー異常 (reader_failed)"
        assert proc.poll() is None  # still running: the reader loop waits for the reader
    finally:
        proc.send_signal(signal.SIGTERM)
        err = proc.communicate(timeout=30)[1]
    assert proc.returncode == 0, err


def test_a_busy_pin_at_start_shows_the_pins_code_on_the_led_that_works_then_exits_4(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from gpiozero import Device

    factory = MockFactory()
    previous = Device.pin_factory
    Device.pin_factory = factory  # what `run` gets on a Pi (no pin factory passed: gpiozero's default)
    holder = DigitalInputDevice(4, pin_factory=factory)  # another program holds the motion sensor's pin
    try:
        started = time.monotonic()
        code = gate_main(["run", "--config", str(_hardware_config(tmp_path)), "--hardware-hold", "2"])
        held = time.monotonic() - started
    finally:
        holder.close()
        Device.pin_factory = previous
    err = capsys.readouterr().err
    try:
        assert code == EXIT_HARDWARE
        assert "GPIOPinInUse" in err and "ハードウェアエラー" in err
        assert held >= 2  # shown before the exit
        red = [bool(s.state) for s in factory.pin(17).states]
        # red ×8 started (on, off, on, …) within the 2 s hold; amber and green stayed dark
        assert red[1:6] == [True, False, True, False, True], red
        assert len(red) >= 1 + int(2 / CODE_STEP_S) - 1
        for number in (22, 27):
            assert not any(s.state for s in factory.pin(number).states), number
    finally:
        factory.reset()
