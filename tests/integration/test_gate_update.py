"""Gate updates without re-flashing, with real parts: real wheels of a throwaway package, real venvs and
pip, a real ed25519 key made by the provisioning function, the server's signing code, the standalone
rollback script run by a real interpreter as systemd would run it, and a real HTTP download.

The throwaway package ``genbagate_probe`` stands in for the gate: its console script prints its
version (``genbagate-probe``) or "runs" (``genbagate-probe run ROOT``) the way a given build of the
gate would: a healthy build confirms itself through rollback.py, a sick one never does, a broken one
crashes at start. :func:`start_gate` plays systemd's part: ExecStartPre (the rollback check, counting
starts), then ExecStart of <root>/.venv/bin/… (which follows ``current``).
"""

from __future__ import annotations

import base64
import csv
import hashlib
import http.server
import io
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from mosquitto import PrivateMosquitto

from firmware import update
from firmware.errors import UpdateError
from firmware.rollback import current_version, read_state
from protocol.messages import Command, decode, encode
from protocol.topics import topic
from protocol.update import MANIFEST, SIGNATURE
from provisioning.update_keys import make_update_key
from server.updates import sign_bundle, update_command

PROBE = "genbagate_probe"

# What `genbagate-probe run ROOT` does, per kind of build.
RUN_BODY = {
    "healthy": "    subprocess.run([sys.executable, str(Path(root) / 'rollback.py'), '--root', root,\n"
               "                    '--confirm', __version__], check=True)\n",
    "never_healthy": "    pass  # runs, but never reaches the broker: it never confirms\n",
    "crashes": "    raise SystemExit('probe: cannot start')\n",
}


def make_wheel(out: Path, version: str, kind: str = "healthy", package: str = PROBE) -> Path:
    """A real py3-none-any wheel of genbagate_probe (written as the wheel spec says, RECORD included)."""
    source = (
        "import subprocess, sys\nfrom pathlib import Path\n\n"
        f"__version__ = {version!r}\n\n\n"
        "def run(root):\n" + RUN_BODY[kind] + "\n\n"
        "def main():\n"
        "    if len(sys.argv) > 2 and sys.argv[1] == 'run':\n"
        "        print(__version__, flush=True)\n"
        "        run(sys.argv[2])\n"
        "    else:\n"
        "        print(__version__)\n"
    )
    dist = f"{package}-{version}.dist-info"
    files = {
        f"{package}/__init__.py": source.encode(),
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {package.replace('_', '-')}\nVersion: {version}\n".encode(),
        f"{dist}/WHEEL": b"Wheel-Version: 1.0\nGenerator: genbagate-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        f"{dist}/entry_points.txt": f"[console_scripts]\n{package.replace('_', '-')} = {package}:main\n".encode(),
    }
    record = io.StringIO()
    writer = csv.writer(record, lineterminator="\n")
    for name, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        writer.writerow([name, f"sha256={digest}", len(data)])
    writer.writerow([f"{dist}/RECORD", "", ""])
    files[f"{dist}/RECORD"] = record.getvalue().encode()
    out.mkdir(parents=True, exist_ok=True)
    wheel = out / f"{package}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return wheel


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Version N's venv, built once for real (python -m venv, pip install of the N wheel, offline)."""
    base = tmp_path_factory.mktemp("template")
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    wheel = make_wheel(base / "wheels", "1.0.0")
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--no-index", "--disable-pip-version-check",
                    str(wheel)], check=True, capture_output=True, timeout=120)
    return venv


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    files = make_update_key(tmp_path / "keys")
    return files.private, files.public


@pytest.fixture
def root(tmp_path: Path, template: Path) -> Path:
    """A flashed gate running version 1.0.0: <root>/.venv adopted as versions/1.0.0 (the first boot's step)."""
    r = tmp_path / "opt-genbagate"
    r.mkdir()
    update._copy_venv(template, r / ".venv")  # a venv of its own, its scripts naming <root>/.venv
    assert update.adopt(r, "1.0.0") == "1.0.0"
    assert (r / ".venv").is_symlink() and current_version(r) == "1.0.0"
    return r


