"""安全書類 AZ2 施工体系図, AZ6-a/AZ6-b 作業員名簿 and AZ7 社会保険加入状況 as Excel laid out like the printed
全建統一様式: every workbook is opened with openpyxl and read cell by cell (title, 現場ID, 事業者ID, a worker's
two lines, merged boxes, the connector lines), with its page set up to print (paper, orientation, print area,
repeated title rows, the font); and each party of the seed's 帳票 table gets what it may see: the 元請 the whole
chart and every company's 名簿, a company its own branch of the chart and the 名簿 of itself and the companies
below it, nobody a sibling's or an upper company's, a worker and the operator 403, a stranger 404."""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import unquote
from zoneinfo import ZoneInfo

import openpyxl
import pytest
from openpyxl.worksheet.worksheet import Worksheet
from world import Api, Company, Session, Site

from protocol.messages import Card, TapEvent
from server.exports import xlsx
from server.forms import az2, az6, az7, layout
from server.services import ingest
from server.services.companies import INSURANCE_STATES

JST = ZoneInfo("Asia/Tokyo")
NOW = datetime(2026, 5, 18, 17, 0, tzinfo=JST)
DOKO = {"major": "01", "minor": "11"}  # 土工


@dataclass
class World:
    """(株)体系建設 (元請) ─┬ (有)上位工業 (1次) ─┬ (株)下位設備 (2次) ─┬ (株)三次塗装 (3次)
                         │                    │                    └ 首都塗装 (CCUS未登録)
                         │                    └ (株)招待先 (未承認)
                         └ (株)別系統 (1次) ── (株)別系統二次 (2次)
    (株)無関係 is on no site. On the roster: a worker of each company but the 元請 and the invitee, two of
    (株)下位設備 (花子 with every personal item, 次郎 with none)."""

    api: Api
    site: Site
    prime: Company
    upper: Company
    lower: Company
    third: Company
    side: Company
    side_lower: Company
    invitee: Company
    stranger: Company
    hanako: dict[str, Any]
    jiro: dict[str, Any]
    ids: dict[str, str]  # a worker's 技能者ID by name

    def path(self, form: str) -> str:
        return f"/sites/{self.site.id}/safety-documents/{form}"

    def download(self, by: Session, form: str, **q: Any) -> Any:
        r = by.call("GET", self.path(form), **q)
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == xlsx.MEDIA_TYPE
        return r

    def book(self, by: Session, form: str, **q: Any) -> openpyxl.Workbook:
        return openpyxl.load_workbook(io.BytesIO(self.download(by, form, **q).content))

    def sheet(self, by: Session, form: str, **q: Any) -> Worksheet:
        ws = self.book(by, form, **q).active
        assert isinstance(ws, Worksheet)
        return ws


@pytest.fixture
def world(api: Api) -> World:
    api.ctx.clock = lambda: NOW.astimezone(UTC)
    prime = api.company("(株)体系建設")
    site = api.site(prime, name="体系ビル新築工事")
    upper, lower, third, side, side_lower, invitee, stranger = (api.company(n) for n in (
        "(有)上位工業", "(株)下位設備", "(株)三次塗装", "(株)別系統", "(株)別系統二次", "(株)招待先", "(株)無関係"))
    n_upper = api.registered(site, prime, site.root, upper)
    n_lower = api.registered(site, upper, n_upper, lower)
    api.registered(site, lower, n_lower, third)
    api.placeholder(site, lower, n_lower, "首都塗装")
    api.invite(site, upper, n_upper, invitee)
    n_side = api.registered(site, prime, site.root, side)
    api.registered(site, side, n_side, side_lower)

    tama = {"category": "技能講習", "name": "玉掛け"}
    harness = {"category": "特別教育", "name": "フルハーネス"}
    welder = {"category": "資格・免許", "name": "1級とび技能士"}
    hanako = api.worker(lower, "下位 花子", name_kana="かい はなこ", birth_date="1985-08-20", blood_type="A",
                        address="東京都江東区豊洲三丁目2番20号", phone="090-1234-5678",
                        health_insurance="enrolled", pension_insurance="enrolled",
                        employment_insurance="not_enrolled", kentaikyo="enrolled",
                        qualifications=[tama, harness, welder])
    api.on_roster(site, lower, hanako, position="foreman", health_checks=["dust"],
                  qualification_ids=[q["id"] for q in hanako["qualifications"]])
    jiro = api.worker(lower, "下位 次郎", trades=[DOKO], health_insurance="exempt")
    api.on_roster(site, lower, jiro, trade=DOKO)
    ids = {hanako["name"]: hanako["ccus_id"], jiro["name"]: jiro["ccus_id"]}
    for employer, name in ((upper, "上位 一郎"), (third, "三次 三郎"), (side, "別系 四郎"),
                           (side_lower, "別系 五郎")):
        w = api.worker(employer, name)
        api.on_roster(site, employer, w)
        ids[name] = w["ccus_id"]

    # 花子 came through the gate on 2026-04-13: the 作業員名簿's 入場年月日.
    prime.owner.ok("POST", f"/sites/{site.id}/devices", {"device_id": "gate-az", "name": "正門"}, status=201)
    lower.owner.ok("POST", f"/workers/{hanako['id']}/cards", {"uid": "0114AAAA00000001"}, status=201)
    for seq, day in enumerate((13, 20), 1):
        tap = TapEvent(device_id="gate-az", buffer_id="a6" * 16, seq=seq,
                       card=Card(tech="felica", uid="0114AAAA00000001"), direction="in",
                       at=datetime(2026, 4, day, 7, 55, tzinfo=JST), clock_synced=True, boot_id="b", mono_ms=seq)
        assert ingest.ingest_taps(api.ctx, "gate-az", [tap])[0].outcome == "recorded"
    return World(api, site, prime, upper, lower, third, side, side_lower, invitee, stranger, hanako, jiro, ids)


