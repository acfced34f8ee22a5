"""The unit files in systemd/ as systemd itself reads them: `systemd-analyze verify`, offline.

verify loads each unit with the real unit-file parser and checks that its commands exist and are
executable, its dependencies load, a timer has something to start, and so on. On a build machine
the units' commands (/opt/genbagate/.venv/bin/genba-server, ...) are not installed, so every
check runs in a throw-away root (``--root=``, supported by verify since systemd 250; checked on
252): the host's own /usr/lib/systemd/system (the targets, Debian's mosquitto.service), our units
in its /etc/systemd/system, and a stub executable for every command a unit names, made only when
that command is one of our console scripts (pyproject [project.scripts]) under
/opt/genbagate/.venv/bin/ or exists on this host. A unit naming anything else fails.

verify only *warns* about an unknown key or a value it cannot parse, and still exits 0. So a unit
passes only when verify exits 0 *and* says nothing at all; the tests at the end feed deliberately
broken units to prove that this check refuses them.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import tomllib
from collections.abc import Iterable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
UNITS = REPO / "systemd"
VENV_BIN = "/opt/genbagate/.venv/bin/"
HOST_UNITS = Path("/usr/lib/systemd/system")
MOSQUITTO_UNIT = HOST_UNITS / "mosquitto.service"
DROP_IN = UNITS / "mosquitto.service.d" / "genbagate.conf"


SCRIPTS = set(tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"])
EXEC_RE = re.compile(r"^Exec[A-Za-z]*=(.*)$", re.MULTILINE)


def _commands(text: str) -> list[str]:
    """The executables of every Exec*= line (without systemd's @-:+! prefixes)."""
    text = text.replace("\\\n", " ")  # continuation lines
    return [line.split()[0].lstrip("@-:+!|") for line in EXEC_RE.findall(text) if line.strip()]


class FakeRoot:
    """A throw-away root for ``systemd-analyze verify --root=``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.unit_dir = path / "etc/systemd/system"
        self.unit_dir.mkdir(parents=True)
        shutil.copytree(HOST_UNITS, path / "usr/lib/systemd/system", symlinks=True)
        (path / "usr/bin").mkdir()
        (path / "usr/sbin").mkdir()
        for merged in ("bin", "sbin", "lib"):  # Debian's merged /usr, as on the real machine
            (path / merged).symlink_to(f"usr/{merged}")
        for unit in (path / "usr/lib/systemd/system").glob("*.service"):
            self._stub_commands(unit.read_text(encoding="utf-8", errors="replace"))

    def add(self, name: str, text: str) -> Path:
        target = self.unit_dir / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        self._stub_commands(text)
        return target

    def _stub_commands(self, text: str) -> None:
        for command in _commands(text):
            ours = command.startswith(VENV_BIN) and command.removeprefix(VENV_BIN) in SCRIPTS
            if not command.startswith("/") or not (ours or os.access(command, os.X_OK)):
                continue  # left missing: verify must complain
            stub = self.path / command.lstrip("/")
            if stub.exists():
                continue
            stub.parent.mkdir(parents=True, exist_ok=True)
            stub.write_text("#!/bin/sh\nexit 0\n", encoding="utf-8")
            stub.chmod(0o755)

    def verify(self, *units: str) -> list[str]:
        """verify's complaints about ``units`` (empty when systemd accepts them without a word)."""
        done = subprocess.run(
            ["systemd-analyze", "verify", f"--root={self.path}", "--man=no", "--generators=no", *units],
            capture_output=True, text=True, timeout=60, cwd=self.path,
        )
        problems = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
        if done.returncode != 0 and not problems:
            problems.append(f"systemd-analyze verify exited {done.returncode}")
        return problems


@pytest.fixture
def root(tmp_path: Path) -> FakeRoot:
    return FakeRoot(tmp_path / "root")


def _install_ours(root: FakeRoot) -> None:
    for unit in UNITS.glob("*.service"):
        root.add(unit.name, unit.read_text(encoding="utf-8"))
    for unit in UNITS.glob("*.timer"):
        root.add(unit.name, unit.read_text(encoding="utf-8"))
    root.add("mosquitto.service.d/genbagate.conf", DROP_IN.read_text(encoding="utf-8"))


def _ours() -> Iterable[str]:
    """Every unit in systemd/ as systemd would start it (the template as an instance)."""
    for unit in sorted(UNITS.glob("*.service")) + sorted(UNITS.glob("*.timer")):
        yield unit.name.replace("@.", "@2.")


def test_the_units_are_all_here() -> None:
    assert set(_ours()) == {
        "genba-backup.service", "genba-gate.service", "genba-ingest@2.service", "genba-server.service",
        "genba-backup.timer", "genba-gate-rollback.service", "genba-gate-rollback-check.service",
        "genba-gate-rollback-check.timer",
    }
    for unit in list(UNITS.glob("*.service")) + list(UNITS.glob("*.timer")) + [DROP_IN]:
        lines = unit.read_text(encoding="utf-8").splitlines()
        header = "\n".join(line for line in lines[: next(i for i, x in enumerate(lines) if x.startswith("["))])
        assert lines[0].startswith("#") and "Install" in header, f"{unit.name}: begins with how to install it"


@pytest.mark.parametrize("unit", list(_ours()))
def test_systemd_accepts_the_unit(root: FakeRoot, unit: str) -> None:
    _install_ours(root)
    assert root.verify(unit) == []


def test_systemd_accepts_all_units_together(root: FakeRoot) -> None:
    _install_ours(root)
    assert root.verify(*_ours(), "genba-ingest@3.service") == []


def test_the_timer_starts_the_backup_service_daily() -> None:
    # verify does not notice a timer whose service is missing: check that here.
    timer = (UNITS / "genba-backup.timer").read_text(encoding="utf-8")
    service = (UNITS / "genba-backup.service").read_text(encoding="utf-8")
    assert re.search(r"^Unit=genba-backup\.service$", timer, re.MULTILINE)
    assert re.search(r"^OnCalendar=.*03:30", timer, re.MULTILINE)
    assert re.search(r"^Persistent=true$", timer, re.MULTILINE)
    assert re.search(r"^Type=oneshot$", service, re.MULTILINE)
    assert re.search(r"^User=genba$", service, re.MULTILINE)


def test_the_units_run_commands_the_cli_accepts() -> None:
    """Each genba-server command line in a unit parses with the real argument parser."""
    from server.cli import build_parser

    seen = set()
    for unit in UNITS.glob("*.service"):
        for line in EXEC_RE.findall(unit.read_text(encoding="utf-8")):
            argv = shlex.split(line.replace("%i", "2"))
            if argv[0] == VENV_BIN + "genba-server":
                args = build_parser().parse_args(argv[1:])
                seen.add(args.command)
    assert {"init", "run", "ingest", "backup"} <= seen
    backup = build_parser().parse_args(
        ["backup", "--config", "/etc/genbagate/server.toml", "--dir", "/var/lib/genbagate/backup", "--keep-days", "14"]
    )
    assert backup.keep_days == 14


def test_the_mosquitto_drop_in_is_read_and_accepted(root: FakeRoot) -> None:
    root.add("mosquitto.service.d/genbagate.conf", DROP_IN.read_text(encoding="utf-8"))
    assert root.verify("mosquitto.service") == []
    # Proof that verify reads the drop-in at all: the same file with one bad line is refused, by name.
    root.add("mosquitto.service.d/genbagate.conf", DROP_IN.read_text(encoding="utf-8") + "RestartSec=soon\n")
    problems = root.verify("mosquitto.service")
    assert any("genbagate.conf" in p and "soon" in p for p in problems), problems


# ------------------------------------------------------------------ the check refuses broken units


def _broken(unit: str, old: str, new: str) -> str:
    text = (UNITS / unit).read_text(encoding="utf-8")
    assert old in text
    return text.replace(old, new, 1)


@pytest.mark.parametrize(
    "unit, old, new, expected",
    [
        # A typo in a key: verify warns ("Unknown key") but exits 0.
        ("genba-server.service", "RestartSec=2", "RestartSecs=2", "Unknown key"),
        # A value it cannot parse: a warning again, exit 0.
        ("genba-ingest@.service", "Restart=always", "Restart=sometimes", "sometimes"),
        # A command that is not installed (not one of our console scripts): exit 1.
        ("genba-backup.service", "bin/genba-server backup", "bin/genba-backupd backup", "genba-backupd"),
        # A calendar that is no time of day: the timer is refused.
        ("genba-backup.timer", "03:30:00", "25:30:00", "calendar"),
    ],
)
def test_a_broken_unit_is_refused(root: FakeRoot, unit: str, old: str, new: str, expected: str) -> None:
    _install_ours(root)
    root.add(unit, _broken(unit, old, new))
    problems = root.verify(unit.replace("@.", "@2."))
    assert any(expected in p for p in problems), problems