def bundle(tmp_path: Path, private_key: Path, version: str, kind: str = "healthy") -> Path:
    """The operator's step: wheels in a folder, `genba-server update sign`'s function."""
    wheels = tmp_path / f"wheels-{version}"
    make_wheel(wheels, version, kind)
    out = tmp_path / f"bundle-{version}"
    sign_bundle(private_key, wheels, version, out)
    return out


def probe_version(root: Path) -> str:
    """What the gate systemd would start reports (ExecStart goes through <root>/.venv → current)."""
    r = subprocess.run([str(root / ".venv" / "bin" / "genbagate-probe")], capture_output=True, text=True,
                       check=True, timeout=30)
    return r.stdout.strip()


def start_gate(root: Path) -> subprocess.CompletedProcess[str]:
    """One start as genba-gate.service does it: ExecStartPre (the standalone rollback check, counting the
    start, run by the system's python as the unit does), then ExecStart (exec'd after the check, so a
    switched ``current`` takes effect)."""
    subprocess.run([sys.executable, str(root / "rollback.py"), "--root", str(root), "--starting"],
                   check=True, capture_output=True, timeout=30)
    return subprocess.run([str(root / ".venv" / "bin" / "genbagate-probe"), "run", str(root)],
                          capture_output=True, text=True, timeout=30)


def snapshot(root: Path) -> dict[str, str]:
    """Every path under the root, with link targets and the state file's bytes: "changed nothing" is this."""
    seen: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            seen[rel] = os.readlink(p) if p.is_symlink() else ("dir" if p.is_dir() else str(p.stat().st_size))
    state = root / "state" / "update.json"
    seen["<state>"] = state.read_text() if state.exists() else ""
    return seen


def test_a_signed_update_installs_version_n_plus_1_and_reports_it(tmp_path: Path, root: Path,
                                                                   keys: tuple[Path, Path]) -> None:
    private, public = keys
    restarts: list[str] = []
    v = update.apply_bundle(bundle(tmp_path, private, "1.1.0"), public, root,
                            restart=lambda: restarts.append(str(current_version(root))))
    assert v == "1.1.0" and restarts == ["1.1.0"]  # switched first, then restarted
    assert current_version(root) == "1.1.0"
    assert probe_version(root) == "1.1.0"
    # N+1's venv stands on its own: its scripts run its own interpreter, not N's.
    new_venv = (root / "versions" / "1.1.0" / "venv").resolve()
    assert (new_venv / "bin" / "pip").read_text().startswith(f"#!{new_venv}/bin/python")
    # The version the gate reports in its status: the one whose venv it runs from.
    assert update.rollback.running_version(root, prefix=str(root / ".venv")) == "1.1.0"
    assert update.rollback.running_version(root, prefix=str(tmp_path)) is None  # a developer's checkout
    pending = read_state(root)["pending"]
    assert pending["previous"] == "1.0.0" and pending["new"] == "1.1.0" and not pending["confirmed"]

    started = start_gate(root)  # the restart: N+1 comes up healthy and confirms itself
    assert started.returncode == 0, started.stderr
    assert started.stdout.splitlines() == ["1.1.0", "版 1.1.0 を正常と記録しました。"]
    state = read_state(root)
    assert state["pending"] is None and state["history"][-1]["event"] == "confirmed"
    assert update.check_rollback(root, now=time.time() + 10_000) is None  # confirmed: never rolled back
    assert sorted(os.listdir(root / "versions")) == ["1.0.0", "1.1.0"]

    # N+2 replaces the oldest: the last two versions are kept.
    update.apply_bundle(bundle(tmp_path, private, "1.2.0"), public, root)
    assert probe_version(root) == "1.2.0"
    assert sorted(os.listdir(root / "versions")) == ["1.1.0", "1.2.0"]
    assert start_gate(root).stdout.splitlines()[0] == "1.2.0"
    assert read_state(root)["pending"] is None

    # An older bundle, validly signed long ago, replayed: refused, nothing changes.
    before = snapshot(root)
    with pytest.raises(UpdateError, match="新しくありません"):
        update.apply_bundle(bundle(tmp_path / "old", private, "1.1.5"), public, root)
    assert snapshot(root) == before and probe_version(root) == "1.2.0"