def merged(ws: Worksheet) -> set[str]:
    return {str(r) for r in ws.merged_cells.ranges}


def assert_printable(ws: Worksheet, *, paper: str, title_rows: str, area: str) -> None:
    """Set up to print as the paper form: paper and landscape, one page wide, the title rows on every page,
    the print area, and the Japanese font the forms use."""
    assert int(ws.page_setup.paperSize) == {"A4": 9, "A3": 8}[paper]  # ECMA-376's paper codes
    assert ws.page_setup.orientation == "landscape"
    assert ws.sheet_properties.pageSetUpPr.fitToPage and ws.page_setup.fitToWidth == 1
    assert ws.print_title_rows == title_rows
    assert ws.print_area == f"'{ws.title}'!{area}"
    assert ws["A1"].font.name == layout.FONT_NAME == "ＭＳ 明朝"


def file_names(r: Any) -> tuple[str, str]:
    plain, encoded = r.headers["content-disposition"].split("; filename*=UTF-8''")
    return plain.removeprefix('attachment; filename="').removesuffix('"'), unquote(encoded)


# -- AZ2 施工体系図 -----------------------------------------------------------------------------------


def boxes(ws: Worksheet) -> list[tuple[str, str, str, Any]]:
    """The chart's boxes top to bottom, left to right: (次数 heading of the box's column, 会社名, 事業者ID,
    作業員数); the 元請's block has no 作業員数 line."""
    found = []
    for row in ws.iter_rows(min_row=az2.HEADER_ROWS + 1):
        for c in row:
            if c.value in ("会社名", "元請名"):
                tier = ws.cell(row=3, column=c.column).value
                name = ws.cell(row=c.row, column=c.column + 1).value
                ccus = ws.cell(row=c.row + 1, column=c.column + 1).value
                workers = ws.cell(row=c.row + 6, column=c.column + 1).value if c.value == "会社名" else "-"
                found.append((tier, name, ccus, workers))
    return found


