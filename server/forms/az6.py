"""AZ6-a 作業員名簿 and AZ6-b 作業員名簿（社会保険加入状況について組込版）: 全建統一様式 第5号.

One company's workers on one site, two lines a worker as on the printed form (ふりがな over 氏名, 生年月日
over 年齢, 現住所 over 電話番号, …), twelve workers a page, the header block and the column headings
repeated on every page, the last page filled up with empty ruled lines to write on. 6-b is the same
form with the social-insurance columns of the 2020 revision: 保険の名称 and 被保険者番号 (下4けた) next to
each insurance's status.

Everything this product does not hold (所長名, 家族連絡先, 健康診断日, 血圧, the insurances' names and
numbers, 中退共, 受入教育実施年月日) and every item the reader may not see (the service left it None)
prints as an empty box: the form is finished by hand, as sites do today.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Literal

from openpyxl import Workbook
from openpyxl.styles import Alignment, Border, PatternFill, Side
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

from server.forms import layout

Variant = Literal["a", "b"]
TITLE = "作業員名簿"
TITLES: dict[Variant, str] = {"a": TITLE, "b": "作業員名簿（社会保険加入状況について組込版）"}
FORM_NAME = "全建統一様式第5号"
WORKERS_PER_PAGE = 12
HEADER_ROWS = 8  # title, header block, legend and the three heading rows: repeated on every page
FIRST_LINE = HEADER_ROWS + 1
LINE_HEIGHT = 22  # points: room for two lines of small print (an address) or a hand-written entry
LABEL_FILL = PatternFill("solid", fgColor="F2F2F2")
HAIR = Side(style="hair", color="000000")  # the dotted rule between a box's two lines, as on the printed form

# ※欄: the form's marks for a worker's role on the site, from the roster's 立場 where one matches.
MARKS = {"site_agent": "現", "chief_engineer": "主", "foreman": "職", "safety_officer": "安",
         "foreman_safety": "職・安", "safety_manager": "元"}
LEGEND = ("※欄の記号　現：現場代理人　作：作業主任者　女：女性　年：年少者　職：職長　安：安全衛生責任者　"
          "能：能力向上教育　再：危険有害業務・再発防止教育　主：主任技術者　元：元方安全衛生管理者　"
          "習：外国人技能実習生　就：外国人建設就労者　1特：1号特定技能外国人　"
          "／　空欄は未登録または開示されていない項目です（手書きで記入）")


@dataclass(frozen=True)
class Party:
    """A company as a form's header prints it."""

    name: str
    ccus_id: str
    tier: int


@dataclass(frozen=True)
class WorkerLine:
    """One worker's two lines. None or empty: not held, or not for this reader's eyes: an empty box."""

    name: str
    ccus_id: str
    name_kana: str | None = None
    trade: str | None = None  # 職種 on this site (小分類)
    position: str | None = None  # 立場 code (the ※ mark)
    position_label: str | None = None
    birth_date: date | None = None
    age: int | None = None
    address: str | None = None
    phone: str | None = None
    blood_type: str | None = None
    special_checks: tuple[str, ...] = ()  # 特殊健康診断の種類
    health: str | None = None  # 加入 / 未加入 / 適用除外
    pension: str | None = None
    employment: str | None = None
    kentaikyo: str | None = None
    qualifications: tuple[tuple[str, str], ...] = ()  # (category, name)
    first_day: date | None = None  # the first 就業履歴 on this site: 入場年月日


@dataclass(frozen=True)
class WorkerRoster:
    """The data of one 作業員名簿: the site, the company and its 一次 above it, the workers."""

    variant: Variant
    site_name: str
    site_ccus_id: str
    prime_name: str | None
    company: Party
    first_tier: Party | None
    issued_on: date
    workers: list[WorkerLine] = field(default_factory=list)

    @property
    def number(self) -> str:
        return f"AZ6-{self.variant}"

    @property
    def title(self) -> str:
        return TITLES[self.variant]

    @property
    def file_stem(self) -> str:
        return f"{self.title}_{self.site_ccus_id}_{self.company.ccus_id}"

    @property
    def ascii_stem(self) -> str:
        return f"worker-roster-{self.variant}_{self.site_ccus_id}_{self.company.ccus_id}"

    def workbook(self) -> Workbook:
        return render(self)


