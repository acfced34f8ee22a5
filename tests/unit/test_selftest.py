"""`genba-gate selftest` as an installer meets it: real checks, one line each, and the verdict on the LED.

Everything is real except the hardware: a private Mosquitto with a password file (and TLS with a CA made
here with `cryptography`), nfcpy opening a reader path that is not there, espeak-ng rendering the voice,
and a shell script standing in for aplay (this machine has no sound card). The LED and the buzzer are
gpiozero mock pins, asserted by state and timing like tests/unit/test_feedback.py: the lamp cycle first, then
the verdict's blink code. Hold times are shortened through run_selftest's `hold_s`.

Pins: tower red 17, green 27, amber 22, buzzer 18 (the config defaults).

The card reader check reads a card for real too: nfcpy's reader code on its ``udp`` driver, with the card
emulated by nfcpy in a child process (tests/support/nfc_emulated_card.py, as tests/unit/test_reader.py).
"""

from __future__ import annotations

import ipaddress
import json
import select
import shutil
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from math import isclose
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from gpiozero import DigitalOutputDevice
from gpiozero.pins.mock import MockFactory, MockPin
from mosquitto import PrivateMosquitto, TlsFiles, free_port

from firmware.cli import main as gate_main
from firmware.config import GateConfig, Pins
from firmware.config import Voice as VoiceConfig
from firmware.feedback import CODE_PAUSE_S, CODE_STEP_S, IDENTIFY, IDLE_PATTERNS, RESPONSES, VERDICTS, Feedback, Verdict
from firmware.selftest import run_selftest
from firmware.voice import PHRASES, Voice

RED, GREEN, AMBER, BUZZER = 17, 27, 22, 18
DEVICE, PASSWORD = "gate-01", "correct horse"
STEP, PAUSE = CODE_STEP_S, CODE_PAUSE_S


# --- TLS material, brokers, voice cache ----------------------------------------------------------


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))


def _ca(directory: Path, cn: str) -> tuple[Path, x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(_name(cn))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
            .sign(key, hashes.SHA256()))
    path = directory / f"{cn}.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path, cert, key


@dataclass(frozen=True)
class Pki:
    tls: TlsFiles  # the broker's: the site CA, its certificate and key
    other_ca: Path  # a CA that did not sign the broker's certificate


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    d = tmp_path_factory.mktemp("pki")
    ca_file, ca, ca_key = _ca(d, "site-ca")
    other_ca, _, _ = _ca(d, "other-ca")
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(_name("broker")).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    (d / "broker.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(d / "broker.key", key)
    return Pki(TlsFiles(ca_file, d / "broker.pem", d / "broker.key"), other_ca)


def _broker(directory: Path, tls: TlsFiles | None) -> Iterator[PrivateMosquitto]:
    broker = PrivateMosquitto(directory, users={DEVICE: PASSWORD}, tls=tls).start()
    try:
        yield broker
    finally:
        broker.stop()
        print(f"--- mosquitto log (port {broker.port}) ---\n{broker.log_tail(30)}")


@pytest.fixture(scope="module")
def tls_broker(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateMosquitto]:
    """The gate's broker as provisioned: TLS only, password file, anonymous refused."""
    yield from _broker(tmp_path_factory.mktemp("tls-broker"), pki.tls)


@pytest.fixture(scope="module")
def plain_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateMosquitto]:
    yield from _broker(tmp_path_factory.mktemp("plain-broker"), None)


