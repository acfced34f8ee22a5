"""安全書類 AZ1 施工体制台帳, AZ3 施工体制台帳（工事担当技術者）, AZ4 下請負業者編成表 and AZ5 再下請負通知書 as
Excel laid out as the printed forms: every workbook is read back with openpyxl and checked cell by cell
(title, 現場ID, 事業者ID, each company's block, merged boxes, print area, paper and orientation, repeated
title rows, the font), and each party of the seed's 帳票 table gets what it may see (元請, 1次, 2次 above a
3次, the company itself, a lower one, a sibling branch, an invitee, a stranger, the worker). As on AZ2, only
登録 companies are printed: the 未承認 invitee is on no form."""

from __future__ import annotations

import io
import re
import shutil
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import openpyxl
import pytest
from openpyxl.worksheet.worksheet import Worksheet
from world import Api, Company, Session, Site

from server.forms import layout

NOW = datetime(2026, 6, 15, 3, 0, tzinfo=UTC)  # 2026-06-15 12:00 JST
TODAY = "2026年6月15日"
PERIOD = "2026年4月1日 ～ 2027年9月30日"


@dataclass
class World:
    """(株)台帳建設 (元請) ─┬ (有)一次工業 (1次) ─┬ (株)二次設備 (2次) ── (株)三次塗装 (3次)
                         │                     ├ 首都𠮷塗装 (2次, CCUS未登録)
                         │                     └ (株)招待先 (2次, 未承認)
                         └ (株)別系統 (1次)
    and (株)無関係 on no site. On the roster: the 元請's 現場代理人 and 監理技術者, the 1次's 主任技術者
    and 安全衛生責任者, the 2次's 主任技術者 (with a qualification) and a worker of the 3次."""

    api: Api
    site: Site
    prime: Company
    first: Company
    second: Company
    third: Company
    side: Company
    invitee: Company
    stranger: Company
    worker: dict[str, Any]

    def get(self, by: Session, form: str, **q: Any) -> Any:
        return by.call("GET", f"/sites/{self.site.id}/safety-documents/{form}", **q)

    def book(self, by: Session, form: str, **q: Any) -> openpyxl.Workbook:
        r = self.get(by, form, **q)
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == layout.MEDIA_TYPE
        return openpyxl.load_workbook(io.BytesIO(r.content))

    def sheet(self, by: Session, form: str, **q: Any) -> Worksheet:
        ws = self.book(by, form, **q).active
        assert isinstance(ws, Worksheet)
        return ws

    def refused(self, by: Session, form: str, status: int, code: str, **q: Any) -> None:
        by.fail("GET", f"/sites/{self.site.id}/safety-documents/{form}", status=status, code=code, **q)


@pytest.fixture
def world(api: Api) -> World:
    api.ctx.clock = lambda: NOW
    facts = {"representative": "代表 一郎", "address": "東京都千代田区丸の内1-1",
             "permit_number": "国土交通大臣（特-5）第1234号"}
    prime = api.company("(株)台帳建設", **facts)
    site = api.site(prime, name="台帳ビル新築工事")
    first, second, third, side, invitee, stranger = (api.company(n, **facts) for n in (
        "(有)一次工業", "(株)二次設備", "(株)三次塗装", "(株)別系統", "(株)招待先", "(株)無関係"))
    n_first = api.registered(site, prime, site.root, first)
    n_second = api.invite(site, first, n_first, second)
    second.owner.ok("POST", f"/hierarchy/{n_second}/approve",
                    {"work_name": "電気設備工事", "work_content": "幹線・動力"})
    api.registered(site, second, n_second, third)
    api.placeholder(site, first, n_first, "首都𠮷塗装")
    api.invite(site, first, n_first, invitee)
    api.registered(site, prime, site.root, side)
    for company, name, position in ((prime, "代理 太郎", "site_agent"), (prime, "監理 花子", "supervising_engineer"),
                                    (first, "主任 一郎", "chief_engineer"), (first, "安全 次郎", "safety_officer")):
        api.on_roster(site, company, api.worker(company, name), position=position)
    chief = api.worker(second, "主任 二郎",
                       qualifications=[{"category": "資格・免許", "name": "1級電気工事施工管理技士"}])
    api.on_roster(site, second, chief, position="chief_engineer",
                  qualification_ids=[chief["qualifications"][0]["id"]])
    worker = api.worker(third, "三次 作業員")
    api.on_roster(site, third, worker)
    return World(api, site, prime, first, second, third, side, invitee, stranger, worker)


