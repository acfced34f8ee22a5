"""`make demo` as a new user runs it: the scripted day at two simulated gates through a private
Mosquitto, then the day's 就業履歴 table (run with --no-serve so it ends)."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from openpyxl import load_workbook

pytestmark = pytest.mark.slow


def test_the_demo_plays_a_day_at_the_gates_and_prints_the_attendance_table(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "server.demo", "--dir", str(tmp_path / "demo"), "--no-serve"],
                          capture_output=True, text=True, timeout=240, check=False)
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    # What the gates showed and said, case by case.
    assert "鳶田 一郎(二度) （記録なし: 直前と同じカード）" in out and "「記録済みです」" in out
    assert "加工 四季       記録 #6 (not_on_roster)" in out
    assert "未登録カード    記録 #8 (unknown_card) / LED red / ブザー long / 「カードが登録されていません」" in out
    # The day's table: times, trade, position, validity with the reason.
    table = out[out.index("就業履歴 エプロ建設工事"):]
    assert "匠野 技    アップ一級工務店(株)  1   とび工 / とび工  職長  07:32  17:05  2     有効" in table
    assert "配線 六郎" in table and "07:45  --:--" in table  # forgot to tap out
    assert "無効（この現場の作業員名簿（施工体制技能者登録）に登録されていません）" in table
    assert "無効（立場が未設定です）" in table
    assert "計 9名（有効 7、無効 2、退場なし 1）" in table
    assert "0114FFFF00000001 (felica)  2回" in table
    assert not (tmp_path / "demo" / "demo.pid").exists()
    # The evening's 帳票, written as the 元請 sees them: the month calendar has the day's workers, the
    # 作業員名簿 of アップ一級工務店 carries the 現場ID and that company's workers.
    reports = {p.name: p for p in (tmp_path / "demo" / "reports").iterdir()}
    assert "== 帳票（元請 (株)基本建設 として） ==" in out and len(reports) == 6, sorted(reports)
    month_file = next(p for n, p in reports.items() if n.startswith("就業履歴一覧（月別カレンダー）"))
    calendar = load_workbook(month_file).active
    names = [row[2] for row in calendar.iter_rows(min_row=2, values_only=True)]
    assert "匠野 技" in names and names[-1] == "9人"  # the 合計 row counts the day's nine workers
    roster = load_workbook(next(p for n, p in reports.items() if n.startswith("作業員名簿"))).active
    cells = {str(c.value) for row in roster.iter_rows() for c in row if c.value is not None}
    assert "40224614116771" in cells and "匠野 技" in cells
    listed = next(p for n, p in reports.items() if n.endswith(".csv")).read_bytes().decode("utf-8-sig")
    assert listed.startswith("No.,") and "匠野 技" in listed
    assert "kihon-owner" in out
    # The site office's commands on the demo's database: the day, the month, the gates, the corrections.
    cfg = str(tmp_path / "demo" / "server.toml")
    server = Path(sys.executable).with_name("genba-server")

    def cli(*args: str) -> str:
        r = subprocess.run([str(server), *args, "--config", cfg, "--site", "1"], capture_output=True, text=True,
                           timeout=60, check=False)
        assert r.returncode == 0, r.stderr
        return r.stdout

    assert "計 9名（有効 7、無効 2、退場なし 1）" in cli("attendance")
    month = cli("attendance", "--month", table[table.index("就業日 ") + 4:][:7])
    assert "床張 蓮    CCUS建設(株)          2   1         0" in month and "現場利用料の対象 9人日" in month
    assert "gate-in   正門 入場ゲート  入場  オフライン" in cli("devices")  # the demo's gates have exited
    assert "該当する事後補正はありません" in cli("corrections")
    # The demo ran the broker as a site does: the generated TLS listeners, one account per gate, the ACL.
    demo = tmp_path / "demo"
    assert "private Mosquitto on the generated config" in out
    conf = (demo / "mosquitto" / "conf.d" / "genbagate.conf").read_text()
    assert "allow_anonymous false" in conf and "use_username_as_clientid true" in conf and "acl_file" in conf
    gate_in = tomllib.loads((demo / "gate-in.toml").read_text())
    assert gate_in["broker_url"].startswith("mqtts://") and gate_in["username"] == "gate-in"
    assert gate_in["ca_file"] == str(demo / "broker" / "ca.pem")
    assert sorted(line.split(":")[0] for line in (demo / "broker" / "passwd-gates").read_text().splitlines()) \
        == ["gate-in", "gate-out"]