def test_the_prime_prints_the_whole_safety_chart_a_column_per_tier(world: World) -> None:
    r = world.download(world.prime.owner, "az2")
    assert file_names(r) == (f"safety-chart_{world.site.ccus_id}.xlsx", f"施工体系図_{world.site.ccus_id}.xlsx")
    ws = openpyxl.load_workbook(io.BytesIO(r.content)).active
    assert ws.title == "施工体系図"
    assert ws["A1"].value == "全建統一様式第3号" and ws["C1"].value == "工事作業所災害防止協議会兼施工体系図"
    assert ws["C1"].font.b and ws["C1"].font.sz == 18 and "C1:L1" in merged(ws)
    assert (ws["A2"].value, ws["B2"].value) == ("事業所の名称", "体系ビル新築工事")
    assert (ws["I2"].value, ws["J2"].value) == ("現場ID", world.site.ccus_id)
    assert [ws.cell(row=3, column=1 + 4 * t).value for t in range(4)] == ["元請", "1次", "2次", "3次"]
    assert boxes(ws) == [
        ("元請", "(株)体系建設", world.prime.ccus_id, "-"),
        ("1次", "(有)上位工業", world.upper.ccus_id, "1名"),
        ("2次", "(株)下位設備", world.lower.ccus_id, "2名"),
        ("3次", "(株)三次塗装", world.third.ccus_id, "1名"),
        ("3次", "首都塗装", "CCUS未登録", None),
        ("1次", "(株)別系統", world.side.ccus_id, "1名"),
        ("2次", "(株)別系統二次", world.side_lower.ccus_id, "1名"),
    ]  # (株)招待先 has not approved: no contract, not on the chart
    # The 元請's column holds the site and the 災害防止協議会; what is not held is an empty box.
    prime_rows = {ws.cell(row=r, column=1).value: ws.cell(row=r, column=2).value for r in range(5, 25)}
    assert prime_rows["事業所の名称"] == "体系ビル新築工事" and prime_rows["現場ID"] == world.site.ccus_id
    assert prime_rows["所在地"] == "東京都 港区 虎ノ門"
    assert {k: prime_rows[k] for k in ("発注者名", "統括安全衛生責任者", "会長", "副会長", "書記")} == dict.fromkeys(
        ("発注者名", "統括安全衛生責任者", "会長", "副会長", "書記"))
    assert ws["E5"].value == "会社名" and ws["F7"].value == "躯体工事"  # the upper's 工事名称
    assert_printable(ws, paper="A3", title_rows="$1:$4", area="$A$1:$N$29")


def test_the_chart_joins_each_company_to_the_one_above_it_with_ruled_lines(world: World) -> None:
    ws = world.sheet(world.prime.owner, "az2")
    # The 元請 (A5) and its first 1次 (E5) share their first line; (株)別系統 is the next 1次, lower down.
    side_row = next(c.row for c in ws["F"] if c.value == "(株)別系統")
    assert ws["C5"].border.bottom.style == "thin"  # from the 元請's right edge …
    assert ws["D5"].border.bottom.style == "thin"  # … straight on to its first 1次
    assert ws[f"D{side_row}"].border.bottom.style == "thin"  # the vertical line's branch to the next 1次
    assert all(ws[f"D{r}"].border.left.style == "thin" for r in range(6, side_row + 1))  # the vertical line
    assert ws[f"D{side_row + 1}"].border.left.style is None  # … which ends at the last 1次
    # (有)上位工業 → (株)下位設備 → (株)三次塗装 on one line; 首都塗装 hangs below (株)三次塗装.
    assert ws["G5"].border.bottom.style == ws["H5"].border.bottom.style == ws["L5"].border.bottom.style == "thin"
    assert ws["L13"].border.bottom.style == "thin" and ws["N13"].value == "首都塗装"
    # Each box is framed with a heavier line.
    assert ws["E5"].border.top.style == "medium" and ws["F11"].border.bottom.style == "medium"


def test_second_tier_sees_only_its_own_branch_on_the_chart(world: World) -> None:
    ws = world.sheet(world.lower.owner, "az2")
    assert boxes(ws) == [
        ("元請", "(株)体系建設", world.prime.ccus_id, "-"),
        ("1次", "(有)上位工業", world.upper.ccus_id, None),  # above it: not its workers to count
        ("2次", "(株)下位設備", world.lower.ccus_id, "2名"),
        ("3次", "(株)三次塗装", world.third.ccus_id, "1名"),
        ("3次", "首都塗装", "CCUS未登録", None),
    ]
    assert world.site.ccus_id in [c.value for c in ws[2]]
    assert (ws["A9"].value, ws["B9"].value) == ("所在地", None)  # the 元請 discloses no site item (帳票 4-1)


def test_first_tier_sees_its_branch_and_not_its_sibling_on_the_chart(world: World) -> None:
    assert [(t, n) for t, n, _, _ in boxes(world.sheet(world.side.owner, "az2"))] == [
        ("元請", "(株)体系建設"), ("1次", "(株)別系統"), ("2次", "(株)別系統二次")]
    assert [(t, n) for t, n, _, _ in boxes(world.sheet(world.third.owner, "az2"))] == [
        ("元請", "(株)体系建設"), ("1次", "(有)上位工業"), ("2次", "(株)下位設備"), ("3次", "(株)三次塗装")]


