"""genba-gate: run the gate, see its state, test its parts.

    genba-gate run --config /etc/genbagate/gate.toml
    genba-gate run --simulate --config gate.toml      # mock pins; card UIDs (hex) one per line on stdin
    genba-gate status --config gate.toml
    genba-gate selftest --config gate.toml [--json]

In simulation every output is printed as one line on stdout (`led green`, `beep short`,
`say 入場を記録しました`, `tap 12 entry`, …; see firmware/feedback.py for the format), so scripts
and tests can watch what a worker would see and hear.

Exit statuses (systemd/genba-gate.service lists 2 and 4 in RestartPreventExitStatus=: restarting cannot
fix either, and Restart=always would otherwise start the gate every 2 s for ever):

    0  run: stopped cleanly (SIGTERM); status: the gate is running; selftest: every check passed
    1  selftest: a check failed; status: the gate crashed (its status file says running, its process is gone)
    2  the config is wrong (named on stderr); selftest: the gate is running (stop it first)
    3  status: the gate is not running (stopped cleanly, or never started with this data_dir)
    4  run: the gate's pins cannot be used (no pin library such as lgpio / RPi.GPIO, a pin busy or
       forbidden); status: the status file cannot be read
"""

from __future__ import annotations

import argparse
import gc
import logging
import signal
import sqlite3
import sys
import threading
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from firmware import config as config_mod
from firmware import update as update_cmd
from firmware.errors import ConfigError, HardwareMissing

log = logging.getLogger("genba.gate")

EXIT_CONFIG = 2
EXIT_NOT_RUNNING = 3
EXIT_HARDWARE = 4
HARDWARE_HOLD_S = 20.0  # how long `run` shows a pin failure on what still works before it exits


def _printer() -> Any:
    lock = threading.Lock()

    def emit(line: str) -> None:
        with lock:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()

    return emit


def build_gate(cfg: config_mod.GateConfig, simulate: bool, reader_spec: str | None, clock_synced: str,
               hardware_hold_s: float = HARDWARE_HOLD_S) -> Any:
    """Wire the parts: real pins and reader on a Pi, mock pins and a stdin reader in simulation.

    Raises HardwareMissing when a pin device cannot be built, after showing the `pins` verdict for
    `hardware_hold_s` on whatever still works (the LED, or only the voice). A reader that is not there
    is not such a failure: the gate starts and its reader loop waits for one."""
    from firmware.clock import Clock
    from firmware.feedback import Feedback, Verdict
    from firmware.gate import Gate
    from firmware.reader import make_reader
    from firmware.selftest import led_only, pin_errors, show_and_hold
    from firmware.voice import Voice

    events = _printer() if simulate else None
    pin_factory = None
    if simulate:
        from gpiozero.pins.mock import MockFactory, MockPWMPin

        pin_factory = MockFactory(pin_class=MockPWMPin)
    voice = Voice(cfg.voice, Path(cfg.data_dir) / "voice", events=events, simulate=simulate)
    voice.prepare()
    from firmware.motion import in_quiet_hours

    feedback: Feedback | None = None
    motion = None
    direction = None
    try:
        feedback = Feedback(cfg.pins, voice, events=events, pin_factory=pin_factory,
                            quiet=lambda: in_quiet_hours(cfg.quiet_hours, datetime.now().time()))
        if cfg.pins.motion is not None:
            from firmware.motion import MotionPrompt

            motion = MotionPrompt(cfg.pins.motion, voice, cfg.voice, cfg.quiet_hours, pin_factory=pin_factory)
        if cfg.pins.direction_button is not None:
            from firmware.direction import DirectionSwitch

            direction = DirectionSwitch(cfg.pins.direction_button, cfg.pins.direction_led,
                                        "out" if cfg.direction == "out" else "in", events, pin_factory,
                                        state_file=Path(cfg.data_dir) / "direction")
        why = ""
    except pin_errors() as exc:
        why = f"{type(exc).__name__}: {exc}"
    if why:
        for part in (direction, motion):
            if part is not None:
                part.close()
        shown = feedback if feedback is not None else led_only(cfg.pins, voice, events, pin_factory)
        try:
            show_and_hold(shown, voice, Verdict.PINS, hardware_hold_s)
        finally:
            if shown is not None:
                shown.close()
            voice.close()
        raise HardwareMissing(why)
    assert feedback is not None
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
    from firmware import keystore

    cfg = config_mod.load(args.config)
    # The gate's keys (UID digests, roster key) come from its secrets file, made with a new key if missing.
    assert cfg.secrets_file is not None
    keystore.activate(keystore.SecretStore.open(cfg.secrets_file))
    gate = build_gate(cfg, args.simulate, args.reader, args.clock_synced, args.hardware_hold)
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