@pytest.fixture(scope="module")
def voice_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every phrase rendered once by espeak-ng; each test starts from a copy (same names: same hash)."""
    d = tmp_path_factory.mktemp("voice")
    v = Voice(VoiceConfig(), d, simulate=True)
    v.prepare()
    assert v.wait_rendered(120)
    v.close()
    assert list(d.glob("*.wav")), "espeak-ng rendered nothing (apt-get install espeak-ng)"
    return d


def _script(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.fixture
def speaker(tmp_path: Path) -> tuple[str, Path]:
    """A player standing in for aplay on a gate with a speaker: logs the file it was given, exits 0."""
    log = tmp_path / "played.log"
    return str(_script(tmp_path / "fake-aplay", f'echo "$1" >> "{log}"\nexit 0\n')), log


@pytest.fixture
def no_speaker(tmp_path: Path) -> str:
    """aplay on a gate without a sound card: an error on stderr, exit 1."""
    return str(_script(tmp_path / "broken-aplay",
                       'echo "aplay: main:850: audio open error: No such file or directory" >&2\nexit 1\n'))


@pytest.fixture
def gate(tmp_path: Path, voice_cache: Path, tls_broker: PrivateMosquitto, pki: Pki, speaker: tuple[str, Path]):
    """A GateConfig for a gate that passes every check; tests change one thing."""
    data = tmp_path / "data"
    shutil.copytree(voice_cache, data / "voice")

    def build(**changes: object) -> GateConfig:
        fields: dict[str, object] = {
            "device_id": DEVICE, "broker_url": tls_broker.url, "username": DEVICE, "password": PASSWORD,
            "ca_file": pki.tls.ca_file, "data_dir": data, "pins": Pins(motion=None),
            "voice": VoiceConfig(player=speaker[0]),
        }
        return GateConfig(**{**fields, **changes})

    return build


def selftest(cfg: GateConfig, factory: MockFactory, capsys: pytest.CaptureFixture[str],
             **kw: object) -> tuple[int, list[str]]:
    """run_selftest in simulation on these mock pins: (exit code, stdout lines)."""
    kw.setdefault("clock_synced", True)
    kw.setdefault("lamp_cycle", False)  # 2 s each; the all-pass test keeps it
    kw.setdefault("card_wait_s", 0)  # the reader opens; the card tests wait for one
    code = run_selftest(cfg, simulate=True, pin_factory=factory, **kw)  # type: ignore[arg-type]
    return code, capsys.readouterr().out.splitlines()


# --- pin timelines ------------------------------------------------------------------------------

CYCLE_CHANGES = 3  # with the lamp cycle, each lamp: initial off, on, off (0.5 s each)
BEEP_CHANGES = 5  # with the lamp cycle, the double beep: initial off, on, off, on, off


def after(p: MockPin, n: int) -> list[tuple[float, bool]]:
    """The pin's (seconds since previous change, state) steps after its first n."""
    return [(s.timestamp, bool(s.state)) for s in p.states[n:]]


def assert_steps(actual: list[tuple[float, bool]], expected: list[tuple[float | None, bool]]) -> None:
    """Same states; same times (gpiozero's tolerance: 5 % or 50 ms) except where expected says None."""
    assert [s for _, s in actual] == [s for _, s in expected], actual
    for (t, _), (want, _) in zip(actual, expected, strict=True):
        assert want is None or isclose(t, want, rel_tol=0.05, abs_tol=0.05), (actual, expected)


def code_steps(n: int) -> list[tuple[float | None, bool]]:
    """One group of a blink code: n × (on 0.3, off 0.3); the first on comes whenever the checks end."""
    steps: list[tuple[float | None, bool]] = [(None, True)]
    for i in range(n):
        steps.append((STEP, False))
        if i < n - 1:
            steps.append((STEP, True))
    return steps


def group_s(n: int) -> float:
    return 2 * n * STEP


def assert_code_shown(factory: MockFactory, colour_pin: int, n: int) -> None:
    """The verdict's blink code on its lamp (one whole group, held past it), the other lamps dark, a long beep
    (no lamp cycle before it: the pins start with their initial off)."""
    for number in (RED, AMBER, GREEN):
        expected = code_steps(n) if number == colour_pin else []
        assert_steps(after(factory.pin(number), 1), expected)
    assert_steps(after(factory.pin(BUZZER), 1), [(None, True), (0.8, False)])


