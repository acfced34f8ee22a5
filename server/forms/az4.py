"""AZ4 下請負業者編成表 (全建統一様式第1号-乙), drawn as the printed chart: a column per tier (元請, 1次,
2次, …), a box per company (会社名, 事業者ID, 工事内容, 工期, 主任技術者, 安全衛生責任者) and ruled lines from
each company to the ones it contracted.

The chart is laid out like a tree on its side: a company's first subcontractor sits level with it, the
next ones below, each subtree taking as many box heights as it has leaves; the lines are cell borders in
the two narrow columns between tiers (a horizontal from the upper company, a vertical down to the last
of its subcontractors, a horizontal into each). A3 landscape: the printed form's size for four tiers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from openpyxl import Workbook
from openpyxl.utils import get_column_letter

from server.forms.az1 import CHIEF, LINE, SAFETY, SAFETY_MANAGER, SUPERVISING, period, ref, title_rows
from server.forms.layout import box, edge, heights, jdate, new_sheet, outline, print_titles, widths

if TYPE_CHECKING:
    from server.services.ledgers import Ledger, Party

PER_TIER = 4  # label, value, and two narrow columns the connecting lines are drawn in
MIN_TIERS = 4  # 元請 to 3次, as the printed form, even when the branch is shallower
BOX_LINES = 6
GAP = 1
HEADER_ROW = 5
FIRST_ROW = 7


def lines_of(ledger: Ledger, p: Party) -> list[tuple[str, object]]:
    if p.tier == 0:
        return [("会社名", p.name), ("事業者ID", p.ccus_id), ("工事名称", ledger.site.name),
                ("工期", period(ledger)), ("監理技術者", p.names(SUPERVISING, CHIEF)),
                ("元方安全衛生管理者", p.names(SAFETY_MANAGER))]
    return [("会社名", p.name), ("事業者ID", p.ccus_id), ("工事内容", p.work), ("工期", None),
            ("主任技術者", p.names(CHIEF)), ("安全衛生責任者", p.names(SAFETY))]


def slots(ledger: Ledger) -> dict[int, int]:
    """node → the box height it is drawn at: level with its first subcontractor, below the previous
    company's last leaf."""
    out: dict[int, int] = {}
    free = 0

    def place(p: Party) -> None:
        nonlocal free
        out[p.node_id] = free
        kids = ledger.children(p)
        if not kids:
            free += 1
        for k in kids:
            place(k)

    place(ledger.prime)
    return out


def top(slot: int) -> int:
    return FIRST_ROW + slot * (BOX_LINES + GAP)


def workbook(ledger: Ledger) -> Workbook:
    wb = Workbook()
    ws = new_sheet(wb, ledger.title, paper="A3", landscape=True, first=True)
    tiers = max(MIN_TIERS, max(p.tier for p in ledger.parties) + 1)
    widths(ws, [11, 24, 2.5, 2.5] * tiers)
    last_col = tiers * PER_TIER - 2  # the last tier draws no lines to its right
    title_rows(ws, ledger, caption="全建統一様式第1号-乙", last_col=last_col, line=[])
    heights(ws, [3], LINE)
    for col, label, value, width in ((1, "現場ID", ledger.site.ccus_id, 1), (5, "工事名称", ledger.site.name, 3),
                                     (9, "元請", ledger.prime.name, 3), (13, "出力日", jdate(ledger.printed_on), 1)):
        box(ws, ref(3, col), label, size=8)
        box(ws, ref(3, col + 1, 3, col + width), value, align="left")
    for t in range(tiers):
        col = t * PER_TIER + 1
        box(ws, ref(HEADER_ROW, col, HEADER_ROW, col + 1), "元請" if t == 0 else f"{t}次下請", size=10, bold=True)
    heights(ws, [HEADER_ROW], LINE)

    where = slots(ledger)
    for p in ledger.parties:  # the rows shown always hold the path up to the 元請: every one has a slot
        col, r0 = p.tier * PER_TIER + 1, top(where[p.node_id])
        for i, (item, shown) in enumerate(lines_of(ledger, p)):
            box(ws, ref(r0 + i, col), item, size=8)
            box(ws, ref(r0 + i, col + 1), shown, align="left", size=8 if i == 2 else 9)
        heights(ws, range(r0, r0 + BOX_LINES), LINE)
        outline(ws, ref(r0, col, r0 + BOX_LINES - 1, col + 1))
        kids = ledger.children(p)
        if kids:
            near, far = get_column_letter(col + 2), get_column_letter(col + 3)
            mid = r0 + BOX_LINES // 2 - 1  # the line runs along the bottom of this row: the box's middle
            edge(ws, f"{near}{mid}", bottom=True)
            last_mid = top(where[kids[-1].node_id]) + BOX_LINES // 2 - 1
            for r in range(mid + 1, last_mid + 1):
                edge(ws, f"{near}{r}", right=True)
            for k in kids:
                edge(ws, f"{far}{top(where[k.node_id]) + BOX_LINES // 2 - 1}", bottom=True)
    last_row = top(max(where.values()) + 1) - GAP - 1
    print_titles(ws, f"1:{HEADER_ROW}", f"A1:{ref(last_row, last_col)}")
    return wb