def _age(iso: str | None) -> str:
    """'2026-12-03T08:00:00+09:00 (12 秒前)'."""
    if not iso:
        return "-"
    try:
        seconds = time.time() - datetime.fromisoformat(iso).timestamp()
    except ValueError:
        return iso
    return f"{iso}（{seconds:.0f} 秒前）"


def cmd_status(args: argparse.Namespace) -> int:
    """The running gate's own view (its status file, checked against its process), then the buffer."""
    import shutil

    from firmware.status import Liveness, idle_label, read_status, reader_label

    cfg = config_mod.load(args.config, secrets=False)  # needs no credentials: any admin account may look
    data = Path(cfg.data_dir)
    reading = read_status(data)
    st = reading.state
    print(f"device_id        : {cfg.device_id}")
    code = {Liveness.RUNNING: 0, Liveness.CRASHED: 1, Liveness.STOPPED: EXIT_NOT_RUNNING,
            Liveness.ABSENT: EXIT_NOT_RUNNING, Liveness.UNREADABLE: EXIT_HARDWARE}[reading.liveness]
    if reading.liveness is Liveness.RUNNING:
        print(f"ゲート           : 動作中（PID {st.get('pid')}、{st.get('started_at')} から）")
    elif reading.liveness is Liveness.STOPPED:
        print(f"ゲート           : 停止しています（{st.get('stopped_at')} に正常に停止）")
    elif reading.liveness is Liveness.CRASHED:
        print(f"ゲート           : 動いていません（異常終了: PID {st.get('pid')} はもうありません。"
              "systemd が再起動しないときは journalctl -u genba-gate を見てください）")
    elif reading.liveness is Liveness.ABSENT:
        print(f"ゲート           : 起動していません（状態ファイル {data / 'status.json'} がありません）")
    else:
        print(f"ゲート           : 状態がわかりません（状態ファイルを読めません: {reading.problem}）")
    if st:
        # A gate that is not running shows what it last saw, marked so (never 接続中).
        when = "" if reading.liveness is Liveness.RUNNING else "（最後の状態）"
        connected = "接続中" if st.get("connected") else "未接続"
        if reading.liveness is not Liveness.RUNNING:
            connected = "-（ゲートが動いていません）"
        version = st.get("config_version")
        shown_version = version if version is not None else "未受信（サーバーから設定が届いていません）"
        print(f"サーバー接続     : {connected}")
        print(f"表示中の状態     : {idle_label(st.get('idle'))}{when}")
        print(f"カードリーダー   : {reader_label(st.get('reader'))}{when}")
        print(f"時刻同期         : {'同期済み' if st.get('clock_synced') else '未同期'}{when}")
        print(f"設定バージョン   : {shown_version}{when}")
        print(f"状態の更新       : {_age(st.get('updated_at'))}")
    try:
        free = f"{shutil.disk_usage(data).free // 2**20} MB 空き"
    except OSError as exc:
        free = f"わかりません（{exc.strerror or exc}）"
    disk_ok = st.get("disk_ok", True) if reading.liveness is Liveness.RUNNING else True
    print(f"SDカード         : {free}{'' if disk_ok else '（ゲートは容量不足と判断しています）'}")
    _print_buffer(data / "buffer.db")
    return code


