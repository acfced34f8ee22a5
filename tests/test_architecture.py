"""The architecture as import-linter contracts (pyproject.toml, [tool.importlinter]): the domain is
plain Python, entrypoints go through services, the protocol depends on neither side, the firmware
never imports the server, provisioning reaches the server over its API only.

The second test proves the check can fail: the same contracts over a copy of the code into which one
forbidden import was added."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).with_name("lint-imports")
PACKAGES = ("protocol", "firmware", "server", "provisioning")


def lint(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([str(LINT), "--no-cache"], cwd=root, env=env, capture_output=True, text=True, timeout=300)


def test_the_import_contracts_hold() -> None:
    r = lint(REPO)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Contracts: 5 kept, 0 broken." in r.stdout


def test_a_forbidden_import_breaks_its_contract(tmp_path: Path) -> None:
    for pkg in PACKAGES:
        shutil.copytree(REPO / pkg, tmp_path / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    ids = tmp_path / "server" / "domain" / "ids.py"
    ids.write_text(ids.read_text() + "\nfrom server.store import tables as _tables  # a rule reaching for the store\n")
    r = lint(tmp_path)
    assert r.returncode != 0
    assert "the domain is plain Python: no store, services, entrypoints, HTTP or MQTT BROKEN" in r.stdout
    assert "server.domain.ids -> server.store.tables" in r.stdout