def lines_of(out: list[str]) -> dict[str, str]:
    """'OK  broker login: …' → {'broker login': 'OK  broker login: …'}."""
    found = {}
    for line in out:
        if line[:4] in ("OK  ", "NG  ", "--  ") and ":" in line:
            found[line[4:].split(":", 1)[0]] = line
    return found


CHECKS = ["LED and buzzer", "card reader", "broker network", "broker TLS", "broker login", "clock", "disk", "voice"]


def statuses(out: list[str]) -> dict[str, str]:
    found = lines_of(out)
    assert list(found) == CHECKS, out
    return {name: line[:2] for name, line in found.items()}


def only_failing(out: list[str], *names: str, skipped: tuple[str, ...] = ()) -> None:
    want = {n: "NG" if n in names else "--" if n in skipped else "OK" for n in CHECKS}
    assert statuses(out) == want, "\n".join(out)


# --- the verdicts, end to end --------------------------------------------------------------------


def test_a_gate_that_passes_everything_shows_green_3_s_and_says_it_is_ready(
        gate, factory, capsys, speaker, tls_broker) -> None:
    code, out = selftest(gate(), factory, capsys, hold_s=3.3, lamp_cycle=True)

    assert code == 0, "\n".join(out)
    only_failing(out)
    found = lines_of(out)
    assert found["broker login"] == f"OK  broker login: {tls_broker.url} accepted {DEVICE}"
    assert "certificate of broker verified with ca_file" in found["broker TLS"]
    assert "played スピーカーのテストです" in found["voice"]
    assert "all passed" in out
    assert out[-3:] == ["led green", "beep double", "say 点検が完了しました。使用できます"]
    assert "selftest-" in speaker[1].read_text()  # the test phrase really went to the player
    assert_steps(after(factory.pin(GREEN), CYCLE_CHANGES), [(None, True), (3.0, False)])
    assert after(factory.pin(RED), CYCLE_CHANGES) == [] and after(factory.pin(AMBER), CYCLE_CHANGES) == []
    assert_steps(after(factory.pin(BUZZER), BEEP_CHANGES), [(None, True), (0.1, False), (0.1, True), (0.1, False)])
    # and before the verdict, the lamp cycle: each lamp 0.5 s in turn
    assert_steps(after(factory.pin(RED), 0)[:3], [(0, False), (0, True), (0.5, False)])
    assert_steps(after(factory.pin(AMBER), 0)[:3], [(0, False), (0.5, True), (0.5, False)])


def test_no_reader_blinks_red_once_per_group_and_says_to_check_the_reader(gate, factory, capsys) -> None:
    code, out = selftest(gate(), factory, capsys, reader_spec="tty:nonexistent:pn532", hold_s=group_s(1) + 0.4)

    assert code == 1
    only_failing(out, "card reader")
    assert "no card reader" in lines_of(out)["card reader"]
    assert out[-3:] == ["led red code-1", "beep long", "say カードリーダーが見つかりません。接続を確認してください"]
    assert_code_shown(factory, RED, 1)


def test_broker_unreachable_is_a_network_failure_amber_twice(gate, factory, capsys) -> None:
    port = free_port()  # nothing listens there
    code, out = selftest(gate(broker_url=f"mqtt://127.0.0.1:{port}"), factory, capsys, hold_s=group_s(2) + 0.4)

    assert code == 1
    only_failing(out, "broker network", skipped=("broker TLS", "broker login"))
    assert lines_of(out)["broker network"].startswith(f"NG  broker network: cannot connect to 127.0.0.1:{port}")
    assert "refused" in lines_of(out)["broker network"]
    assert out[-3:] == ["led amber code-2", "beep long", "say サーバーにつながりません。ネットワークを確認してください"]
    assert_code_shown(factory, AMBER, 2)


