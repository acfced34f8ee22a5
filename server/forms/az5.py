"""AZ5 再下請負通知書（変更届） (全建統一様式第1号-甲): a sheet per subcontractor, as the printed notice it
hands to the 元請: its 直近上位の注文者 and the 元請, its own items (【報告下請負業者】) and one
【再下請負関係】 block per company it contracted, each on its own printed page. A subcontractor that has
contracted nobody on GenbaGate gets one empty 再下請負関係 block, to fill in by hand if it does.

The blocks carry the items of AZ1's 下請負人 block (``az1.subcontractor_block``).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from openpyxl import Workbook

from server.forms.az1 import LAST, TITLE_ROWS, fields, setup, subcontractor_block, title_rows
from server.forms.layout import jdate, new_sheet, outline, page_break_after, print_titles

if TYPE_CHECKING:
    from server.services.ledgers import Ledger, Notice

CAPTION = "全建統一様式第1号-甲"
_NOT_IN_SHEET_NAMES = re.compile(r"[\[\]:*?/\\]")


def sheet_name(n: int, notice: Notice) -> str:
    """Excel's sheet names: at most 31 characters, none of []:*?/\\; numbered, so two companies of the
    same name stay two sheets."""
    return _NOT_IN_SHEET_NAMES.sub("_", f"{n:02d} {notice.reporter.tier_label} {notice.reporter.name}")[:31]


def draw(wb: Workbook, ledger: Ledger, n: int, notice: Notice) -> None:
    ws = new_sheet(wb, sheet_name(n, notice), paper="A4", landscape=True, first=n == 1)
    setup(ws)
    site, me, upper, prime = ledger.site, notice.reporter, notice.upper, ledger.prime
    row = title_rows(ws, ledger, caption=CAPTION, line=[("現場ID", site.ccus_id, 2), ("工事名称", site.name, 6),
                                                        ("出力日", jdate(ledger.printed_on), 2)])
    top = row + 1
    row = fields(ws, top, [("直近上位の注文者名", upper.name, 8), ("事業者ID", upper.ccus_id, 4)])
    row = fields(ws, row, [("元請名称", prime.name, 8), ("事業者ID", prime.ccus_id, 4)])
    row = fields(ws, row, [("提出日", None, 4), ("次数", me.tier_label, 2), ("変更年月日", None, 4)])
    outline(ws, f"A{top}:{LAST}{row - 1}")
    row = subcontractor_block(ws, row + 1, me, "【報告下請負業者】")
    contracted = notice.contracted or (None,)
    for i, party in enumerate(contracted, 1):
        page_break_after(ws, row - 1)  # each 再下請負関係 on its own page, under the repeated title rows
        row = subcontractor_block(ws, row, party, f"【再下請負関係】 {i}/{len(contracted)}")
    print_titles(ws, f"1:{TITLE_ROWS}", f"A1:{LAST}{row - 1}")


def workbook(ledger: Ledger) -> Workbook:
    wb = Workbook()
    for n, notice in enumerate(ledger.notices, 1):
        draw(wb, ledger, n, notice)
    return wb