def test_a_worker_the_operator_a_stranger_and_an_invitee_get_no_chart(world: World) -> None:
    me = world.api.worker_login(world.lower, world.hanako)
    me.fail("GET", world.path("az2"), status=403, code="report_forbidden")
    world.api.operator.fail("GET", world.path("az2"), status=403, code="report_forbidden")
    world.stranger.owner.fail("GET", world.path("az2"), status=404, code="site_not_found")
    unbound = world.api.staff(world.upper, "site_manager", site_ids=[])
    unbound.fail("GET", world.path("az2"), status=404, code="site_not_found")
    world.invitee.owner.fail("GET", world.path("az2"), status=409, code="own_invitation_pending")
    world.prime.owner.fail("GET", "/sites/999999/safety-documents/az2", status=404, code="site_not_found")
    world.api.anonymous.fail("GET", world.path("az2"), status=401)


# -- AZ6-a / AZ6-b 作業員名簿 ---------------------------------------------------------------------------


def worker_lines(ws: Worksheet) -> list[list[Any]]:
    """Each worker's two lines as [upper line's cells, lower line's cells], in the table's columns."""
    out = []
    for r in range(az6.FIRST_LINE, ws.max_row + 1, 2):
        if ws.cell(row=r, column=1).value is None:
            break
        out.append([[c.value for c in ws[r]], [c.value for c in ws[r + 1]]])
    return out


def test_the_employer_prints_its_own_worker_roster_two_lines_a_worker(world: World) -> None:
    r = world.download(world.lower.owner, "az6-a")  # company_id omitted: its own
    stem = f"{world.site.ccus_id}_{world.lower.ccus_id}"
    assert file_names(r) == (f"worker-roster-a_{stem}.xlsx", f"作業員名簿_{stem}.xlsx")
    ws = openpyxl.load_workbook(io.BytesIO(r.content)).active
    assert ws.title == "作業員名簿" and ws["A1"].value == "全建統一様式第5号"
    assert ws["D1"].value == "作　業　員　名　簿" and ws["D1"].font.sz == 18
    assert (ws["O1"].value, ws["Q1"].value) == ("提出日", layout.BLANK_DATE)
    assert (ws["C3"].value, ws["D3"].value) == ("事業所の名称", "体系ビル新築工事")
    assert (ws["C4"].value, ws["D4"].value) == ("所長名", None)  # not held: filled in by hand
    assert (ws["H3"].value, ws["I3"].value) == ("現場ID", world.site.ccus_id)
    assert (ws["H4"].value, ws["I4"].value) == ("元請", "(株)体系建設")
    assert (ws["O3"].value, ws["Q3"].value) == ("一次会社名", f"(有)上位工業\n事業者ID {world.upper.ccus_id}")
    assert (ws["O4"].value, ws["Q4"].value) == ("（2次）会社名", f"(株)下位設備\n事業者ID {world.lower.ccus_id}")
    assert ws["A3"].value == "元請\n確認欄" and {"A3:A4", "B3:B4", "D3:G3", "Q3:T3"} <= merged(ws)
    assert [ws.cell(row=6, column=c).value for c in range(1, 21)] == [
        "番号", "ふりがな", "職　種", "※", "技能者ID", "生年月日", "現住所", "家族連絡先", "最近の\n健康診断日",
        "血液型", "特殊健康診断日", "社会保険", None, None, "退職金共済", None, "教育・資格・免許", None, None,
        "入場年月日"]
    assert [ws.cell(row=7, column=c).value for c in range(12, 20)] == [
        "健康保険", "年金保険", "雇用保険", "建退共", "中退共", "雇入・職長\n特別教育", "技能講習", "免　許"]
    assert [ws.cell(row=8, column=c).value for c in (2, 3, 6, 7, 20)] == [
        "氏　名", "立　場", "年　齢", "電話番号", "受入教育\n実施年月日"]

    lines = worker_lines(ws)
    assert len(lines) == 2  # one two-line block per worker on the roster
    upper, lower = lines[0]
    assert upper == [1, "かい はなこ", "とび工", "職", world.hanako["ccus_id"], "1985/8/20",
                     "東京都江東区豊洲三丁目2番20号", None, None, "A", None, "加入", "加入", "未加入", "加入", None,
                     "フルハーネス", "玉掛け", "1級とび技能士", "2026/4/13"]
    assert lower[:11] == [None, "下位 花子", "職長", None, None, "40歳", "090-1234-5678", None, None, None,
                          "粉じんに関する作業（じん肺健康診断）"]
    assert lower[19] is None  # 受入教育実施年月日: by hand
    upper, lower = lines[1]
    assert upper[:6] == [2, None, "土工", None, world.jiro["ccus_id"], None]
    assert upper[11:15] == ["適用除外", "未確認", "未確認", "未確認"] and upper[19] is None  # no gate record yet
    assert lower[1:3] == ["下位 次郎", "一般"]
    assert {"A9:A10", "D9:D10", "E9:E10", "J9:J10", "L9:L10", "Q9:Q10"} <= merged(ws)
    assert "B9:B10" not in merged(ws) and "F9:F10" not in merged(ws)  # two-line boxes are two cells
    assert ws["B10"].font.name == "ＭＳ 明朝" and ws["B10"].font.sz == 10
    # A page holds twelve workers: the rest of it is empty ruled lines to write on.
    assert ws["A13"].value is None and ws["A13"].border.left.style == "medium" and ws["T32"].border.bottom.style
    assert_printable(ws, paper="A4", title_rows="$1:$8", area="$A$1:$T$32")


