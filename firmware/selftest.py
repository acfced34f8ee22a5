"""`genba-gate selftest`: what an installer runs after mounting a gate (and first boot runs).

Installers are not developers: they power the gate on, watch the LED and listen. So every check below
is done for real, each prints one line (``OK  name: detail``, ``NG  name: detail``, or ``--  name:
detail`` when it could not be tried because an earlier one failed), and at the end the gate *shows*
the verdict: the first failure in the order an installer fixes them, as its own blink code and
Japanese sentence, or success (green 3 s, 「点検が完了しました。使用できます」). The verdicts' LED
patterns and sentences are the table in firmware/feedback.py (and the README). Exit code 0 only when
every check passed.

    line            verdict   checked how (the lines come in this order)
    LED and buzzer  pins      each lamp in turn and a double beep (watch and listen; fails on GPIO errors: no pin
                              library, a pin busy or forbidden)
    card reader     reader    make_reader(spec) opens the device, then waits up to --card-wait seconds (10 on a
                              gate) for a card: read → its technology and the last digits of its ID; no card
                              presented → still OK (the reader opened; the line says no card was tried); the
                              reader failing while it reads → NG
    broker network  network   the broker's host resolves, and a TCP connection to host:port opens
    broker TLS      tls       mqtts://: a TLS handshake verifying the broker against ca_file (and its name);
                              mqtt://: if the login gets no MQTT answer, whether the port speaks TLS
    broker login    broker    an MQTT 5 CONNECT with the gate's username and password (and TLS) is accepted
    clock           clock     NTP-synchronised (firmware/clock.py: timesyncd's flag or timedatectl)
    disk            disk      a file in data_dir is written, fsynced and removed; at least 50 MB free
    voice           sound     the test phrase renders, a sound device exists (/proc/asound/cards; not looked
                              at in simulation) and the player ([voice] player, aplay) plays it and exits 0 — in
                              simulation too: a player that is not installed or has no device is NG, never OK.
                              With [voice] enabled = false the line is `--` (not checked), not OK.

The lamp cycle runs while the checks do; the verdict follows it and is held for `hold_s` (20 s for a
failure, 3 s for success on a gate). The disk comes before the sound in the order because the voice
clips live in data_dir (a full SD card can make the voice fail too). When the sound failed the verdict
is LED (and beep) only.

On a gate's real broker listener the client id is forced to the username (provisioning/broker.py:
``use_username_as_clientid``), so the login check takes over a running gate's connection for a moment;
run the selftest with the gate stopped (it refuses, exit code 2, while genba-gate.service is active: the
service holds the reader and the GPIO pins, and would make the reader look missing).

Simulation (``--simulate``): mock pins whose outputs are printed as lines (as ``run --simulate``), the
simulated reader (a card is a line on stdin, as for ``run --simulate``; 1 s by default), the clock
counted as synchronised unless ``--clock-synced no`` (or ``system``), and the verdict printed, not held,
unless ``--hold`` is given. The sound is checked for real even there: the player named by ``[voice]
player`` plays the test phrase (on a machine without a speaker, name a player that can: ``aplay -D
null`` plays to ALSA's null device), because a check that passes without playing anything is how a
mute gate passed.
"""

from __future__ import annotations

import gc
import json
import os
import shlex
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
import wave
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from firmware.config import GateConfig, Pins
from firmware.feedback import VERDICT_ORDER, VERDICTS, Verdict

if TYPE_CHECKING:
    from gpiozero import Factory

    from firmware.feedback import EventSink, Feedback
    from firmware.reader.base import Reader
    from firmware.voice import Voice

FAILURE_HOLD_S = 20.0  # long enough to count a red ×7 code three times over
SUCCESS_HOLD_S = 3.0
NETWORK_TIMEOUT_S = 5.0
CARD_WAIT_S = 10.0  # how long the reader check waits for a card on a gate
SIM_CARD_WAIT_S = 1.0  # in simulation: a card line already on stdin is read at once
READ_STEP_S = 0.5  # one Reader.read() call; the wait is made of these
MIN_FREE_BYTES = 50 * 1024 * 1024
DEFAULT_PLAYER = "aplay"
SOUND_CARDS = Path("/proc/asound/cards")
GATE_UNIT = "genba-gate.service"


