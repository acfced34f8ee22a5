"""`make bench` (month view): the 元請's month view next to the cheapest read of the same rows.

The issue's requirement: "a month of 10,000 workers < 2 s and linear from 100". For 100, 1,000 and
10,000 workers (22 work days each, an entry and an exit a day: the data of tests/bench/ingest.py's
month_read, built by its month_taps and the domain's build_records, bulk-loaded), measured in one run
on the same database file, printed side by side:

- subject: the 元請's month view through the service, attendance.site_month(), as the API calls it;
- floor: the cheapest read of the same rows in the same file: one raw
  ``SELECT worker_id, count(*) FROM attendance WHERE site_id = ? AND work_day BETWEEN ? AND ?
  GROUP BY worker_id`` with the stdlib sqlite3 driver (psycopg on PostgreSQL), all rows fetched.

Each N gets one warm-up call of both, then ROUNDS rounds alternating subject and floor on the warm
file; the medians are printed, with the ratio and the time per 1,000 workers (flat from 100 to 10,000
means linear). The same on a private PostgreSQL (tests/support/pgserver.py, fsync off as the tests run it,
ANALYZEd after the bulk load as autovacuum would) unless --no-postgres.

No limit is asserted: the numbers are for reading.
"""

from __future__ import annotations

import argparse
import calendar
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

from server.domain.accounts import Actor, Role
from server.services import attendance
from server.services.context import Context
from server.store.database import Store

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ingest import load_month  # noqa: E402  (tests/bench/ingest.py: the month's records, no side effects)

SIZES = (100, 1_000, 10_000)
FIRST = date(2026, 11, 2)  # as tests/bench/ingest.py
MONTH = FIRST.strftime("%Y-%m")
ROUNDS = 5
FLOOR_SQL = ("SELECT worker_id, count(*) FROM attendance WHERE site_id = {p} AND work_day BETWEEN {p} AND {p}"
             " GROUP BY worker_id")


def month_bounds(month: str) -> tuple[date, date]:
    year, mon = (int(p) for p in month.split("-"))
    return date(year, mon, 1), date(year, mon, calendar.monthrange(year, mon)[1])


def alternate(subject: Callable[[], int], floor: Callable[[], int], workers: int) -> tuple[float, float]:
    """Median seconds of subject and floor, alternated ROUNDS times after one warm-up call each."""
    for fn in (subject, floor):
        got = fn()
        assert got == workers, f"{got} workers read, {workers} expected"
    subj: list[float] = []
    flo: list[float] = []
    for _ in range(ROUNDS):
        for fn, out in ((subject, subj), (floor, flo)):
            start = time.perf_counter()
            fn()
            out.append(time.perf_counter() - start)
    return statistics.median(subj), statistics.median(flo)


def measure(url: str, workers: int, floor_conn: Any, param: str) -> tuple[float, float]:
    ctx = Context(Store(url))
    actor = Actor(account_id=0, role=Role.COMPANY_OWNER, company_id=1)
    first, last = month_bounds(MONTH)
    sql = FLOOR_SQL.format(p=param)

    def subject() -> int:
        return len(attendance.site_month(ctx, actor, 1, MONTH)["workers"])

    def floor() -> int:
        return len(floor_conn.execute(sql, (1, first.isoformat(), last.isoformat())).fetchall())

    try:
        return alternate(subject, floor, workers)
    finally:
        ctx.store.dispose()


def on_sqlite(base: Path, workers: int) -> tuple[float, float]:
    path = base / f"month{workers}.db"
    url = f"sqlite:///{path}"
    load_month(url, workers, FIRST)
    conn = sqlite3.connect(path)
    try:
        return measure(url, workers, conn, "?")
    finally:
        conn.close()


def on_postgres(pg: Any, workers: int) -> tuple[float, float]:
    import psycopg

    url = pg.create_database(f"month{workers}")
    load_month(url, workers, FIRST)
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as conn:
        conn.execute("ANALYZE")
        first, last = month_bounds(MONTH)

        class Floor:  # dates as dates on PostgreSQL
            def execute(self, sql: str, params: tuple[Any, ...]) -> Any:
                return conn.execute(sql, (params[0], first, last))

        return measure(url, workers, Floor(), "%s")


def report(title: str, rows: list[tuple[int, float, float]]) -> None:
    print(title)
    print(f"    {'workers':>8} {'month view':>11} {'floor':>10} {'ratio':>7}"
          "   µs per worker = ms per 1,000 (view, floor)")
    for workers, subj, flo in rows:
        print(f"    {workers:8,d} {subj:10.3f}s {flo:9.4f}s {subj / flo:6.1f}x"
              f"   {subj / workers * 1e6:8.1f} {flo / workers * 1e6:8.2f}")
    (small, s_small, _), (big, s_big, _) = rows[0], rows[-1]
    print(f"    {big:,} workers: {s_big:.2f} s (requirement: < 2 s); per worker at {big:,} / at {small:,}:"
          f" {(s_big / big) / (s_small / small):.2f} (1.00 = linear)")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dir", type=Path, help="directory on the disk to measure (default: a temp dir here)")
    p.add_argument("--no-postgres", action="store_true", help="SQLite only")
    p.add_argument("--sizes", type=int, nargs="+", default=list(SIZES),
                   help="workers per month (default: 100 1000 10000)")
    args = p.parse_args(argv)
    sizes = sorted(args.sizes)
    base = Path(tempfile.mkdtemp(prefix="genba-bench-", dir=args.dir or Path.cwd()))
    sqlite_rows: list[tuple[int, float, float]] = []
    pg_rows: list[tuple[int, float, float]] = []
    try:
        for workers in sizes:
            sqlite_rows.append((workers, *on_sqlite(base, workers)))
        if not args.no_postgres:
            sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))
            from pgserver import PrivatePostgres  # tests/support/pgserver.py: a private server, never the machine's

            with PrivatePostgres() as pg:
                for workers in sizes:
                    pg_rows.append((workers, *on_postgres(pg, workers)))
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print(f"month view bench: site_month({MONTH}), 22 work days a worker (21 in the month), medians of {ROUNDS}"
          " rounds alternated on the warm file")
    report("  SQLite (floor: stdlib sqlite3, GROUP BY worker_id over the same rows)", sqlite_rows)
    if pg_rows:
        report("  PostgreSQL, private server (floor: psycopg, the same GROUP BY)", pg_rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
