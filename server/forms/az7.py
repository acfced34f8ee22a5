"""AZ7 社会保険加入状況: the social insurance of a company and the companies below it on one site.

Two sheets. 事業者別: a line per company (次数, 会社名, 事業者ID, the company above it), the boxes for the
company's own 事業所整理記号等 (not held by this product: filled in by hand), and how many of its workers
on the site's roster are 加入 / 未加入 / 適用除外 / 未確認 for 健康保険, 年金保険 and 雇用保険, with a
合計 line. 技能者別: a line per worker with the three statuses and 建退共.

The workers' statuses come from the 作業員名簿 the reader sees; a status the reader may not see (the
service passes None) prints as an empty box and is counted nowhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from openpyxl import Workbook
from openpyxl.styles import PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

from server.forms import layout

TITLE = "社会保険加入状況"
HEADER_ROWS = 5  # title, the site and company line, a note, two heading rows: repeated on every page
LINE_HEIGHT = 20
LABEL_FILL = PatternFill("solid", fgColor="F2F2F2")
# The statuses as services.companies.INSURANCE_STATES labels them (the service passes labels).
STATES = ("加入", "未加入", "適用除外", "未確認")
INSURANCES = (("health", "健康保険"), ("pension", "年金保険"), ("employment", "雇用保険"))
OFFICE_NUMBERS = ("健康保険\n事業所整理記号", "厚生年金保険\n事業所整理記号", "雇用保険\n労働保険番号")


@dataclass(frozen=True)
class InsuredWorker:
    """One worker's statuses as labels (加入, 未加入, 適用除外, 未確認); None: not the reader's to see."""

    name: str
    ccus_id: str
    trade: str | None = None
    health: str | None = None
    pension: str | None = None
    employment: str | None = None
    kentaikyo: str | None = None


@dataclass(frozen=True)
class CompanyInsurance:
    tier: int
    name: str
    ccus_id: str  # "CCUS未登録" for a placeholder
    upper_name: str | None
    workers: list[InsuredWorker] = field(default_factory=list)

    def count(self, insurance: str, state: str) -> int:
        return sum(1 for w in self.workers if getattr(w, insurance) == state)


@dataclass(frozen=True)
class InsuranceStatus:
    """The data of one 社会保険加入状況: the company asked for first, then the companies below it."""

    site_name: str
    site_ccus_id: str
    company_name: str
    company_ccus_id: str
    issued_on: date
    companies: list[CompanyInsurance] = field(default_factory=list)

    number = "AZ7"
    title = TITLE

    @property
    def file_stem(self) -> str:
        return f"{TITLE}_{self.site_ccus_id}_{self.company_ccus_id}"

    @property
    def ascii_stem(self) -> str:
        return f"social-insurance_{self.site_ccus_id}_{self.company_ccus_id}"

    def workbook(self) -> Workbook:
        return render(self)


def _tier(tier: int) -> str:
    return "元請" if tier == 0 else f"{tier}次"


def _label(ws: Worksheet, cells: str, text: str, size: float = 8) -> None:
    layout.box(ws, cells, text, size=size)
    ws[cells.split(":")[0]].fill = LABEL_FILL


def _head(ws: Worksheet, doc: InsuranceStatus, title: str, last_col: int, note: str, date_cols: int) -> None:
    """Rows 1 to 3 of either sheet: title and 作成日 (its label and value ``date_cols`` columns wide each,
    at the right); 事業所の名称, 現場ID and the company; a note."""
    last = get_column_letter(last_col)
    value_first = last_col - date_cols + 1
    label_first = value_first - date_cols
    layout.box(ws, f"A1:{get_column_letter(label_first - 1)}1", title, size=16, bold=True, border=None)
    _label(ws, f"{get_column_letter(label_first)}1:{get_column_letter(value_first - 1)}1", "作成日")
    layout.box(ws, f"{get_column_letter(value_first)}1:{last}1", layout.jdate(doc.issued_on), size=8)
    _label(ws, "A2:B2", "事業所の名称")
    layout.box(ws, "C2", doc.site_name, size=10, align="left")
    _label(ws, "D2", "現場ID")
    layout.box(ws, "E2", doc.site_ccus_id, size=10)
    _label(ws, "F2", "事業者")
    layout.box(ws, f"G2:{last}2", f"{doc.company_name}（事業者ID {doc.company_ccus_id}）", size=10, align="left")
    layout.box(ws, f"A3:{last}3", note, size=8, align="left", border=None)
    layout.heights(ws, [1], 28)
    layout.heights(ws, [2], 22)
    layout.heights(ws, [3], 18)
    layout.heights(ws, [4, 5], 24)


def _companies_sheet(ws: Worksheet, doc: InsuranceStatus) -> None:
    counts = [(key, state) for key, _ in INSURANCES for state in STATES]
    widths = [4, 5, 22, 14, 18, 11, 11, 11, 6] + [4.8] * len(counts)
    layout.widths(ws, widths)
    last_col = len(widths)
    _head(ws, doc, f"{TITLE}（事業者別）", last_col,
          "※ 人数は作業員名簿（施工体制技能者登録）の技能者の加入状況です。事業所整理記号等は本システムに"
          "登録がないため手書きで記入してください。", date_cols=3)
    for col, text in enumerate(("番号", "次数", "会社名", "事業者ID", "上位の会社名"), 1):
        _label(ws, f"{get_column_letter(col)}4:{get_column_letter(col)}5", text)
    _label(ws, "F4:H4", "事業所整理記号等")
    for i, text in enumerate(OFFICE_NUMBERS):
        _label(ws, f"{get_column_letter(6 + i)}5", text, size=7)
    _label(ws, "I4:I5", "作業員数", size=7)
    for i, (_, name) in enumerate(INSURANCES):
        first = 10 + i * len(STATES)
        _label(ws, f"{get_column_letter(first)}4:{get_column_letter(first + len(STATES) - 1)}4", name)
        for j, state in enumerate(STATES):
            _label(ws, f"{get_column_letter(first + j)}5", state, size=7)

    row = HEADER_ROWS + 1
    for n, c in enumerate(doc.companies, 1):
        values: list[object] = [n, _tier(c.tier), c.name, c.ccus_id, c.upper_name or "", None, None, None,
                                len(c.workers), *(c.count(key, state) for key, state in counts)]
        for col, v in enumerate(values, 1):
            layout.box(ws, f"{get_column_letter(col)}{row}", v, size=9 if col == 3 else 8,
                       align="left" if col in (3, 5) else "center")
        layout.heights(ws, [row], LINE_HEIGHT)
        row += 1
    totals: list[object] = [f"{len(doc.companies)}社", None, None, None, None, None,
                            sum(len(c.workers) for c in doc.companies),
                            *(sum(c.count(key, state) for c in doc.companies) for key, state in counts)]
    _label(ws, f"A{row}:B{row}", "合計")
    for col, v in enumerate(totals, 3):
        layout.box(ws, f"{get_column_letter(col)}{row}", v, size=8, bold=True)
    layout.heights(ws, [row], LINE_HEIGHT)
    last = get_column_letter(last_col)
    layout.outline(ws, f"A4:{last}{row}")
    layout.print_titles(ws, f"1:{HEADER_ROWS}", f"A1:{last}{row}")
    ws.freeze_panes = f"A{HEADER_ROWS + 1}"


def _workers_sheet(ws: Worksheet, doc: InsuranceStatus) -> None:
    widths = [4, 5, 22, 16, 14, 14, 8, 8, 8, 8, 20]
    layout.widths(ws, widths)
    last_col = len(widths)
    _head(ws, doc, f"{TITLE}（技能者別）", last_col,
          "※ 作業員名簿（施工体制技能者登録）の技能者ごとの加入状況です。空欄は未登録または開示されていない項目です。",
          date_cols=1)
    headings = ("番号", "次数", "会社名", "氏名", "技能者ID", "職種", "健康保険", "年金保険", "雇用保険", "建退共",
                "備考")
    for col, text in enumerate(headings, 1):
        _label(ws, f"{get_column_letter(col)}4:{get_column_letter(col)}5", text)
    row = HEADER_ROWS + 1
    n = 0
    for c in doc.companies:
        for w in c.workers:
            n += 1
            values = [n, _tier(c.tier), c.name, w.name, w.ccus_id, w.trade, w.health, w.pension, w.employment,
                      w.kentaikyo, None]
            for col, v in enumerate(values, 1):
                layout.box(ws, f"{get_column_letter(col)}{row}", v, size=9 if col == 4 else 8,
                           align="left" if col in (3, 4, 6, 11) else "center")
            layout.heights(ws, [row], LINE_HEIGHT)
            row += 1
    if n == 0:
        layout.box(ws, f"A{row}:{get_column_letter(last_col)}{row}", "作業員名簿に登録された技能者はいません", size=9)
        layout.heights(ws, [row], LINE_HEIGHT)
        row += 1
    last = get_column_letter(last_col)
    layout.outline(ws, f"A4:{last}{row - 1}")
    layout.print_titles(ws, f"1:{HEADER_ROWS}", f"A1:{last}{row - 1}")
    ws.freeze_panes = f"A{HEADER_ROWS + 1}"


def render(doc: InsuranceStatus) -> Workbook:
    wb = Workbook()
    companies = layout.new_sheet(wb, "事業者別", first=True)
    _companies_sheet(companies, doc)
    workers = layout.new_sheet(wb, "技能者別")
    _workers_sheet(workers, doc)
    for ws in (companies, workers):
        ws.oddFooter.center.text = "&P / &N"
        ws.oddFooter.right.text = f"GenbaGate {doc.number}　出力日 {layout.jdate(doc.issued_on)}"
    return wb
