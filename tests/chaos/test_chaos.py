"""The short `make chaos` inside `make test`: two gates, eight workers, five faults (the server killed
between commit and Ack, a gate killed mid-burst, the network cut, the gate's disk full) after a clean run.
The whole table, with more gates and every fault: `make chaos` (tests/chaos/run.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from chaos import faults
from chaos.harness import is_root
from chaos.table import render

pytestmark = pytest.mark.slow


def test_every_tap_a_gate_confirmed_is_stored_once_through_crashes_cuts_and_a_full_disk(tmp_path: Path) -> None:
    rows = faults.rows(quick=True, base=tmp_path / "chaos")
    table = render(rows)
    print(table)
    assert [r.name for r in rows if r.failed] == [], table
    script_taps = 8 * 4  # the day: 8 workers, 4 taps each
    for row in rows:
        if "NOT RUN" in row.name:
            assert not is_root(), table  # only a non-root run may leave the disk-full row out
            continue
        # The row really played the day: every tap the gates hold reached the server.
        assert row.sent >= script_taps and row.recorded == row.sent, table
