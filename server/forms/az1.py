"""AZ1 施工体制台帳, laid out like the printed ledger sites keep: the 元請's block (会社名, 事業所名, 建設業の許可,
工事名称及び工事内容, 発注者名, 工期, 契約日, 監督員名・現場代理人名・監理技術者名, …) and then one 下請負人
block per 1次 company, each on its own printed page under the repeated title rows.

Every item GenbaGate does not hold is still a ruled box, empty, to fill in by hand: a ledger with a
missing line is not one a 元請 can file. The 16-column grid and the 下請負人 block are shared with AZ5
(再下請負通知書), whose blocks carry the same items.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from openpyxl import Workbook
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

from server.forms.layout import box, heights, jdate, new_sheet, outline, page_break_after, print_titles, widths

if TYPE_CHECKING:
    from server.services.ledgers import Ledger, Party

COLUMNS = 16  # the grid every row of a block is cut from: a label takes 2, its value the rest of its share
LAST = get_column_letter(COLUMNS)
LINE = 22.0  # points: a line to write on by hand
TITLE_ROWS = 3

# The 立場 codes (domain.roster.POSITIONS) the blocks print names for.
SITE_AGENT, SUPERVISING, CHIEF = "site_agent", "supervising_engineer", "chief_engineer"
SAFETY, SAFETY_MANAGER = "safety_officer", "safety_manager"

Field = tuple[str, object, int]  # label, value (None: an empty box), value's width in grid columns


def ref(row: int, col: int, last_row: int | None = None, last_col: int | None = None) -> str:
    """"C4" or "C4:H5" from row and column numbers."""
    first = f"{get_column_letter(col)}{row}"
    if last_row is None and last_col is None:
        return first
    return f"{first}:{get_column_letter(last_col or col)}{last_row or row}"


def fields(ws: Worksheet, row: int, items: Sequence[Field], *, rows: int = 1, label_width: int = 2,
           col: int = 1) -> int:
    """One line of label/value boxes from column ``col``: each label ``label_width`` columns wide, each
    value as wide as its item says, ``rows`` tall. Returns the next free row."""
    for label, value, width in items:
        box(ws, ref(row, col, row + rows - 1, col + label_width - 1), label, size=8)
        col += label_width
        box(ws, ref(row, col, row + rows - 1, col + width - 1), value, align="left")
        col += width
    heights(ws, range(row, row + rows), LINE)
    return row + rows


def title_rows(ws: Worksheet, ledger: Ledger, *, caption: str, line: Sequence[Field], last_col: int = COLUMNS) -> int:
    """The rows repeated on every printed page: the form's title and 帳票NO, its 様式, and ``line`` (the
    現場ID, 工事名称, … as label/value boxes across the width). Returns the first row below them."""
    box(ws, ref(1, 1, 1, last_col - 3), ledger.title, size=16, bold=True, border=None)
    box(ws, ref(1, last_col - 2, 1, last_col), f"帳票NO {ledger.number}", size=8, align="right", border=None)
    box(ws, ref(2, 1, 2, last_col), caption, size=8, align="left", border=None)
    ws.row_dimensions[1].height = 30
    fields(ws, 3, line)
    return TITLE_ROWS + 1


def period(ledger: Ledger) -> str | None:
    """工期 as printed: the site's, when the reader may see it (4-1)."""
    p = ledger.site.period
    return f"{jdate(p[0])} ～ {jdate(p[1])}" if p is not None else None


def section(ws: Worksheet, row: int, text: str) -> int:
    box(ws, ref(row, 1, row, COLUMNS), text, size=10, bold=True, align="left")
    heights(ws, [row], LINE)
    return row + 1