def test_the_prime_sees_social_insurance_but_only_the_personal_items_both_sides_disclosed(world: World) -> None:
    ws = world.sheet(world.prime.owner, "az6-a", company_id=world.lower.id)
    upper, lower = worker_lines(ws)[0]
    assert upper[1:5] == ["かい はなこ", "とび工", "職", world.hanako["ccus_id"]]
    assert upper[5] is None and upper[6] is None and upper[9] is None  # 生年月日, 住所, 血液型: not disclosed
    assert lower[5] is None and lower[6] is None  # 年齢, 電話番号
    assert upper[11:14] == ["加入", "加入", "未加入"]  # what the 作業員名簿 holds: the companies above see it
    assert upper[14] is None  # 建退共 is a personal item of its own
    assert upper[16:19] == ["フルハーネス", "玉掛け", "1級とび技能士"] and upper[19] == "2026/4/13"

    path = f"/workers/{world.hanako['id']}/disclosure"
    world.api.worker_login(world.lower, world.hanako).ok("PUT", path, {"items": {"birth_date": True, "phone": True}})
    world.lower.owner.ok("PUT", path, {"items": {"birth_date": True}})  # the employer agrees to one of the two
    upper, lower = worker_lines(world.sheet(world.prime.owner, "az6-a", company_id=world.lower.id))[0]
    assert (upper[5], lower[5], lower[6]) == ("1985/8/20", "40歳", None)


def test_an_upper_company_prints_the_rosters_below_it_but_never_above_or_beside_it(world: World) -> None:
    w = world
    allowed = [(w.prime, w.lower), (w.prime, w.side_lower), (w.upper, w.lower), (w.upper, w.third),
               (w.lower, w.lower), (w.lower, w.third), (w.side, w.side_lower), (w.third, w.third)]
    worker = w.api.worker_login(w.lower, w.hanako)
    hidden = [(w.lower, w.upper), (w.third, w.lower), (w.side, w.lower), (w.lower, w.side), (w.upper, w.side),
              (w.upper, w.side_lower), (w.side_lower, w.side), (w.upper, w.invitee), (w.prime, w.stranger)]
    for form in ("az6-a", "az6-b", "az7"):
        for by, company in allowed:
            ws = w.book(by.owner, form, company_id=company.id).worksheets[0]
            assert company.ccus_id in str([c.value for row in ws.iter_rows(max_row=4) for c in row]), (form, by.name)
        for by, company in hidden:
            by.owner.fail("GET", w.path(form), status=404, code="company_not_found", company_id=company.id)
        w.stranger.owner.fail("GET", w.path(form), status=404, code="site_not_found", company_id=w.lower.id)
        worker.fail("GET", w.path(form), status=403, code="report_forbidden", company_id=w.lower.id)
        w.api.operator.fail("GET", w.path(form), status=403, code="report_forbidden", company_id=w.lower.id)
        w.invitee.owner.fail("GET", w.path(form), status=409, code="own_invitation_pending")
        w.prime.owner.fail("GET", w.path(form), status=422, company_id=0)


