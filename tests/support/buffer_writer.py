"""Child process for the crash test: records taps as fast as it can and prints each seq once record()
has returned, i.e. once the tap is durable and the gate would give feedback. It runs until killed.

    python tests/support/buffer_writer.py BUFFER_PATH
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

from firmware.buffer import Buffer


def main(path: str) -> None:
    buf = Buffer(Path(path))
    i = 0
    while True:
        tap = buf.record(tech="felica", uid=f"01270000{i % 0xFFFFFFFF:08X}", direction="in",
                         at=datetime.now(UTC), clock_synced=True, boot_id="crash-test", mono_ms=i, shown="entry")
        print(tap.seq, flush=True)
        i += 1


if __name__ == "__main__":
    main(sys.argv[1])