# -- the columns ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Col:
    """A column: ``top``/``bottom`` headings of a two-line column, or ``top`` alone for a one-line one;
    ``group``: the heading it shares with its neighbours (社会保険, 教育・資格・免許)."""

    key: str
    width: float
    top: str
    bottom: str | None = None
    group: str | None = None


def _columns(variant: Variant) -> list[Col]:
    if variant == "a":
        insurance = [Col("health", 6.5, "健康保険", group="社会保険"),
                     Col("pension", 6.5, "年金保険", group="社会保険"),
                     Col("employment", 6.5, "雇用保険", group="社会保険")]
    else:
        insurance = [
            Col("health", 6.5, "加入状況", group="健康保険"), Col("health_name", 10, "保険の名称", group="健康保険"),
            Col("pension", 6.5, "加入状況", group="年金保険"), Col("pension_name", 10, "保険の名称", group="年金保険"),
            Col("employment", 6.5, "加入状況", group="雇用保険"),
            Col("employment_no", 10, "被保険者番号\n（下4けた）", group="雇用保険"),
        ]
    return [
        Col("no", 3.5, "番号"),
        Col("name", 14, "ふりがな", "氏　名"),
        Col("trade", 11, "職　種", "立　場"),
        Col("mark", 4, "※"),
        Col("id", 13.5, "技能者ID"),
        Col("birth", 10, "生年月日", "年　齢"),
        Col("address", 21, "現住所", "電話番号"),
        Col("family", 11, "家族連絡先", "電話番号"),
        Col("checkup", 9.5, "最近の\n健康診断日", "血　圧"),
        Col("blood", 4.5, "血液型"),
        Col("special", 11, "特殊健康診断日", "種　類"),
        *insurance,
        Col("kentaikyo", 5.5, "建退共", group="退職金共済"),
        Col("chutaikyo", 5.5, "中退共", group="退職金共済"),
        Col("education", 10, "雇入・職長\n特別教育", group="教育・資格・免許"),
        Col("course", 10, "技能講習", group="教育・資格・免許"),
        Col("license", 10, "免　許", group="教育・資格・免許"),
        Col("entry", 10.5, "入場年月日", "受入教育\n実施年月日"),
    ]


def sdate(d: date | None) -> str:
    """A date in a narrow column: 1985/4/12."""
    return f"{d.year}/{d.month}/{d.day}" if d is not None else ""


def _qualifications(w: WorkerLine, kind: str) -> str:
    """The worker's qualifications in one of the form's three columns, by the category they were
    registered under (free text: 特別教育, 技能講習, 資格・免許, 技能士, …)."""
    def column(category: str) -> str:
        if "教育" in category:
            return "education"
        return "course" if "講習" in category else "license"
    return "、".join(name for category, name in w.qualifications if column(category) == kind)


def _cells(w: WorkerLine, n: int) -> dict[str, str | int | tuple[str, str]]:
    """What each column prints for a worker: one value over both lines, or (upper, lower)."""
    return {
        "no": n,
        "name": (w.name_kana or "", w.name),
        "trade": (w.trade or "", w.position_label or ""),
        "mark": MARKS.get(w.position or "", ""),
        "id": w.ccus_id,
        "birth": (sdate(w.birth_date), f"{w.age}歳" if w.age is not None else ""),
        "address": (w.address or "", w.phone or ""),
        "family": ("", ""),
        "checkup": ("", ""),
        "blood": w.blood_type or "",
        "special": ("", "、".join(w.special_checks)),
        "health": w.health or "",
        "pension": w.pension or "",
        "employment": w.employment or "",
        "kentaikyo": w.kentaikyo or "",
        "education": _qualifications(w, "education"),
        "course": _qualifications(w, "course"),
        "license": _qualifications(w, "license"),
        "entry": (sdate(w.first_day), ""),
    }