def prime_block(ws: Worksheet, row: int, ledger: Ledger) -> int:
    """【元請負人】: the 元請 and the site. Returns the next free row."""
    p, site = ledger.prime, ledger.site
    top = row
    row = section(ws, row, "【元請負人】")
    row = fields(ws, row, [("会社名", p.name, 8), ("事業者ID", p.ccus_id, 4)])
    row = fields(ws, row, [("事業所名", None, 6), ("代表者名", p.representative, 6)])
    row = fields(ws, row, [("住所", p.address, 14)])
    row = fields(ws, row, [("許可業種", None, 2), ("建設業許可番号", p.permit_number, 4),
                           ("許可（更新）年月日", None, 4)])
    row = fields(ws, row, [("工事名称", site.name, 8), ("現場ID", site.ccus_id, 4)])
    row = fields(ws, row, [("工事内容", p.work_content, 14)], rows=2)
    row = fields(ws, row, [("発注者名及び住所", None, 8), ("発注区分", site.order_type, 4)], rows=2)
    row = fields(ws, row, [("工期", period(ledger), 6), ("契約日", None, 6)])
    row = fields(ws, row, [("現場の住所", site.address, 8), ("現場担当者名", site.manager_name, 4)])
    row = fields(ws, row, [("発注者の監督員名", None, 6), ("監督員名", None, 6)])
    row = fields(ws, row, [("現場代理人名", p.names(SITE_AGENT), 6),
                           ("元方安全衛生管理者名", p.names(SAFETY_MANAGER), 6)])
    row = fields(ws, row, [("監理技術者名・主任技術者名", p.names(SUPERVISING, CHIEF), 4), ("専任・非専任", None, 2),
                           ("資格内容", p.qualifications(SUPERVISING, CHIEF), 4)])
    row = fields(ws, row, [("専門技術者名", None, 3), ("資格内容", None, 3), ("担当工事内容", None, 4)])
    row = fields(ws, row, [("健康保険", None, 3), ("厚生年金保険", None, 3), ("雇用保険", None, 4)])
    outline(ws, ref(top, 1, row - 1, COLUMNS))
    return row


def subcontractor_block(ws: Worksheet, row: int, party: Party | None, heading: str) -> int:
    """A 下請負人's items (AZ1's 下請負人 block, AZ5's 報告下請負業者 and 再下請負関係): ``party`` None prints
    the block empty, to fill in by hand. Returns the next free row."""
    p = party
    top = row
    row = section(ws, row, heading)
    row = fields(ws, row, [("会社名", p.name if p else None, 8), ("事業者ID", p.ccus_id if p else None, 4)])
    row = fields(ws, row, [("代表者名", p.representative if p else None, 4), ("住所", p.address if p else None, 8)])
    row = fields(ws, row, [("工事名称及び工事内容", p.work if p else None, 14)], rows=2)
    row = fields(ws, row, [("工期", None, 6), ("契約日", None, 6)])
    row = fields(ws, row, [("許可業種", None, 2), ("建設業許可番号", p.permit_number if p else None, 4),
                           ("許可（更新）年月日", None, 4)])
    row = fields(ws, row, [("現場代理人名", p.names(SITE_AGENT) if p else None, 6),
                           ("安全衛生責任者名", p.names(SAFETY) if p else None, 6)])
    row = fields(ws, row, [("主任技術者名", p.names(CHIEF) if p else None, 4), ("専任・非専任", None, 2),
                           ("資格内容", p.qualifications(CHIEF) if p else None, 4)])
    row = fields(ws, row, [("専門技術者名", None, 3), ("資格内容", None, 3), ("担当工事内容", None, 4)])
    row = fields(ws, row, [("安全衛生推進者名", None, 6), ("雇用管理責任者名", None, 6)])
    row = fields(ws, row, [("一号特定技能外国人の従事", None, 2), ("外国人技能実習生の従事", None, 2),
                           ("外国人建設就労者の従事", None, 3)], label_width=3)
    heights(ws, [row - 1], LINE * 1.4)  # the three labels above wrap onto two lines
    row = fields(ws, row, [("健康保険", None, 3), ("厚生年金保険", None, 3), ("雇用保険", None, 4)])
    outline(ws, ref(top, 1, row - 1, COLUMNS))
    return row


def setup(ws: Worksheet) -> None:
    widths(ws, [7.5] * COLUMNS)


def workbook(ledger: Ledger) -> Workbook:
    wb = Workbook()
    ws = new_sheet(wb, ledger.title, paper="A4", landscape=True, first=True)
    setup(ws)
    site = ledger.site
    row = title_rows(ws, ledger, caption="施工体制台帳（元請負人・下請負人に関する事項）",
                     line=[("現場ID", site.ccus_id, 2), ("工事名称", site.name, 6),
                           ("出力日", jdate(ledger.printed_on), 2)])
    row = prime_block(ws, row + 1, ledger)
    firsts = ledger.children(ledger.prime)
    for party in firsts:
        page_break_after(ws, row - 1)  # one company a page, under the repeated title rows
        row = subcontractor_block(ws, row, party, f"【下請負人】 {party.tier_label}")
    if not firsts:  # a 元請 with no 1次 yet still files the page for the first one
        page_break_after(ws, row - 1)
        row = subcontractor_block(ws, row, None, "【下請負人】 1次")
    print_titles(ws, f"1:{TITLE_ROWS}", f"A1:{LAST}{row - 1}")
    return wb