def test_a_flashed_gates_first_update_adopts_its_venv_as_version_n(tmp_path: Path, template: Path,
                                                                      keys: tuple[Path, Path]) -> None:
    """A gate as firstboot.sh leaves it (a real /opt/genbagate/.venv, no versions yet): the first update
    makes that venv versions/<its genbagate version>, so there is a version to go back to."""
    private, public = keys
    r = tmp_path / "flashed"
    update._copy_venv(template, r / ".venv")
    gate_wheel = make_wheel(tmp_path / "gate-wheel", "0.1.0", package="genbagate")  # the gate's own dist
    subprocess.run([str(r / ".venv" / "bin" / "python"), "-m", "pip", "install", "--no-index",
                    "--disable-pip-version-check", str(gate_wheel)], check=True, capture_output=True, timeout=120)
    assert update.installed_version(r / ".venv") == "0.1.0" and current_version(r) is None
    update.apply_bundle(bundle(tmp_path, private, "1.1.0"), public, r)
    assert sorted(os.listdir(r / "versions")) == ["0.1.0", "1.1.0"] and probe_version(r) == "1.1.0"
    assert update.check_rollback(r, failed=True) == "0.1.0"
    assert probe_version(r) == "1.0.0"  # the flashed venv's probe, through .venv -> current -> 0.1.0


def _tamper_manifest(b: Path) -> None:
    data = json.loads((b / MANIFEST).read_text())
    data["min_previous_version"] = None
    data["version"] = "6.6.6"  # a signed 1.1.0 relabelled
    (b / MANIFEST).write_text(json.dumps(data))