# -- drawing ---------------------------------------------------------------------------------------------


def _label(ws: Worksheet, cells: str, text: str) -> None:
    layout.box(ws, cells, text, size=8)
    ws[cells.split(":")[0]].fill = LABEL_FILL


def _header(ws: Worksheet, doc: WorkerRoster, cols: Sequence[Col]) -> None:
    """Rows 1 to 5: form name, title and 提出日; 元請確認欄, 事業所の名称, 所長名, 現場ID, the 元請, the
    一次 company and the company itself (with their 事業者ID); the legend of the ※ marks."""
    keys = [c.key for c in cols]

    def col(key: str) -> str:
        return str(get_column_letter(keys.index(key) + 1))

    last = get_column_letter(len(cols))
    before_kentaikyo = get_column_letter(keys.index("kentaikyo"))
    layout.box(ws, f"A1:{col('trade')}1", FORM_NAME, size=8, align="left", border=None)
    layout.box(ws, f"{col('mark')}1:{before_kentaikyo}1", "作　業　員　名　簿", size=18, bold=True, border=None)
    _label(ws, f"{col('kentaikyo')}1:{col('chutaikyo')}1", "提出日")
    layout.box(ws, f"{col('education')}1:{last}1", layout.BLANK_DATE, size=10)
    subtitle = "（社会保険加入状況について組込版）" if doc.variant == "b" else ""
    layout.box(ws, f"{col('mark')}2:{before_kentaikyo}2", subtitle, size=10, border=None)

    # 元請確認欄: the 元請's stamp, by hand.
    layout.box(ws, "A3:A4", "元請\n確認欄", size=7)
    ws["A3"].fill = LABEL_FILL
    layout.box(ws, f"{col('name')}3:{col('name')}4", None)
    _label(ws, f"{col('trade')}3", "事業所の名称")
    layout.box(ws, f"{col('mark')}3:{col('address')}3", doc.site_name, size=10, align="left")
    _label(ws, f"{col('trade')}4", "所長名")
    layout.box(ws, f"{col('mark')}4:{col('address')}4", None)
    _label(ws, f"{col('family')}3", "現場ID")
    layout.box(ws, f"{col('checkup')}3:{before_kentaikyo}3", doc.site_ccus_id, size=10)
    _label(ws, f"{col('family')}4", "元請")
    layout.box(ws, f"{col('checkup')}4:{before_kentaikyo}4", doc.prime_name or "", size=9, align="left")

    first, company = doc.first_tier, doc.company
    second_label = "元請会社名" if company.tier == 0 else f"（{company.tier}次）会社名"
    _label(ws, f"{col('kentaikyo')}3:{col('chutaikyo')}3", "一次会社名")
    layout.box(ws, f"{col('education')}3:{last}3", _party(first), size=8, align="left")
    _label(ws, f"{col('kentaikyo')}4:{col('chutaikyo')}4", second_label)
    layout.box(ws, f"{col('education')}4:{last}4", _party(company if company.tier != 1 else None), size=8,
               align="left")
    layout.box(ws, f"A5:{last}5", LEGEND, size=7, align="left", border=None)


def _party(p: Party | None) -> str:
    return f"{p.name}\n事業者ID {p.ccus_id}" if p is not None else ""


