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

REPO = Path(__file__).resolve().parents[2]
LINT = Path(sys.executable).with_name("lint-imports")
PACKAGES = ("protocol", "firmware", "server", "provisioning")


def lint(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([str(LINT), "--no-cache"], cwd=root, env=env, capture_output=True, text=True, timeout=300)


def test_the_import_contracts_hold() -> None:
    r = lint(REPO)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Contracts: 7 kept, 0 broken." in r.stdout


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


def test_services_import_each_other_in_no_circle() -> None:
    """A circle between services hid behind function-level imports once; the graph of direct imports
    (grimp, what import-linter reads, function-level imports included) must have none."""
    import grimp

    graph = grimp.build_graph("server")
    services = {m for m in graph.modules if m.startswith("server.services.")}
    edges = {m: graph.find_modules_directly_imported_by(m) & services for m in services}
    state: dict[str, int] = {}  # 1: on the path, 2: done

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for n in sorted(edges[m]):
            assert state.get(n) != 1, "import circle: " + " -> ".join([*path, m, n][path.index(n) if n in path else 0:])
            if n not in state:
                visit(n, [*path, m])
        state[m] = 2

    for m in sorted(services):
        if m not in state:
            visit(m, [])