def _tamper_wheel_same_size(b: Path) -> None:
    wheel = next(b.glob("*.whl"))
    data = bytearray(wheel.read_bytes())
    data[len(data) // 2] ^= 0xFF
    wheel.write_bytes(bytes(data))


def _truncate_wheel(b: Path) -> None:
    wheel = next(b.glob("*.whl"))
    wheel.write_bytes(wheel.read_bytes()[:-10])


def _swap_signature(b: Path, other_private: Path) -> None:
    """A bundle signed by someone else's key: the real signing code, the wrong key."""
    manifest = (b / MANIFEST).read_text()
    from protocol.update import load_private_key, parse_manifest, sign

    (b / SIGNATURE).write_text(sign(parse_manifest(manifest), load_private_key(other_private.read_bytes())))


@pytest.mark.parametrize("tamper, says", [
    ("wrong_key", "署名が正しくありません"),
    ("manifest_edited", "署名が正しくありません"),
    ("wheel_changed", "ハッシュが違います"),
    ("wheel_truncated", "大きさが違います"),
    ("signature_garbage", "署名が正しくありません"),
])
def test_a_bad_bundle_is_refused_and_changes_nothing(tmp_path: Path, root: Path, keys: tuple[Path, Path],
                                                     tamper: str, says: str) -> None:
    private, public = keys
    b = bundle(tmp_path, private, "1.1.0")
    if tamper == "wrong_key":
        _swap_signature(b, make_update_key(tmp_path / "mallory").private)
    elif tamper == "manifest_edited":
        _tamper_manifest(b)
    elif tamper == "wheel_changed":
        _tamper_wheel_same_size(b)
    elif tamper == "wheel_truncated":
        _truncate_wheel(b)
    else:
        (b / SIGNATURE).write_text("not base64 at all!\n")
    before = snapshot(root)
    restarts: list[int] = []
    with pytest.raises(UpdateError, match=says):
        update.apply_bundle(b, public, root, restart=lambda: restarts.append(1))
    assert snapshot(root) == before and restarts == []
    assert current_version(root) == "1.0.0" and probe_version(root) == "1.0.0"
    # And the same bundle untouched would have gone in: the refusal was for the tampering.
    update.apply_bundle(bundle(tmp_path / "clean", private, "1.1.0"), public, root)
    assert probe_version(root) == "1.1.0"


def test_a_version_that_never_becomes_healthy_is_rolled_back_to_n_by_itself(
        tmp_path: Path, root: Path, keys: tuple[Path, Path]) -> None:
    private, public = keys
    update.apply_bundle(bundle(tmp_path, private, "1.1.0", "never_healthy"), public, root, deadline_s=1.5)
    started = start_gate(root)
    assert started.returncode == 0 and started.stdout.strip() == "1.1.0"  # it runs, it never confirms
    # The timer's check before the deadline: nothing to do yet.
    check = [sys.executable, str(root / "rollback.py"), "--root", str(root)]
    assert "戻しました" not in subprocess.run(check, capture_output=True, text=True, check=True).stdout
    assert current_version(root) == "1.1.0"
    time.sleep(1.6)
    out = subprocess.run(check, capture_output=True, text=True, check=True, timeout=30).stdout
    assert "版 1.0.0 に戻しました" in out
    assert current_version(root) == "1.0.0" and probe_version(root) == "1.0.0"
    # The 1.1.0 gate still running sees it was switched back and exits (systemd then starts 1.0.0):
    # the check needs no root to restart anything.
    assert update.HealthConfirmer(root, version="1.1.0").superseded()
    assert not update.HealthConfirmer(root, version="1.0.0").superseded()
    last = read_state(root)["history"][-1]
    assert last["event"] == "rolled_back" and last["version"] == "1.1.0" and "deadline" in last["reason"]
    assert read_state(root)["pending"] is None
    # N keeps running as before, and a later confirmation by it confirms nothing.
    assert start_gate(root).stdout.splitlines() == ["1.0.0", "確認待ちの更新はありません。"]
    assert update.confirm_healthy(root, "1.0.0") is False


def test_a_version_that_fails_to_start_is_rolled_back_after_max_starts(
        tmp_path: Path, root: Path, keys: tuple[Path, Path]) -> None:
    private, public = keys
    update.apply_bundle(bundle(tmp_path, private, "1.1.0", "crashes"), public, root, deadline_s=3600, max_starts=3)
    runs = []
    for _ in range(6):  # systemd's Restart=always, each start through ExecStartPre
        r = start_gate(root)
        runs.append((r.returncode, r.stdout.splitlines()[0]))
        if r.returncode == 0:
            break
    assert [code for code, _ in runs[:3]] == [1, 1, 1]  # three failed starts of 1.1.0...
    assert runs[3] == (0, "1.0.0") and len(runs) == 4  # ...the fourth start runs 1.0.0
    last = read_state(root)["history"][-1]
    assert last["event"] == "rolled_back" and "started 3 times" in last["reason"]


def test_a_failed_unit_rolls_a_pending_update_back_at_once(tmp_path: Path, root: Path,
                                                            keys: tuple[Path, Path]) -> None:
    """OnFailure=genba-gate-rollback.service (the unit gave up, e.g. exit status 2 of a config the new
    version cannot read): back at once, whatever the deadline."""
    private, public = keys
    update.apply_bundle(bundle(tmp_path, private, "1.1.0"), public, root, deadline_s=3600)
    subprocess.run([sys.executable, str(root / "rollback.py"), "--root", str(root), "--failed"], check=True,
                   capture_output=True, timeout=30)
    assert current_version(root) == "1.0.0" and probe_version(root) == "1.0.0"


class _Files(http.server.SimpleHTTPRequestHandler):
    requests: list[str] = []

    def log_message(self, format: str, *args: object) -> None:
        _Files.requests.append(self.path)


@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    served = tmp_path / "www"
    served.mkdir()
    _Files.requests = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), lambda *a: _Files(*a, directory=str(served)))
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", served
    server.shutdown()
    server.server_close()


