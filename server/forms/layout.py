"""The drawing vocabulary of the forms: a page set up for printing, ruled and merged boxes, a font.

openpyxl's normal (not write-only) mode: a form needs merged cells and borders on cells already
written, and one form holds at most a company's workers or a site's companies (hundreds of rows), so
the workbook fits in memory; the tabular 帳票 that grow with a site stream instead (``server.exports``).
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from copy import copy
from datetime import date
from typing import Protocol

from openpyxl import Workbook
from openpyxl.styles import Alignment, Border, Font, Side
from openpyxl.utils import get_column_letter, range_boundaries
from openpyxl.worksheet.cell_range import CellRange, MultiCellRange
from openpyxl.worksheet.pagebreak import Break
from openpyxl.worksheet.worksheet import Worksheet

from server.exports.xlsx import MEDIA_TYPE as MEDIA_TYPE
from server.exports.xlsx import printable

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
    ws.title = printable(title)[:31]
    ws.page_setup.paperSize = ws.PAPERSIZE_A3 if paper == "A3" else ws.PAPERSIZE_A4
    ws.page_setup.orientation = "landscape" if landscape else "portrait"
    ws.page_setup.fitToWidth = 1
    ws.page_setup.fitToHeight = 0  # as many pages tall as the rows need
    ws.sheet_properties.pageSetUpPr.fitToPage = True
    ws.print_options.horizontalCentered = True
    ws.page_margins.left = ws.page_margins.right = 0.4
    ws.page_margins.top = ws.page_margins.bottom = 0.5
    ws.sheet_view.showGridLines = False
    ws.merged_cells = _Merges()
    return ws


class _Merges(MultiCellRange):  # type: ignore[misc]
    """A sheet's merged ranges without openpyxl's check of each new range against every earlier one: that
    scan made a form quadratic (27 s for a 500-worker 作業員名簿, 12 of every 13 s in it). A form merges
    each box once, so there is nothing for the check to find."""

    def add(self, coord: CellRange | str) -> None:
        self.ranges.add(coord if isinstance(coord, CellRange) else CellRange(coord))


def widths(ws: Worksheet, columns: Iterable[float]) -> None:
    """Column widths in characters, from column A."""
    for i, w in enumerate(columns, 1):
        ws.column_dimensions[get_column_letter(i)].width = w


def box(ws: Worksheet, cells: str, value: object = None, *, size: float = 9, bold: bool = False,
        align: str = "center", wrap: bool = True, border: Border | None = BOX) -> None:
    """Write ``value`` into the range ``cells`` ("B3" or "B3:E4"), merged when it spans more than one
    cell, ruled on every edge. Strings are stored as text, never formulas (names come from other
    companies), with what a worksheet cannot hold shown as 〓 (``printable``): a stored name must not
    turn the whole form into a server error."""
    min_col, min_row, max_col, max_row = range_boundaries(cells)
    assert min_col is not None and min_row is not None and max_col is not None and max_row is not None
    if (min_col, min_row) != (max_col, max_row):
        ws.merge_cells(start_row=min_row, start_column=min_col, end_row=max_row, end_column=max_col)
    top = ws.cell(row=min_row, column=min_col)
    if isinstance(value, str):
        value = printable(value)
    top.value = value  # type: ignore[assignment]
    if isinstance(value, str) and value.startswith("="):
        top.data_type = "s"
    top.font = font(size, bold=bold)
    top.alignment = Alignment(horizontal=align, vertical="center", wrap_text=wrap)
    if border is not None:
        top.border = border
        for row in ws.iter_rows(min_row=min_row, max_row=max_row, min_col=min_col, max_col=max_col):
            for c in row:
                if c is not top:  # the top cell's styles by index: one lookup a box, not one a cell
                    c._style = copy(top._style)


def print_titles(ws: Worksheet, rows: str, area: str) -> None:
    """Rows repeated at the top of every printed page (e.g. "1:6") and the print area ("A1:R40")."""
    ws.print_title_rows = rows
    ws.print_area = area


def to_bytes(wb: Workbook) -> bytes:
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


# -- added for the forms AZ2, AZ6, AZ7 ------------------------------------------------------------------


class Form(Protocol):
    """A safety document ready to print: what the HTTP router (and a CLI) need of it."""

    @property
    def number(self) -> str: ...  # the seed's 帳票NO: "AZ2", "AZ6-a", …

    @property
    def title(self) -> str: ...

    @property
    def file_stem(self) -> str: ...  # the file name without extension, with the 現場ID staff know

    @property
    def ascii_stem(self) -> str: ...  # the same in plain ASCII for old clients

    def workbook(self) -> Workbook: ...


def heights(ws: Worksheet, rows: Iterable[int], height: float) -> None:
    """Row heights in points: a printed form has fixed lines, not heights Excel guesses from the text."""
    for r in rows:
        ws.row_dimensions[r].height = height


def edge(ws: Worksheet, cell: str, *, top: bool = False, bottom: bool = False, left: bool = False,
         right: bool = False, side: Side = THIN) -> None:
    """Add ruled edges to one cell, keeping the ones it has (connector lines of a chart)."""
    c = ws[cell]
    b = c.border
    c.border = Border(left=side if left else b.left, right=side if right else b.right,
                      top=side if top else b.top, bottom=side if bottom else b.bottom)


def outline(ws: Worksheet, cells: str, side: Side = MEDIUM) -> None:
    """A heavier frame around a range (a form's outer line), inner rules untouched."""
    min_col, min_row, max_col, max_row = range_boundaries(cells)
    assert min_col is not None and min_row is not None and max_col is not None and max_row is not None
    for r in range(min_row, max_row + 1):
        # Only the frame's cells: restyling the inside costs a style lookup per cell (seconds on a big form).
        edges = range(min_col, max_col + 1) if r in (min_row, max_row) else (min_col, max_col)
        for col in sorted(set(edges)):
            ref = f"{get_column_letter(col)}{r}"
            edge(ws, ref, top=r == min_row, bottom=r == max_row, left=col == min_col, right=col == max_col,
                 side=side)


def page_break_after(ws: Worksheet, row: int) -> None:
    """Start a new printed page after ``row``: a block of lines (one worker, one company) never splits."""
    ws.row_breaks.append(Break(id=row))


def jdate(d: date | None) -> str:
    """A date as Japanese forms print it (2026年4月1日); empty when unknown, to fill in by hand."""
    return f"{d.year}年{d.month}月{d.day}日" if d is not None else ""


BLANK_DATE = "　　年　　月　　日"  # a date line to fill in by hand (提出日, 受入教育実施日)