def _print_buffer(buf_path: Path) -> None:
    """The buffer is the truth about unsent taps (running or not)."""
    from firmware.buffer import read_summary

    if not buf_path.exists():
        print(f"未送信のタッチ   : -（バッファがありません: {buf_path}）")
        return
    try:
        s = read_summary(buf_path)
    except sqlite3.Error as exc:
        print(f"未送信のタッチ   : -（バッファを読めません: {exc}）")
        return
    def tap(found: tuple[int, datetime] | None) -> str:
        return f"seq {found[0]} at {found[1].isoformat()}" if found else "-"

    print(f"未送信のタッチ   : {s.depth}  (buffer depth)")
    print(f"最古の未送信     : {tap(s.oldest_unacked)}")
    print(f"最後のタッチ     : {tap(s.last_tap)}")


def cmd_selftest(args: argparse.Namespace) -> int:
    from firmware.selftest import run_selftest

    cfg = config_mod.load(args.config)
    clock = args.clock_synced or ("yes" if args.simulate else "system")
    return run_selftest(cfg, simulate=args.simulate, reader_spec=args.reader,
                        clock_synced={"yes": True, "no": False}.get(clock), hold_s=args.hold, as_json=args.json,
                        card_wait_s=args.card_wait)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="genba-gate", description="GenbaGate（現場ゲート）: the gate appliance.")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def common(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--config", required=True, metavar="FILE", help="the gate's TOML config")
        sp.add_argument("--simulate", action="store_true",
                        help="mock pins, card UIDs from stdin, voice and LED printed as lines")
        sp.add_argument("--reader", metavar="SPEC",
                        help="override the reader: stdin, pcsc, pcsc:RC-S300, auto, usb, tty:AMA0:pn532, udp:HOST:PORT")

    sp = sub.add_parser("run", help="run the gate")
    common(sp)
    sp.add_argument("--clock-synced", choices=["yes", "no", "system"], default="system",
                    help="claim the clock is (not) NTP-synchronised, for simulation and tests "
                    "(default: ask the system)")
    sp.add_argument("--exit-when-drained", action="store_true",
                    help="with --simulate: exit once stdin is closed and every tap is acknowledged")
    sp.add_argument("--hardware-hold", type=float, default=HARDWARE_HOLD_S, metavar="SECONDS",
                    help="when the pins cannot be used at start: how long the LED (where it works) and the "
                    f"voice show it before the gate exits with status {EXIT_HARDWARE} (default %(default)s)")
    sp.set_defaults(func=cmd_run)

    sp = sub.add_parser("status", help="whether the gate runs, and its live state: connection, LED state, reader, "
                        "clock, config version, unsent taps, disk (exit 0 running, 1 crashed, 3 not running)")
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
    sp.add_argument("--card-wait", type=float, default=None, metavar="SECONDS",
                    help="how long the reader check waits for a card to be tapped (default 10; with --simulate 1, "
                    "a card line on stdin); no card is not a failure")
    sp.set_defaults(func=cmd_selftest)
    update_cmd.add_parser(sub)  # genba-gate update apply | status | rollback-check | adopt
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
        return EXIT_CONFIG
    except HardwareMissing as exc:
        print(f"ハードウェアエラー: ゲートのピン（LED・ブザー・センサー）が使えません: {exc}\n"
              "Raspberry Pi では lgpio（Pi 5）または RPi.GPIO が入っているか、ユーザーが gpio グループにいるか、"
              "ほかのプログラムが同じピンを使っていないかを確認してください。Pi 以外で試すときは --simulate を"
              "付けてください。\n"
              f"(exit status {EXIT_HARDWARE}: systemd does not restart the gate for this; "
              "after fixing it: sudo systemctl restart genba-gate)", file=sys.stderr)
        return EXIT_HARDWARE


if __name__ == "__main__":
    sys.exit(main())