def _headings(ws: Worksheet, cols: Sequence[Col]) -> None:
    """Rows 6 to 8: a group's heading over its columns (row 6), two-line columns' headings over their
    upper line (6-7) and lower line (8), one-line columns' heading over all three."""
    groups: dict[str, list[int]] = {}
    for i, c in enumerate(cols, 1):
        letter = get_column_letter(i)
        if c.group is not None:
            groups.setdefault(c.group, []).append(i)
            _label(ws, f"{letter}7:{letter}8", c.top)
        elif c.bottom is not None:
            _label(ws, f"{letter}6:{letter}7", c.top)
            _label(ws, f"{letter}8", c.bottom)
            ws[f"{letter}8"].font = layout.font(7)
        else:
            _label(ws, f"{letter}6:{letter}8", c.top)
    for name, idx in groups.items():
        _label(ws, f"{get_column_letter(idx[0])}6:{get_column_letter(idx[-1])}6", name)


def _blank(cols: Sequence[Col]) -> dict[str, str | int | tuple[str, str]]:
    """An empty worker's lines to write on by hand, ruled like a filled one."""
    return {c.key: ("", "") if c.bottom is not None else "" for c in cols}


def _line(ws: Worksheet, cols: Sequence[Col], row: int, values: dict[str, str | int | tuple[str, str]]) -> None:
    for i, c in enumerate(cols, 1):
        letter = get_column_letter(i)
        v = values.get(c.key, "")
        left = c.key in ("address", "education", "course", "license", "special", "family")
        if isinstance(v, tuple):
            upper, lower = v
            small = c.key == "name"
            layout.box(ws, f"{letter}{row}", upper or None, size=7 if small or left else 8,
                       align="left" if left else "center")
            layout.box(ws, f"{letter}{row + 1}", lower or None, size=10 if small else 8,
                       align="left" if left else "center")
            ws[f"{letter}{row}"].border = Border(left=layout.THIN, right=layout.THIN, top=layout.THIN, bottom=HAIR)
            ws[f"{letter}{row + 1}"].border = Border(left=layout.THIN, right=layout.THIN, top=HAIR,
                                                     bottom=layout.THIN)
        else:
            layout.box(ws, f"{letter}{row}:{letter}{row + 1}", v if v != "" else None, size=8,
                       align="left" if left else "center")
            if c.key in ("education", "course", "license"):
                ws[f"{letter}{row}"].font = layout.font(7)


def render(doc: WorkerRoster) -> Workbook:
    wb = Workbook()
    ws = layout.new_sheet(wb, TITLE, paper="A4" if doc.variant == "a" else "A3", first=True)
    cols = _columns(doc.variant)
    last = get_column_letter(len(cols))
    layout.widths(ws, [c.width for c in cols])
    _header(ws, doc, cols)
    _headings(ws, cols)
    layout.heights(ws, [1], 30)
    layout.heights(ws, [2], 16)
    layout.heights(ws, [3, 4], 26)
    layout.heights(ws, [5], 22)
    layout.heights(ws, [6, 7], 14)
    layout.heights(ws, [8], 20)
    ws["A5"].alignment = Alignment(horizontal="left", vertical="center", wrap_text=True)

    lines = max(1, -(-len(doc.workers) // WORKERS_PER_PAGE)) * WORKERS_PER_PAGE
    blank = _blank(cols)
    row = FIRST_LINE
    for n in range(lines):
        values = _cells(doc.workers[n], n + 1) if n < len(doc.workers) else blank
        _line(ws, cols, row, values)
        layout.heights(ws, [row, row + 1], LINE_HEIGHT)
        if (n + 1) % WORKERS_PER_PAGE == 0 and n + 1 < lines:
            layout.page_break_after(ws, row + 1)
        row += 2
    layout.outline(ws, f"A6:{last}{row - 1}")
    layout.print_titles(ws, f"1:{HEADER_ROWS}", f"A1:{last}{row - 1}")
    ws.freeze_panes = f"A{FIRST_LINE}"
    ws.oddFooter.center.text = "&P / &N"
    ws.oddFooter.right.text = f"GenbaGate {doc.number}　出力日 {layout.jdate(doc.issued_on)}"
    return wb