def test_a_host_that_does_not_resolve_is_a_network_failure(gate, factory, capsys) -> None:
    code, out = selftest(gate(broker_url="mqtts://broker.invalid:8883"), factory, capsys, hold_s=0)

    assert code == 1
    only_failing(out, "broker network", skipped=("broker TLS", "broker login"))
    assert "cannot resolve broker.invalid" in lines_of(out)["broker network"]
    assert "led amber code-2" in out


def test_wrong_password_is_the_broker_refusing_amber_four_times(gate, factory, capsys, tls_broker) -> None:
    code, out = selftest(gate(password="wrong"), factory, capsys, hold_s=group_s(4) + 0.4)

    assert code == 1
    only_failing(out, "broker login")
    # Mosquitto 2.0 answers a wrong password with 0x87 (not authorised); later versions with 0x86
    assert lines_of(out)["broker login"] in (
        f"NG  broker login: {tls_broker.url} refused {DEVICE}: Not authorized (CONNACK 0x87)",
        f"NG  broker login: {tls_broker.url} refused {DEVICE}: Bad user name or password (CONNACK 0x86)")
    assert out[-3:] == ["led amber code-4", "beep long",
                        "say サーバーに接続を拒否されました。ゲートの登録を確認してください"]
    assert_code_shown(factory, AMBER, 4)


@pytest.mark.parametrize("case", ["wrong CA", "mqtt:// to the TLS port", "mqtts:// to a plain port"])
def test_tls_wrong_blinks_amber_three_times(case, gate, factory, capsys, pki, tls_broker, plain_broker) -> None:
    changes: dict[str, object] = {
        "wrong CA": {"ca_file": pki.other_ca},
        "mqtt:// to the TLS port": {"broker_url": f"mqtt://127.0.0.1:{tls_broker.port}"},
        "mqtts:// to a plain port": {"broker_url": f"mqtts://127.0.0.1:{plain_broker.port}"},
    }[case]
    code, out = selftest(gate(**changes), factory, capsys, hold_s=group_s(3) + 0.4)

    assert code == 1
    only_failing(out, "broker TLS", skipped=("broker login",))
    detail = lines_of(out)["broker TLS"]
    assert {
        "wrong CA": "the broker's certificate is not trusted",
        "mqtt:// to the TLS port": f"port {tls_broker.port} speaks TLS but the config says mqtt://",
        "mqtts:// to a plain port": "mqtts:// to a plain MQTT port?",
    }[case] in detail, detail
    assert out[-3:] == ["led amber code-3", "beep long", "say 暗号化の設定が合っていません。設定を確認してください"]
    assert_code_shown(factory, AMBER, 3)


def test_clock_not_synchronised_blinks_amber_five_times(gate, factory, capsys) -> None:
    code, out = selftest(gate(), factory, capsys, clock_synced=False, hold_s=group_s(5) + 0.4)

    assert code == 1
    only_failing(out, "clock")
    assert lines_of(out)["clock"].startswith("NG  clock: not synchronised")
    assert out[-3:] == ["led amber code-5", "beep long",
                        "say 時刻が同期していません。インターネット接続を確認してください"]
    assert_code_shown(factory, AMBER, 5)


def test_sound_failing_blinks_red_seven_times_and_says_nothing(gate, factory, capsys, no_speaker) -> None:
    code, out = selftest(gate(voice=VoiceConfig(player=no_speaker)), factory, capsys, hold_s=group_s(7) + 0.4)

    assert code == 1
    only_failing(out, "voice")
    assert "broken-aplay exited 1" in lines_of(out)["voice"]
    assert "audio open error" in lines_of(out)["voice"]
    assert out[-2:] == ["led red code-7", "beep long"]
    assert not [line for line in out if line.startswith("say ")]  # LED and beep only: the speaker is what failed
    assert_code_shown(factory, RED, 7)