def after(ws: Worksheet, label: str) -> list[Any]:
    """The value right of every box labelled ``label`` (a label box may be merged), in sheet order."""
    merged = {r.min_row * 10_000 + r.min_col: r for r in ws.merged_cells.ranges}
    out = []
    for row in ws.iter_rows():
        for c in row:
            if c.value == label:
                rng = merged.get(c.row * 10_000 + c.column)
                out.append(ws.cell(row=c.row, column=(rng.max_col if rng else c.column) + 1).value)
    return out


def cell_of(ws: Worksheet, value: Any) -> str:
    return str(next(c.coordinate for row in ws.iter_rows() for c in row if c.value == value))


def assert_printed_form(ws: Worksheet, *, paper: str, title_rows: str, last_col: str) -> None:
    """Set up to print as the form: paper, landscape, one page wide, repeated title rows, print area,
    the forms' Japanese font, no grid lines."""
    assert int(ws.page_setup.paperSize) == int(ws.PAPERSIZE_A3 if paper == "A3" else ws.PAPERSIZE_A4)
    assert ws.page_setup.orientation == "landscape" and ws.page_setup.fitToWidth == 1
    assert ws.sheet_properties.pageSetUpPr.fitToPage
    assert ws.print_title_rows == title_rows
    assert ws.print_area == f"'{ws.title}'!$A$1:${last_col}${ws.max_row}"
    assert ws["A1"].font.name == layout.FONT_NAME == "ＭＳ 明朝" and ws["A1"].font.b
    assert not ws.sheet_view.showGridLines


def disposition(r: Any) -> tuple[str, str]:
    plain, encoded = r.headers["content-disposition"].split("; filename*=UTF-8''")
    return plain, unquote(encoded)


# --- AZ1 施工体制台帳 -------------------------------------------------------------------------------------


def test_the_prime_prints_the_construction_ledger_with_its_block_and_a_page_per_first_tier_company(
        world: World) -> None:
    r = world.get(world.prime.owner, "az1")
    assert r.status_code == 200, r.text
    assert disposition(r) == (f'attachment; filename="construction-ledger_{world.site.ccus_id}.xlsx"',
                              f"施工体制台帳_{world.site.ccus_id}.xlsx")
    ws = openpyxl.load_workbook(io.BytesIO(r.content)).active
    assert ws.title == "施工体制台帳" and ws["A1"].value == "施工体制台帳" and ws["N1"].value == "帳票NO AZ1"
    assert {"A1:M1", "A3:B3", "C3:D3"} <= {str(m) for m in ws.merged_cells.ranges}
    assert_printed_form(ws, paper="A4", title_rows="$1:$3", last_col="P")
    assert after(ws, "現場ID") == [world.site.ccus_id, world.site.ccus_id]  # the title line and the 元請's block
    assert after(ws, "出力日") == [TODAY]
    assert after(ws, "会社名") == ["(株)台帳建設", "(有)一次工業", "(株)別系統"]
    assert after(ws, "事業者ID") == [world.prime.ccus_id, world.first.ccus_id, world.side.ccus_id]
    assert after(ws, "工事名称") == ["台帳ビル新築工事", "台帳ビル新築工事"]
    assert after(ws, "工期") == [PERIOD, None, None]  # the site's; a 下請負人's own is written by hand
    assert after(ws, "建設業許可番号") == ["国土交通大臣（特-5）第1234号"] * 3
    assert after(ws, "代表者名") == ["代表 一郎"] * 3
    assert after(ws, "現場代理人名") == ["代理 太郎", None, None]
    assert after(ws, "監理技術者名・主任技術者名") == ["監理 花子"]
    assert after(ws, "主任技術者名") == ["主任 一郎", None]
    assert after(ws, "安全衛生責任者名") == ["安全 次郎", None]
    assert after(ws, "工事名称及び工事内容") == ["躯体工事\n一式", "躯体工事\n一式"]
    # What GenbaGate does not hold is a ruled box left empty, to fill in by hand.
    for label in ("契約日", "発注者名及び住所", "監督員名", "専門技術者名", "雇用保険"):
        values = after(ws, label)
        assert values and all(v is None for v in values), label
    empty = ws[cell_of(ws, "契約日")].offset(column=2)
    assert empty.value is None and empty.border.left.style == "thin" and empty.border.top.style == "thin"
    # Each 1次 company on its own printed page, its block below the page break.
    breaks = [b.id for b in ws.row_breaks.brk]
    heads = [c.row for row in ws.iter_rows() for c in row
             if isinstance(c.value, str) and c.value.startswith("【下請負人】")]
    assert [h - 1 for h in heads] == breaks and len(breaks) == 2
    assert ws.cell(row=heads[0], column=1).value == "【下請負人】 1次"
    # Neither the 2次 nor anything below a 1次 is a block of the ledger (they file AZ5).
    texts = {c.value for row in ws.iter_rows() for c in row}
    assert not texts & {"(株)二次設備", "(株)三次塗装", "首都𠮷塗装", "(株)招待先"}


