"""The one table `make chaos` prints: one row per fault or input, the same columns for all.

Every scenario (tests/chaos/faults.py, fuzz.py, api.py) returns Rows; ``render`` prints them side by
side. A row is a failure when anything was lost, duplicated, crashed or answered 500: ``failed``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Row:
    name: str  # the fault or input, as an operator would say it
    sent: int  # taps the gates showed as recorded (or bodies / requests sent)
    recorded: int  # taps stored at the server (or bodies/requests answered as the contract says)
    duplicates: int = 0  # taps stored more than once, or seq reused at a gate
    lost: int = 0  # taps shown as recorded at a gate and not stored
    crashes: int = 0  # processes that died without being killed by the suite
    http_500: int = 0
    p99_ack_s: float | None = None  # tap → Ack, 99th percentile
    drain_s: float | None = None  # after the fault ends, until the last Ack
    note: str = ""

    @property
    def failed(self) -> bool:
        return bool(self.duplicates or self.lost or self.crashes or self.http_500)


COLUMNS = ("fault or input", "sent", "recorded", "dup", "lost", "crash", "500", "p99 tap→Ack", "drain", "ok")


def _s(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f} s"


def render(rows: list[Row]) -> str:
    cells = [COLUMNS] + [
        (r.name, str(r.sent), str(r.recorded), str(r.duplicates), str(r.lost), str(r.crashes), str(r.http_500),
         _s(r.p99_ack_s), _s(r.drain_s), "FAIL" if r.failed else "ok")
        for r in rows
    ]
    widths = [max(len(c[i]) for c in cells) for i in range(len(COLUMNS))]
    lines = ["  ".join(c[i].ljust(widths[i]) if i == 0 else c[i].rjust(widths[i]) for i in range(len(COLUMNS)))
             for c in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    notes = [f"  {r.name}: {r.note}" for r in rows if r.note]
    return "\n".join(lines + (["", "notes:"] + notes if notes else []))
