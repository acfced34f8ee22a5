"""`make demo`: a realistic site on a fresh SQLite database, then the API on a free port.

The site is the seed's 参考資料 in miniature: a 元請, three tiers of subcontractors, a name-only
CCUS未登録 placeholder that is later replaced (置換) once the company registers, a pending
invitation still in someone's 承認要請リスト, and 24 workers with real trade codes on the roster —
two of them without 立場, flagged as not valid for skill evaluation. Everything is created through
the same services the API calls, so the demo data obeys every rule the API enforces.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Literal, cast

from provisioning.broker import BrokerDir, BrokerSettings
from provisioning.devbroker import PrivateMosquitto, free_port
from server import config as config_mod
from server import demo_day
from server.domain.accounts import Actor, Role
from server.domain.attendance import DayRule, work_day
from server.domain.ids import corporate_number_check_digit
from server.domain.roster import EntryFields
from server.ingest import MqttIngest
from server.reports import attendance_table
from server.services import accounts, cards, companies, consents, devices, hierarchy, roster, sites, workers
from server.services.context import Context
from server.store import migrate
from server.store.database import Store

DEMO_PASSWORD = "demo-Pass-2026"
SECURITY_CODE = "123456"


def _corporate(n: int) -> str:
    body = f"{n:012d}"
    return f"{corporate_number_check_digit(body)}{body}"


@dataclass
class DemoCompany:
    id: int
    ccus_id: str
    name: str
    login: str
    actor: Actor


class DemoBuilder:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        op = accounts.create_operator(ctx, "admin", DEMO_PASSWORD)
        self.operator = Actor(op["id"], Role.OPERATOR)
        self.companies: dict[str, DemoCompany] = {}
        self.cards: dict[str, str] = {}  # worker name → card UID, for the scripted day at the gates
        self._worker_seq = 0

    def company(self, key: str, ccus_id: str, name: str, **extra: str) -> DemoCompany:
        c = companies.create_company(self.ctx, self.operator, companies.CompanyIn(ccus_id=ccus_id, name=name, **extra))
        login = f"{key}-owner"
        created = accounts.create_account(
            self.ctx,
            self.operator,
            login_id=login,
            display_name=f"{name} 事業者責任者",
            role=Role.COMPANY_OWNER,
            company_id=c["id"],
        )
        # The demo skips the paper hand-over: set the password the README prints.
        actor = Actor(created["id"], Role.COMPANY_OWNER, c["id"])
        accounts.change_password(self.ctx, actor, created["initial_password"], DEMO_PASSWORD, SECURITY_CODE)
        dc = DemoCompany(c["id"], ccus_id, name, login, actor)
        self.companies[key] = dc
        return dc

    def workers(
        self, employer: DemoCompany, names: list[str], trade: tuple[str, str], qualification: str | None = None
    ) -> list[dict[str, object]]:
        out = []
        for name in names:
            self._worker_seq += 1
            quals = [workers.QualificationIn(category="技能講習", name=qualification)] if qualification else []
            w = workers.create_worker(
                self.ctx,
                employer.actor,
                workers.WorkerIn(
                    ccus_id=f"8{self._worker_seq:013d}",
                    name=name,
                    employer_id=employer.id,
                    birth_date=date(1970 + self._worker_seq, 4, 1 + self._worker_seq % 27),
                    level=1 + self._worker_seq % 4,
                    health_insurance="enrolled",
                    pension_insurance="enrolled",
                    employment_insurance="enrolled",
                    kentaikyo="enrolled" if self._worker_seq % 3 else "not_enrolled",
                    trades=[trade],
                    qualifications=quals,
                ),
            )
            uid = f"0114{self._worker_seq:012X}"
            cards.link_card(self.ctx, employer.actor, w["id"], uid, "felica")
            self.cards[name] = uid
            out.append(w)
        return out


def build(ctx: Context) -> dict[str, object]:
    """Lay out the demo site; returns what the printout needs."""
    b = DemoBuilder(ctx)
    prime = b.company(
        "kihon",
        "38809523422822",
        "(株)基本建設",
        corporate_number=_corporate(100000000001),
        address="東京都港区虎ノ門1-1-1",
        representative="基本 一郎",
    )
    up1 = b.company("up1", "20862153068122", "アップ一級工務店(株)", address="東京都千代田区1-2-3")
    denko = b.company("toto", "31245678901222", "東都電設(株)", address="東京都品川区2-3-4")
    sys2 = b.company("sys2", "96131765752422", "システム二次建築(株)", address="東京都千代田区板橋150-150")
    tekkin = b.company("tekkin", "54896344545212", "三次鉄筋工業(株)", address="埼玉県川口市3-4-5")
    ccus = b.company("ccus", "00296344578652", "CCUS建設(株)", address="東京都港区虎ノ門4-2-12")
    wangan = b.company("wangan", "77712345678902", "湾岸設備(株)", address="東京都江東区5-6-7")
    # Registered in CCUS but not on this site yet: the README's 置換 and 招待 examples use them.
    b.company("shuto", "66612345678901", "首都塗装(株)", address="東京都足立区6-7-8")
    b.company("hokuto", "55512345678903", "北斗防水(株)", address="千葉県船橋市7-8-9")

    site = sites.create_site(
        ctx,
        prime.actor,
        sites.SiteIn(
            ccus_id="40224614116771",
            name="エプロ建設工事",
            order_type="private",
            period_start=date(2026, 4, 1),
            period_end=date(2027, 9, 30),
            address="東京都 港区 虎ノ門",
            manager_name="現場 太郎",
            disclosed_items=("address", "manager_name", "period", "prime"),
        ),
    )
    sid = int(site["id"])
    root = hierarchy.hierarchy(ctx, prime.actor, sid)["rows"][0]["node_id"]

    def registered(by: DemoCompany, parent: int, c: DemoCompany, work: str) -> int:
        node = hierarchy.invite(ctx, by.actor, sid, parent, company_id=c.id)
        hierarchy.approve(ctx, c.actor, node["id"], work, f"{work}一式")
        return int(node["id"])

    n_up1 = registered(prime, root, up1, "躯体工事")
    n_denko = registered(prime, root, denko, "電気設備工事")
    n_sys2 = registered(up1, n_up1, sys2, "型枠・鉄筋工事")
    registered(sys2, n_sys2, tekkin, "鉄筋工事")
    # A name-only placeholder under the first tier, with a pending company below it, as in 参考資料2.
    ph = hierarchy.invite(ctx, up1.actor, sid, n_up1, placeholder_name="CCUS建設")
    # 置換 once the company has its 事業者ID: done by the company directly above.
    hierarchy.replace(ctx, up1.actor, int(ph["id"]), ccus.id)
    # An invitation still waiting in 湾岸設備's 承認要請リスト.
    hierarchy.invite(ctx, prime.actor, sid, n_denko, company_id=wangan.id)

    tobi = b.workers(up1, ["匠野 技", "鳶田 一郎", "高所 次郎", "足場 三郎"], ("06", "01"), "足場の組立て等作業主任者")
    heavy = b.workers(up1, ["重量 四郎", "吊上 五郎"], ("06", "04"), "玉掛け")
    elec = b.workers(
        denko, ["電気 花子", "配線 六郎", "盤上 七海", "照明 八雲", "通信 九郎"], ("09", "01"), "高所作業車運転"
    )
    form = b.workers(sys2, ["型枠 十蔵", "造作 健", "墨出 進"], ("34", "01"))
    rebar = b.workers(tekkin, ["鉄筋 一郎", "結束 二郎", "圧接 三太", "加工 四季"], ("10", "01"), "ガス溶接")
    naisou = b.workers(ccus, ["内装 美咲", "軽鉄 翔", "床張 蓮", "天井 悠"], ("43", "01"))

    def put(
        by: DemoCompany,
        ws: list[dict[str, object]],
        trade: tuple[str, str],
        leader_first: bool = True,
        position: str | None = "general",
        hazardous: tuple[str, ...] = (),
    ) -> None:
        for i, w in enumerate(ws):
            pos = "foreman" if leader_first and i == 0 else position
            roster.register(
                ctx,
                by.actor,
                sid,
                int(w["id"]),  # type: ignore[call-overload]
                EntryFields(trade=trade, position=pos, hazardous=hazardous, work_description="躯体・仕上げ作業"),
            )

    put(up1, tobi, ("06", "01"))
    put(up1, heavy, ("06", "04"), leader_first=False, position="subforeman")
    put(denko, elec, ("09", "01"))
    put(sys2, form, ("34", "01"), hazardous=("dust",))
    # 三次鉄筋 does not use a PC on site: it consents, and the second tier registers for it (代理手続き).
    consents.set_proxy(ctx, tekkin.actor, tekkin.id, sys2.id, True)
    put(sys2, rebar[:3], ("10", "01"))
    # Two entries left without 立場: kept, but flagged not valid for skill evaluation.
    put(ccus, naisou[:2], ("43", "01"))
    put(ccus, naisou[2:], ("43", "01"), leader_first=False, position=None)
    # 鉄筋 一郎 agrees to show his level and qualifications; so does his employer.
    ichiro = int(rebar[0]["id"])  # type: ignore[call-overload]
    login = accounts.create_account(
        ctx, tekkin.actor, login_id="tekkin-ichiro", display_name="鉄筋 一郎", role=Role.WORKER, worker_id=ichiro
    )
    worker = Actor(login["id"], Role.WORKER, worker_id=ichiro)
    accounts.change_password(ctx, worker, login["initial_password"], DEMO_PASSWORD, SECURITY_CODE)
    consents.set_disclosure(ctx, worker, ichiro, None, {"level": True, "qualifications": True})
    consents.set_disclosure(ctx, tekkin.actor, ichiro, None, {"level": True, "qualifications": True})
    total = len(tobi + heavy + elec + form + rebar + naisou)
    # The site's two gates at the main entrance: the 元請 registers them; the server tells each its direction.
    devices.register(ctx, prime.actor, sid, "gate-in", "正門 入場ゲート", "in", "正門")
    devices.register(ctx, prime.actor, sid, "gate-out", "正門 退場ゲート", "out", "正門")
    return {"site_id": sid, "companies": b.companies, "workers": total, "cards": b.cards}


UNKNOWN_CARD = "0114FFFF00000001"  # a visitor's card nobody has linked


def script(cards: dict[str, str]) -> dict[str, list[demo_day.Step]]:
    """A morning at the entry gate and an evening at the exit gate, with the cases staff meet:
    a double tap, a worker not on the roster, an entry without 立場, an unknown card, and a worker
    who forgets to tap out."""
    def s(at: str, name: str, note: str = "") -> demo_day.Step:
        return demo_day.Step(at, name + note, cards[name])

    unknown = demo_day.Step("07:38", "未登録カード", UNKNOWN_CARD)
    return {
        "gate-in": [
            s("07:32", "匠野 技"), s("07:32", "鳶田 一郎"), s("07:32", "鳶田 一郎", "(二度)"),
            s("07:32", "電気 花子"), s("07:32", "型枠 十蔵"), s("07:32", "鉄筋 一郎"),
            s("07:38", "加工 四季"), s("07:38", "床張 蓮"), unknown,
            s("07:45", "内装 美咲"), s("07:45", "配線 六郎"),
        ],
        "gate-out": [
            s("17:05", "匠野 技"), s("17:05", "鳶田 一郎"), s("17:05", "電気 花子"), s("17:05", "型枠 十蔵"),
            s("17:05", "加工 四季"), s("17:05", "床張 蓮"), demo_day.Step("17:05", "未登録カード", UNKNOWN_CARD),
            s("17:40", "鉄筋 一郎"), s("17:40", "内装 美咲"),
        ],
    }


def play_day(workdir: Path, ctx: Context, sid: int, cards: dict[str, str], broker: BrokerDir,
             passwords: dict[str, str]) -> bool:
    """Start the two simulated gates, play the script, wait until the server has every tap."""
    # The site's current work day (its day starts at 04:00): played at 01:00 it is yesterday's date,
    # so a roster edit made now (which refreshes the current work day's record) reaches these records.
    today = work_day(ctx.now(), DayRule())
    url = broker.settings().gate_url
    gates = {d: demo_day.SimGate(d, demo_day.gate_config(workdir, d, url, password=passwords[d],
                                                         ca_file=broker.ca_file))
             for d in ("gate-in", "gate-out")}
    for g in gates.values():
        g.start()
    for g in gates.values():
        if not g.wait_for(lambda g=g: any("config version" in x for x in g.errors), 60):
            print(f"gate {g.device_id} did not receive its config from the server:\n" + "\n".join(g.errors[-20:]),
                  file=sys.stderr)
            for other in gates.values():
                other.finish(5)
            return False
    print(f"\n== 今日（{today.isoformat()}）の入退場: ゲートの表示と音声 ==")
    demo_day.play(gates, today, script(cards))
    codes = {d: g.finish() for d, g in gates.items()}
    if any(code != 0 for code in codes.values()):
        print(f"a gate did not drain its buffer: {codes}", file=sys.stderr)
        return False
    print("\n" + attendance_table(ctx, sid, today) + "\n")
    return True


#: The 帳票 the demo writes after the day, as the 元請 sees them: (catalog name, month-bound, company key).
DEMO_REPORTS = (("attendance-calendar", True, None), ("attendance-list", True, None), ("companies", False, None),
                ("roster", False, None), ("az2", False, None), ("az6-a", False, "up1"))


def write_reports(workdir: Path, ctx: Context, info: dict[str, object], day: date) -> list[Path]:
    """The day's 帳票 into ``workdir/reports``, through the same catalog and writers as
    ``genba-server report`` and the API: what the site office prints the evening after."""
    from server.exports.report import Tabular, render
    from server.forms.layout import Form, to_bytes
    from server.services import catalog

    cos: dict[str, DemoCompany] = info["companies"]  # type: ignore[assignment]
    prime = cos["kihon"].actor
    out_dir = workdir / "reports"
    out_dir.mkdir(exist_ok=True)
    written = []
    for name, monthly, company in DEMO_REPORTS:
        spec = catalog.REPORTS[name]
        site_id = int(info["site_id"])  # type: ignore[call-overload]
        asked = catalog.Asked(site_id, day.strftime("%Y-%m") if monthly else "", cos[company].id if company else None)
        report = spec.make(ctx, prime, asked)
        if spec.is_form:
            path, chunks = out_dir / f"{report.file_stem}.xlsx", iter([to_bytes(cast(Form, report).workbook())])
        else:
            fmt: Literal["csv", "xlsx"] = "csv" if name == "attendance-list" else "xlsx"
            path = out_dir / f"{report.file_stem}.{fmt}"
            chunks, _ = render(cast(Tabular, report), fmt)
        with path.open("wb") as fh:
            for chunk in chunks:
                fh.write(chunk)
        written.append(path)
    return written


def demo_clock(evening: time = time(18, 30)) -> Callable[[], datetime]:
    """The demo server's clock: no earlier than the evening of the current work day (the scripted
    day ends at 17:40), running on from there. The server refuses taps from its future (the time
    window, domain/taps), and the demo plays a whole day whenever it is started; real time only
    when it is later than that evening."""
    real = datetime.now(UTC)
    day = work_day(real, DayRule())
    offset = max(timedelta(0), datetime.combine(day, evening, tzinfo=DayRule().tz) - real)
    return lambda: datetime.now(UTC) + offset


def _port(preferred: int = 8080) -> int:
    """8080 as the README's examples use it, or any free port when something else holds it."""
    for candidate in (preferred, 0):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", candidate))
            except OSError:
                continue
            return int(s.getsockname()[1])
    raise RuntimeError("no free port")


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m server.demo", description="GenbaGate demo: fresh data, then serve.")
    p.add_argument("--dir", default=".demo", help="where the demo database and config go (recreated)")
    p.add_argument("--port", type=int, default=0, help="HTTP port (default: 8080, or a free one if taken)")
    p.add_argument("--no-serve", action="store_true", help="build the data and print, but do not start the API")
    args = p.parse_args(argv)
    # SIGTERM (kill, a test's terminate(), systemd) as Ctrl-C: the `finally` below stops the private
    # broker. Without a handler the default action ends the process on the spot, and uvicorn (>= 0.29)
    # re-raises the SIGTERM it caught after its own shutdown: either way the broker was left running.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)

    workdir = Path(args.dir).resolve()
    pidfile = workdir / "demo.pid"
    if pidfile.exists():
        try:
            other = int(pidfile.read_text())
            os.kill(other, 0)
        except (ValueError, ProcessLookupError, PermissionError):
            pass
        else:
            print(
                f"Another demo is running from {workdir} (pid {other}); stop it first (kill {other}).", file=sys.stderr
            )
            return 2
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    url = f"sqlite:///{workdir / 'genba.db'}"
    port = args.port or _port()
    if not args.port and port != 8080:
        print(
            f"NOTE: port 8080 is in use; this demo serves on {port}. In the README's examples use "
            f"B=http://127.0.0.1:{port}/api/v1",
            file=sys.stderr,
        )
    migrate.upgrade(url)
    ctx = Context(Store(url), clock=demo_clock())
    info = build(ctx)
    sid = int(info["site_id"])  # type: ignore[call-overload]
    # The broker as a site runs it: `genba-provision broker-config` (TLS with the site's own CA, one
    # account per gate, the ACL), here on free loopback ports, and an account per demo gate.
    broker_dir = BrokerDir(workdir / "broker")
    mosquitto_dir = workdir / "mosquitto"
    gate_port, server_port = free_port(), free_port()
    broker_dir.create(BrokerSettings(gate_host="127.0.0.1", gate_port=gate_port, gate_bind="127.0.0.1",
                                     server_port=server_port, pid_file=str(mosquitto_dir / "mosquitto.pid")))
    passwords = {d: broker_dir.add_gate(d) for d in ("gate-in", "gate-out")}
    broker = PrivateMosquitto(mosquitto_dir, dropin=broker_dir.dropin, port=gate_port).start()
    mqtt_table = broker_dir.server_mqtt.read_text(encoding="utf-8").split("[mqtt]\n", 1)[1]
    server_toml = workdir / "server.toml"
    server_toml.write_text(
        f'database_url = "{url}"\n\n[http]\nhost = "127.0.0.1"\nport = {port}\n\n[mqtt]\n{mqtt_table}',
        encoding="utf-8",
    )
    server_toml.chmod(0o600)
    mqtt_cfg = config_mod.load(server_toml).mqtt.model_copy(update={"config_debounce_s": 0.2})
    ingest = MqttIngest(ctx, mqtt_cfg)
    ingest.start()
    try:
        played = play_day(workdir, ctx, sid, info["cards"], broker_dir, passwords)  # type: ignore[arg-type]
        if not played:
            return 1
        reports = write_reports(workdir, ctx, info, work_day(ctx.now(), DayRule()))
        print("== 帳票（元請 (株)基本建設 として） ==")
        for path in reports:
            print(f"  {path}")
        print()
        return _serve(args, workdir, ctx, info, port, broker_dir, pidfile, ingest)
    finally:
        ingest.stop()
        broker.stop()
        ctx.store.dispose()


