"""Command line of the provisioning package: not built yet (see the open issues)."""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    print("not yet: this command is built in a later issue", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
