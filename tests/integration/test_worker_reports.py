"""帳票 1-1 技能者情報, 1-2 所属技能者一覧, 1-3 所属技能者統計情報 and 1-4 施工体制登録技能者一覧 as JSON, CSV (UTF-8
with BOM, cp932) and Excel: every file is read back (openpyxl, the csv module) and checked cell by cell, and each
party of the seed's 帳票 table (元請, upper, the employer, lower, side, unrelated, the worker, another worker, the
operator) gets what it may see, or 403 report_forbidden / the view's 404, never an empty file."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import openpyxl
import pytest
from world import DAIKU, DENKI, TOBI, Api, Company, Session, Site

from server.exports import xlsx

PROFILE_HEADER = ["項目", "内容"]
LIST_HEADER = ["No.", "技能者ID", "氏名", "職種", "技能レベル", "健康保険", "年金保険", "雇用保険", "保有資格"]
STATS_HEADER = ["区分", "値", "人数"]
ROSTER_HEADER = ["No.", "技能者ID", "氏名", "所属事業者", "次数", "職種", "立場", "健康保険", "年金保険", "雇用保険",
                 "資格保有"]
TAMAKAKE = "玉掛け技能講習（技能講習、番号 第12号、2020-04-01 取得）"
ASHIBA = "足場の組立て等作業主任者（技能講習）"


@dataclass
class World:
    """(株)名簿建設 (元請) ─┬ (有)上位工業 (1次) ── (株)下位設備 (2次: the employer) ── (株)末端工業 (3次)
                         └ (株)別系統 (1次)
    and (株)無関係, on no site. (株)下位設備 employs 𠮷田 太郎 (on the roster as 職長, with a login), 下位 次郎
    (on the roster, with a login) and 名簿外 三郎 (not on the roster, with a login); each other company has one
    worker on the roster (末端 四郎 with a login)."""

    api: Api
    site: Site
    prime: Company
    upper: Company
    employer: Company
    lower: Company
    side: Company
    stranger: Company
    workers: dict[str, dict[str, Any]]
    logins: dict[str, Session]

    def download(self, by: Session, path: str, **q: str) -> Any:
        r = by.call("GET", path, **q)
        assert r.status_code == 200, r.text
        return r

    @property
    def profile(self) -> str:
        return f"/workers/{self.workers['yoshida']['id']}/reports/profile"

    @property
    def listing(self) -> str:
        return f"/companies/{self.employer.id}/reports/workers"

    @property
    def statistics(self) -> str:
        return f"/companies/{self.employer.id}/reports/worker-statistics"

    @property
    def roster(self) -> str:
        return f"/sites/{self.site.id}/reports/roster"

    def party(self, name: str) -> Session:
        companies = {"元請": self.prime, "upper": self.upper, "employer": self.employer, "lower": self.lower,
                     "side": self.side, "unrelated": self.stranger}
        if name in companies:
            return companies[name].owner
        if name == "operator":
            return self.api.operator
        return self.logins[name]


@pytest.fixture
def world(api: Api) -> World:
    prime = api.company("(株)名簿建設")
    site = api.site(prime, name="名簿ビル新築工事")
    upper, employer, lower, side, stranger = (
        api.company(n) for n in ("(有)上位工業", "(株)下位設備", "(株)末端工業", "(株)別系統", "(株)無関係"))
    up_node = api.registered(site, prime, site.root, upper)
    emp_node = api.registered(site, upper, up_node, employer)
    api.registered(site, employer, emp_node, lower)
    api.registered(site, prime, site.root, side)
    yoshida = api.worker(
        employer, "𠮷田 太郎", trades=[TOBI, DENKI], name_kana="よしだ たろう", birth_date="1985-06-15",
        address="東京都 江東区 豊洲", phone="090-1234-5678", blood_type="A", level=2, health_insurance="enrolled",
        pension_insurance="enrolled", employment_insurance="enrolled", kentaikyo="enrolled",
        qualifications=[{"category": "技能講習", "name": "玉掛け技能講習", "number": "第12号",
                         "acquired_on": "2020-04-01"},
                        {"category": "技能講習", "name": "足場の組立て等作業主任者"}])
    jiro = api.worker(employer, "下位 次郎", health_insurance="enrolled", pension_insurance="not_enrolled",
                      employment_insurance="exempt")
    saburo = api.worker(employer, "名簿外 三郎", trades=[DAIKU], level=1)
    shiro = api.worker(lower, "末端 四郎")
    goro = api.worker(side, "別系 五郎")
    rokuro = api.worker(upper, "上位 六郎")
    api.on_roster(site, employer, yoshida, position="foreman",
                  qualification_ids=[q["id"] for q in yoshida["qualifications"]])
    api.on_roster(site, employer, jiro)
    api.on_roster(site, lower, shiro)
    api.on_roster(site, side, goro)
    api.on_roster(site, upper, rokuro)
    workers = {"yoshida": yoshida, "jiro": jiro, "saburo": saburo, "shiro": shiro, "goro": goro, "rokuro": rokuro}
    logins = {"self": api.worker_login(employer, yoshida), "colleague": api.worker_login(employer, jiro),
              "off-roster": api.worker_login(employer, saburo), "lower worker": api.worker_login(lower, shiro)}
    return World(api, site, prime, upper, employer, lower, side, stranger, workers, logins)


def _sheet(r: Any) -> Any:
    assert r.headers["content-type"] == xlsx.MEDIA_TYPE
    return openpyxl.load_workbook(io.BytesIO(r.content)).active


def _cells(ws: Any) -> list[list[Any]]:
    return [[c.value for c in row] for row in ws.iter_rows(min_row=2)]


def _csv_both(world: World, by: Session, path: str) -> list[list[str]]:
    """The CSV in UTF-8 with a BOM, checked to read back the same in cp932 (𠮷 has no Shift_JIS code: 〓)."""
    r = world.download(by, path, format="csv")
    assert r.headers["content-type"] == "text/csv; charset=utf-8" and r.content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    sjis = world.download(by, path, format="csv", encoding="cp932")
    assert sjis.headers["content-type"] == "text/csv; charset=Shift_JIS" and not sjis.content.startswith(b"\xef")
    assert list(csv.reader(io.StringIO(sjis.content.decode("cp932")))) == [
        [cell.replace("𠮷", "〓") for cell in row] for row in rows]
    return rows


def _file_names(r: Any) -> tuple[str, str]:
    plain, encoded = r.headers["content-disposition"].split("; filename*=UTF-8''")
    return plain, unquote(encoded)


# -- 1-1 技能者情報 --------------------------------------------------------------------------------------


def test_the_employer_downloads_a_workers_profile_as_excel_with_every_item_of_the_seed(world: World) -> None:
    w = world.workers["yoshida"]
    r = world.download(world.employer.owner, world.profile, format="xlsx")
    ws = _sheet(r)
    assert ws.title == "技能者情報" and [c.value for c in ws[1]] == PROFILE_HEADER and ws["A1"].font.b
    assert ws["B2"].font.name == xlsx.FONT_NAME
    assert _cells(ws) == [
        ["技能者ID", w["ccus_id"]],
        ["氏名", "𠮷田 太郎"],
        ["ふりがな", "よしだ たろう"],
        ["所属事業者", "(株)下位設備"],
        ["所属事業者の事業者ID", world.employer.ccus_id],
        ["生年月日", "1985-06-15"],
        ["住所", "東京都 江東区 豊洲"],
        ["電話番号", "090-1234-5678"],
        ["血液型", "A"],
        ["技能レベル", "レベル2"],
        ["職種", "とび工 / とび工、電工 / 電気工"],
        ["保有資格", TAMAKAKE],
        ["保有資格", ASHIBA],
        ["健康保険", "加入"],
        ["年金保険", "加入"],
        ["雇用保険", "加入"],
        ["建退共", "加入"],
    ]
    assert _file_names(r) == (f'attachment; filename="worker-profile_{w["ccus_id"]}.xlsx"',
                              f"技能者情報_{w['ccus_id']}.xlsx")


def test_the_worker_reads_its_own_profile_as_json_and_csv_in_both_encodings(world: World) -> None:
    me = world.logins["self"]
    report = me.ok("GET", world.profile)
    assert report["report"] == "1-1" and report["title"] == "技能者情報"
    assert report["worker"]["id"] == world.workers["yoshida"]["id"] and report["employer"]["name"] == "(株)下位設備"
    assert {"label": "建退共", "value": "加入"} in report["items"]
    rows = _csv_both(world, me, world.profile)
    assert rows[0] == PROFILE_HEADER and ["氏名", "𠮷田 太郎"] in rows and ["保有資格", ASHIBA] in rows
    assert [row[1] for row in rows[1:]] == [i["value"] for i in report["items"]]
    # A worker with nothing optional prints empty cells, one 保有資格 row, and the insurance it has.
    jiro = world.logins["colleague"].ok("GET", f"/workers/{world.workers['jiro']['id']}/reports/profile")
    assert {i["label"]: i["value"] for i in jiro["items"]} == {
        "技能者ID": world.workers["jiro"]["ccus_id"], "氏名": "下位 次郎", "ふりがな": "", "所属事業者": "(株)下位設備",
        "所属事業者の事業者ID": world.employer.ccus_id, "生年月日": "", "住所": "", "電話番号": "", "血液型": "",
        "技能レベル": "", "職種": "とび工 / とび工", "保有資格": "", "健康保険": "加入", "年金保険": "未加入",
        "雇用保険": "適用除外", "建退共": "未確認"}


# -- 1-2 所属技能者一覧 ----------------------------------------------------------------------------------


def test_the_employer_lists_every_worker_with_every_item_as_excel_with_a_total_row(world: World) -> None:
    w = world.workers
    r = world.download(world.employer.owner, world.listing, format="xlsx")
    ws = _sheet(r)
    assert ws.title == "所属技能者一覧" and [c.value for c in ws[1]] == LIST_HEADER and ws.freeze_panes == "D2"
    assert _cells(ws) == [
        [1, w["yoshida"]["ccus_id"], "𠮷田 太郎", "とび工 / とび工、電工 / 電気工", "レベル2", "加入", "加入", "加入",
         f"{TAMAKAKE}、{ASHIBA}"],
        [2, w["jiro"]["ccus_id"], "下位 次郎", "とび工 / とび工", None, "加入", "未加入", "適用除外", None],
        [3, w["saburo"]["ccus_id"], "名簿外 三郎", "大工 / 大工", "レベル1", "未確認", "未確認", "未確認", None],
        ["合計", None, "3人", None, None, None, None, None, None],
    ]
    assert _file_names(r)[1] == f"所属技能者一覧_{world.employer.ccus_id}.xlsx"
    rows = _csv_both(world, world.employer.owner, world.listing)
    assert rows[0] == LIST_HEADER and len(rows) == 1 + 3  # the CSV is data: no 合計 row
    assert rows[2] == ["2", w["jiro"]["ccus_id"], "下位 次郎", "とび工 / とび工", "", "加入", "未加入", "適用除外", ""]
    report = world.employer.owner.ok("GET", world.listing)
    assert report["report"] == "1-2" and report["summary"] == {"workers": 3}
    assert report["workers"] == world.employer.owner.ok("GET", f"/companies/{world.employer.id}/workers")


def test_another_company_sees_only_what_both_the_worker_and_the_employer_disclosed(world: World) -> None:
    w, settings = world.workers["yoshida"], f"/workers/{world.workers['yoshida']['id']}/disclosure"
    # Nothing disclosed: no worker is listed for another company (the report is the JSON list's).
    for party in ("元請", "upper", "lower", "side", "unrelated"):
        assert world.party(party).ok("GET", world.listing)["workers"] == [], party
    # Only the employer agreeing is not enough; both sides: the items both agreed to.
    world.employer.owner.ok("PUT", settings, {"items": {"trades": True, "level": True, "qualifications": True}})
    assert world.stranger.owner.ok("GET", world.listing)["workers"] == []
    world.logins["self"].ok("PUT", settings, {"items": {"trades": True, "level": True}})
    ws = _sheet(world.download(world.stranger.owner, world.listing, format="xlsx"))
    assert _cells(ws) == [
        [1, w["ccus_id"], "𠮷田 太郎", "とび工 / とび工、電工 / 電気工", "レベル2", *["非開示"] * 4],
        ["合計", None, "1人", None, None, None, None, None, None],
    ]
    rows = _csv_both(world, world.stranger.owner, world.listing)
    assert rows[1][3:] == ["とび工 / とび工、電工 / 電気工", "レベル2", "非開示", "非開示", "非開示", "非開示"]
    # The 元請 sees the worker's social insurance as well: its site's 作業員名簿 shows it (the policy's roster grant).
    prime_row = world.prime.owner.ok("GET", world.listing)["workers"]
    assert [x["name"] for x in prime_row] == ["𠮷田 太郎"]
    assert _cells(_sheet(world.download(world.prime.owner, world.listing, format="xlsx")))[0][3:] == [
        "とび工 / とび工、電工 / 電気工", "レベル2", "加入", "加入", "加入", "非開示"]


# -- 1-3 所属技能者統計情報 -------------------------------------------------------------------------------

STATS = [
    ["職種", "とび工 / とび工", 2], ["職種", "大工 / 大工", 1], ["職種", "電工 / 電気工", 1],
    ["技能レベル", "レベル1", 1], ["技能レベル", "レベル2", 1], ["技能レベル", "レベル3", 0],
    ["技能レベル", "レベル4", 0], ["技能レベル", "レベル未登録", 1],
    ["健康保険", "加入", 2], ["健康保険", "未加入", 0], ["健康保険", "適用除外", 0], ["健康保険", "未確認", 1],
    ["年金保険", "加入", 1], ["年金保険", "未加入", 1], ["年金保険", "適用除外", 0], ["年金保険", "未確認", 1],
    ["雇用保険", "加入", 1], ["雇用保険", "未加入", 0], ["雇用保険", "適用除外", 1], ["雇用保険", "未確認", 1],
    ["建退共", "加入", 1], ["建退共", "未加入", 0], ["建退共", "適用除外", 0], ["建退共", "未確認", 2],
]


def test_the_worker_statistics_count_the_companys_workers_by_trade_level_insurance_and_kentaikyo(
        world: World) -> None:
    """The employer sees every item of every worker, so its counts are the real ones."""
    r = world.download(world.employer.owner, world.statistics, format="xlsx")
    ws = _sheet(r)
    assert ws.title == "所属技能者統計情報" and [c.value for c in ws[1]] == STATS_HEADER
    assert _cells(ws) == [*STATS, ["合計", "所属技能者数", 3]]
    assert _file_names(r) == (f'attachment; filename="worker-statistics_{world.employer.ccus_id}.xlsx"',
                              f"所属技能者統計情報_{world.employer.ccus_id}.xlsx")
    rows = _csv_both(world, world.employer.owner, world.statistics)
    assert rows == [STATS_HEADER, *([a, b, str(n)] for a, b, n in STATS)]
    report = world.employer.owner.ok("GET", world.statistics)
    assert report["report"] == "1-3" and report["company"]["name"] == "(株)下位設備"
    assert report["summary"] == {"workers": 3}
    groups = {g["label"]: {c["value"]: c["workers"] for c in g["counts"]} for g in report["groups"]}
    assert list(groups) == ["職種", "技能レベル", "健康保険", "年金保険", "雇用保険", "建退共"]
    assert all(sum(counts.values()) == 3 for label, counts in groups.items() if label != "職種")
    assert "非開示" not in str(report["groups"])  # the employer is hidden nothing
    assert "氏名" not in str(report) and "𠮷田" not in str(report)  # counts only: no worker is named
    # A worker with no trade is counted as such; a company with no workers prints zeros, not an error.
    world.api.worker(world.employer, "職種 無し", trades=[])
    assert world.employer.owner.ok("GET", world.statistics)["groups"][0]["counts"][-1] == {
        "value": "職種未登録", "workers": 1}
    empty = world.stranger.owner.ok("GET", f"/companies/{world.stranger.id}/reports/worker-statistics")
    assert empty["summary"] == {"workers": 0} and empty["groups"][0]["counts"] == []


# What the 元請 and the upper company count: nothing is disclosed, so every 職種, レベル and 建退共 is 非開示; the
# social insurance of 𠮷田 and 次郎 is on their site's 作業員名簿 (the policy's roster grant), 三郎's is not.
STATS_ABOVE = [
    ["職種", "非開示", 3],
    ["技能レベル", "レベル1", 0], ["技能レベル", "レベル2", 0], ["技能レベル", "レベル3", 0],
    ["技能レベル", "レベル4", 0], ["技能レベル", "レベル未登録", 0], ["技能レベル", "非開示", 3],
    ["健康保険", "加入", 2], ["健康保険", "未加入", 0], ["健康保険", "適用除外", 0], ["健康保険", "未確認", 0],
    ["健康保険", "非開示", 1],
    ["年金保険", "加入", 1], ["年金保険", "未加入", 1], ["年金保険", "適用除外", 0], ["年金保険", "未確認", 0],
    ["年金保険", "非開示", 1],
    ["雇用保険", "加入", 1], ["雇用保険", "未加入", 0], ["雇用保険", "適用除外", 1], ["雇用保険", "未確認", 0],
    ["雇用保険", "非開示", 1],
    ["建退共", "加入", 0], ["建退共", "未加入", 0], ["建退共", "適用除外", 0], ["建退共", "未確認", 0],
    ["建退共", "非開示", 3],
]
# What 𠮷田 counts of his own company: every item of his own, none of his two colleagues'.
STATS_SELF = [
    ["職種", "とび工 / とび工", 1], ["職種", "電工 / 電気工", 1], ["職種", "非開示", 2],
    ["技能レベル", "レベル1", 0], ["技能レベル", "レベル2", 1], ["技能レベル", "レベル3", 0],
    ["技能レベル", "レベル4", 0], ["技能レベル", "レベル未登録", 0], ["技能レベル", "非開示", 2],
    ["健康保険", "加入", 1], ["健康保険", "未加入", 0], ["健康保険", "適用除外", 0], ["健康保険", "未確認", 0],
    ["健康保険", "非開示", 2],
    ["年金保険", "加入", 1], ["年金保険", "未加入", 0], ["年金保険", "適用除外", 0], ["年金保険", "未確認", 0],
    ["年金保険", "非開示", 2],
    ["雇用保険", "加入", 1], ["雇用保険", "未加入", 0], ["雇用保険", "適用除外", 0], ["雇用保険", "未確認", 0],
    ["雇用保険", "非開示", 2],
    ["建退共", "加入", 1], ["建退共", "未加入", 0], ["建退共", "適用除外", 0], ["建退共", "未確認", 0],
    ["建退共", "非開示", 2],
]


def test_the_statistics_count_an_item_the_reader_may_not_see_as_undisclosed(world: World) -> None:
    """A count tells as much as the item: each worker is counted by what the reader sees of it (1-2)."""
    ws = _sheet(world.download(world.prime.owner, world.statistics, format="xlsx"))
    assert _cells(ws) == [*STATS_ABOVE, ["合計", "所属技能者数", 3]]
    assert world.upper.owner.ok("GET", world.statistics)["groups"] == world.prime.owner.ok(
        "GET", world.statistics)["groups"]
    rows = _csv_both(world, world.prime.owner, world.statistics)
    assert rows == [STATS_HEADER, *([a, b, str(n)] for a, b, n in STATS_ABOVE)]
    mine = _csv_both(world, world.logins["self"], world.statistics)
    assert mine == [STATS_HEADER, *([a, b, str(n)] for a, b, n in STATS_SELF)]
    report = world.logins["colleague"].ok("GET", world.statistics)
    assert report["summary"] == {"workers": 3} and report["hidden_label"] == "非開示"
    levels = {c["value"]: c["workers"] for c in report["groups"][1]["counts"]}
    assert levels == {"レベル1": 0, "レベル2": 0, "レベル3": 0, "レベル4": 0, "レベル未登録": 1, "非開示": 2}


def test_a_company_above_counts_the_real_values_of_the_items_both_sides_disclosed(world: World) -> None:
    settings = f"/workers/{world.workers['yoshida']['id']}/disclosure"

    def groups() -> dict[str, dict[str, int]]:
        report = world.prime.owner.ok("GET", world.statistics)
        return {g["key"]: {c["value"]: c["workers"] for c in g["counts"]} for g in report["groups"]}

    world.employer.owner.ok("PUT", settings, {"items": {"level": True, "kentaikyo": True, "trades": True}})
    assert groups()["level"]["非開示"] == 3  # only the employer agreeing is not enough
    world.logins["self"].ok("PUT", settings, {"items": {"level": True, "kentaikyo": True}})
    seen = groups()
    assert seen["level"] == {"レベル1": 0, "レベル2": 1, "レベル3": 0, "レベル4": 0, "レベル未登録": 0, "非開示": 2}
    assert seen["kentaikyo"] == {"加入": 1, "未加入": 0, "適用除外": 0, "未確認": 0, "非開示": 2}
    assert seen["trades"] == {"非開示": 3}  # the worker did not agree to this one
    ws = _sheet(world.download(world.prime.owner, world.statistics, format="xlsx"))
    assert ["技能レベル", "レベル2", 1] in _cells(ws) and ["技能レベル", "非開示", 2] in _cells(ws)


# -- 1-4 施工体制登録技能者一覧 ----------------------------------------------------------------------------


def test_the_prime_downloads_the_site_roster_a_row_per_worker_with_tier_trade_position_insurance_and_licences(
        world: World) -> None:
    w = world.workers
    r = world.download(world.prime.owner, world.roster, format="xlsx")
    ws = _sheet(r)
    assert ws.title == "施工体制登録技能者一覧" and [c.value for c in ws[1]] == ROSTER_HEADER
    rows = _cells(ws)
    assert rows[-1] == ["合計", None, "5人", None, None, None, None, None, None, None, None]
    by_name = {row[2]: row for row in rows[:-1]}
    assert set(by_name) == {"𠮷田 太郎", "下位 次郎", "末端 四郎", "別系 五郎", "上位 六郎"}
    assert [row[0] for row in rows[:-1]] == [1, 2, 3, 4, 5]
    assert by_name["𠮷田 太郎"][1:] == [w["yoshida"]["ccus_id"], "𠮷田 太郎", "(株)下位設備", "2次", "とび工 / とび工",
                                      "職長", "加入", "加入", "加入", "玉掛け技能講習、足場の組立て等作業主任者"]
    assert by_name["下位 次郎"][4:] == ["2次", "とび工 / とび工", "一般", "加入", "未加入", "適用除外", None]
    assert by_name["末端 四郎"][3:5] == ["(株)末端工業", "3次"] and by_name["上位 六郎"][4] == "1次"
    assert _file_names(r) == (f'attachment; filename="site-workers_{world.site.ccus_id}.xlsx"',
                              f"施工体制登録技能者一覧_{world.site.ccus_id}.xlsx")
    csv_rows = _csv_both(world, world.prime.owner, world.roster)
    assert csv_rows[0] == ROSTER_HEADER and len(csv_rows) == 1 + 5
    assert [row[2] for row in csv_rows[1:]] == [row[2] for row in rows[:-1]]
    report = world.prime.owner.ok("GET", world.roster)
    assert report["report"] == "1-4" and report["summary"] == {"workers": 5}
    assert report["entries"] == world.prime.owner.ok("GET", f"/sites/{world.site.id}/roster")["entries"]


ROSTER_SEEN = {
    "元請": {"𠮷田 太郎", "下位 次郎", "末端 四郎", "別系 五郎", "上位 六郎"},
    "upper": {"𠮷田 太郎", "下位 次郎", "末端 四郎", "上位 六郎"},
    "employer": {"𠮷田 太郎", "下位 次郎", "末端 四郎"},
    "lower": {"末端 四郎"},
    "side": {"別系 五郎"},
    "self": {"𠮷田 太郎"},
    "colleague": {"下位 次郎"},
    "lower worker": {"末端 四郎"},
}


def test_each_party_sees_the_roster_rows_its_roster_view_shows_and_a_worker_only_its_own(world: World) -> None:
    for party, names in ROSTER_SEEN.items():
        by = world.party(party)
        assert {e["worker"]["name"] for e in by.ok("GET", world.roster)["entries"]} == names, party
        ws = _sheet(world.download(by, world.roster, format="xlsx"))
        rows = _cells(ws)
        assert {row[2] for row in rows[:-1]} == names and rows[-1][2] == f"{len(names)}人", party
    me = _csv_both(world, world.logins["self"], world.roster)
    assert len(me) == 2 and me[1][2] == "𠮷田 太郎" and me[1][6] == "職長"


# -- who may open which report ----------------------------------------------------------------------------

ALLOW = 200
REFUSED: dict[str, dict[str, int | tuple[int, str]]] = {
    # 1-1 技能者情報 (𠮷田's): 技能者、所属事業主. The 元請 and upper see the worker on their roster: 403.
    "profile": {"元請": (403, "report_forbidden"), "upper": (403, "report_forbidden"), "employer": ALLOW,
                "lower": (404, "worker_not_found"), "side": (404, "worker_not_found"),
                "unrelated": (404, "worker_not_found"), "self": ALLOW, "colleague": (404, "worker_not_found"),
                "lower worker": (404, "worker_not_found"), "operator": (403, "report_forbidden")},
    # 1-2 所属技能者一覧: company accounts (others see the disclosed items only: tested above).
    "listing": {"元請": ALLOW, "upper": ALLOW, "employer": ALLOW, "lower": ALLOW, "side": ALLOW, "unrelated": ALLOW,
                "self": (403, "report_forbidden"), "colleague": (403, "report_forbidden"),
                "lower worker": (403, "report_forbidden"), "operator": (403, "report_forbidden")},
    # 1-3 所属技能者統計情報: 技能者、所属事業者、元請、上位下請.
    "statistics": {"元請": ALLOW, "upper": ALLOW, "employer": ALLOW, "lower": (404, "company_not_found"),
                   "side": (404, "company_not_found"), "unrelated": (404, "company_not_found"), "self": ALLOW,
                   "colleague": ALLOW, "off-roster": ALLOW, "lower worker": (404, "company_not_found"),
                   "operator": (403, "report_forbidden")},
    # 1-4 施工体制登録技能者一覧: 技能者（本人のみ）、所属事業主、元請、上位下請 (rows: ROSTER_SEEN).
    "roster": {"元請": ALLOW, "upper": ALLOW, "employer": ALLOW, "lower": ALLOW, "side": ALLOW,
               "unrelated": (404, "site_not_found"), "self": ALLOW, "lower worker": ALLOW,
               "off-roster": (404, "site_not_found"), "operator": (403, "report_forbidden")},
}


@pytest.mark.parametrize("report", list(REFUSED))
def test_each_party_of_the_seeds_table_opens_the_report_or_is_refused_in_every_format(
        world: World, report: str) -> None:
    path = getattr(world, report)
    for party, expected in REFUSED[report].items():
        by = world.party(party)
        for fmt in ("json", "csv", "xlsx"):
            if isinstance(expected, int):
                world.download(by, path, format=fmt)
            else:
                status, code = expected
                by.fail("GET", path, status=status, code=code, format=fmt)
    world.api.anonymous.fail("GET", path, status=401)


def test_a_company_that_sees_a_disclosed_worker_is_still_not_a_reader_of_its_profile(world: World) -> None:
    settings = f"/workers/{world.workers['yoshida']['id']}/disclosure"
    world.logins["self"].ok("PUT", settings, {"all": True})
    world.employer.owner.ok("PUT", settings, {"all": True})
    assert world.stranger.owner.ok("GET", f"/workers/{world.workers['yoshida']['id']}")["name"] == "𠮷田 太郎"
    world.stranger.owner.fail("GET", world.profile, status=403, code="report_forbidden", format="xlsx")


def test_reports_of_what_does_not_exist_are_404(world: World) -> None:
    owner = world.employer.owner
    owner.fail("GET", "/workers/999999/reports/profile", status=404, code="worker_not_found")
    owner.fail("GET", "/companies/999999/reports/workers", status=404, code="company_not_found")
    owner.fail("GET", "/companies/999999/reports/worker-statistics", status=404, code="company_not_found")
    owner.fail("GET", "/sites/999999/reports/roster", status=404, code="site_not_found")
    owner.fail("GET", world.roster, status=422, format="pdf")
    owner.fail("GET", world.statistics, status=422, format="csv", encoding="euc-jp")
