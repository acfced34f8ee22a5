"""A day at the gates, end to end: real Mosquitto, `genba-server run` and `genba-gate run --simulate`
as child processes, the world set up and read through the server's own HTTP API.

The gates' wall clocks are set with the simulated reader's ``!clock`` line, so a morning and an
evening pass in seconds; the day is yesterday (the server refuses taps from its future and
checks correction deadlines on its own clock), and the site's accumulation period is built around it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from mosquitto import PrivateMosquitto, free_port
from mqtt_peers import stop_process, wait_for
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from test_gate_e2e import GateProcess
from world import Api, Company, Site

from firmware.buffer import Buffer
from server.services.context import Context
from server.store import tables as t

pytestmark = pytest.mark.slow

SERVER = Path(sys.executable).with_name("genba-server")
JST = ZoneInfo("Asia/Tokyo")
CARD_A = "0114A1B2C3D4E5F6"  # 鳶田: on the roster, 職長
CARD_B = "0114A1B2C3D4E5F7"  # 名簿外: employed by a company on the site, not on the roster
CARD_UNKNOWN = "0114A1B2C3D4E5F8"


class ServerProcess:
    """`genba-server run` (or `ingest`) as a child; output collected, readiness from its log."""

    def __init__(self, config: Path, *args: str, command: str = "run", env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [str(SERVER), command, "--config", str(config), *args],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
            env={**os.environ, **(env or {})},
        )
        self.lines: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def saw(self, text: str) -> bool:
        return any(text in line for line in list(self.lines))

    def stop(self) -> int:
        return stop_process(self.proc)


def server_config(tmp_path: Path, db_url: str, broker: PrivateMosquitto, port: int) -> Path:
    cfg = tmp_path / "server.toml"
    cfg.write_text(
        f'database_url = "{db_url}"\n[http]\nport = {port}\n'
        f'[mqtt]\nhost = "{broker.host}"\nport = {broker.port}\nconfig_debounce_s = 0.2\n',
        encoding="utf-8",
    )
    return cfg


def gate_config(tmp_path: Path, broker: PrivateMosquitto, device_id: str) -> Path:
    cfg = tmp_path / f"{device_id}.toml"
    cfg.write_text(
        "\n".join([
            f'device_id = "{device_id}"',
            f'broker_url = "mqtt://{broker.host}:{broker.port}"',
            f'data_dir = "{tmp_path / device_id}"',
            'direction = "auto"',  # the server's device record decides (roster push)
            "debounce_s = 0.3",  # the script taps the same card again within seconds (of real time)
            "ack_timeout_s = 1",
            "[pins]",
            "motion = false",
        ]) + "\n",
        encoding="utf-8",
    )
    return cfg


def depth(tmp_path: Path, device_id: str) -> int:
    buf = Buffer(tmp_path / device_id / "buffer.db")
    try:
        return buf.depth()
    finally:
        buf.close()


def hm(iso: str) -> str:
    """HH:MM of a local ISO time (the simulated clock runs on, so seconds vary)."""
    return iso[11:16]


def clock(day: date, hh: int, mm: int) -> str:
    return "!clock " + datetime.combine(day, time(hh, mm), tzinfo=JST).isoformat()


class Scene:
    """The server and its world; gates are added by the test."""

    def __init__(self, tmp_path: Path, db_url: str, broker: PrivateMosquitto, ctx: Context) -> None:
        self.tmp_path, self.broker, self.ctx = tmp_path, broker, ctx
        self.port = free_port()
        self.config = server_config(tmp_path, db_url, broker, self.port)
        self.server = self.start_server()
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=30)
        self.api = Api.bootstrap(self.http, ctx)  # type: ignore[arg-type]  # httpx speaks TestClient's API
        # The day played: yesterday, so every scripted time (07:58 … 17:31) is in the server's past
        # whenever the test runs (the server refuses taps from its future: domain/taps time window).
        self.day = (datetime.now(JST) - timedelta(days=1)).date()
        self.gates: list[GateProcess] = []

    def start_server(self, env: dict[str, str] | None = None) -> ServerProcess:
        server = ServerProcess(self.config, env=env)
        wait_for(lambda: server.saw("ingest connected") and server.saw("Uvicorn running"), "the server up", 60)
        return server

    def site(self) -> tuple[Company, Site]:
        prime = self.api.company("(株)基本建設")
        site = self.api.site(prime, period_start=(self.day - timedelta(days=365)).isoformat(),
                             period_end=(self.day + timedelta(days=365)).isoformat())
        return prime, site

    def gate(self, device_id: str) -> GateProcess:
        gate = GateProcess(gate_config(self.tmp_path, self.broker, device_id))
        self.gates.append(gate)
        return gate

    def close(self) -> None:
        for gate in self.gates:
            gate.stop()
        self.server.stop()
        self.http.close()


@pytest.fixture
def scene(tmp_path: Path, db_url: str, mosquitto: PrivateMosquitto, ctx: Context) -> Iterator[Scene]:
    s = Scene(tmp_path, db_url, mosquitto, ctx)
    try:
        yield s
    finally:
        s.close()
        print("--- server output ---\n" + "\n".join(s.server.lines[-80:]))
        for g in s.gates:
            print("--- gate ---\n" + "\n".join((g.lines + g.stderr)[-40:]))


def _tap(gate: GateProcess, uid: str) -> None:
    before = len(gate.taps())
    gate.card(uid)
    wait_for(lambda: len(gate.taps()) == before + 1, f"the gate's answer to {uid}")


def test_a_day_at_two_gates_becomes_attendance_counted_once_and_corrected(scene: Scene) -> None:
    api, day = scene.api, scene.day
    prime, site = scene.site()
    a = api.worker(prime, "鳶田 一郎")
    b = api.worker(prime, "名簿外 次郎")
    for w, uid in ((a, CARD_A), (b, CARD_B)):
        prime.owner.ok("POST", f"/workers/{w['id']}/cards", {"uid": uid}, status=201)
    api.on_roster(site, prime, a, position="foreman")
    for device_id, direction, name in (("gate-in", "in", "正門 入場"), ("gate-out", "out", "正門 退場")):
        prime.owner.ok("POST", f"/sites/{site.id}/devices",
                       {"device_id": device_id, "name": name, "direction": direction}, status=201)
    gate_in, gate_out = scene.gate("gate-in"), scene.gate("gate-out")
    for gate in (gate_in, gate_out):  # the roster push: each gate gets its site, direction and card digests
        wait_for(lambda g=gate: any("config version" in line and "2 cards" in line for line in g.stderr),
                 "the roster pushed to the gate", 30)

    # Morning at the entry gate, evening at the exit gate.
    gate_in.card(clock(day, 7, 58))
    for uid in (CARD_A, CARD_B, CARD_UNKNOWN):
        _tap(gate_in, uid)
    gate_out.card(clock(day, 17, 31))
    for uid in (CARD_A, CARD_B):
        _tap(gate_out, uid)
    assert [shown for _, shown in gate_in.taps()] == ["entry", "not_on_roster", "unknown_card"]
    assert [shown for _, shown in gate_out.taps()] == ["exit", "not_on_roster"]

    def attendance() -> dict[str, Any]:
        result: dict[str, Any] = prime.owner.ok("GET", f"/sites/{site.id}/attendance", day=day.isoformat())
        return result

    wait_for(lambda: sum(1 for r in attendance()["records"] if r["exit_at"]) == 2, "both records with their exits", 30)
    rows = {r["worker"]["name"]: r for r in attendance()["records"]}
    ra, rb = rows["鳶田 一郎"], rows["名簿外 次郎"]
    assert (hm(ra["entry_at"]), hm(ra["exit_at"])) == ("07:58", "17:31")
    assert ra["trade"]["major"] == "06" and ra["position_label"] == "職長" and ra["valid_for_skill_evaluation"]
    assert not rb["valid_for_skill_evaluation"]
    assert [x["code"] for x in rb["invalid_reasons"]] == ["not_on_roster"]
    assert [c["card_uid"] for c in attendance()["unlinked_cards"]] == [CARD_UNKNOWN]

    # The server dies between its commit and the Ack: the gate re-sends, the tap is counted once.
    scene.server.stop()
    crashing = scene.start_server(env={"GENBA_INGEST_CRASH_AFTER_COMMIT": "1"})
    gate_in.card(clock(day, 12, 0))
    _tap(gate_in, CARD_A)
    seq = gate_in.taps()[-1][0]
    assert crashing.proc.wait(timeout=30) == 70
    assert depth(scene.tmp_path, "gate-in") >= 1  # committed at the server, not acknowledged to the gate
    scene.server = scene.start_server()
    wait_for(lambda: depth(scene.tmp_path, "gate-in") == 0, "the re-sent tap acknowledged", 60)
    with Session(scene.ctx.store.engine) as s:
        stored = s.scalar(select(func.count()).select_from(t.Tap).join(t.Device, t.Device.id == t.Tap.device_pk)
                          .where(t.Device.device_id == "gate-in", t.Tap.seq == seq))
    assert stored == 1
    ra = {r["worker"]["name"]: r for r in attendance()["records"]}["鳶田 一郎"]
    assert ra["tap_count"] == 3 and hm(ra["exit_at"]) == "17:31"

    # The worker asks to correct the exit; the 元請 approves; the record changes and keeps the gate's time.
    me = api.worker_login(prime, a)
    c = me.ok("POST", "/corrections", {
        "site_id": site.id, "worker_id": a["id"], "work_day": day.isoformat(),
        "exit_at": datetime.combine(day, time(18, 0), tzinfo=JST).isoformat(), "reason": "退場時にカードを忘れた"},
        status=201)
    assert c["state_label"] == "申請中"
    prime.owner.ok("POST", f"/corrections/{c['id']}/approve", {"comment": "職長確認済み"})
    ra = {r["worker"]["name"]: r for r in attendance()["records"]}["鳶田 一郎"]
    assert (hm(ra["exit_at"]), hm(ra["device_exit_at"])) == ("18:00", "17:31")
    assert ra["corrected"]
    # One past its deadline (the end of the month after the work day) is refused, saying so.
    old = day - timedelta(days=100)
    me.fail("POST", "/corrections", {
        "site_id": site.id, "worker_id": a["id"], "work_day": old.isoformat(),
        "entry_at": datetime.combine(old, time(8, 0), tzinfo=JST).isoformat(), "reason": "忘れていた"},
        status=409, code="correction_deadline_passed")


def test_two_ingest_processes_on_one_database_count_every_tap_once(scene: Scene) -> None:
    api, day = scene.api, scene.day
    prime, site = scene.site()
    cards = [f"0114{n:012X}" for n in range(1, 21)]
    for n, uid in enumerate(cards):
        w = api.worker(prime, f"技能者 {n:02d}")
        prime.owner.ok("POST", f"/workers/{w['id']}/cards", {"uid": uid}, status=201)
        api.on_roster(site, prime, w)
    prime.owner.ok("POST", f"/sites/{site.id}/devices",
                   {"device_id": "gate-auto", "name": "通用口", "direction": "auto"}, status=201)
    second = ServerProcess(scene.config, "--client-id", "genba_ingest_2", command="ingest")
    try:
        wait_for(lambda: second.saw("ingest connected"), "the second ingest process", 60)
        gate = scene.gate("gate-auto")
        wait_for(lambda: any("config version" in line and "20 cards" in line for line in gate.stderr),
                 "the roster pushed to the gate", 30)
        gate.card(clock(day, 8, 0))
        for uid in cards:
            gate.card(uid)
        wait_for(lambda: len(gate.taps()) == 20, "twenty taps")
        wait_for(lambda: depth(scene.tmp_path, "gate-auto") == 0, "every tap acknowledged", 60)
    finally:
        second.stop()
    with Session(scene.ctx.store.engine) as s:
        assert s.scalar(select(func.count()).select_from(t.Tap)) == 20
        assert s.scalar(select(func.count()).select_from(t.Attendance)) == 20
        assert s.scalar(select(func.sum(t.Attendance.tap_count))) == 20


def test_a_gate_tapping_before_the_prime_registers_it_says_recorded_and_its_taps_become_records_once(
        scene: Scene) -> None:
    api, day = scene.api, scene.day
    prime, site = scene.site()
    cards = [f"0114B0000000{n:04X}" for n in range(20)]
    for n, uid in enumerate(cards):
        w = api.worker(prime, f"作業員 {n:02d}")
        prime.owner.ok("POST", f"/workers/{w['id']}/cards", {"uid": uid}, status=201)
        api.on_roster(site, prime, w)

    # Mounted and switched on before anyone registered it on the server: its own state at once.
    gate = scene.gate("gate-new")
    unconfigured = "say このゲートはまだ設定されていません。タッチは記録されます"
    wait_for(lambda: gate.saw(unconfigured), "the 未設定 sentence", 30)
    # Once it reports in, the server tells it that it is on no site: 未登録, before anyone taps.
    wait_for(lambda: gate.saw("say このゲートはサーバーに登録されていません"), "the 未登録 sentence", 30)
    gate.card(clock(day, 7, 45))
    for uid in cards:
        _tap(gate, uid)
    # Every worker heard that the tap was recorded (not judged: the gate has no roster); none was refused.
    assert [s for _, s in gate.taps()] == ["recorded_unregistered"] * 20
    # The server keeps them (held) and acknowledges them.
    wait_for(lambda: depth(scene.tmp_path, "gate-new") == 0, "every tap acknowledged (held)", 30)
    held = prime.owner.ok("GET", "/held-taps")
    assert [(h["device_id"], h["taps"]) for h in held] == [("gate-new", 20)]

    # The 元請 registers the gate: the 20 taps become 20 records, once.
    registered = prime.owner.ok("POST", f"/sites/{site.id}/devices", {"device_id": "gate-new", "name": "仮設ゲート"},
                                status=201)
    assert registered["held_taps_stored"] == 20
    records = prime.owner.ok("GET", f"/sites/{site.id}/attendance", day=day.isoformat())["records"]
    assert len(records) == 20 and all(hm(r["entry_at"]) == "07:45" for r in records)
    with Session(scene.ctx.store.engine) as s:
        assert s.scalar(select(func.count()).select_from(t.Tap)) == 20
        assert s.scalar(select(func.count()).select_from(t.HeldTap)) == 0
    assert prime.owner.ok("GET", "/held-taps") == []

    # Its config (site and roster) arrives: cards are judged by the roster again.
    wait_for(lambda: any("config version" in line and "20 cards" in line for line in gate.stderr), "the roster", 30)
    _tap(gate, CARD_UNKNOWN)
    assert gate.taps()[-1][1] == "unknown_card"


def test_the_server_stops_its_ingest_cleanly_on_sigterm(scene: Scene) -> None:
    # Found by `make chaos`: uvicorn re-raises SIGTERM after its own shutdown, so the ingest's stop in
    # `finally` never ran: no MQTT disconnect, no summary line, exit -15.
    code = scene.server.stop()  # SIGTERM (stop_process), as systemd stops the unit
    wait_for(lambda: scene.server.saw("ingest stopped:"), "the ingest's summary line", 10)
    assert code in (0, -15)