@dataclass
class Result:
    name: str
    status: str  # "OK" | "NG" | "--" (not tried: an earlier check failed)
    detail: str
    verdict: str | None = None  # the Verdict a failure shows (its name, lower-case)

    @property
    def line(self) -> str:
        return f"{self.status}  {self.name}: {self.detail}"


class Failed(Exception):
    """A check failed; `verdict` says what the gate shows when it differs from the check's own."""

    def __init__(self, detail: str, verdict: Verdict | None = None) -> None:
        super().__init__(detail)
        self.verdict = verdict


def _verdict_name(v: Verdict) -> str:
    return v.name.lower()


# --- the broker: network, TLS, login -------------------------------------------------------------


def _network(host: str, port: int, timeout: float) -> str:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise Failed(f"cannot resolve {host}: {exc.strerror or exc}") from None
    address = infos[0][4][0]
    where = "" if address == host else f" ({address})"
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except TimeoutError:
        raise Failed(f"no answer from {host}:{port}{where} within {timeout:.0f} s") from None
    except OSError as exc:
        raise Failed(f"cannot connect to {host}:{port}{where}: {exc.strerror or exc}") from None
    return f"{host}{'' if address == host else f' is {address}'}, TCP port {port} open"


def _tls_context(cfg: GateConfig) -> ssl.SSLContext:
    """What paho's tls_set(ca_certs=ca_file) builds: the CA file (or the system's), hostname checked."""
    return ssl.create_default_context(cafile=str(cfg.ca_file) if cfg.ca_file else None)


def _tls(cfg: GateConfig, host: str, port: int, timeout: float) -> str:
    trust = f"ca_file {cfg.ca_file}" if cfg.ca_file else "the system's CAs (no ca_file)"
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw, \
                _tls_context(cfg).wrap_socket(raw, server_hostname=host) as tls:
            version = tls.version()
            cert = tls.getpeercert() or {}
    except ssl.SSLCertVerificationError as exc:
        raise Failed(f"the broker's certificate is not trusted: {exc.verify_message} (checked with {trust})") from None
    except ssl.SSLError as exc:
        if "WRONG_VERSION_NUMBER" in str(exc) or "record layer" in str(exc):
            raise Failed(f"port {port} does not speak TLS (mqtts:// to a plain MQTT port?): {exc.reason}") from None
        raise Failed(f"TLS handshake failed: {exc.reason or exc}") from None
    except (ConnectionError, TimeoutError) as exc:
        raise Failed(f"the broker closed the connection during the TLS handshake (mqtts:// to a plain MQTT port?): "
                     f"{exc.strerror or type(exc).__name__}") from None
    subject = {k: v for rdn in cert.get("subject", ()) for k, v in rdn}
    return f"{version}, certificate of {subject.get('commonName', '?')} verified with {trust}"


