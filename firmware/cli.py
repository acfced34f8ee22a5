"""genba-gate: run the gate, see its state, test its parts.

    genba-gate run --config /etc/genbagate/gate.toml
    genba-gate run --simulate --config gate.toml      # mock pins; card UIDs (hex) one per line on stdin
    genba-gate status --config gate.toml
    genba-gate selftest --config gate.toml [--json]

In simulation every output is printed as one line on stdout (`led green`, `beep short`,
`say 入場を記録しました`, `tap 12 entry`, …; see firmware/feedback.py for the format), so scripts
and tests can watch what a worker would see and hear.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import signal
import sys
import threading
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from firmware import config as config_mod
from firmware.errors import ConfigError

log = logging.getLogger("genba.gate")


def _printer() -> Any:
    lock = threading.Lock()

    def emit(line: str) -> None:
        with lock:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()

    return emit


def build_gate(cfg: config_mod.GateConfig, simulate: bool, reader_spec: str | None, clock_synced: str) -> Any:
    """Wire the parts: real pins and reader on a Pi, mock pins and a stdin reader in simulation."""
    from firmware.clock import Clock
    from firmware.feedback import Feedback
    from firmware.gate import Gate
    from firmware.reader import make_reader
    from firmware.voice import Voice

    events = _printer() if simulate else None
    pin_factory = None
    if simulate:
        from gpiozero.pins.mock import MockFactory, MockPWMPin

        pin_factory = MockFactory(pin_class=MockPWMPin)
    voice = Voice(cfg.voice, Path(cfg.data_dir) / "voice", events=events, simulate=simulate)
    voice.prepare()
    from firmware.motion import in_quiet_hours

    feedback = Feedback(cfg.pins, voice, events=events, pin_factory=pin_factory,
                        quiet=lambda: in_quiet_hours(cfg.quiet_hours, datetime.now().time()))
    motion = None
    if cfg.pins.motion is not None:
        from firmware.motion import MotionPrompt

        motion = MotionPrompt(cfg.pins.motion, voice, cfg.voice, cfg.quiet_hours, pin_factory=pin_factory)
    direction = None
    if cfg.pins.direction_button is not None:
        from firmware.direction import DirectionSwitch

        direction = DirectionSwitch(cfg.pins.direction_button, cfg.pins.direction_led,
                                    "out" if cfg.direction == "out" else "in", events, pin_factory,
                                    state_file=Path(cfg.data_dir) / "direction")
    synced = {"yes": True, "no": False}.get(clock_synced)
    if simulate and (reader_spec or "stdin").lower() in ("sim", "stdin"):
        from firmware.clock import SimulatedTime
        from firmware.reader import SimReader

        sim_time = SimulatedTime()
        reader: Any = SimReader(sys.stdin, set_clock=sim_time.set)
        clock = Clock(now=sim_time.now, synced=synced)
    else:
        reader = make_reader(reader_spec or ("stdin" if simulate else cfg.reader))
        clock = Clock(synced=synced)
    notify = None
    if not simulate:
        import sdnotify

        notify = sdnotify.SystemdNotifier()
    return Gate(cfg, reader=reader, feedback=feedback, clock=clock, motion=motion, direction=direction,
                notify=notify, events=events, voice=voice)


def _drained(gate: Any) -> bool:
    """Every tap acknowledged, read from the buffer itself (the gate's stats lag by up to a second)."""
    from firmware.buffer import Buffer

    buf = Buffer(gate.buffer_path)
    try:
        return buf.depth() == 0
    finally:
        buf.close()


def cmd_run(args: argparse.Namespace) -> int:
    cfg = config_mod.load(args.config)
    gate = build_gate(cfg, args.simulate, args.reader, args.clock_synced)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    gate.start()
    # Everything the gate keeps for its life is built: out of the collector's way, so that a full
    # collection over the start-up objects (tens of ms on a Pi Zero) can never land in a tap.
    gc.collect()
    gc.freeze()
    log.info("gate %s running (%s)", cfg.device_id, "simulation" if args.simulate else "hardware")
    try:
        while not stop.wait(0.2):
            if args.exit_when_drained and getattr(gate.reader, "exhausted", False) and _drained(gate):
                time.sleep(0.5)  # let the last status go out
                break
    finally:
        gate.stop()
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from firmware.buffer import Buffer

    cfg = config_mod.load(args.config)
    data = Path(cfg.data_dir)
    buf_path = data / "buffer.db"
    if not buf_path.exists():
        print(f"バッファがありません（まだ起動していません）: {buf_path}")
        return 1
    buf = Buffer(buf_path)
    try:
        oldest = buf.oldest_unacked()
        last = buf.last_tap()
        print(f"device_id        : {cfg.device_id}")
        print(f"未送信のタッチ   : {buf.depth()}  (buffer depth)")
        print(f"最古の未送信     : {f'seq {oldest.seq} at {oldest.at.isoformat()}' if oldest else '-'}")
        print(f"最後のタッチ     : {f'seq {last.seq} at {last.at.isoformat()}' if last else '-'}")
    finally:
        buf.close()
    status_file = data / "status.json"
    if status_file.exists():
        st = json.loads(status_file.read_text(encoding="utf-8"))
        age = time.time() - status_file.stat().st_mtime
        print(f"サーバー接続     : {'接続中' if st.get('connected') else '未接続'}  (connected={st.get('connected')})")
        print(f"カードリーダー   : {st.get('reader')}")
        print(f"時刻同期         : {'同期済み' if st.get('clock_synced') else '未同期'}")
        print(f"設定バージョン   : {st.get('config_version')}")
        print(f"状態の更新       : {age:.0f} 秒前{'（ゲートが止まっている可能性があります）' if age > 180 else ''}")
    else:
        print("実行中のゲートの状態ファイルがありません（ゲートは起動していません）")
    return 0


def cmd_selftest(args: argparse.Namespace) -> int:
    from firmware.selftest import run_selftest

    cfg = config_mod.load(args.config)
    clock = args.clock_synced or ("yes" if args.simulate else "system")
    return run_selftest(cfg, simulate=args.simulate, reader_spec=args.reader,
                        clock_synced={"yes": True, "no": False}.get(clock), hold_s=args.hold, as_json=args.json)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="genba-gate", description="GenbaGate（現場ゲート）: the gate appliance.")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def common(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--config", required=True, metavar="FILE", help="the gate's TOML config")
        sp.add_argument("--simulate", action="store_true",
                        help="mock pins, card UIDs from stdin, voice and LED printed as lines")
        sp.add_argument("--reader", metavar="SPEC",
                        help="override the reader: stdin, usb, tty:AMA0:pn532, udp:HOST:PORT")

    sp = sub.add_parser("run", help="run the gate")
    common(sp)
    sp.add_argument("--clock-synced", choices=["yes", "no", "system"], default="system",
                    help="claim the clock is (not) NTP-synchronised, for simulation and tests "
                    "(default: ask the system)")
    sp.add_argument("--exit-when-drained", action="store_true",
                    help="with --simulate: exit once stdin is closed and every tap is acknowledged")
    sp.set_defaults(func=cmd_run)

    sp = sub.add_parser("status", help="buffer depth, oldest unacknowledged tap, last tap, connection, reader")
    sp.add_argument("--config", required=True, metavar="FILE")
    sp.set_defaults(func=cmd_status)

    sp = sub.add_parser("selftest", help="reader, LED and buzzer, network, TLS, broker login, clock, disk, sound; "
                        "shows the verdict on the LED and in Japanese; exit code 0 when all pass")
    common(sp)
    sp.add_argument("--clock-synced", choices=["yes", "no", "system"], default=None,
                    help="claim the clock is (not) NTP-synchronised (default: ask the system; with --simulate: yes)")
    sp.add_argument("--hold", type=float, default=None, metavar="SECONDS",
                    help="how long the failure's LED pattern is held (default 20; with --simulate 0)")
    sp.add_argument("--json", action="store_true", help="print the results as one JSON object (first boot logs it)")
    sp.set_defaults(func=cmd_selftest)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"設定エラー: {exc}\n(fix the config file and start again)", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
