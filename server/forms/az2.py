"""AZ2 工事作業所災害防止協議会兼施工体系図 (全建統一様式 第3号): the site's companies as a chart.

One column per 次数 (元請, 1次, 2次, 3次, … at least up to 3次, as the printed form has), each company a
ruled box (会社名, 事業者ID, 工事名称, 工期, 安全衛生責任者, 主任技術者, 作業員数) joined to the company
above it by lines drawn with cell borders in the narrow columns between the tiers: from the upper
company's first line to a vertical line, and from that line to each company below, the first one level
with its upper company, the others under it. The 元請's column holds the site and the 災害防止協議会
block (会長, 副会長, 書記, 会員).

The chart draws the boxes it is given: which companies a reader sees (the 元請 all, another company
its own branch) was decided by the service. What this product does not hold (発注者, 工期, the
responsible persons, the council's officers) prints as an empty box to fill in by hand.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from openpyxl import Workbook
from openpyxl.styles import PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

from server.forms import layout

TITLE = "工事作業所災害防止協議会兼施工体系図"
FORM_NAME = "全建統一様式第3号"
MIN_TIERS = 4  # 元請, 1次, 2次, 3次: the printed form's columns, drawn even when a branch is shallower
HEADER_ROWS = 4  # title, the site line, the tiers' headings, a spacer: repeated on every page
ROW_HEIGHT = 15
LABEL_FILL = PatternFill("solid", fgColor="F2F2F2")
TIER_FILL = PatternFill("solid", fgColor="DDEBF7")
BOX_LINES = ("会社名", "事業者ID", "工事名称", "工期", "安全衛生責任者", "主任技術者", "作業員数")
PRIME_LINES = ("元請名", "事業者ID", "事業所の名称", "現場ID", "所在地", "発注者名", "工期", "監督員名",
               "現場代理人", "統括安全衛生責任者", "元方安全衛生管理者")
COUNCIL_LINES = ("会長", "副会長", "書記")
COUNCIL_MEMBER_ROWS = 3
# Widths in characters: a tier's label and value columns (the 元請's labels are longer), and the two
# narrow connector columns.
PRIME_LABEL_WIDTH, LABEL_WIDTH, VALUE_WIDTH, LINK_WIDTH = 12.5, 9.5, 21, 2.5


@dataclass(frozen=True)
class Box:
    """One company (or CCUS未登録 placeholder) on the chart."""

    node_id: int
    parent_id: int | None
    tier: int
    name: str
    ccus_id: str  # "CCUS未登録" for a placeholder
    work_name: str | None = None
    workers: int | None = None  # on the roster under this company; None: not the reader's to count


@dataclass(frozen=True)
class SafetyChart:
    """The data of one 施工体系図: the site as the reader may see it and the boxes of its branch, in the
    施工体制's order (depth first, a company before the companies below it)."""

    site_name: str
    site_ccus_id: str
    site_address: str | None
    issued_on: date
    boxes: list[Box] = field(default_factory=list)

    number = "AZ2"
    title = TITLE

    @property
    def file_stem(self) -> str:
        return f"施工体系図_{self.site_ccus_id}"

    @property
    def ascii_stem(self) -> str:
        return f"safety-chart_{self.site_ccus_id}"

    def workbook(self) -> Workbook:
        return render(self)


def _label_col(tier: int) -> int:
    """1-based column of a tier's label column: each tier takes label, value and two connector columns."""
    return 1 + tier * 4


def _cell(col: int, row: int) -> str:
    return f"{get_column_letter(col)}{row}"


def _label(ws: Worksheet, cells: str, text: str, fill: PatternFill = LABEL_FILL, size: float = 7.5) -> None:
    layout.box(ws, cells, text, size=size)
    ws[cells.split(":")[0]].fill = fill


def _place(boxes: list[Box]) -> tuple[dict[int, int], int]:
    """Each box's first row, counted from 0, and the rows the chart takes: a company's first child is level
    with it, each next child below the previous child's whole branch and a blank row."""
    children: dict[int | None, list[Box]] = {}
    for b in boxes:
        children.setdefault(b.parent_id, []).append(b)
    root = boxes[0]
    top: dict[int, int] = {}
    prime_height = len(PRIME_LINES) + 1 + len(COUNCIL_LINES) + COUNCIL_MEMBER_ROWS

    def place(b: Box, row: int) -> int:
        top[b.node_id] = row
        end = row + (prime_height if b is root else len(BOX_LINES))
        below = row
        for i, child in enumerate(children.get(b.node_id, [])):
            below = place(child, below + (1 if i else 0))
        return max(end, below)

    return top, place(root, 0)


