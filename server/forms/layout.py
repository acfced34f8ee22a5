"""The drawing vocabulary of the forms: a page set up for printing, ruled and merged boxes, a font.

openpyxl's normal (not write-only) mode: a form needs merged cells and borders on cells already
written, and one form holds at most a company's workers or a site's companies (hundreds of rows), so
the workbook fits in memory; the tabular 帳票 that grow with a site stream instead (``server.exports``).
"""

from __future__ import annotations

import io
from collections.abc import Iterable

from openpyxl import Workbook
from openpyxl.styles import Alignment, Border, Font, Side
from openpyxl.utils import get_column_letter, range_boundaries
from openpyxl.worksheet.worksheet import Worksheet

from server.exports.xlsx import MEDIA_TYPE as MEDIA_TYPE

FONT_NAME = "ＭＳ 明朝"  # what the printed 全建統一様式 use; LibreOffice falls back to an installed CJK font
THIN = Side(style="thin", color="000000")
MEDIUM = Side(style="medium", color="000000")
BOX = Border(left=THIN, right=THIN, top=THIN, bottom=THIN)


def font(size: float = 9, *, bold: bool = False) -> Font:
    return Font(name=FONT_NAME, size=size, bold=bold)


def new_sheet(wb: Workbook, title: str, *, paper: str = "A4", landscape: bool = True,
              first: bool = False) -> Worksheet:
    """A sheet set up to print: paper A4 or A3, orientation, fit to one page wide, narrow margins,
    centered horizontally. ``first``: reuse the workbook's initial sheet."""
    ws = wb.active if first and wb.active is not None else wb.create_sheet()
    assert isinstance(ws, Worksheet)
    ws.title = title[:31]
    ws.page_setup.paperSize = ws.PAPERSIZE_A3 if paper == "A3" else ws.PAPERSIZE_A4
    ws.page_setup.orientation = "landscape" if landscape else "portrait"
    ws.page_setup.fitToWidth = 1
    ws.page_setup.fitToHeight = 0  # as many pages tall as the rows need
    ws.sheet_properties.pageSetUpPr.fitToPage = True
    ws.print_options.horizontalCentered = True
    ws.page_margins.left = ws.page_margins.right = 0.4
    ws.page_margins.top = ws.page_margins.bottom = 0.5
    ws.sheet_view.showGridLines = False
    return ws


def widths(ws: Worksheet, columns: Iterable[float]) -> None:
    """Column widths in characters, from column A."""
    for i, w in enumerate(columns, 1):
        ws.column_dimensions[get_column_letter(i)].width = w


def box(ws: Worksheet, cells: str, value: object = None, *, size: float = 9, bold: bool = False,
        align: str = "center", wrap: bool = True, border: Border | None = BOX) -> None:
    """Write ``value`` into the range ``cells`` ("B3" or "B3:E4"), merged when it spans more than one
    cell, ruled on every edge. Strings are stored as text, never formulas (names come from other
    companies)."""
    min_col, min_row, max_col, max_row = range_boundaries(cells)
    assert min_col is not None and min_row is not None and max_col is not None and max_row is not None
    if (min_col, min_row) != (max_col, max_row):
        ws.merge_cells(start_row=min_row, start_column=min_col, end_row=max_row, end_column=max_col)
    top = ws.cell(row=min_row, column=min_col)
    top.value = value  # type: ignore[assignment]
    if isinstance(value, str) and value.startswith("="):
        top.data_type = "s"
    top.font = font(size, bold=bold)
    top.alignment = Alignment(horizontal=align, vertical="center", wrap_text=wrap)
    if border is not None:
        for row in ws.iter_rows(min_row=min_row, max_row=max_row, min_col=min_col, max_col=max_col):
            for c in row:
                c.border = border


def print_titles(ws: Worksheet, rows: str, area: str) -> None:
    """Rows repeated at the top of every printed page (e.g. "1:6") and the print area ("A1:R40")."""
    ws.print_title_rows = rows
    ws.print_area = area


def to_bytes(wb: Workbook) -> bytes:
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()