def _speaks_tls(host: str, port: int, timeout: float) -> bool:
    """Whether the port completes a TLS handshake (certificate not checked: only the protocol)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw, ctx.wrap_socket(raw):
            return True
    except (OSError, ssl.SSLError):
        return False


def _login(cfg: GateConfig, host: str, port: int, tls: bool, timeout: float) -> str:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

    done = threading.Event()
    answer: dict[str, Any] = {}

    def on_connect(_c: mqtt.Client, _u: object, _f: object, reason: Any, _p: object = None) -> None:
        answer["reason"] = reason
        done.set()

    def on_disconnect(_c: mqtt.Client, _u: object, _f: object, reason: Any, _p: object = None) -> None:
        answer.setdefault("closed", str(reason))
        done.set()

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{cfg.device_id}-selftest",
                         protocol=MQTTProtocolVersion.MQTTv5)
    if cfg.username:
        client.username_pw_set(cfg.username, cfg.password)
    if tls:
        client.tls_set(ca_certs=str(cfg.ca_file) if cfg.ca_file else None)
    client.on_connect = on_connect
    client.on_disconnect = on_disconnect
    client.connect_timeout = timeout
    who = cfg.username or "(anonymous)"
    try:
        client.connect(host, port, keepalive=10)
    except ssl.SSLError as exc:
        raise Failed(f"TLS handshake failed: {exc.reason or exc}", Verdict.TLS) from None
    except OSError as exc:
        raise Failed(f"cannot connect to {cfg.broker_url}: {exc.strerror or exc}", Verdict.NETWORK) from None
    client.loop_start()
    try:
        done.wait(timeout)
    finally:
        client.disconnect()
        client.loop_stop()
    reason = answer.get("reason")
    if reason is not None and not reason.is_failure:
        return f"{cfg.broker_url} accepted {who}"
    if reason is not None:
        raise Failed(f"{cfg.broker_url} refused {who}: {reason} (CONNACK {reason.value:#04x})")
    if not tls and _speaks_tls(host, port, timeout):
        raise Failed(f"port {port} speaks TLS but the config says mqtt://: use mqtts:// and ca_file", Verdict.TLS)
    why = f"the connection was closed ({answer['closed']})" if "closed" in answer else f"within {timeout:.0f} s"
    raise Failed(f"no MQTT answer from {cfg.broker_url}: {why}")


def _broker_checks(cfg: GateConfig, timeout: float) -> list[Result]:
    host, port, tls = cfg.broker
    results: list[Result] = []

    def run(name: str, verdict: Verdict, fn: Callable[[], str]) -> bool:
        result = _run(name, verdict, fn)
        results.append(result)
        return result.status == "OK"

    def skip(*names: str) -> list[Result]:
        return results + [Result(n, "--", f"not tried: {results[-1].name} failed") for n in names]

    if not run("broker network", Verdict.NETWORK, lambda: _network(host, port, timeout)):
        return skip("broker TLS", "broker login")
    if tls and not run("broker TLS", Verdict.TLS, lambda: _tls(cfg, host, port, timeout)):
        return skip("broker login")
    login = _run("broker login", Verdict.BROKER, lambda: _login(cfg, host, port, tls, timeout))
    if not tls:
        if login.verdict == _verdict_name(Verdict.TLS):  # mqtt:// to a TLS port: the TLS line says so
            results.append(Result("broker TLS", "NG", login.detail, login.verdict))
            return skip("broker login")
        results.append(Result("broker TLS", "OK", "not used (mqtt://): the connection is not encrypted"))
    results.append(login)
    return results


# --- the gate itself -----------------------------------------------------------------------------


def _clock(synced: bool | None) -> str:
    from firmware.clock import ntp_synchronized

    forced = synced is not None
    if not (synced if forced else ntp_synchronized()):
        how = "forced by --clock-synced no" if forced else "timedatectl: NTPSynchronized=no"
        raise Failed(f"not synchronised ({how}); taps are flagged until NTP answers")
    now = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    return f"{now} ({'forced by --clock-synced yes' if forced else 'NTP synchronised'})"


def _disk(data_dir: Path) -> str:
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        probe = data_dir / f".selftest-{os.getpid()}"
        with probe.open("wb") as f:
            f.write(os.urandom(4096))
            f.flush()
            os.fsync(f.fileno())
        probe.unlink()
    except OSError as exc:
        raise Failed(f"cannot write in {data_dir}: {exc.strerror or exc}") from None
    free = shutil.disk_usage(data_dir).free
    if free < MIN_FREE_BYTES:
        raise Failed(f"{data_dir}: only {free // 2**20} MB free (at least {MIN_FREE_BYTES // 2**20} MB needed)")
    return f"{data_dir} writable, {free // 2**20} MB free"


def _player_argv(command: str) -> list[str]:
    argv = shlex.split(command) or [DEFAULT_PLAYER]
    if Path(argv[0]).name == "aplay" and "-q" not in argv:
        argv.append("-q")
    return argv


def _wav_seconds(path: Path) -> float:
    try:
        with wave.open(str(path)) as w:
            return w.getnframes() / w.getframerate()
    except (OSError, wave.Error, ZeroDivisionError):
        return 0.0


class NotChecked(Exception):
    """A check that was deliberately not done (a `--` line, neither OK nor NG)."""


def _sound(cfg: GateConfig, voice: Voice, simulate: bool) -> str:
    if not cfg.voice.enabled:
        raise NotChecked("not checked: the voice is off ([voice] enabled = false), LED and buzzer only")
    voice.prepare()
    if not voice.wait_rendered(60):
        raise Failed("speech did not render within 60 s")
    clip = voice.clip_path("selftest")
    if not clip.exists():
        raise Failed("the test phrase did not render (is espeak-ng installed? see the log)")
    argv = _player_argv(cfg.voice.player)
    if shutil.which(argv[0]) is None:
        raise Failed(f"no player {argv[0]!r} (install alsa-utils for aplay)")
    if not simulate:
        cards = SOUND_CARDS.read_text(errors="replace") if SOUND_CARDS.exists() else ""
        if not cards.strip() or "no soundcards" in cards:
            raise Failed(f"no sound device ({SOUND_CARDS}: {cards.strip() or 'missing'})")
    try:
        proc = subprocess.run([*argv, str(clip)], capture_output=True, timeout=_wav_seconds(clip) + 15, check=False)
    except FileNotFoundError:
        raise Failed(f"no player {argv[0]!r} (install alsa-utils for aplay)") from None
    except subprocess.TimeoutExpired:
        raise Failed(f"{argv[0]} did not finish playing {clip.name}") from None
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise Failed(f"{argv[0]} exited {proc.returncode} on {clip.name}: {err[-1] if err else '(no message)'}")
    return f"played スピーカーのテストです with {argv[0]} ({voice.renderer})"


def _masked(uid: str) -> str:
    """The last four hex digits: enough to tell two test cards apart, not a card number in a log."""
    return f"ID …{uid[-4:]}"


def _card(reader: Reader, spec: str, wait_s: float, out: Callable[[str], None]) -> str:
    """The reader check: open (ReaderError → NG), then wait for one card; no card in time is still OK."""
    with reader:
        opened = f"opened {spec}"
        if wait_s <= 0:
            return f"{opened}; no card tried (--card-wait 0)"
        out(f"card reader: カードをタッチしてください（{wait_s:.0f} 秒待ちます）")
        deadline = time.monotonic() + wait_s
        card = None
        while card is None and (left := deadline - time.monotonic()) > 0:
            try:
                card = reader.read(min(READ_STEP_S, left))
            except Exception as exc:  # ReaderError, or anything a driver raises: the reader is not usable
                raise Failed(f"{opened}, but reading failed: {exc}") from None
        if card is None:
            return f"{opened}; no card presented within {wait_s:.0f} s (the reader works; reading a card not tried)"
        if card.random_id:
            return (f"{opened}; read a card ({card.tech}) whose ID is random: the reader works, but this card "
                    "cannot identify a worker (use a CCUS card)")
        return f"{opened}; read a card ({card.tech}, {_masked(card.uid)})"


def _run(name: str, verdict: Verdict | None, fn: Callable[[], str]) -> Result:
    try:
        return Result(name, "OK", fn())
    except NotChecked as exc:
        return Result(name, "--", str(exc))
    except Failed as exc:
        shown = exc.verdict or verdict
        return Result(name, "NG", str(exc), _verdict_name(shown) if shown else None)
    except Exception as exc:  # every failure is a result line, never a traceback
        return Result(name, "NG", f"{type(exc).__name__}: {exc}", _verdict_name(verdict) if verdict else None)


def pin_errors() -> tuple[type[BaseException], ...]:
    """What building gpiozero devices raises when the pins cannot be used: no pin library (BadPinFactory),
    a pin busy or invalid (GPIOZeroError), a device node forbidden (OSError; RPi.GPIO's RuntimeError)."""
    from gpiozero.exc import GPIOZeroError

    return (GPIOZeroError, OSError, RuntimeError)


def led_only(pins: Pins, voice: Voice, events: EventSink | None, pin_factory: Factory | None) -> Feedback | None:
    """After Feedback on all of `pins` failed: the LED alone, so that a pin failure can still be shown
    where the LED's pins work; None when they do not either."""
    from firmware.feedback import Feedback

    gc.collect()  # the half-built Feedback's devices hold their pins until they are collected
    try:
        return Feedback(pins.model_copy(update={"buzzer": None}), voice, events=events, pin_factory=pin_factory)
    except pin_errors():
        return None


def show_and_hold(fb: Feedback | None, voice: Voice, verdict: Verdict, hold_s: float) -> None:
    """A failure's pattern on whatever outputs work, and its sentence, held `hold_s` (`run` at start)."""
    started = time.monotonic()
    if fb is not None:
        fb.show_verdict(verdict, hold_s, speak=False)
    # The LED first; the sentence once its clip is rendered (at start the voice may still be rendering).
    voice.wait_rendered(max(0.0, hold_s - 3.0))
    voice.say(verdict.value)
    time.sleep(max(0.0, started + hold_s - time.monotonic()))


def first_failure(results: list[Result]) -> Verdict | None:
    """The verdict to show: the first failure in VERDICT_ORDER (None when none has a verdict)."""
    failed = {r.verdict for r in results if r.status == "NG"}
    return next((v for v in VERDICT_ORDER if _verdict_name(v) in failed), None)


def _gate_running() -> bool:
    try:
        return subprocess.run(["systemctl", "is-active", "--quiet", GATE_UNIT], timeout=5, check=False).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def run_selftest(
    cfg: GateConfig,
    simulate: bool = False,
    reader_spec: str | None = None,
    *,
    clock_synced: bool | None = None,
    hold_s: float | None = None,
    as_json: bool = False,
    pin_factory: Factory | None = None,
    network_timeout_s: float = NETWORK_TIMEOUT_S,
    lamp_cycle: bool = True,
    card_wait_s: float | None = None,
) -> int:
    """Check, print, show the verdict, return the exit code (0: all passed).

    clock_synced: force the clock check (None: ask the system). hold_s: how long the failure pattern is
    held (default FAILURE_HOLD_S on a gate, 0 in simulation); success holds SUCCESS_HOLD_S at most.
    pin_factory: in simulation, the mock pins to drive (a fresh MockFactory when None). lamp_cycle=False
    skips the lamp cycle, so the verdict shows as soon as the checks end (tests). card_wait_s: how long the
    reader check waits for a card (None: CARD_WAIT_S on a gate, SIM_CARD_WAIT_S in simulation)."""
    from firmware.feedback import Feedback
    from firmware.reader import make_reader
    from firmware.voice import Voice

    def out(line: str) -> None:
        if not as_json:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()

    if not simulate and _gate_running():
        out(f"NG  selftest: {GATE_UNIT} is running and holds the reader and the pins; "
            "stop it first (sudo systemctl stop genba-gate)")
        out("ゲートが動作中です。点検の前に止めてください: sudo systemctl stop genba-gate")
        return 2
    out(f"selftest {cfg.device_id}{' (simulation)' if simulate else ''}")
    events = out if simulate else None
    if simulate and pin_factory is None:
        from gpiozero.pins.mock import MockFactory, MockPWMPin

        pin_factory = MockFactory(pin_class=MockPWMPin)
    voice = Voice(cfg.voice, Path(cfg.data_dir) / "voice", events=events, simulate=simulate)
    results: list[Result] = []
    fb: Feedback | None = None
    cycle_ends = time.monotonic()

    def outputs() -> str:
        nonlocal fb, cycle_ends
        built: Feedback | None = None
        try:
            built = Feedback(cfg.pins, voice, events=events, pin_factory=pin_factory)
        except pin_errors() as exc:
            why = f"the pins cannot be used: {type(exc).__name__}: {exc}"
        if built is None:
            fb = led_only(cfg.pins, voice, events, pin_factory)
            raise Failed(why + ("; the LED alone works and shows the verdict" if fb else ""))
        fb = built
        if not lamp_cycle:
            return f"LED ({built.wiring or 'none'}) and buzzer ready (lamp cycle skipped)"
        built.selftest(speak=False)
        cycle_ends = time.monotonic() + built.selftest_s
        return f"LED ({built.wiring or 'none'}) and buzzer cycled: watch and listen"

    def reader() -> str:
        spec = reader_spec or ("sim" if simulate else cfg.reader)
        wait = card_wait_s if card_wait_s is not None else SIM_CARD_WAIT_S if simulate else CARD_WAIT_S
        return _card(make_reader(spec), spec, wait, out)

    def report(result: Result | list[Result]) -> None:
        for r in result if isinstance(result, list) else [result]:
            results.append(r)
            out(r.line)

    try:
        report(_run("LED and buzzer", Verdict.PINS, outputs))
        report(_run("card reader", Verdict.READER, reader))
        report(_broker_checks(cfg, network_timeout_s))
        report(_run("clock", Verdict.CLOCK, lambda: _clock(clock_synced)))
        report(_run("disk", Verdict.DISK, lambda: _disk(Path(cfg.data_dir))))
        report(_run("voice", Verdict.SOUND, lambda: _sound(cfg, voice, simulate)))
        failed = [r for r in results if r.status == "NG"]
        verdict = first_failure(results) or (None if failed else Verdict.PASSED)
        sound_ok = not any(r.name == "voice" and r.status != "OK" for r in results) and cfg.voice.enabled
        response = VERDICTS[verdict] if verdict is not None else None
        out("all passed" if not failed else f"{len(failed)} failed")
        if as_json:
            phrase = voice.phrases[verdict.value].display if verdict is not None else None
            print(json.dumps({
                "device_id": cfg.device_id,
                "simulation": simulate,
                "passed": not failed,
                "verdict": _verdict_name(verdict) if verdict is not None else None,
                "led": response.led.event if response else None,
                "say": phrase if sound_ok else None,
                "checks": [asdict(r) for r in results],
            }, ensure_ascii=False), flush=True)
        if verdict is not None:
            _show(fb, voice, verdict, simulate, hold_s, sound_ok, cycle_ends)
        return 0 if not failed else 1
    finally:
        if fb is not None:
            fb.close()
        voice.close()


def _show(fb: Any, voice: Voice, verdict: Verdict, simulate: bool, hold_s: float | None, speak: bool,
          cycle_ends: float) -> None:
    """The verdict on the LED (after the lamp cycle), beep and voice, held; returns when it is over."""
    if verdict is Verdict.PASSED:
        hold = SUCCESS_HOLD_S if hold_s is None and not simulate else min(hold_s or 0.0, SUCCESS_HOLD_S)
    else:
        hold = (0.0 if simulate else FAILURE_HOLD_S) if hold_s is None else hold_s
    time.sleep(max(0.0, cycle_ends - time.monotonic()))
    started = time.monotonic()
    if fb is not None:
        fb.show_verdict(verdict, hold, speak=speak)
    elif speak:
        voice.say(verdict.value)
    end = started + hold
    if speak and not simulate:  # let the sentence finish before the player is closed
        end = max(end, started + _wav_seconds(voice.clip_path(verdict.value)) + 0.5)
    time.sleep(max(0.0, end - time.monotonic()) + (0.3 if hold > 0 else 0.0))  # + the LED's return to idle
