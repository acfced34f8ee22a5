"""genba-server as a site's operator runs it: init, run (a real child process), bad configs."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from mosquitto import free_port
from openpyxl import load_workbook
from world import PASSWORD, Api

BIN = Path(sys.executable).with_name("genba-server")


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN), *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


def _config(tmp_path: Path, url: str, port: int = 8080) -> Path:
    cfg = tmp_path / "server.toml"
    # No MQTT here: these tests are about the HTTP side, and must never reach the machine's own broker.
    cfg.write_text(f'database_url = "{url}"\n[http]\nport = {port}\n[mqtt]\nenabled = false\n', encoding="utf-8")
    return cfg



def test_help_explains_each_command() -> None:
    out = _run("--help").stdout
    for word in ("init", "run", "import"):
        assert word in out
    assert "データベース" in _run("init", "--help").stdout


def test_init_is_repeatable_and_creates_the_operator(tmp_path: Path) -> None:
    cfg = _config(tmp_path, f"sqlite:///{tmp_path / 'g.db'}")
    first = _run("init", "--config", str(cfg), "--operator", "admin", "--operator-password", "gate-Pass-2026")
    assert first.returncode == 0, first.stderr
    assert "運用管理者を作成しました" in first.stdout
    again = _run("init", "--config", str(cfg), "--operator", "admin", "--operator-password", "gate-Pass-2026")
    assert again.returncode == 0 and "すでにあります" in again.stdout


def test_init_refuses_a_weak_operator_password(tmp_path: Path) -> None:
    cfg = _config(tmp_path, f"sqlite:///{tmp_path / 'g.db'}")
    r = _run("init", "--config", str(cfg), "--operator", "admin", "--operator-password", "short")
    assert r.returncode == 2 and "weak_password" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize(
    "content, code",
    [
        ('database_url = "mysql://x"\n', "config_invalid"),
        ('database_url = "sqlite:///x.db"\ncolour = "red"\n', "config_invalid"),
        ("database_url = \n", "config_syntax"),
        ('[http]\nport = 99999\n', "config_invalid"),
    ],
)
def test_a_bad_config_is_refused_with_the_key_named(tmp_path: Path, content: str, code: str) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text(content, encoding="utf-8")
    r = _run("init", "--config", str(cfg))
    assert r.returncode == 2, r.stdout
    assert code in r.stderr and "Traceback" not in r.stderr


def test_run_before_init_says_what_to_do(tmp_path: Path) -> None:
    cfg = _config(tmp_path, f"sqlite:///{tmp_path / 'none.db'}")
    r = _run("run", "--config", str(cfg))
    assert r.returncode == 2 and "genba-server init" in r.stderr


@pytest.mark.slow
def test_run_serves_the_api_on_either_backend(tmp_path: Path, db_url: str) -> None:
    port = free_port()
    cfg = _config(tmp_path, db_url, port)
    assert _run("init", "--config", str(cfg), "--operator", "admin",
                "--operator-password", "gate-Pass-2026").returncode == 0
    proc = subprocess.Popen([str(BIN), "run", "--config", str(cfg)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            pytest.fail("the server did not come up")
        r = httpx.post(base + "/api/v1/auth/login", json={"login_id": "admin", "password": "gate-Pass-2026"})
        assert r.status_code == 200 and r.json()["scope"] == "full"
        spec = httpx.get(base + "/openapi.json").json()
        assert "/api/v1/sites/{site_id}/hierarchy" in spec["paths"]
        bad = httpx.post(base + "/api/v1/auth/login", content=b"{not json",
                         headers={"Content-Type": "application/json"})
        assert bad.status_code == 422 and bad.json()["code"] == "invalid_request"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.parametrize(
    "args, says",
    [
        (("attendance", "--site", "1", "--day", "2026-13-01"),
         "日付は YYYY-MM-DD で指定してください（例: 2026-12-04）"),
        (("attendance", "--site", "一"), "現場ID（14桁の数字）か現場の番号（1以上の整数）を指定してください"),
        (("attendance", "--site", "4022461411677"), "現場IDは14桁です（入力は13桁）"),
        (("devices", "--site", str(2**31)), "番号が大きすぎます"),
        (("run", "--port", "99999"), "ポート番号は 1〜65535 で指定してください"),
        (("ingest", "--metrics-port", "http"), "ポート番号は 1〜65535 で指定してください"),
        (("attendance",), "次の指定が必要です: --site"),
        (("corrections", "--site", "1", "--state", "done"), "次のどれかを指定してください"),
    ],
)
def test_a_mistyped_option_is_explained_in_japanese_without_a_traceback(
        tmp_path: Path, args: tuple[str, ...], says: str) -> None:
    cfg = _config(tmp_path, f"sqlite:///{tmp_path / 'g.db'}")
    r = _run(*args, "--config", str(cfg))
    assert r.returncode == 2, r.stdout
    assert says in r.stderr and "エラー:" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and "invalid fromisoformat value" not in r.stderr


def _to_full_width(text: str) -> str:
    return text.translate(str.maketrans("0123456789-", "０１２３４５６７８９－"))


@pytest.mark.slow
def test_the_site_office_names_a_site_by_the_genba_id_on_its_papers(tmp_path: Path, api: Api, db_url: str) -> None:
    prime = api.company("基本建設(株)")
    site = api.site(prime, "エプロ建設工事")
    cfg = _config(tmp_path, db_url)
    typed = f"{site.ccus_id[:4]}-{site.ccus_id[4:9]}-{site.ccus_id[9:]}"
    for written in (site.ccus_id, typed, _to_full_width(typed), str(site.id)):  # the internal number still works
        r = _run("attendance", "--config", str(cfg), "--site", written, "--day", "2026-11-25")
        assert r.returncode == 0, (written, r.stderr)
        assert "エプロ建設工事" in r.stdout and "就業日 2026-11-25" in r.stdout
    for command in ("devices", "corrections"):
        r = _run(command, "--config", str(cfg), "--site", site.ccus_id)
        assert r.returncode == 0, (command, r.stderr)
    month = _run("attendance", "--config", str(cfg), "--site", site.ccus_id, "--month", "2026-11")
    assert month.returncode == 0 and "エプロ建設工事" in month.stdout, month.stderr


@pytest.mark.slow
def test_an_unknown_genba_id_is_named_back_with_where_to_look(tmp_path: Path, api: Api, db_url: str) -> None:
    api.site(api.company("基本建設(株)"))
    cfg = _config(tmp_path, db_url)
    r = _run("attendance", "--config", str(cfg), "--site", "4022-4614-1167-71")
    assert r.returncode == 2, r.stdout
    assert "現場が見つかりません（現場ID 40224614116771）。genba-server sites で一覧を確認してください" in r.stderr
    assert "Traceback" not in r.stderr
    r = _run("devices", "--config", str(cfg), "--site", "999")
    assert r.returncode == 2 and "現場が見つかりません（番号 999）" in r.stderr and "genba-server sites" in r.stderr


@pytest.mark.slow
def test_sites_lists_each_site_with_its_genba_id_prime_period_and_gates(
        tmp_path: Path, api: Api, db_url: str) -> None:
    prime = api.company("基本建設(株)")
    site = api.site(prime, "エプロ建設工事")
    other = api.site(api.company("アップ一級工務店(株)"), "虎ノ門ビル新築工事", period_start="2026-06-01")
    cfg = _config(tmp_path, db_url)
    r = _run("sites", "--config", str(cfg))
    assert r.returncode == 0, r.stderr
    header, _, *rows = r.stdout.splitlines()
    assert header.split() == ["現場ID", "現場名", "元請", "元請の事業者ID", "工期", "ゲート", "番号"]
    mine = next(row for row in rows if row.startswith(site.ccus_id))
    assert mine.split() == [site.ccus_id, "エプロ建設工事", "基本建設(株)", prime.ccus_id,
                            "2026-04-01〜2027-09-30", "0", str(site.id)]
    assert any(row.startswith(other.ccus_id) and "2026-06-01〜2027-09-30" in row for row in rows)


def test_sites_on_an_empty_database_says_how_to_register_one(tmp_path: Path) -> None:
    cfg = _config(tmp_path, f"sqlite:///{tmp_path / 'g.db'}")
    assert _run("init", "--config", str(cfg)).returncode == 0
    r = _run("sites", "--config", str(cfg))
    assert r.returncode == 0 and "現場は登録されていません" in r.stdout, r.stderr


@pytest.mark.slow
def test_the_site_office_writes_a_report_as_its_account_sees_it(tmp_path: Path, api: Api, db_url: str) -> None:
    """`genba-server report` logs in as the account, so the file holds what the API gives it: the
    元請 gets the 3-3 list of the whole 施工体制, a 1次 its branch, a worker 403 for 3-2."""
    prime = api.company("基本建設(株)")
    site = api.site(prime, "エプロ建設工事")
    first = api.company("アップ一級工務店(株)")
    api.registered(site, prime, site.root, first)
    sibling = api.company("別系統設備(株)")
    api.registered(site, prime, site.root, sibling)
    cfg = _config(tmp_path, db_url)
    env = {"GENBA_PASSWORD": PASSWORD}
    out = tmp_path / "companies.csv"
    r = _run("report", "companies", "--config", str(cfg), "--site", site.ccus_id, "--login", f"owner{prime.id}",
             "--format", "csv", "--encoding", "cp932", "--out", str(out), env=env)
    assert r.returncode == 0, r.stderr
    assert "施工体制登録事業者一覧 を書き出しました" in r.stderr
    rows = list(csv.reader(io.StringIO(out.read_bytes().decode("cp932"))))
    assert rows[0][:4] == ["No.", "次数", "事業者名", "事業者ID"]
    assert sorted(row[2] for row in rows[1:]) == sorted(["基本建設(株)", "アップ一級工務店(株)", "別系統設備(株)"])

    xlsx = tmp_path / "branch.xlsx"
    r = _run("report", "companies", "--config", str(cfg), "--site", site.ccus_id, "--login", f"owner{first.id}",
             "--out", str(xlsx), env=env)
    assert r.returncode == 0, r.stderr
    sheet = load_workbook(xlsx).active
    names = [row[2] for row in sheet.iter_rows(min_row=2, values_only=True)]
    assert "アップ一級工務店(株)" in names and "別系統設備(株)" not in names

    form = tmp_path / "roster.xlsx"
    r = _run("report", "az6-a", "--config", str(cfg), "--site", site.ccus_id, "--company", first.ccus_id,
             "--login", f"owner{prime.id}", "--out", str(form), env=env)
    assert r.returncode == 0, r.stderr
    assert any(site.ccus_id in str(c.value) for row in load_workbook(form).active.iter_rows() for c in row)
    r = _run("report", "az6-a", "--config", str(cfg), "--site", site.ccus_id, "--company", first.ccus_id,
             "--login", f"owner{sibling.id}", "--out", str(tmp_path / "other.xlsx"), env=env)
    assert r.returncode == 2 and "company_not_found" in r.stderr  # a sibling never prints another's roster
    r = _run("report", "az2", "--config", str(cfg), "--site", site.ccus_id, "--login", f"owner{prime.id}",
             "--format", "csv", env=env)
    assert r.returncode == 2 and "form_is_xlsx_only" in r.stderr

    worker = api.worker(first, "技能 太郎")
    api.worker_login(first, worker)
    refused = tmp_path / "refused.csv"
    r = _run("report", "subcontractors", "--config", str(cfg), "--site", site.ccus_id, "--login",
             f"worker{worker['id']}", "--format", "csv", "--out", str(refused), env=env)
    assert r.returncode == 2 and "report_forbidden" in r.stderr and "Traceback" not in r.stderr
    assert not refused.exists() and not list(tmp_path.glob(".genba-report-*"))  # no half file left behind

    r = _run("report", "companies", "--config", str(cfg), "--site", site.ccus_id, "--login", f"owner{prime.id}",
             env={"GENBA_PASSWORD": "wrong-Pass-2026"})
    assert r.returncode == 2 and "Traceback" not in r.stderr and "パスワード" in r.stderr
    r = _run("report", "attendance-calendar", "--config", str(cfg), "--site", site.ccus_id, "--login",
             f"owner{prime.id}", env=env)
    assert r.returncode == 2 and "--month YYYY-MM" in r.stderr
    r = _run("report", "worker-calendar", "--config", str(cfg), "--worker", "80000000000000", "--month", "2026-11",
             "--login", f"owner{prime.id}", env=env)
    assert r.returncode == 2 and "技能者ID 80000000000000 は登録されていません" in r.stderr


def test_report_help_lists_each_report_with_its_number_and_what_names_its_subject() -> None:
    out = _run("report", "--help").stdout
    assert "attendance-calendar" in out and "2-4" in out and "--site --month" in out
    assert "GENBA_PASSWORD" in out


def test_every_report_of_the_seeds_table_can_be_written_from_the_cli() -> None:
    from server.domain.visibility import REPORT_READERS
    from server.services.catalog import REPORTS

    assert {spec.number for spec in REPORTS.values()} >= set(REPORT_READERS)
