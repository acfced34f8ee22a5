"""`make chaos`: the scripted day through every fault, then the fuzzer's and the API's rows; one table.

    .venv/bin/python tests/chaos/run.py            # everything (about 5 minutes on 2 cores)
    .venv/bin/python tests/chaos/run.py --quick    # the short version `make test` runs
    .venv/bin/python tests/chaos/run.py --only broker_restart gate_killed

Exit status 0 when no row lost, duplicated, crashed or answered 500; 1 otherwise.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
import traceback
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
for p in (TESTS, TESTS / "support"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from chaos import faults  # noqa: E402
from chaos.table import Row, render  # noqa: E402

OTHERS = ("fuzz", "api")  # tests/chaos/fuzz.py and api.py: `rows(quick) -> list[Row]`, when they exist


def other_rows(quick: bool) -> list[Row]:
    out: list[Row] = []
    for name in OTHERS:
        if not (Path(__file__).parent / f"{name}.py").exists():
            continue
        try:
            module = importlib.import_module(f"chaos.{name}")
            out += module.rows(quick)
        except Exception as exc:  # a broken suite is a failed row, never a silent pass
            traceback.print_exc()
            out.append(Row(name=f"{name}.py", sent=0, recorded=0, crashes=1, note=f"could not run: {exc!r}"[:300]))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="fewer gates, workers and faults (make test)")
    p.add_argument("--only", nargs="*", metavar="FAULT",
                   help=f"only these faults (the clean run always runs): {[f.__name__ for f in faults.FAULTS]}")
    p.add_argument("--no-others", action="store_true", help="without the fuzzer's and the API's rows")
    p.add_argument("--gates", type=int, help="simulated gates (default 4; --quick 2), entry and exit alternating")
    p.add_argument("--workers", type=int, help="workers tapping the day (default 40; --quick 8; at most 60)")
    args = p.parse_args(argv)
    started = time.monotonic()

    def progress(row: Row, seconds: float) -> None:
        print(f"  {row.name}: {'FAIL' if row.failed else 'ok'} ({seconds:.0f} s)", file=sys.stderr, flush=True)

    rows = faults.rows(args.quick, only=args.only, progress=progress, gates=args.gates, workers=args.workers)
    if not args.no_others and not args.only:
        rows += other_rows(args.quick)
    print(render(rows))
    print(f"\n{len(rows)} rows in {time.monotonic() - started:.0f} s; "
          f"{sum(r.failed for r in rows)} failed")
    return 1 if any(r.failed for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
