"""File formats for the 帳票 (reports): the one home of the writers that turn a header and rows into
bytes people open in Excel or hand to another tool (the 建退共 reporting tool takes CCUS's calendar CSV).

Every writer takes a header and an *iterator* of rows and yields bytes as it goes, so a month of a
5,000-worker site is written row by row, never held as a whole document:

- ``server.exports.csv``: CSV, UTF-8 with BOM by default (Excel then reads Japanese text right), or
  Shift_JIS (Windows-31J, cp932) on request for older tools.
- ``server.exports.xlsx``: Excel .xlsx through openpyxl in write-only mode (rows go to a temporary
  file, not into memory), with a bold header row, a Japanese font, column widths and frozen panes.

The writers know nothing of who may see what: the services decide the rows, the writers only format.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TypeAlias

Cell: TypeAlias = str | int | float | None
Row: TypeAlias = Sequence[Cell]
Rows: TypeAlias = Iterable[Row]

#: What a file shows for a character its format cannot hold: 〓 (げた, the mark Japanese printing has
#: long used for a character the typeface lacks). The cp932 CSV puts it for what Shift_JIS lacks (𠮷,
#: emoji), Excel (the tabular .xlsx and the forms) for the control characters XML cannot hold.
REPLACEMENT = "〓"

__all__ = ["REPLACEMENT", "Cell", "Row", "Rows"]