def test_an_update_command_downloads_checks_and_installs_the_bundle(
        tmp_path: Path, root: Path, keys: tuple[Path, Path], http_server: tuple[str, Path]) -> None:
    private, public = keys
    base_url, served = http_server
    b = bundle(tmp_path, private, "1.1.0")
    shutil.copytree(b, served / "b110")
    wire = encode(update_command(b, f"{base_url}/b110"))  # what the server publishes
    cmd = decode(Command, wire)  # what the gate reads off its cmd topic

    # A forged command (the manifest signed by another key) costs no download and changes nothing.
    forged = update_command(b, f"{base_url}/b110")
    other = make_update_key(tmp_path / "mallory").private
    from protocol.update import load_private_key, sign

    forged_offer = forged.update.model_copy(update={"signature": sign(forged.update.manifest,
                                                                      load_private_key(other.read_bytes()))})
    before = snapshot(root)
    with pytest.raises(UpdateError, match="署名が正しくありません"):
        update.apply_offer(forged_offer, public, root)
    assert _Files.requests == [] and snapshot(root) == before

    errors: list[UpdateError] = []
    restarts: list[str] = []
    t = update.apply_offer_in_background(cmd.update, public, root, on_error=errors.append,
                                         restart=lambda: restarts.append(str(current_version(root))))
    t.join(120)
    assert errors == [] and not t.is_alive() and restarts == ["1.1.0"]
    assert _Files.requests == ["/b110/" + f.name for f in cmd.update.manifest.files]
    assert current_version(root) == "1.1.0" and probe_version(root) == "1.1.0"
    assert not any(p.name.startswith(".download.") for p in (root / "state").iterdir())  # staging removed

    # A wheel changed on the web server after signing is refused after download, nothing switched.
    update.rollback.write_state(root, {"pending": None, "history": []})
    b2 = bundle(tmp_path, private, "1.2.0")
    shutil.copytree(b2, served / "b120")
    _tamper_wheel_same_size(served / "b120")
    before = snapshot(root)
    with pytest.raises(UpdateError, match="ハッシュが違います"):
        update.apply_offer(update_command(b2, f"{base_url}/b120").update, public, root)
    assert snapshot(root) == before and current_version(root) == "1.1.0"


def test_the_update_key_is_private_and_never_overwritten(tmp_path: Path) -> None:
    files = make_update_key(tmp_path / "k")
    assert files.private.stat().st_mode & 0o777 == 0o600
    assert files.public.stat().st_mode & 0o777 == 0o644
    assert b"PRIVATE KEY" in files.private.read_bytes() and b"PUBLIC KEY" in files.public.read_bytes()
    first = files.private.read_bytes()
    from provisioning.errors import ProvisionError

    with pytest.raises(ProvisionError) as refused:
        make_update_key(tmp_path / "k")
    assert refused.value.code == "update_key_exists" and "もうあります" in refused.value.message
    assert files.private.read_bytes() == first


