"""The README's "API: main flows" run as written against `python -m server.demo` (a real server process).

A new user pastes these commands; if one breaks, this test says which.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from mosquitto import free_port

README = Path(__file__).resolve().parents[2] / "README.md"


def processes_under(path: Path) -> list[str]:
    """Command lines of the running processes that name ``path`` (the demo's broker does, by its config)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(path) in cmd:
            found.append(cmd)
    return found


def _flows() -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = text.split("## API: main flows", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.*?)```", section, flags=re.S)



@pytest.mark.slow
def test_the_readme_flows_work_against_the_demo(tmp_path: Path) -> None:
    port = free_port()
    demo = subprocess.Popen([sys.executable, "-m", "server.demo", "--dir", str(tmp_path / "demo"), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for _ in range(600):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            pytest.fail("the demo server did not come up")
        blocks = _flows()
        assert len(blocks) >= 8
        script = "\n".join(blocks).replace("127.0.0.1:8080", f"127.0.0.1:{port}")
        # Run block by block in one shell, printing a marker after each so a failure names its block.
        marked = "\n".join(f"{b}\necho '@@ block {i} done'" for i, b in enumerate(script.split("\n\n")))
        r = subprocess.run(["bash", "-c", "set -o pipefail\n" + marked], capture_output=True, text=True, timeout=300,
                           cwd=tmp_path)  # the 帳票 flow downloads files where the user stands
        out = r.stdout + r.stderr
        assert r.returncode == 0, out
        assert "Traceback" not in out and "internal_error" not in out, out
        # What the README says each flow shows.
        assert '"status":"registered","work_name":"給排水設備工事"' in out  # 湾岸設備 approved
        assert '"work_name":"防水工事"' in out  # 北斗防水 invited by ID, then approved
        assert "首都塗装 [{" in out and '"replaced_placeholder_name":"首都塗装"' in out  # suggestion, then 置換
        assert "['no_position']" in out  # roster entries without 立場 are flagged
        assert "proxy_consent_required" in out  # consent withdrawn
        assert '"worker":{"id":18' in out  # 三次鉄筋 registers its own worker
        assert '"state_label": "オフライン"' in out  # a gate registered, not yet heard from
        # The demo's day; 加工 四季 (worker 18) was put on the roster above, so today's record became valid.
        assert "'valid': 8, 'invalid': 1, 'no_exit': 1" in out and "0114FFFF00000001" in out
        assert '"state_label":"申請中"' in out and '"state_label":"承認"' in out  # 事後補正 asked, approved
        assert "corrected 配線 六郎 17:30" in out
        assert "'work_days': 1" in out  # 鉄筋 一郎's month
        # The 帳票 flow: the files are named after the 現場ID (ASCII names, as curl -J takes them).
        assert "attendance-calendar_40224614116771_" in out and ".xlsx" in out
        assert "worker-roster-a_40224614116771_20862153068122.xlsx" in out
    finally:
        demo.terminate()
        demo.wait(timeout=30)
    # Stopped as systemd or a terminal's kill stops it: the demo's private broker went with it.
    assert demo.returncode == 128 + 15
    assert processes_under(tmp_path / "demo") == []