def test_a_first_tier_company_sees_the_primes_block_and_its_own_but_not_its_sibling_nor_the_primes_staff(
        world: World) -> None:
    ws = world.sheet(world.first.owner, "az1")
    assert after(ws, "会社名") == ["(株)台帳建設", "(有)一次工業"]
    assert after(ws, "主任技術者名") == ["主任 一郎"]
    # The 元請's roster is not the 1次's to read, nor its undisclosed site facts (4-1): empty boxes.
    assert after(ws, "現場代理人名") == [None, None] and after(ws, "監理技術者名・主任技術者名") == [None]
    assert after(ws, "工期") == [None, None] and after(ws, "現場の住所") == [None]
    side = world.sheet(world.side.owner, "az1")
    assert after(side, "会社名") == ["(株)台帳建設", "(株)別系統"]


def test_the_period_the_prime_discloses_prints_on_a_first_tier_companys_ledger(world: World) -> None:
    world.prime.owner.ok("PATCH", f"/sites/{world.site.id}", {"disclosed_items": ["period", "address"]})
    ws = world.sheet(world.first.owner, "az1")
    assert after(ws, "工期") == [PERIOD, None] and after(ws, "現場の住所") == ["東京都 港区 虎ノ門"]


def test_second_tier_may_not_open_the_construction_ledger(world: World) -> None:
    for by in (world.second.owner, world.third.owner):
        world.refused(by, "az1", 403, "report_forbidden")
    world.refused(world.invitee.owner, "az1", 409, "own_invitation_pending")
    world.refused(world.api.worker_login(world.third, world.worker), "az1", 403, "report_forbidden")
    world.refused(world.stranger.owner, "az1", 404, "site_not_found")
    world.refused(world.api.staff(world.first, "site_manager", site_ids=[]), "az1", 404, "site_not_found")
    world.refused(world.api.operator, "az1", 403, "report_forbidden")


# --- AZ3 施工体制台帳（工事担当技術者） -------------------------------------------------------------------


def rows_of(ws: Worksheet, first: int = 7) -> list[list[Any]]:
    return [[c.value for c in row] for row in ws.iter_rows(min_row=first)]


def test_the_prime_lists_each_companys_engineers_with_their_qualifications(world: World) -> None:
    r = world.get(world.prime.owner, "az3")
    assert disposition(r)[1] == f"施工体制台帳（工事担当技術者）_{world.site.ccus_id}.xlsx"
    ws = openpyxl.load_workbook(io.BytesIO(r.content)).active
    assert ws["A1"].value == "施工体制台帳（工事担当技術者）" and ws["K1"].value == "帳票NO AZ3"
    assert_printed_form(ws, paper="A4", title_rows="$1:$6", last_col="M")
    assert after(ws, "現場ID") == [world.site.ccus_id] and [ws["H3"].value, ws["J3"].value] == ["元請", "(株)台帳建設"]
    assert [ws["G5"].value, ws["K5"].value, ws["H6"].value, ws["J6"].value] == [
        "監理技術者・主任技術者", "専門技術者", "氏名", "資格内容"]
    assert {"G5:J5", "K5:M5", "A5:A6", "C5:C6"} <= {str(m) for m in ws.merged_cells.ranges}
    assert rows_of(ws) == [
        [1, "元請", "(株)台帳建設", world.prime.ccus_id, None, None, "監理技術者", "監理 花子", None, None, None, None,
         None],
        [2, "1次", "(有)一次工業", world.first.ccus_id, "(株)台帳建設", "躯体工事\n一式", "主任技術者", "主任 一郎",
         None, None, None, None, None],
        [3, "2次", "(株)二次設備", world.second.ccus_id, "(有)一次工業", "電気設備工事\n幹線・動力", "主任技術者",
         "主任 二郎", None, "1級電気工事施工管理技士", None, None, None],
        [4, "3次", "(株)三次塗装", world.third.ccus_id, "(株)二次設備", "躯体工事\n一式", None, None, None, None, None,
         None, None],
        [5, "2次", "首都𠮷塗装", "CCUS未登録", "(有)一次工業", None, None, None, None, None, None, None, None],
        [6, "1次", "(株)別系統", world.side.ccus_id, "(株)台帳建設", "躯体工事\n一式", None, None, None, None, None,
         None, None],
    ]
    assert ws["H9"].border.bottom.style == "thin" and ws["M12"].border.right.style == "medium" and ws.max_row == 12


