"""`make bench` (reports): the month's 帳票 streamed end to end, time and peak memory, beside a floor.

The requirement (issue 18): a site's month calendar (2-4) and list (2-2) as CSV and Excel with flat memory:
the peak at 5,000 workers is not ~50x the peak at 100. For 100, 1,000 and 5,000 workers (22 work days
each, 21 of them in the month: the data of tests/bench/ingest.py's load_month, bulk-loaded into a real
SQLite file, plus a roster entry per worker so 2-2's join has rows to find), measured in one run:

- subjects, each end to end as the router runs it: the service (``calendars.site_calendar``,
  ``attendance_reports.site_list``) and ``exports.report.render``, every byte of the file consumed:
  2-4 as CSV and as xlsx, 2-2 as CSV (and as xlsx with --list-xlsx: openpyxl's cost per cell makes
  that one slow, about 30 s at 5,000 workers here); and 2-4 as JSON, which materialises by design (the
  reference that is *not* flat);
- floors, in the same file and run: the bare SQL fetch of the same records (stdlib sqlite3, the cursor
  iterated, ordered by worker and day as the report reads them); the same fetch through the stdlib
  csv.writer (one line per record, encoded, discarded); and the same fetch grouped per worker into the
  2-4 cells by hand and written by the same xlsx writer (``server.exports.xlsx``), so the difference to
  2-4 xlsx is the service's own cost.

Each case runs in a fresh Python process twice: once timed (one warm-up, then the median of ROUNDS runs;
the RSS growth is the process's peak RSS during them, VmHWM reset before the warm-up, minus its RSS
then), once under tracemalloc (the peak of Python allocations during one run). The SQLite page cache and openpyxl's temp
file are outside tracemalloc; the RSS column counts them.

No limit is asserted: the numbers are for reading. SQLite only (tests/bench/month.py covers the
PostgreSQL read path of the same month).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, date, datetime
from itertools import groupby
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SIZES = (100, 1_000, 5_000)
FIRST = date(2026, 11, 2)  # as tests/bench/ingest.py
MONTH = FIRST.strftime("%Y-%m")
ROUNDS = 3
SUBJECTS = ("2-4 calendar → CSV", "2-4 calendar → xlsx", "2-2 list → CSV", "2-4 calendar → JSON (materialised)")
FLOORS = ("floor: SQL fetch", "floor: SQL → csv.writer", "floor: SQL → 2-4 cells → xlsx writer")
FLOOR_SQL = ("SELECT a.worker_id, a.work_day, a.valid, a.position, a.tier, a.entry_at, a.exit_at, w.ccus_id, w.name,"
             " c.name FROM attendance a JOIN workers w ON w.id = a.worker_id JOIN companies c ON c.id = w.employer_id"
             " WHERE a.site_id = 1 AND a.work_day BETWEEN ? AND ? ORDER BY a.worker_id, a.work_day")


# -- the data -----------------------------------------------------------------------------------------------


def build(path: Path, workers: int) -> None:
    """The month (tests/bench/ingest.py's load_month) and a roster entry per worker, in a SQLite file."""
    sys.path.insert(0, str(HERE))
    from ingest import load_month  # noqa: E402  (the month's records, bulk-loaded)
    from sqlalchemy import insert
    from sqlalchemy.orm import Session

    from server.store import tables as t
    from server.store.database import Store

    url = f"sqlite:///{path}"
    load_month(url, workers, FIRST)
    store = Store(url)
    now = datetime.now(UTC)
    with Session(store.engine) as s, s.begin():
        s.execute(insert(t.RosterEntry), [
            {"site_id": 1, "node_id": 1, "worker_id": w, "trade_major": "06", "trade_minor": "01",
             "position": "general", "work_description": "躯体工事", "hazardous": ["dust"], "health_checks": [],
             "qualification_ids": [], "registered_by_company_id": 1, "created_at": now, "updated_at": now}
            for w in range(1, workers + 1)])
    store.dispose()


# -- the cases (run in a child process) ---------------------------------------------------------------------


def _drain(chunks: Iterable[bytes]) -> int:
    return sum(len(c) for c in chunks)


def _month_bounds() -> tuple[str, str]:
    import calendar

    last = calendar.monthrange(FIRST.year, FIRST.month)[1]
    return FIRST.replace(day=1).isoformat(), FIRST.replace(day=last).isoformat()


def _floor_rows(path: Path) -> Iterator[tuple[Any, ...]]:
    conn = sqlite3.connect(path)
    try:
        yield from conn.execute(FLOOR_SQL, _month_bounds())
    finally:
        conn.close()


def case(name: str, path: Path) -> Callable[[], int]:
    """The case ``name`` over the database at ``path``: a callable that runs it once, returning bytes made
    (or rows read)."""
    from server.domain.accounts import Actor, Role
    from server.exports import xlsx
    from server.exports.report import render
    from server.services import attendance_reports, calendars
    from server.services.context import Context
    from server.store.database import Store

    ctx = Context(Store(f"sqlite:///{path}"))
    prime = Actor(account_id=0, role=Role.COMPANY_OWNER, company_id=1)

    if name == "2-4 calendar → CSV":
        return lambda: _drain(render(calendars.site_calendar(ctx, prime, 1, MONTH), "csv")[0])
    if name == "2-4 calendar → xlsx":
        return lambda: _drain(render(calendars.site_calendar(ctx, prime, 1, MONTH), "xlsx")[0])
    if name == "2-2 list → CSV":
        return lambda: _drain(render(attendance_reports.site_list(ctx, prime, 1, MONTH), "csv")[0])
    if name == "2-2 list → xlsx":
        return lambda: _drain(render(attendance_reports.site_list(ctx, prime, 1, MONTH), "xlsx")[0])
    if name == "2-4 calendar → JSON (materialised)":
        return lambda: len(json.dumps(calendars.site_calendar(ctx, prime, 1, MONTH).as_json(), ensure_ascii=False))
    if name == "floor: SQL fetch":
        return lambda: sum(1 for _ in _floor_rows(path))
    if name == "floor: SQL → csv.writer":
        def to_csv() -> int:
            buf = io.StringIO()
            out = csv.writer(buf, lineterminator="\r\n")
            made = 0
            for row in _floor_rows(path):
                out.writerow(row)
                if buf.tell() >= 64 * 1024:
                    made += len(buf.getvalue().encode("utf-8"))
                    buf.seek(0)
                    buf.truncate()
            return made + len(buf.getvalue().encode("utf-8"))
        return to_csv
    if name == "floor: SQL → 2-4 cells → xlsx writer":
        first, last = (date.fromisoformat(d) for d in _month_bounds())
        days = [first.replace(day=n) for n in range(1, last.day + 1)]

        def cells() -> Iterator[list[Any]]:
            for n, (_, group) in enumerate(groupby(_floor_rows(path), key=lambda r: r[0]), 1):
                mine = list(group)
                marks = {r[1]: "○" if r[2] else "△" for r in mine}
                head = mine[-1]
                yield [n, head[7], head[8], head[9], "元請", *(marks.get(d.isoformat(), "") for d in days),
                       len(mine), sum(1 for r in mine if r[2]), 0]

        header = ["No.", "技能者ID", "氏名", "所属事業者", "次数", *(str(d.day) for d in days), "就業日数",
                  "能力評価に有効な日数", "職長・班長日数"]
        return lambda: _drain(xlsx.chunks(header, cells(), title="floor"))
    raise SystemExit(f"unknown case {name!r}")


def _status(field: str) -> int:
    """A size from /proc/self/status (kB), in bytes. VmHWM is this process image's own peak RSS:
    ru_maxrss would carry the parent's peak across fork and exec."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise SystemExit(f"no {field} in /proc/self/status")


def _reset_peak() -> None:
    """Start VmHWM afresh from the current RSS (Linux >= 4.0), so imports' transient peak is not counted."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def child(name: str, path: Path, mode: str, rounds: int) -> dict[str, float]:
    """One case in this (fresh) process: ``time`` (median of ``rounds`` after a warm-up, and the RSS
    growth: peak RSS during them minus RSS before) or ``trace`` (tracemalloc's peak during one run)."""
    run = case(name, path)
    if mode == "trace":
        tracemalloc.start()
        run()
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return {"trace_peak": peak}
    _reset_peak()
    before = _status("VmRSS")
    times = []
    for n in range(rounds + 1):  # the first is the warm-up
        start = time.perf_counter()
        run()
        if n:
            times.append(time.perf_counter() - start)
    return {"seconds": statistics.median(times), "rss_growth": _status("VmHWM") - before}


def measure(name: str, path: Path, rounds: int) -> dict[str, float]:
    out: dict[str, float] = {}
    for mode in ("time", "trace"):
        done = subprocess.run([sys.executable, __file__, "--child", name, str(path), mode, str(rounds)],
                              check=True, capture_output=True, text=True)
        out.update(json.loads(done.stdout.strip().splitlines()[-1]))
    return out


# -- the table ----------------------------------------------------------------------------------------------


def mib(n: float) -> str:
    return f"{n / 2**20:8.1f} MiB"


def report(results: dict[tuple[str, int], dict[str, float]], sizes: list[int], records: dict[int, int],
           subjects: tuple[str, ...], rounds: int) -> None:
    print(f"reports bench: month {MONTH} on a SQLite file, 21 work days per worker in the month; time: median of"
          f" {rounds} runs after a warm-up; memory: tracemalloc peak and RSS growth (VmHWM), each case in a"
          " fresh process")
    print(f"    {'case':<38} {'workers':>8} {'records':>8} {'time':>9} {'µs/record':>10}"
          f" {'tracemalloc peak':>17} {'RSS growth':>13}")
    for name in (*subjects, *FLOORS):
        for n in sizes:
            r = results[(name, n)]
            print(f"    {name:<38} {n:8,d} {records[n]:8,d} {r['seconds']:8.3f}s"
                  f" {r['seconds'] / records[n] * 1e6:10.2f} {mib(r['trace_peak']):>17} {mib(r['rss_growth']):>13}")
    small, big = sizes[0], sizes[-1]
    print(f"  flatness: peak at {big:,} workers / peak at {small:,} ({big // small}x the rows; flat ≈ 1x, "
          f"proportional ≈ {big // small}x)")
    for name in (*subjects, *FLOORS):
        a, b = results[(name, small)], results[(name, big)]
        print(f"    {name:<38} tracemalloc {b['trace_peak'] / a['trace_peak']:6.1f}x"
              f"   RSS {b['rss_growth'] / max(a['rss_growth'], 1):6.1f}x"
              f"   time per record {(b['seconds'] / records[big]) / (a['seconds'] / records[small]):5.2f}"
              " (1.00 = linear)")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] == "--child":
        name, path, mode, rounds = args[1], Path(args[2]), args[3], int(args[4])
        print(json.dumps(child(name, path, mode, rounds)))
        return 0
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dir", type=Path, help="directory on the disk to measure (default: a temp dir here)")
    p.add_argument("--sizes", type=int, nargs="+", default=list(SIZES),
                   help="workers per month (default: 100 1000 5000)")
    p.add_argument("--rounds", type=int, default=ROUNDS, help=f"timed runs per case (default {ROUNDS})")
    p.add_argument("--list-xlsx", action="store_true",
                   help="also 2-2 as xlsx (a cell per column of every record: about 30 s at 5,000 workers)")
    opts = p.parse_args(args)
    subjects = SUBJECTS + (("2-2 list → xlsx",) if opts.list_xlsx else ())
    sizes = sorted(opts.sizes)
    base = Path(tempfile.mkdtemp(prefix="genba-bench-", dir=opts.dir or Path.cwd()))
    results: dict[tuple[str, int], dict[str, float]] = {}
    records: dict[int, int] = {}
    try:
        for n in sizes:
            path = base / f"reports{n}.db"
            build(path, n)
            records[n] = case("floor: SQL fetch", path)()
            for name in (*subjects, *FLOORS):
                results[(name, n)] = measure(name, path, opts.rounds)
                print(f"  … {name}, {n:,} workers", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    report(results, sizes, records, subjects, opts.rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