def _prime_block(ws: Worksheet, chart: SafetyChart, prime: Box, row: int) -> None:
    label, value = _label_col(0), _label_col(0) + 1
    values = [prime.name, prime.ccus_id, chart.site_name, chart.site_ccus_id, chart.site_address or ""]
    for i, text in enumerate(PRIME_LINES):
        _label(ws, _cell(label, row + i), text, size=7 if len(text) > 6 else 7.5)
        v = values[i] if i < len(values) else None
        layout.box(ws, _cell(value, row + i), v or None, size=9 if i == 0 else 8, bold=i == 0,
                   align="left")
    r = row + len(PRIME_LINES)
    _label(ws, f"{_cell(label, r)}:{_cell(value, r)}", "工事作業所災害防止協議会", fill=TIER_FILL, size=8)
    for i, text in enumerate(COUNCIL_LINES, 1):
        _label(ws, _cell(label, r + i), text)
        layout.box(ws, _cell(value, r + i), None)
    r += len(COUNCIL_LINES) + 1
    _label(ws, f"{_cell(label, r)}:{_cell(label, r + COUNCIL_MEMBER_ROWS - 1)}", "会員")
    layout.box(ws, f"{_cell(value, r)}:{_cell(value, r + COUNCIL_MEMBER_ROWS - 1)}", None)
    layout.outline(ws, f"{_cell(label, row)}:{_cell(value, r + COUNCIL_MEMBER_ROWS - 1)}")


def _company_box(ws: Worksheet, b: Box, row: int) -> None:
    label, value = _label_col(b.tier), _label_col(b.tier) + 1
    values: list[str | None] = [b.name, b.ccus_id, b.work_name, None, None, None,
                                f"{b.workers}名" if b.workers is not None else None]
    for i, text in enumerate(BOX_LINES):
        _label(ws, _cell(label, row + i), text, size=7 if len(text) > 5 else 7.5)
        layout.box(ws, _cell(value, row + i), values[i], size=9 if i == 0 else 8, bold=i == 0, align="left")
    layout.outline(ws, f"{_cell(label, row)}:{_cell(value, row + len(BOX_LINES) - 1)}")


def _links(ws: Worksheet, boxes: list[Box], top: dict[int, int], first_row: int) -> None:
    """The lines from each company to the companies below it, as cell borders: the bottom edge of the
    upper company's first line runs right to a vertical line (the left edge of the second connector
    column), which runs down to the last child's first line; each child's first line meets it."""
    children: dict[int, list[Box]] = {}
    for b in boxes:
        if b.parent_id is not None:
            children.setdefault(b.parent_id, []).append(b)
    for b in boxes:
        kids = children.get(b.node_id)
        if not kids:
            continue
        near, far = _label_col(b.tier) + 2, _label_col(b.tier) + 3
        r = first_row + top[b.node_id]
        layout.edge(ws, _cell(near, r), bottom=True)
        last = first_row + top[kids[-1].node_id]
        for k in kids:
            layout.edge(ws, _cell(far, first_row + top[k.node_id]), bottom=True)
        for rr in range(r + 1, last + 1):
            layout.edge(ws, _cell(far, rr), left=True)


def render(chart: SafetyChart) -> Workbook:
    wb = Workbook()
    ws = layout.new_sheet(wb, "施工体系図", paper="A3", first=True)
    tiers = max(MIN_TIERS, max((b.tier for b in chart.boxes), default=0) + 1)
    widths: list[float] = []
    for t in range(tiers):
        widths += [PRIME_LABEL_WIDTH if t == 0 else LABEL_WIDTH, VALUE_WIDTH]
        widths += [LINK_WIDTH, LINK_WIDTH] if t < tiers - 1 else []
    layout.widths(ws, widths)
    last = get_column_letter(len(widths))

    layout.box(ws, "A1:B1", FORM_NAME, size=8, align="left", border=None)
    layout.box(ws, f"C1:{get_column_letter(len(widths) - 2)}1", TITLE, size=18, bold=True, border=None)
    _label(ws, "A2", "事業所の名称")
    layout.box(ws, f"B2:{get_column_letter(_label_col(1) + 1)}2", chart.site_name, size=10, align="left")
    _label(ws, _cell(_label_col(2), 2), "現場ID")
    layout.box(ws, _cell(_label_col(2) + 1, 2), chart.site_ccus_id, size=10)
    _label(ws, _cell(_label_col(tiers - 1), 2), "作成日")
    layout.box(ws, _cell(_label_col(tiers - 1) + 1, 2), layout.jdate(chart.issued_on), size=9)
    for t in range(tiers):
        cells = f"{_cell(_label_col(t), 3)}:{_cell(_label_col(t) + 1, 3)}"
        _label(ws, cells, "元請" if t == 0 else f"{t}次", fill=TIER_FILL, size=10)
    layout.heights(ws, [1], 32)
    layout.heights(ws, [2, 3], 20)
    layout.heights(ws, [4], 6)

    first_row = HEADER_ROWS + 1
    top, rows = _place(chart.boxes) if chart.boxes else ({}, 0)
    layout.heights(ws, range(first_row, first_row + rows), ROW_HEIGHT)
    for b in chart.boxes:
        if b.parent_id is None:
            _prime_block(ws, chart, b, first_row + top[b.node_id])
        else:
            _company_box(ws, b, first_row + top[b.node_id])
    _links(ws, chart.boxes, top, first_row)
    note = first_row + rows + 1
    layout.box(ws, f"A{note}:{last}{note}",
               "※ 施工体制に登録（承認）された事業者を示します。空欄は本システムに登録のない項目です（手書きで記入）。",
               size=8, align="left", border=None)
    layout.print_titles(ws, f"1:{HEADER_ROWS}", f"A1:{last}{note}")
    ws.oddFooter.center.text = "&P / &N"
    ws.oddFooter.right.text = f"GenbaGate {chart.number}　出力日 {layout.jdate(chart.issued_on)}"
    return wb