def test_a_company_sees_only_its_own_branch_on_the_engineers_ledger(world: World) -> None:
    def companies(by: Session) -> list[str]:
        return [r[2] for r in rows_of(world.sheet(by, "az3"))]

    assert companies(world.second.owner) == ["(株)台帳建設", "(有)一次工業", "(株)二次設備", "(株)三次塗装"]
    assert companies(world.third.owner) == ["(株)台帳建設", "(有)一次工業", "(株)二次設備", "(株)三次塗装"]
    assert companies(world.first.owner) == [
        "(株)台帳建設", "(有)一次工業", "(株)二次設備", "(株)三次塗装", "首都𠮷塗装"]
    assert companies(world.side.owner) == ["(株)台帳建設", "(株)別系統"]
    # The companies above print, their engineers do not: their roster is not the reader's to see.
    ws = world.sheet(world.second.owner, "az3")
    assert [(r[6], r[7]) for r in rows_of(ws)] == [(None, None), (None, None), ("主任技術者", "主任 二郎"),
                                                   (None, None)]


def test_the_engineers_ledger_is_refused_to_the_worker_an_invitee_and_not_shown_to_a_stranger(world: World) -> None:
    world.refused(world.api.worker_login(world.third, world.worker), "az3", 403, "report_forbidden")
    world.refused(world.invitee.owner, "az3", 409, "own_invitation_pending")  # on no form until it approves
    world.refused(world.stranger.owner, "az3", 404, "site_not_found")


# --- AZ4 下請負業者編成表 ------------------------------------------------------------------------------------


def test_the_subcontractor_chart_puts_each_company_in_its_tiers_column_joined_to_the_one_above(world: World) -> None:
    r = world.get(world.prime.owner, "az4")
    assert disposition(r) == (f'attachment; filename="subcontractor-chart_{world.site.ccus_id}.xlsx"',
                              f"下請負業者編成表_{world.site.ccus_id}.xlsx")
    ws = openpyxl.load_workbook(io.BytesIO(r.content)).active
    assert ws["A1"].value == "下請負業者編成表" and ws["A2"].value == "全建統一様式第1号-乙"
    assert_printed_form(ws, paper="A3", title_rows="$1:$5", last_col="N")
    assert [ws["A5"].value, ws["E5"].value, ws["I5"].value, ws["M5"].value] == ["元請", "1次下請", "2次下請", "3次下請"]
    assert after(ws, "現場ID") == [world.site.ccus_id] and after(ws, "出力日") == [TODAY]
    # A box is 6 lines, a box height 7 rows: the first subcontractor level with its upper company.
    assert [(ws[f"A{r}"].value, ws[f"B{r}"].value) for r in range(7, 13)] == [
        ("会社名", "(株)台帳建設"), ("事業者ID", world.prime.ccus_id), ("工事名称", "台帳ビル新築工事"),
        ("工期", PERIOD), ("監理技術者", "監理 花子"), ("元方安全衛生管理者", None)]
    assert [(ws[f"E{r}"].value, ws[f"F{r}"].value) for r in range(7, 13)] == [
        ("会社名", "(有)一次工業"), ("事業者ID", world.first.ccus_id), ("工事内容", "躯体工事\n一式"), ("工期", None),
        ("主任技術者", "主任 一郎"), ("安全衛生責任者", "安全 次郎")]
    assert (ws["J7"].value, ws["J11"].value, ws["N7"].value, ws["N8"].value) == (
        "(株)二次設備", "主任 二郎", "(株)三次塗装", world.third.ccus_id)
    assert (ws["J14"].value, ws["J15"].value, ws["F21"].value) == ("首都𠮷塗装", "CCUS未登録", "(株)別系統")
    assert "(株)招待先" not in {c.value for row in ws.iter_rows() for c in row}  # 未承認: on no form yet
    assert ws["A8"].border.left.style == "medium" and ws["F12"].border.bottom.style == "medium"
    # The lines: from the 元請 across to the first 1次, down to the last, across into each.
    assert ws["C9"].border.bottom.style == "thin" and ws["D9"].border.bottom.style == "thin"
    assert all(ws[f"C{r}"].border.right.style == "thin" for r in range(10, 24))
    assert ws["C24"].border.right.style is None and ws["D23"].border.bottom.style == "thin"
    # The 1次 to its two 2次 (rows 9, 16), the 2次 to its 3次 (row 9), none from a leaf.
    assert [ws[f"H{r}"].border.bottom.style for r in (9, 16)] == ["thin"] * 2
    assert ws["G16"].border.right.style == "thin" and ws["G17"].border.right.style is None
    assert ws["L9"].border.bottom.style == "thin" and ws["L16"].border.bottom.style is None
    assert ws.max_row == 26