def test_a_disk_that_cannot_be_written_blinks_red_six_times(gate, factory, capsys, tmp_path) -> None:
    not_a_dir = tmp_path / "sd-card"
    not_a_dir.write_text("")
    code, out = selftest(gate(data_dir=not_a_dir), factory, capsys, hold_s=group_s(6) + 0.4)

    assert code == 1
    assert statuses(out)["disk"] == "NG" and "cannot write in" in lines_of(out)["disk"]
    assert out[-2:] == ["led red code-6", "beep long"]  # the voice could not render either: LED only
    assert_code_shown(factory, RED, 6)


def test_several_failures_show_the_one_to_fix_first(gate, factory, capsys) -> None:
    code, out = selftest(gate(password="wrong"), factory, capsys, reader_spec="tty:nonexistent:pn532",
                         clock_synced=False, hold_s=group_s(1) + 0.4)

    assert code == 1
    only_failing(out, "card reader", "broker login", "clock")
    assert "3 failed" in out
    assert out[-3:] == ["led red code-1", "beep long", "say カードリーダーが見つかりません。接続を確認してください"]
    assert_code_shown(factory, RED, 1)


def test_json_for_first_boot_through_the_cli(gate, tmp_path, capsys) -> None:
    cfg = gate()
    path = tmp_path / "gate.toml"
    path.write_text("\n".join([
        f'device_id = "{cfg.device_id}"', f'broker_url = "{cfg.broker_url}"', f'username = "{cfg.username}"',
        f'password = "{cfg.password}"', f'ca_file = "{cfg.ca_file}"', f'data_dir = "{cfg.data_dir}"',
        "[pins]", "motion = false", "[voice]", f'player = "{cfg.voice.player}"',
    ]) + "\n", encoding="utf-8")

    code = gate_main(["selftest", "--simulate", "--json", "--clock-synced", "no", "--config", str(path)])
    out = capsys.readouterr().out

    assert code == 1
    report = json.loads(out)  # nothing else on stdout
    assert report["passed"] is False and report["verdict"] == "clock"
    assert report["led"] == "led amber code-5"
    assert report["say"] == "時刻が同期していません。インターネット接続を確認してください"
    assert [(c["name"], c["status"]) for c in report["checks"]] == [
        (n, "NG" if n == "clock" else "OK") for n in CHECKS]
    assert report["checks"][5]["verdict"] == "clock"


def test_simulation_counts_the_clock_as_synchronised_unless_told(gate, tmp_path, capsys) -> None:
    cfg = gate()
    path = tmp_path / "gate.toml"
    path.write_text(f'device_id = "{DEVICE}"\nbroker_url = "mqtt://127.0.0.1:{free_port()}"\n'
                    f'data_dir = "{cfg.data_dir}"\n', encoding="utf-8")

    assert gate_main(["selftest", "--simulate", "--config", str(path)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert statuses(out)["clock"] == "OK" and statuses(out)["broker network"] == "NG"
    # aplay is run in simulation too: this machine has none on this PATH, so the voice fails, never "OK"
    assert statuses(out)["voice"] == "NG" and "no player 'aplay'" in lines_of(out)["voice"]
    assert "no card presented within 1 s" in lines_of(out)["card reader"]  # stdin gave no card line


# --- each missing part, one by one (the ones above: reader, network, TLS, login, clock, disk, player failing) ---


def test_no_aplay_on_the_path_fails_the_voice_red_seven_times(gate, factory, capsys, tmp_path, monkeypatch) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))  # a gate without alsa-utils
    code, out = selftest(gate(voice=VoiceConfig()), factory, capsys, hold_s=group_s(7) + 0.4)

    assert code == 1
    only_failing(out, "voice")
    assert lines_of(out)["voice"] == "NG  voice: no player 'aplay' (install alsa-utils for aplay)"
    assert out[-2:] == ["led red code-7", "beep long"]
    assert_code_shown(factory, RED, 7)


def test_a_voice_switched_off_is_not_checked_and_not_reported_ok(gate, factory, capsys) -> None:
    code, out = selftest(gate(voice=VoiceConfig(enabled=False)), factory, capsys, hold_s=0)

    assert code == 0
    assert statuses(out)["voice"] == "--" and "the voice is off" in lines_of(out)["voice"]