def test_a_company_asking_for_no_company_gets_its_own_roster(world: World) -> None:
    ws = world.sheet(world.upper.owner, "az6-a")
    assert [lines[1][1] for lines in worker_lines(ws)] == ["上位 一郎"]
    assert ws["Q3"].value == f"(有)上位工業\n事業者ID {world.upper.ccus_id}" and ws["Q4"].value is None
    prime = world.sheet(world.prime.owner, "az6-a")  # the 元請's own: nobody on the roster under it
    assert worker_lines(prime) == [] and prime["O4"].value == "元請会社名" and prime["Q3"].value is None


def test_the_social_insurance_version_adds_the_insurance_names_and_numbers_on_a3(world: World) -> None:
    r = world.download(world.lower.owner, "az6-b")
    stem = f"{world.site.ccus_id}_{world.lower.ccus_id}"
    assert file_names(r) == (f"worker-roster-b_{stem}.xlsx",
                             f"作業員名簿（社会保険加入状況について組込版）_{stem}.xlsx")
    ws = openpyxl.load_workbook(io.BytesIO(r.content)).active
    assert ws["D2"].value == "（社会保険加入状況について組込版）"
    assert [ws.cell(row=6, column=c).value for c in (12, 14, 16)] == ["健康保険", "年金保険", "雇用保険"]
    assert {"L6:M6", "N6:O6", "P6:Q6"} <= merged(ws)
    assert [ws.cell(row=7, column=c).value for c in range(12, 18)] == [
        "加入状況", "保険の名称", "加入状況", "保険の名称", "加入状況", "被保険者番号\n（下4けた）"]
    upper, _ = worker_lines(ws)[0]
    assert upper[11:17] == ["加入", None, "加入", None, "未加入", None]  # names and numbers: by hand
    assert upper[17] == "加入" and upper[-1] == "2026/4/13"
    assert_printable(ws, paper="A3", title_rows="$1:$8", area="$A$1:$W$32")


def test_a_long_roster_starts_a_new_page_every_twelve_workers_and_fills_the_last_with_empty_lines() -> None:
    workers = [az6.WorkerLine(name=f"作業員 {n}", ccus_id=f"8{n:013d}") for n in range(1, 14)]
    doc = az6.WorkerRoster("a", "現場", "40000000000001", "元請(株)", az6.Party("一次(株)", "10000000000002", 1),
                           az6.Party("一次(株)", "10000000000002", 1), date(2026, 5, 18), workers)
    ws = openpyxl.load_workbook(io.BytesIO(layout.to_bytes(doc.workbook()))).active
    assert [b.id for b in ws.row_breaks.brk] == [az6.HEADER_ROWS + 24]  # after the twelfth worker's two lines
    assert ws.cell(row=az6.HEADER_ROWS + 25, column=1).value == 13
    assert ws.cell(row=az6.HEADER_ROWS + 27, column=1).value is None  # the second page's empty lines
    assert ws.print_area == f"'作業員名簿'!$A$1:$T${az6.HEADER_ROWS + 48}"


def test_every_form_prints_a_name_stored_with_a_control_character_with_geta_instead_of_failing(world: World) -> None:
    """Companies and a worker named with control characters (a CCUS CSV imported before the import refused
    them): openpyxl refuses such a cell, so every form naming them was a 500. Each now opens, showing 〓
    where the control was, in the cells and in AZ5's sheet names alike."""
    with world.api.ctx.write() as uow:
        names = {world.upper.id: "(有)上位\x0c工業", world.lower.id: "(株)下位\x0b設備"}
        for company in uow.companies.by_ids(list(names)):
            company.name = names[company.id]
        (worker,) = uow.workers.by_ids([world.hanako["id"]])
        worker.name = "下位\x1f花子"
    for form in ("az1", "az2", "az3", "az4", "az5", "az6-a", "az6-b", "az7"):
        by = world.lower.owner if form in ("az6-a", "az6-b") else world.prime.owner
        book = world.book(by, form)
        texts = [str(v) for ws in book.worksheets for line in ws.iter_rows(values_only=True) for v in line if v]
        shown = " ".join([*texts, *book.sheetnames])
        assert "(有)上位〓工業" in shown, form
        assert ("(株)下位〓設備" in shown) == (form != "az1"), form  # AZ1 names the 1次 companies only
        assert not {"\x0b", "\x0c", "\x1f"} & set(shown), form
        if form in ("az6-a", "az6-b", "az7"):
            assert "下位〓花子" in texts, form
    assert "02 2次 (株)下位〓設備" in world.book(world.prime.owner, "az5").sheetnames


