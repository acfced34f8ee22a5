"""帳票 3-2 下位事業者一覧 and 3-3 施工体制登録事業者一覧 of one site as JSON, CSV (UTF-8 with BOM, cp932) and
Excel: every file is read back (openpyxl, the csv module) and checked cell by cell, and each party of the seed's
帳票 table gets the companies it may see (元請, upper, lower, unrelated, the worker: 自社のみ)."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import openpyxl
import pytest
from world import Api, Company, Session, Site

from server.domain.accounts import Actor, Role
from server.domain.visibility import Visibility
from server.exports import xlsx

HEADER = ["No.", "次数", "事業者名", "事業者ID", "上位の事業者名", "状態", "工事名称"]


@dataclass
class Tree:
    """(株)体制建設 (元請) ── (有)上位工業 (1次) ── (株)下位設備 (2次) ── 首都𠮷塗装 (CCUS未登録)
                                            └─ (株)招待先 (未承認)
                     └─ (株)別系統 (1次)
    and (株)無関係, on no site; a worker of (株)下位設備 on the roster."""

    api: Api
    site: Site
    prime: Company
    upper: Company
    lower: Company
    side: Company
    invitee: Company
    stranger: Company
    worker: dict[str, Any]

    def path(self, report: str) -> str:
        return f"/sites/{self.site.id}/reports/{report}"

    def names(self, by: Session, report: str) -> list[str]:
        return [c["name"] for c in by.ok("GET", self.path(report))["companies"]]

    def download(self, by: Session, report: str, **q: str) -> Any:
        r = by.call("GET", self.path(report), **q)
        assert r.status_code == 200, r.text
        return r


@pytest.fixture
def tree(api: Api) -> Tree:
    prime = api.company("(株)体制建設")
    site = api.site(prime, name="体制ビル新築工事")
    upper, lower, side, invitee, stranger = (
        api.company(n) for n in ("(有)上位工業", "(株)下位設備", "(株)別系統", "(株)招待先", "(株)無関係"))
    up_node = api.registered(site, prime, site.root, upper)
    low_node = api.registered(site, upper, up_node, lower)
    api.placeholder(site, lower, low_node, "首都𠮷塗装")
    api.invite(site, upper, up_node, invitee)
    api.registered(site, prime, site.root, side)
    worker = api.worker(lower, "下位 太郎")
    api.on_roster(site, lower, worker)
    return Tree(api, site, prime, upper, lower, side, invitee, stranger, worker)


ALL = ["(株)体制建設", "(有)上位工業", "(株)下位設備", "首都𠮷塗装", "(株)招待先", "(株)別系統"]


def test_the_prime_downloads_the_sites_companies_as_excel_a_row_per_company_with_tier_id_upper_and_status(
        tree: Tree) -> None:
    r = tree.download(tree.prime.owner, "companies", format="xlsx")
    assert r.headers["content-type"] == xlsx.MEDIA_TYPE
    ws = openpyxl.load_workbook(io.BytesIO(r.content)).active
    assert ws.title == "施工体制登録事業者一覧"
    assert [c.value for c in ws[1]] == HEADER and ws["A1"].font.b and ws["C2"].font.name == xlsx.FONT_NAME
    rows = [[c.value for c in row] for row in ws.iter_rows(min_row=2)]
    assert rows == [
        [1, "元請", "(株)体制建設", tree.prime.ccus_id, None, "登録", None],
        [2, "1次", "(有)上位工業", tree.upper.ccus_id, "(株)体制建設", "登録", "躯体工事"],
        [3, "2次", "(株)下位設備", tree.lower.ccus_id, "(有)上位工業", "登録", "躯体工事"],
        [4, "3次", "首都𠮷塗装", "CCUS未登録", "(株)下位設備", "登録", None],
        [5, "2次", "(株)招待先", tree.invitee.ccus_id, "(有)上位工業", "未承認", None],
        [6, "1次", "(株)別系統", tree.side.ccus_id, "(株)体制建設", "登録", "躯体工事"],
    ]
    disposition = r.headers["content-disposition"]
    plain, encoded = disposition.split("; filename*=UTF-8''")
    assert plain == f'attachment; filename="companies_{tree.site.ccus_id}.xlsx"'
    assert unquote(encoded) == f"施工体制登録事業者一覧_{tree.site.ccus_id}.xlsx"


def test_the_subcontractor_list_csv_reads_back_in_utf8_with_a_bom_and_in_cp932(tree: Tree) -> None:
    r = tree.download(tree.upper.owner, "subcontractors", format="csv")
    assert r.headers["content-type"] == "text/csv; charset=utf-8" and r.content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert rows == [
        HEADER,
        ["1", "2次", "(株)下位設備", tree.lower.ccus_id, "(有)上位工業", "登録", "躯体工事"],
        ["2", "3次", "首都𠮷塗装", "CCUS未登録", "(株)下位設備", "登録", ""],
        ["3", "2次", "(株)招待先", tree.invitee.ccus_id, "(有)上位工業", "未承認", ""],
    ]
    assert 'filename="subcontractors_' in r.headers["content-disposition"]
    sjis = tree.download(tree.upper.owner, "subcontractors", format="csv", encoding="cp932")
    assert sjis.headers["content-type"] == "text/csv; charset=Shift_JIS" and not sjis.content.startswith(b"\xef")
    assert list(csv.reader(io.StringIO(sjis.content.decode("cp932")))) == [
        [cell.replace("𠮷", "〓") for cell in row] for row in rows]


def test_the_subcontractor_list_is_the_companies_below_the_readers_own_row(tree: Tree) -> None:
    assert tree.names(tree.prime.owner, "subcontractors") == ALL[1:]
    assert tree.names(tree.upper.owner, "subcontractors") == ["(株)下位設備", "首都𠮷塗装", "(株)招待先"]
    assert tree.names(tree.lower.owner, "subcontractors") == ["首都𠮷塗装"]
    assert tree.names(tree.side.owner, "subcontractors") == []
    report = tree.prime.owner.ok("GET", tree.path("subcontractors"))
    assert report["report"] == "3-2" and report["title"] == "下位事業者一覧" and report["site"]["id"] == tree.site.id


def test_each_company_sees_the_companies_of_the_hierarchy_it_sees_and_a_stranger_is_not_told_the_site(
        tree: Tree) -> None:
    assert tree.names(tree.prime.owner, "companies") == ALL
    assert tree.names(tree.upper.owner, "companies") == ALL[:5]
    assert tree.names(tree.lower.owner, "companies") == ALL[:4]
    assert tree.names(tree.side.owner, "companies") == ["(株)体制建設", "(株)別系統"]
    for by in (tree.stranger.owner, tree.api.staff(tree.upper, "site_manager", site_ids=[])):
        for report in ("companies", "subcontractors"):
            for fmt in ("json", "csv", "xlsx"):
                by.fail("GET", tree.path(report), status=404, code="site_not_found", format=fmt)


def test_a_worker_sees_only_its_employers_row_and_may_not_open_the_subcontractor_list(tree: Tree) -> None:
    me = tree.api.worker_login(tree.lower, tree.worker)
    report = me.ok("GET", tree.path("companies"))
    assert [(c["name"], c["tier_label"], c["upper"]) for c in report["companies"]] == [("(株)下位設備", "2次", None)]
    ws = openpyxl.load_workbook(io.BytesIO(tree.download(me, "companies", format="xlsx").content)).active
    assert [[c.value for c in row] for row in ws.iter_rows(min_row=2)] == [
        [1, "2次", "(株)下位設備", tree.lower.ccus_id, None, "登録", "躯体工事"]]
    # The JSON 施工体制 answers a worker the same way (seed 3-3: 技能者（自社のみ）), no longer 403.
    assert [r["name"] for r in me.ok("GET", f"/sites/{tree.site.id}/hierarchy")["rows"]] == ["(株)下位設備"]
    for fmt in ("json", "csv", "xlsx"):
        me.fail("GET", tree.path("subcontractors"), status=403, code="report_forbidden", format=fmt)
    # A worker not on the site's roster is not told the site exists.
    other = tree.api.worker(tree.lower, "名簿外 次郎")
    tree.api.worker_login(tree.lower, other).fail("GET", tree.path("companies"), status=404, code="site_not_found")


def test_the_company_reports_open_to_the_parties_of_the_seeds_table() -> None:
    owner = Visibility(Actor(1, Role.COMPANY_OWNER, company_id=10))
    worker = Visibility(Actor(2, Role.WORKER, worker_id=5))
    assert owner.reads_report("3-2") and owner.reads_report("3-3")
    assert worker.reads_report("3-3") and not worker.reads_report("3-2")
    assert not Visibility(Actor(9, Role.OPERATOR)).reads_report("3-3")
