"""AZ3 施工体制台帳（工事担当技術者）: for each company of the reader's branch, in the order of the 施工体制,
its 監理技術者・主任技術者 (from the roster's 立場, with the qualifications the entry lists) and the
専門技術者 boxes. A company with several technicians takes a line for each, its own cells merged down
them; one with none still has its line of empty boxes, to fill in by hand (専任・非専任, 専門技術者 are
never held here)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from openpyxl import Workbook

from server.forms.az1 import CHIEF, LINE, SUPERVISING, ref, title_rows
from server.forms.layout import box, heights, jdate, new_sheet, outline, print_titles, widths

if TYPE_CHECKING:
    from server.services.ledgers import Ledger

WIDTHS = [5, 6, 24, 16, 22, 26, 11, 14, 8, 22, 14, 16, 16]
HEADER_ROW = 5  # two header lines, 5 and 6, repeated on every page with the title rows
FIRST_ROW = 7
KINDS = ((SUPERVISING, "監理技術者"), (CHIEF, "主任技術者"))


def workbook(ledger: Ledger) -> Workbook:
    wb = Workbook()
    ws = new_sheet(wb, ledger.title, paper="A4", landscape=True, first=True)
    widths(ws, WIDTHS)
    last_col = len(WIDTHS)
    title_rows(ws, ledger, caption="施工体制台帳（工事担当技術者）", last_col=last_col,
               line=[("現場ID", ledger.site.ccus_id, 1), ("工事名称", ledger.site.name, 2),
                     ("元請", ledger.prime.name, 1), ("出力日", jdate(ledger.printed_on), 1)])
    h, h2 = HEADER_ROW, HEADER_ROW + 1
    for col, label in enumerate(("No.", "次数", "会社名", "事業者ID", "直近上位の会社名", "工事名称及び工事内容"), 1):
        box(ws, ref(h, col, h2, col), label, size=8, bold=True)
    box(ws, ref(h, 7, h, 10), "監理技術者・主任技術者", size=8, bold=True)
    box(ws, ref(h, 11, h, 13), "専門技術者", size=8, bold=True)
    for col, label in enumerate(("区分", "氏名", "専任・非専任", "資格内容", "氏名", "資格内容", "担当工事内容"), 7):
        box(ws, ref(h2, col), label, size=8, bold=True)
    heights(ws, [h, h2], 18)
    by_node = {p.node_id: p for p in ledger.parties}
    row = FIRST_ROW
    for n, p in enumerate(ledger.parties, 1):
        techs = [(kind, holder) for code, kind in KINDS for holder in p.people(code)]
        lines = max(1, len(techs))
        last = row + lines - 1
        upper = by_node.get(p.parent_id) if p.parent_id is not None else None
        for col, value in enumerate((n, p.tier_label, p.name, p.ccus_id,
                                     upper.name if upper else None, p.work), 1):
            box(ws, ref(row, col, last, col), value, align="center" if col in (1, 2, 4) else "left")
        for i in range(lines):
            kind, holder = techs[i] if techs else (None, None)
            r = row + i
            box(ws, ref(r, 7), kind)
            box(ws, ref(r, 8), holder.name if holder else None, align="left")
            box(ws, ref(r, 9), None)
            box(ws, ref(r, 10), "、".join(holder.qualifications) or None if holder else None, align="left")
            for col in (11, 12, 13):
                box(ws, ref(r, col), None)
        heights(ws, range(row, last + 1), LINE)
        row = last + 1
    outline(ws, ref(h, 1, row - 1, last_col))
    print_titles(ws, f"1:{h2}", f"A1:{ref(row - 1, last_col)}")
    return wb