# -- AZ7 社会保険加入状況 --------------------------------------------------------------------------------


def test_the_social_insurance_status_counts_the_workers_of_each_company_below_the_reader(world: World) -> None:
    r = world.download(world.upper.owner, "az7")  # company_id omitted: the upper itself and what is below it
    stem = f"{world.site.ccus_id}_{world.upper.ccus_id}"
    assert file_names(r) == (f"social-insurance_{stem}.xlsx", f"社会保険加入状況_{stem}.xlsx")
    companies, workers = openpyxl.load_workbook(io.BytesIO(r.content)).worksheets
    assert (companies.title, workers.title) == ("事業者別", "技能者別")
    assert companies["A1"].value == "社会保険加入状況（事業者別）" and companies["C2"].value == "体系ビル新築工事"
    assert (companies["D2"].value, companies["E2"].value) == ("現場ID", world.site.ccus_id)
    assert companies["G2"].value == f"(有)上位工業（事業者ID {world.upper.ccus_id}）"
    assert [companies.cell(row=4, column=c).value for c in (6, 10, 14, 18)] == [
        "事業所整理記号等", "健康保険", "年金保険", "雇用保険"]
    assert [companies.cell(row=5, column=c).value for c in range(10, 14)] == list(az7.STATES)
    assert {"F4:H4", "J4:M4", "N4:Q4", "R4:U4", "A4:A5"} <= merged(companies)
    # Per company: 作業員数, then 加入 / 未加入 / 適用除外 / 未確認 for 健康保険, 年金保険 and 雇用保険. The
    # company's own 事業所整理記号等 are not held: three empty boxes.
    assert [[c.value for c in row] for row in companies.iter_rows(min_row=6)] == [
        [1, "1次", "(有)上位工業", world.upper.ccus_id, "(株)体系建設", None, None, None, 1,
         0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1],
        [2, "2次", "(株)下位設備", world.lower.ccus_id, "(有)上位工業", None, None, None, 2,
         1, 0, 1, 0, 1, 0, 0, 1, 0, 1, 0, 1],
        [3, "3次", "(株)三次塗装", world.third.ccus_id, "(株)下位設備", None, None, None, 1,
         0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1],
        [4, "3次", "首都塗装", "CCUS未登録", "(株)下位設備", None, None, None, 0,
         0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        ["合計", None, "4社", None, None, None, None, None, 4, 1, 0, 1, 2, 1, 0, 0, 3, 0, 1, 0, 3],
    ]
    ids = world.ids
    # 建退共 is a personal item: the upper sees it of its own worker only.
    assert [[c.value for c in row] for row in workers.iter_rows(min_row=6)] == [
        [1, "1次", "(有)上位工業", "上位 一郎", ids["上位 一郎"], "とび工", "未確認", "未確認", "未確認", "未確認",
         None],
        [2, "2次", "(株)下位設備", "下位 花子", ids["下位 花子"], "とび工", "加入", "加入", "未加入", None, None],
        [3, "2次", "(株)下位設備", "下位 次郎", ids["下位 次郎"], "土工", "適用除外", "未確認", "未確認", None, None],
        [4, "3次", "(株)三次塗装", "三次 三郎", ids["三次 三郎"], "とび工", "未確認", "未確認", "未確認", None, None],
    ]
    assert_printable(companies, paper="A4", title_rows="$1:$5", area="$A$1:$U$10")
    assert_printable(workers, paper="A4", title_rows="$1:$5", area="$A$1:$K$9")


def test_the_prime_sees_the_whole_sites_social_insurance_and_an_employer_its_workers_kentaikyo(world: World) -> None:
    book = world.book(world.prime.owner, "az7")
    assert [row[2].value for row in book["事業者別"].iter_rows(min_row=6)] == [
        "(株)体系建設", "(有)上位工業", "(株)下位設備", "(株)三次塗装", "首都塗装", "(株)別系統", "(株)別系統二次",
        "7社"]
    mine = world.book(world.lower.owner, "az7")["技能者別"]
    assert [(row[3].value, row[9].value) for row in mine.iter_rows(min_row=6)] == [
        ("下位 花子", "加入"), ("下位 次郎", "未確認"), ("三次 三郎", None)]
    assert set(INSURANCE_STATES.values()) == set(az7.STATES)  # the service's labels are the form's columns