def _serve(args: argparse.Namespace, workdir: Path, ctx: Context, info: dict[str, object], port: int,
           broker: BrokerDir, pidfile: Path, ingest: MqttIngest) -> int:
    base = f"http://127.0.0.1:{port}"
    cos: dict[str, DemoCompany] = info["companies"]  # type: ignore[assignment]
    sid = info["site_id"]
    auth, pretty = '-H "Authorization: Bearer $TOKEN"', "python3 -m json.tool --no-ensure-ascii"
    print(f"""== GenbaGate demo ==
Database : {workdir / "genba.db"}  (config: {workdir / "server.toml"})
Broker   : private Mosquitto on the generated config ({broker.path}): gates on {broker.settings().gate_url}
           (TLS, own CA, one account each, ACL), server on mqtts://127.0.0.1:{broker.settings().server_port};
           gates gate-in / gate-out; the system's broker is untouched
Site     : エプロ建設工事 (現場ID 40224614116771, id {sid}) — {info["workers"]} workers, 3 tiers,
           a replaced CCUS未登録 placeholder, and a pending invitation for 湾岸設備(株)
API      : {base}/api/v1     OpenAPI: {base}/openapi.json     Docs: {base}/docs

Logins (password for all: {DEMO_PASSWORD}; security code for a reset: {SECURITY_CODE}):
  admin (運用管理者)""")
    for c in cos.values():
        print(f"  {c.login:<14} {c.name} 事業者責任者")
    print("  tekkin-ichiro  鉄筋 一郎（技能者）")
    print(f"""
Try (in another terminal):
  TOKEN=$(curl -s -X POST {base}/api/v1/auth/login -H 'Content-Type: application/json' \\
      -d '{{"login_id": "kihon-owner", "password": "{DEMO_PASSWORD}"}}' \\
      | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
  curl -s {base}/api/v1/sites/{sid}/hierarchy {auth} | {pretty}
  curl -s {base}/api/v1/sites/{sid}/roster {auth} | {pretty}
  curl -s {base}/api/v1/sites/{sid}/attendance {auth} | {pretty}      # today's 就業履歴
  curl -s {base}/api/v1/sites/{sid}/devices {auth} | {pretty}         # the gates and their state
  curl -s "{base}/api/v1/sites/{sid}/reports/attendance-calendar?month=$(date +%Y-%m)&format=csv" {auth}  # 2-4 CSV
  GENBA_PASSWORD={DEMO_PASSWORD} {Path(sys.executable).with_name("genba-server")} report az6-a \\
      --config {workdir / "server.toml"} --site 40224614116771 --company 20862153068122 \\
      --login kihon-owner   # 作業員名簿 (Excel form) of アップ一級工務店(株)
  # as 湾岸設備 (login wangan-owner): GET /api/v1/approval-requests, then POST /api/v1/hierarchy/NODE/approve
More flows: README.md, "API: main flows".
""")
    if args.no_serve:
        return 0
    import uvicorn

    from server.api.app import create_app

    pidfile.write_text(str(os.getpid()))
    print(f"Serving on {base} (and taking taps from the broker) — Ctrl-C to stop.", flush=True)
    try:
        uvicorn.run(create_app(ctx, ingest=ingest), host="127.0.0.1", port=port, log_level="warning")
    finally:
        pidfile.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