def test_the_update_cli_applies_refuses_and_reports(tmp_path: Path, root: Path, keys: tuple[Path, Path],
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """`genba-gate update …` through its own argument parser (registered in firmware/cli.py)."""
    import argparse

    private, public = keys
    parser = argparse.ArgumentParser(prog="genba-gate")
    update.add_parser(parser.add_subparsers(dest="command", required=True))

    def run(*argv: str) -> int:
        args = parser.parse_args(list(argv))
        return int(args.func(args))

    b = bundle(tmp_path, private, "1.1.0")
    _tamper_wheel_same_size(b)
    assert run("update", "apply", str(b), "--root", str(root), "--public-key", str(public), "--no-restart") == 1
    assert "更新しません" in capsys.readouterr().err and current_version(root) == "1.0.0"
    good = bundle(tmp_path / "g", private, "1.1.0")
    assert run("update", "apply", str(good), "--root", str(root), "--public-key", str(public), "--no-restart",
               "--deadline", "60") == 0
    assert "版 1.1.0 に切り替えました" in capsys.readouterr().out
    assert run("update", "status", "--root", str(root)) == 0
    out = capsys.readouterr().out
    assert "今の版: 1.1.0" in out and "確認待ち: 版 1.1.0（前の版 1.0.0" in out
    assert run("update", "rollback-check", "--root", str(root)) == 0
    assert "戻す必要はありません" in capsys.readouterr().out


def test_the_operator_signs_and_sends_an_update_over_the_gates_cmd_topic(
        tmp_path: Path, root: Path, keys: tuple[Path, Path], mosquitto: PrivateMosquitto) -> None:
    """`genba-server update sign` and `update send` through their parser, a real broker in between; the
    gate's side reads the command off its own cmd topic and installs from the bundle's (file) URL."""
    import argparse

    from mqtt_peers import Watcher, wait_for

    from server import updates
    from server.config import MqttConfig

    private, public = keys
    parser = argparse.ArgumentParser(prog="genba-server")
    updates.add_parser(parser.add_subparsers(dest="command", required=True))
    wheels = tmp_path / "w"
    make_wheel(wheels, "1.1.0")
    out = tmp_path / "published" / "1.1.0"
    args = parser.parse_args(["update", "sign", "--key", str(private), "--wheels", str(wheels), "--version", "1.1.0",
                              "--out", str(out)])
    assert args.func(args) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted([MANIFEST, SIGNATURE, f"{PROBE}-1.1.0-py3-none-any.whl"])
    args = parser.parse_args(["update", "sign", "--key", str(private), "--wheels", str(wheels), "--version", "1.1.0",
                              "--out", str(out)])
    from server.errors import InvalidInput

    with pytest.raises(InvalidInput, match="update_bundle_exists"):  # a published bundle is never rewritten
        args.func(args)

    watcher = Watcher(mosquitto, topic("gate-01", "cmd"))
    try:
        cmd = update_command(out, out.as_uri())
        updates.send_update(MqttConfig(host="127.0.0.1", port=mosquitto.port, client_id="genba_server"),
                            "gate-01", cmd)
        payload, retained = wait_for(lambda: watcher.messages and watcher.messages[0], "the update command")
    finally:
        watcher.close()
    assert not retained  # an update is an act, not a state: a gate that comes back later is not re-updated
    received = decode(Command, payload)
    assert received.update.manifest.version == "1.1.0" and received.update.url == out.as_uri()
    assert update.apply_offer(received.update, public, root) == "1.1.0"
    assert probe_version(root) == "1.1.0"


# The lines genba-gate.service has for updates; systemd must accept the units as they are.
GATE_UNIT_LINES = [
    "OnFailure=genba-gate-rollback.service",
    "ExecStartPre=-/usr/bin/python3 -I /opt/genbagate/rollback.py --root /opt/genbagate --starting",
    "ReadWritePaths=/opt/genbagate",
]


def test_systemd_accepts_the_gate_unit_and_the_rollback_runs_as_the_gate_never_as_root(tmp_path: Path) -> None:
    import importlib.util

    # The unit tests' throw-away root for `systemd-analyze verify` (tests/unit is no package: load by path).
    spec = importlib.util.spec_from_file_location("_units", Path(__file__).parents[1] / "unit"
                                                  / "test_systemd_units.py")
    assert spec and spec.loader
    units = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(units)
    UNITS, FakeRoot = units.UNITS, units.FakeRoot

    text = (UNITS / "genba-gate.service").read_text(encoding="utf-8")
    assert all(line in text.splitlines() for line in GATE_UNIT_LINES)
    fake = FakeRoot(tmp_path / "root")
    for unit in list(UNITS.glob("*.service")) + list(UNITS.glob("*.timer")):
        fake.add(unit.name, unit.read_text(encoding="utf-8"))
    assert fake.verify("genba-gate.service", "genba-gate-rollback.service", "genba-gate-rollback-check.service",
                       "genba-gate-rollback-check.timer") == []
    # The check reads those lines: one misspelt key among them is refused by name.
    fake.add("genba-gate.service", text.replace("ReadWritePaths=/opt/genbagate", "ReadWritePath=/opt/genbagate"))
    assert any("ReadWritePath" in p for p in fake.verify("genba-gate.service"))
    # The gate's account owns /opt/genbagate and rewrites rollback.py: root must never run it. Both
    # rollback units run it as genba, isolated (-I); the only root step is systemctl itself ("+").
    for name, flags in (("genba-gate-rollback.service", "--failed"), ("genba-gate-rollback-check.service", "")):
        lines = (UNITS / name).read_text().splitlines()
        assert "User=genba" in lines and "Group=genba" in lines
        exec_start = next(x for x in lines if x.startswith("ExecStart="))
        expected = f"ExecStart=/usr/bin/python3 -I /opt/genbagate/rollback.py --root /opt/genbagate {flags}"
        assert exec_start == expected.strip()
        privileged = [x for x in lines if x.startswith("Exec") and "=+" in x]
        assert all("/opt/genbagate" not in x for x in privileged)
    assert "Unit=genba-gate-rollback-check.service" in (UNITS / "genba-gate-rollback-check.timer").read_text()


def test_the_gate_restarts_itself_by_a_clean_stop(tmp_path: Path) -> None:
    """restart_self sends the gate SIGTERM, which `genba-gate run` turns into a clean stop (systemd's
    Restart=always then starts the new version). A real process with the same handler shape."""
    code = (
        "import signal, sys, threading\n"
        "stop = threading.Event()\n"
        "signal.signal(signal.SIGTERM, lambda *_: stop.set())\n"
        "from firmware.update import restart_self\n"
        "restart_self()\n"
        "print('stopped cleanly' if stop.wait(10) else 'still running')\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                       cwd=Path(__file__).parents[2])
    assert r.returncode == 0 and r.stdout.strip() == "stopped cleanly", r.stderr


def test_one_update_at_a_time(tmp_path: Path, root: Path, keys: tuple[Path, Path]) -> None:
    """An update in progress (its lock held, as by another process) refuses a second one untouched."""
    import fcntl

    private, public = keys
    b = bundle(tmp_path, private, "1.1.0")
    (root / "state").mkdir(exist_ok=True)
    with open(root / "state" / update.LOCK_FILE, "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        before = snapshot(root)
        with pytest.raises(UpdateError, match="別の更新が進行中"):
            update.apply_bundle(b, public, root)
        assert snapshot(root) == before
    assert update.apply_bundle(b, public, root) == "1.1.0"  # once the other one is done


def test_the_running_gate_confirms_only_its_own_version(tmp_path: Path, root: Path, keys: tuple[Path, Path]) -> None:
    """HealthConfirmer, as the gate's housekeeping loop uses it: N still up after the switch vouches for
    nothing; N+1 confirms once it is healthy, once."""
    private, public = keys
    update.apply_bundle(bundle(tmp_path, private, "1.1.0"), public, root)
    old = update.HealthConfirmer(root, version="1.0.0")
    assert old.tick(True) is False and read_state(root)["pending"] is not None
    new = update.HealthConfirmer(root, version="1.1.0", stable_s=60)
    assert new.tick(False, now=0) is False and read_state(root)["pending"] is not None  # not healthy yet
    assert new.tick(True, now=1) is False  # healthy, but not for long enough: a crash on the first tap
    assert new.tick(False, now=30) is False  # would still be caught; a break starts the count again
    assert new.tick(True, now=40) is False and new.tick(True, now=99) is False
    assert new.tick(True, now=100) is True and read_state(root)["pending"] is None
    assert new.tick(True, now=200) is False  # once
    assert not new.superseded()
    assert update.HealthConfirmer(root).tick(True) is False  # this test process runs from no version
    assert update.check_rollback(root, now=time.time() + 10_000) is None