def test_a_lower_company_charts_its_branch_and_the_path_to_the_prime(world: World) -> None:
    ws = world.sheet(world.third.owner, "az4")
    assert [ws["B7"].value, ws["F7"].value, ws["J7"].value, ws["N7"].value] == [
        "(株)台帳建設", "(有)一次工業", "(株)二次設備", "(株)三次塗装"]
    assert ws.max_row == 12  # one box height: nobody beside it
    texts = {c.value for row in ws.iter_rows() for c in row}
    assert not texts & {"(株)別系統", "首都𠮷塗装", "監理 花子", "主任 二郎"}
    world.refused(world.api.worker_login(world.third, world.worker), "az4", 403, "report_forbidden")
    world.refused(world.stranger.owner, "az4", 404, "site_not_found")
    world.refused(world.invitee.owner, "az4", 409, "own_invitation_pending")


# --- AZ5 再下請負通知書（変更届） -------------------------------------------------------------------------


def notice(ws: Worksheet) -> dict[str, Any]:
    return {"upper": after(ws, "直近上位の注文者名")[0], "prime": after(ws, "元請名称")[0],
            "companies": after(ws, "会社名"), "ids": after(ws, "事業者ID")[2:]}


def test_the_prime_gets_a_notice_per_subcontractor_with_its_upper_and_the_companies_it_contracted(
        world: World) -> None:
    r = world.get(world.prime.owner, "az5")
    assert disposition(r)[1] == f"再下請負通知書（変更届）_{world.site.ccus_id}.xlsx"
    wb = openpyxl.load_workbook(io.BytesIO(r.content))
    assert wb.sheetnames == ["01 1次 (有)一次工業", "02 2次 (株)二次設備", "03 3次 (株)三次塗装", "04 2次 首都𠮷塗装",
                             "05 1次 (株)別系統"]  # not the 招待先: it approved nothing yet
    first = wb["01 1次 (有)一次工業"]
    assert first["A1"].value == "再下請負通知書（変更届）" and first["A2"].value == "全建統一様式第1号-甲"
    assert_printed_form(first, paper="A4", title_rows="$1:$3", last_col="P")
    assert after(first, "現場ID") == [world.site.ccus_id] and after(first, "次数") == ["1次"]
    assert notice(first) == {
        "upper": "(株)台帳建設", "prime": "(株)台帳建設",
        "companies": ["(有)一次工業", "(株)二次設備", "首都𠮷塗装"],  # not the 未承認 招待先: no contract yet
        "ids": [world.first.ccus_id, world.second.ccus_id, "CCUS未登録"]}
    assert after(first, "主任技術者名") == ["主任 一郎", "主任 二郎", None]
    # Per block the 主任技術者's 資格内容, then the 専門技術者's (never held: empty).
    assert after(first, "資格内容") == [None, None, "1級電気工事施工管理技士", None, None, None]
    heads = [c.value for row in first.iter_rows() for c in row if isinstance(c.value, str) and c.value.startswith("【")]
    assert heads == ["【報告下請負業者】", "【再下請負関係】 1/2", "【再下請負関係】 2/2"]
    assert len(first.row_breaks.brk) == 2
    # A company that contracted nobody still has one empty 再下請負関係 block to fill in by hand.
    third = wb["03 3次 (株)三次塗装"]
    assert notice(third) == {"upper": "(株)二次設備", "prime": "(株)台帳建設", "companies": ["(株)三次塗装", None],
                             "ids": [world.third.ccus_id, None]}
    assert third[cell_of(third, "【再下請負関係】 1/1")].font.name == "ＭＳ 明朝"


