"""genba-server as a site's operator runs it: init, run (a real child process), bad configs."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from mosquitto import free_port

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
        (("attendance", "--site", "一"), "1以上の整数を指定してください"),
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
