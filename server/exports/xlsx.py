"""Excel (.xlsx) written row by row: openpyxl in write-only mode, so memory stays flat however many
rows (openpyxl streams each row into a temporary file; the finished zip is then read back in chunks).

Laid out for the site office to open and print: a bold header row with a fill, a Japanese font on
every cell (Excel's default Calibri has no kana; ``FONT``), column widths the caller gives (or from the
header), and frozen panes so the header and the leading columns (who) stay while scrolling the days.

A string cell is always stored as text: openpyxl would otherwise write a value starting with "=" as a
formula, and names are typed by other companies. A control character XML cannot hold (a vertical tab
in a name stored before the import refused them) is shown as 〓 (``printable``): openpyxl would refuse
the cell, and a streamed sheet would end mid-file after its 200 was sent. The forms
(``server.forms.layout``) write every value through the same ``printable``.
"""

from __future__ import annotations

import tempfile
import unicodedata
from collections.abc import Iterator, Sequence
from copy import copy
from typing import Any

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet._write_only import WriteOnlyWorksheet

from server.exports import REPLACEMENT, Cell, Row, Rows

MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
FONT_NAME = "游ゴシック"  # Excel's Japanese default since 2016; Windows falls back to MS ゴシック without it
FONT = Font(name=FONT_NAME, size=10)
HEADER_FONT = Font(name=FONT_NAME, size=10, bold=True)
HEADER_FILL = PatternFill("solid", fgColor="DDEBF7")
CENTER = Alignment(horizontal="center", vertical="center")
_CHUNK = 64 * 1024


def printable(text: str) -> str:
    """``text`` with each character a worksheet cannot hold (openpyxl's ``ILLEGAL_CHARACTERS_RE``: the
    C0 controls but tab, line feed and carriage return) replaced by 〓, so a stored value never
    breaks a file: the rest of the name still tells the office whose it is."""
    cleaned: str = ILLEGAL_CHARACTERS_RE.sub(REPLACEMENT, text)
    return cleaned


def display_width(text: str) -> int:
    """Columns a text takes in Excel's units, roughly: full-width (Japanese) characters count two."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WFA" else 1 for ch in text)


class _Styles:
    """The few cell styles of a sheet, each built once: setting a font on a cell makes openpyxl hash
    and look the font up again, which for 200,000 cells was most of the time; copying the finished
    style array is cheap."""

    def __init__(self, ws: WriteOnlyWorksheet) -> None:
        self.ws = ws
        self._arrays: dict[tuple[bool, bool], Any] = {}

    def cell(self, value: Cell, *, header: bool = False, center: bool = False) -> WriteOnlyCell:
        if isinstance(value, str):
            value = printable(value)
        cell = WriteOnlyCell(self.ws, value=value)
        if isinstance(value, str) and value.startswith("="):
            cell.data_type = "s"  # text, never a formula
        key = (header, center)
        if key not in self._arrays:
            proto = WriteOnlyCell(self.ws)
            proto.font = HEADER_FONT if header else FONT
            if header:
                proto.fill = HEADER_FILL
            if center or header:
                proto.alignment = CENTER
            self._arrays[key] = proto._style
        cell._style = copy(self._arrays[key])
        return cell


def chunks(header: Row, rows: Rows, *, title: str, widths: Sequence[float | None] | None = None,
           freeze: str | None = "A2", centered: Sequence[bool] | None = None) -> Iterator[bytes]:
    """The workbook, one sheet named ``title`` (at most 31 characters, as Excel allows), as bytes in
    chunks. ``widths``: per column in characters (None: from the header); ``freeze``: the top-left
    cell of the scrolling area (e.g. "F2": the header row and columns A-E stay); ``centered``: per
    column, whether its cells are centered (day marks)."""
    wb = Workbook(write_only=True)
    ws = wb.create_sheet(title=printable(title)[:31])
    for i, h in enumerate(header):
        width = widths[i] if widths is not None and i < len(widths) else None
        ws.column_dimensions[get_column_letter(i + 1)].width = width or max(6, display_width(str(h)) + 2)
    if freeze:
        ws.freeze_panes = freeze
    centers = [bool(centered[i]) if centered is not None and i < len(centered) else False
               for i in range(len(header))]
    styles = _Styles(ws)
    ws.append([styles.cell(h, header=True) for h in header])
    for row in rows:
        # An empty cell is left out of the sheet (no element to write): most days of a month are empty.
        ws.append([None if v is None or v == "" else styles.cell(v, center=centers[i]) for i, v in enumerate(row)])
    with tempfile.TemporaryFile() as out:
        wb.save(out)
        out.seek(0)
        while block := out.read(_CHUNK):
            yield block