def test_a_busy_buzzer_pin_fails_the_outputs_and_the_led_alone_blinks_red_eight_times(gate, factory, capsys) -> None:
    holder = DigitalOutputDevice(BUZZER, pin_factory=factory)  # another program's device on the buzzer's pin
    try:
        code, out = selftest(gate(), factory, capsys, hold_s=group_s(8) + 0.4)
    finally:
        holder.close()

    assert code == 1
    only_failing(out, "LED and buzzer")
    line = lines_of(out)["LED and buzzer"]
    assert "GPIOPinInUse" in line and "the LED alone works" in line
    assert out[-2:] == ["led red code-8", "say ゲートの部品が使えません。配線と設定を確認してください"]  # no buzzer
    red = after(factory.pin(RED), 0)
    assert_steps(red[-len(code_steps(8)):], code_steps(8))
    for number in (AMBER, GREEN):
        assert all(not on for _, on in after(factory.pin(number), 0)), number


def test_no_pin_library_at_all_is_said_when_nothing_can_show_it(gate, capsys, monkeypatch) -> None:
    from gpiozero import Device

    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "no-such-factory")
    monkeypatch.setattr(Device, "pin_factory", None)
    code = run_selftest(gate(), simulate=False, reader_spec="sim", clock_synced=True, hold_s=0, card_wait_s=0)
    out = capsys.readouterr().out.splitlines()

    assert code == 1
    assert lines_of(out)["LED and buzzer"].startswith("NG  LED and buzzer: the pins cannot be used: BadPinFactory")
    assert "the LED alone works" not in lines_of(out)["LED and buzzer"]


# --- the card reader reads a card -----------------------------------------------------------------

CARD_SCRIPT = Path(__file__).resolve().parents[1] / "support" / "nfc_emulated_card.py"


