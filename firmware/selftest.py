"""`genba-gate selftest`: each part of the gate checked once, a line each, exit code 0 when all pass.

An installer runs it after mounting a gate: reader found, LED and buzzer cycle (watch and listen),
voice renders and plays, broker reachable with the configured credentials.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from firmware.config import GateConfig


def _check(name: str, fn: Callable[[], str]) -> bool:
    try:
        detail = fn()
    except Exception as exc:  # every failure is a result line, never a traceback
        print(f"NG  {name}: {exc}")
        return False
    print(f"OK  {name}: {detail}")
    return True


def _broker(cfg: GateConfig, timeout: float = 5.0) -> str:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    host, port, tls = cfg.broker
    done = threading.Event()
    result: dict[str, str] = {}

    def on_connect(client: mqtt.Client, _u: object, _f: object, reason: object, _p: object = None) -> None:
        result["reason"] = str(reason)
        result["ok"] = "no" if getattr(reason, "is_failure", False) else "yes"
        done.set()

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{cfg.device_id}-selftest",
                         protocol=mqtt.MQTTv5)
    if cfg.username:
        client.username_pw_set(cfg.username, cfg.password)
    if tls:
        client.tls_set(ca_certs=str(cfg.ca_file) if cfg.ca_file else None)
    client.on_connect = on_connect
    client.connect_timeout = timeout
    try:
        client.connect(host, port, keepalive=10)
    except OSError as exc:
        raise RuntimeError(f"cannot reach {cfg.broker_url}: {exc}") from None
    client.loop_start()
    try:
        if not done.wait(timeout):
            raise RuntimeError(f"no answer from {cfg.broker_url} within {timeout:.0f} s")
        if result.get("ok") != "yes":
            raise RuntimeError(f"{cfg.broker_url} refused the connection: {result.get('reason')}")
        return f"{cfg.broker_url} accepted {cfg.username or '(anonymous)'}"
    finally:
        client.disconnect()
        client.loop_stop()


def run_selftest(cfg: GateConfig, simulate: bool = False, reader_spec: str | None = None) -> int:
    from firmware.feedback import Feedback
    from firmware.reader import make_reader
    from firmware.voice import Voice

    print(f"selftest {cfg.device_id}{' (simulation)' if simulate else ''}")
    pin_factory = None
    if simulate:
        from gpiozero.pins.mock import MockFactory, MockPWMPin

        pin_factory = MockFactory(pin_class=MockPWMPin)
    results = []

    def reader() -> str:
        spec = reader_spec or ("sim" if simulate else cfg.reader)
        with make_reader(spec):
            return f"opened {spec}"

    results.append(_check("card reader", reader))
    voice = Voice(cfg.voice, Path(cfg.data_dir) / "voice", simulate=simulate)

    def speech() -> str:
        voice.prepare()
        if not voice.wait_rendered(30):
            raise RuntimeError("speech did not render within 30 s (is espeak-ng installed?)")
        clip = voice.clip_path("selftest")
        if clip is None or not Path(clip).exists():
            raise RuntimeError("no rendered clip")
        voice.say("selftest")
        return f"rendered with {voice.renderer}: {clip}"

    results.append(_check("voice", speech))

    def outputs() -> str:
        fb = Feedback(cfg.pins, voice, pin_factory=pin_factory)
        try:
            fb.selftest()
            return f"LED ({fb.wiring or 'none'}) and buzzer cycled: watch and listen"
        finally:
            threading.Event().wait(2.0)
            fb.close()

    results.append(_check("LED and buzzer", outputs))
    results.append(_check("broker", lambda: _broker(cfg)))
    voice.close()
    failed = results.count(False)
    print("all passed" if not failed else f"{failed} failed")
    return 0 if not failed else 1