def test_a_subcontractor_prints_its_own_notice_and_those_below_it_never_one_above_or_beside(world: World) -> None:
    assert world.book(world.second.owner, "az5").sheetnames == ["01 2次 (株)二次設備", "02 3次 (株)三次塗装"]
    assert world.book(world.third.owner, "az5").sheetnames == ["01 3次 (株)三次塗装"]
    assert world.book(world.first.owner, "az5").sheetnames == [
        "01 1次 (有)一次工業", "02 2次 (株)二次設備", "03 3次 (株)三次塗装", "04 2次 首都𠮷塗装"]
    assert world.book(world.side.owner, "az5").sheetnames == ["01 1次 (株)別系統"]
    # One company's notice: the one below it by the upper, its own by itself, with the 事業者ID in the name.
    r = world.get(world.second.owner, "az5", company_id=world.third.id)
    assert disposition(r) == (
        f'attachment; filename="subcontract-notice_{world.site.ccus_id}_{world.third.ccus_id}.xlsx"',
        f"再下請負通知書（変更届）_{world.site.ccus_id}_{world.third.ccus_id}.xlsx")
    assert openpyxl.load_workbook(io.BytesIO(r.content)).sheetnames == ["01 3次 (株)三次塗装"]
    assert world.book(world.third.owner, "az5", company_id=world.third.id).sheetnames == ["01 3次 (株)三次塗装"]
    # Above it, beside it, not on the site, not approved yet: the same 404 (as AZ6/AZ7).
    for by, company in ((world.second, world.first), (world.third, world.second), (world.second, world.side),
                        (world.side, world.second), (world.prime, world.stranger), (world.prime, world.invitee)):
        world.refused(by.owner, "az5", 404, "company_not_found", company_id=company.id)
    world.refused(world.prime.owner, "az5", 422, "prime_has_no_notice", company_id=world.prime.id)


def test_the_worker_an_invitee_and_a_stranger_get_no_notice(world: World) -> None:
    world.refused(world.api.worker_login(world.third, world.worker), "az5", 403, "report_forbidden")
    world.refused(world.invitee.owner, "az5", 409, "own_invitation_pending")
    world.refused(world.stranger.owner, "az5", 404, "site_not_found")
    world.refused(world.stranger.owner, "az5", 404, "site_not_found", company_id=world.third.id)


def test_a_prime_with_no_subcontractor_yet_is_told_so_not_given_an_empty_workbook(api: Api) -> None:
    prime = api.company("(株)単独建設")
    site = api.site(prime)
    prime.owner.fail("GET", f"/sites/{site.id}/safety-documents/az5", status=404, code="no_subcontractors")
    ws = openpyxl.load_workbook(io.BytesIO(prime.owner.call("GET", f"/sites/{site.id}/safety-documents/az1").content)
                                ).active
    assert after(ws, "会社名") == ["(株)単独建設", None]  # the first 下請負人's page, empty, to fill in by hand


# --- printing -------------------------------------------------------------------------------------------


def test_libreoffice_prints_the_construction_ledger_and_the_chart_as_pdf(world: World, tmp_path: Path) -> None:
    soffice = shutil.which("soffice") or shutil.which("libreoffice")
    assert soffice, "LibreOffice (soffice) is not installed: run `make system-deps` as root"
    for form in ("az1", "az4"):
        r = world.get(world.prime.owner, form)
        (tmp_path / f"{form}.xlsx").write_bytes(r.content)
        done = subprocess.run([soffice, "--headless", f"-env:UserInstallation=file://{tmp_path}/profile",
                               "--convert-to", "pdf", "--outdir", str(tmp_path), str(tmp_path / f"{form}.xlsx")],
                              capture_output=True, text=True, timeout=180, check=False)
        pdf = tmp_path / f"{form}.pdf"
        assert done.returncode == 0 and pdf.exists(), done.stderr
        data = pdf.read_bytes()
        assert data.startswith(b"%PDF")
        pages = len(re.findall(rb"/Type\s*/Page\b", data))
        assert pages == (3 if form == "az1" else 1), pages  # AZ1: the 元請 and two 1次 pages; AZ4: one A3 page