@pytest.fixture
def udp_field(tmp_path: Path) -> Iterator[tuple[str, list[subprocess.Popen[str]]]]:
    """An nfcpy udp reader path, and the card processes held in front of it (ended at teardown)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("0.0.0.0", 0))
        port = s.getsockname()[1]
    cards: list[subprocess.Popen[str]] = []
    yield f"udp:127.0.0.1:{port}", cards
    for proc in cards:
        assert proc.stdin is not None
        proc.stdin.close()  # the card exits when its stdin closes
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def present(field: tuple[str, list[subprocess.Popen[str]]], tech: str, uid: str, log: Path) -> None:
    port = field[0].rsplit(":", 1)[1]
    with log.open("a") as err:
        proc = subprocess.Popen([sys.executable, str(CARD_SCRIPT), port, tech, uid], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=err, text=True)
    field[1].append(proc)
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 20)
    assert ready and proc.stdout.readline().strip() == "ready", log.read_text()


def test_a_card_held_to_the_reader_is_read_and_named_by_its_last_digits(
        gate, factory, capsys, udp_field, tmp_path) -> None:
    present(udp_field, "felica", "0114A1B2C3D4E5F6", tmp_path / "card.log")
    code, out = selftest(gate(), factory, capsys, reader_spec=udp_field[0], card_wait_s=30, hold_s=0)

    assert code == 0, "\n".join(out)
    assert "card reader: カードをタッチしてください（30 秒待ちます）" in out
    assert lines_of(out)["card reader"] == f"OK  card reader: opened {udp_field[0]}; read a card (felica, ID …E5F6)"
    assert "0114A1B2C3D4E5F6" not in "\n".join(out)  # a card number is not printed whole


def test_no_card_presented_is_still_a_working_reader_and_says_so(gate, factory, capsys, udp_field) -> None:
    started = time.monotonic()
    code, out = selftest(gate(), factory, capsys, reader_spec=udp_field[0], card_wait_s=2, hold_s=0)

    assert code == 0, "\n".join(out)
    assert time.monotonic() - started >= 2  # it did wait for a card
    assert lines_of(out)["card reader"] == (f"OK  card reader: opened {udp_field[0]}; no card presented within 2 s "
                                            "(the reader works; reading a card not tried)")


def test_a_random_id_card_is_read_but_named_as_unusable(gate, factory, capsys, udp_field, tmp_path) -> None:
    present(udp_field, "iso14443a", "08A1B2C3", tmp_path / "card.log")
    code, out = selftest(gate(), factory, capsys, reader_spec=udp_field[0], card_wait_s=30, hold_s=0)

    assert code == 0
    assert "read a card (iso14443a) whose ID is random" in lines_of(out)["card reader"]


# --- the patterns themselves ----------------------------------------------------------------------


class _Silent:
    def say(self, key: str, text: str | None = None) -> None:
        pass


def test_every_verdict_pattern_is_its_own_and_like_no_tap_or_idle_pattern() -> None:
    verdict_leds = [r.led for r in VERDICTS.values()]
    assert len(set(verdict_leds)) == len(verdict_leds) == len(Verdict)
    assert len({p.event for p in verdict_leds}) == len(Verdict)
    others = {r.led for r in RESPONSES.values()} | set(IDLE_PATTERNS.values()) | {IDENTIFY}
    assert not set(verdict_leds) & others
    failures = [r.led for v, r in VERDICTS.items() if v is not Verdict.PASSED]
    assert all(p.mode == "code" for p in failures)  # counted groups: no tap or idle pattern is one
    assert not {p.event for p in failures} & {p.event for p in others}
    # success is green like an entry, but held twice as long (3 s, not 1.5 s) with a double beep, not a short one
    passed = VERDICTS[Verdict.PASSED]
    assert (passed.led.colour, passed.led.duration, passed.beep) == ("green", 3.0, "double")
    assert all((r.led.duration, r.beep) != (3.0, "double") for r in RESPONSES.values())
    assert all(r.phrase == v.value and v.value in PHRASES for v, r in VERDICTS.items())


def test_blink_codes_repeat_their_group_after_a_pause_on_both_wirings() -> None:
    """All seven codes at once (one Feedback each), over a whole group, the pause and the next group's start."""
    rgb = Pins(led_blue=22, motion=None)
    cases = [(v, Pins(motion=None) if i % 2 else rgb) for i, v in enumerate(VERDICTS) if v is not Verdict.PASSED]
    running = []
    for verdict, pins in cases:
        f = MockFactory()
        fb = Feedback(pins, _Silent(), pin_factory=f)  # type: ignore[arg-type]
        for p in f.pins.values():
            p.clear_states()
        running.append((verdict, pins, f, fb))
    for verdict, _, _, fb in running:
        fb.show_verdict(verdict, hold_s=None)
    longest = max(VERDICTS[v].led.n or 0 for v, _ in cases)
    time.sleep(group_s(longest) - STEP + PAUSE + 0.15)
    try:
        for verdict, pins, f, _ in running:
            led = VERDICTS[verdict].led
            n = led.n or 0
            # amber on an RGB LED is red + green; on a tower its own lamp
            lit = {"red": [17], "amber": [22] if pins.led_blue is None else [17, 27]}[led.colour]
            group = [(0.0, False), (0.0, True)] + [x for i in range(n) for x in
                                                   ([(STEP, False)] + ([(STEP, True)] if i < n - 1 else []))]
            for number in lit:
                steps = after(f.pin(number), 0)
                assert_steps(steps[:len(group)], group)  # type: ignore[arg-type]
                if n < longest:  # the pause, then the group again
                    assert_steps(steps[len(group):len(group) + 2], [(PAUSE, True), (STEP, False)])
            for number in {17, 27, 22} - set(lit):
                assert after(f.pin(number), 0) == [(0.0, False)], (verdict, number)
    finally:
        for *_, fb in running:
            fb.close()
        for _, _, f, _ in running:
            f.reset()
