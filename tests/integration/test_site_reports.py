"""帳票 3-1 事業者情報, 4-1 現場・契約情報, 4-2 自社に関する現場一覧 and the 元請's 現場利用料 estimate, as JSON,
CSV (UTF-8 with BOM, cp932) and Excel: every file is read back (openpyxl, the csv module) and checked cell by
cell, and each party of the seed's 帳票 table gets what it may see (元請, upper, the company itself, lower,
unrelated, the worker). On SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import count
from typing import Any
from urllib.parse import unquote
from zoneinfo import ZoneInfo

import openpyxl
import pytest
from world import Api, Company, Session, Site

from protocol.messages import Card, TapEvent
from server.exports import xlsx
from server.services import ingest

JST = ZoneInfo("Asia/Tokyo")
NOW = datetime(2026, 11, 25, 21, 0, tzinfo=JST)
MONTH = "2026-11"
BUF = "ef" * 16
_seq = count(1)
_uids = (f"0114D1D2D3D4E{n:03X}" for n in count(1))

PROFILE_HEADER = ["事業者ID", "事業者名", "ふりがな", "建設業許可番号", "法人番号", "住所", "代表者"]
START, END = "就業履歴蓄積期間（開始）", "就業履歴蓄積期間（終了）"
SITES_HEADER = ["No.", "現場ID", "現場名", "元請名", "次数", "状態", START, END]
FEE_HEADER = ["No.", "所属事業者", "技能者数", "人日", "単価（円／人日）", "概算額（円）"]


@dataclass
class World:
    """(株)報告建設 (元請) of 報告ビル新築工事 (discloses 元請 and 期間) and 報告第二倉庫 (discloses nothing):

        報告ビル: (株)報告建設 ── (有)上位工業 (1次) ── 𠮷野設備(株) (2次) ── (株)招待先 (未承認)
                              └─ (株)別系統 (1次)
        他元請の現場 of (株)他元請 (discloses nothing): (株)他元請 ── 𠮷野設備(株) (1次)

    (株)無関係 is on no site. 𠮷野設備's worker is on 報告ビル's roster (職長), another of its workers is
    on no roster; each of the 元請's, upper's and 𠮷野's workers tapped at 報告ビル's gate in November."""

    api: Api
    site: Site
    store: Site
    other_site: Site
    prime: Company
    upper: Company
    lower: Company
    side: Company
    invitee: Company
    other_prime: Company
    stranger: Company
    worker: dict[str, Any]
    unlisted: dict[str, Any]

    def get(self, by: Session, path: str, **q: str) -> Any:
        r = by.call("GET", path, **q)
        assert r.status_code == 200, r.text
        return r

    def sheet(self, by: Session, path: str, **q: str) -> tuple[Any, list[list[Any]]]:
        r = self.get(by, path, format="xlsx", **q)
        assert r.headers["content-type"] == xlsx.MEDIA_TYPE
        ws = openpyxl.load_workbook(io.BytesIO(r.content)).active
        return ws, [[c.value for c in row] for row in ws.iter_rows()]

    def csv_both(self, by: Session, path: str, **q: str) -> list[list[str]]:
        """The CSV in UTF-8 (with BOM) and in cp932, read back with the csv module: the same rows, but for
        the characters Shift_JIS cannot hold (〓)."""
        r = self.get(by, path, format="csv", **q)
        assert r.headers["content-type"] == "text/csv; charset=utf-8" and r.content.startswith(b"\xef\xbb\xbf")
        rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
        sjis = self.get(by, path, format="csv", encoding="cp932", **q)
        assert sjis.headers["content-type"] == "text/csv; charset=Shift_JIS" and not sjis.content.startswith(b"\xef")
        assert list(csv.reader(io.StringIO(sjis.content.decode("cp932")))) == [
            [cell.replace("𠮷", "〓") for cell in row] for row in rows]
        return rows


def _tap(api: Api, uid: str, day: int, minute: int) -> None:
    event = TapEvent(device_id="gate-rep", buffer_id=BUF, seq=next(_seq), card=Card(tech="felica", uid=uid),
                     direction="in", at=datetime(2026, 11, day, 7, minute, tzinfo=JST), clock_synced=True,
                     boot_id="boot-r", mono_ms=next(_seq) * 1000)
    assert ingest.ingest_taps(api.ctx, "gate-rep", [event])[0].outcome == "recorded"


@pytest.fixture
def world(api: Api) -> World:
    api.ctx.clock = lambda: NOW.astimezone(UTC)  # the server takes taps only near its own time
    prime = api.company("(株)報告建設", name_kana="ほうこくけんせつ", permit_number="国土交通大臣許可(特-3)第12345号",
                        corporate_number="7000012050002", address="東京都千代田区霞が関3-1-1",
                        representative="報告 一郎")
    site = api.site(prime, name="報告ビル新築工事", disclosed_items=["prime", "period"], manager_name="現場 花子")
    store = api.site(prime, name="報告第二倉庫", period_start="2026-05-01", period_end="2026-12-31")
    upper, side, invitee, other_prime, stranger = (
        api.company(n) for n in ("(有)上位工業", "(株)別系統", "(株)招待先", "(株)他元請", "(株)無関係"))
    lower = api.company("𠮷野設備(株)", name_kana="よしのせつび", permit_number="東京都知事許可(般-4)第6789号",
                        corporate_number="3010401092310", address="東京都港区芝公園4-2-8", representative="𠮷野 次郎")
    up_node = api.registered(site, prime, site.root, upper)
    low_node = api.registered(site, upper, up_node, lower)
    api.invite(site, lower, low_node, invitee)
    api.registered(site, prime, site.root, side)
    other_site = api.site(other_prime, name="他元請の現場")
    api.registered(other_site, other_prime, other_site.root, lower)
    prime.owner.ok("POST", f"/sites/{site.id}/devices", {"device_id": "gate-rep", "name": "正門"}, status=201)

    def tapping(employer: Company, name: str, days: list[int], **fields: Any) -> dict[str, Any]:
        w: dict[str, Any] = api.worker(employer, name)
        uid = next(_uids)
        employer.owner.ok("POST", f"/workers/{w['id']}/cards", {"uid": uid}, status=201)
        api.on_roster(site, employer, w, **fields)
        for n, day in enumerate(days):
            _tap(api, uid, day, n)
        return w

    tapping(prime, "元請 一郎", [2, 3, 4])
    tapping(upper, "上位 二郎", [10, 11])
    tapping(upper, "上位 三郎", [10])
    worker = tapping(lower, "𠮷野 四郎", [2, 24, 25], position="foreman")
    unlisted = api.worker(lower, "名簿外 五郎")
    return World(api, site, store, other_site, prime, upper, lower, side, invitee, other_prime, stranger, worker,
                 unlisted)


# -- 3-1 事業者情報 ------------------------------------------------------------------------------------------


def lower_profile(world: World) -> list[str]:
    return [world.lower.ccus_id, "𠮷野設備(株)", "よしのせつび", "東京都知事許可(般-4)第6789号", "3010401092310",
            "東京都港区芝公園4-2-8", "𠮷野 次郎"]


def test_the_prime_downloads_a_subcontractors_company_profile_as_excel_with_its_registry_facts(world: World) -> None:
    path = f"/companies/{world.lower.id}/reports/profile"
    ws, rows = world.sheet(world.prime.owner, path)
    assert ws.title == "事業者情報" and ws.freeze_panes == "A2"
    assert rows == [PROFILE_HEADER, lower_profile(world)]
    assert ws["A1"].font.b and ws["B2"].font.name == xlsx.FONT_NAME
    disposition = world.get(world.prime.owner, path, format="xlsx").headers["content-disposition"]
    plain, encoded = disposition.split("; filename*=UTF-8''")
    assert plain == f'attachment; filename="company-profile_{world.lower.ccus_id}.xlsx"'
    assert unquote(encoded) == f"事業者情報_{world.lower.ccus_id}.xlsx"
    report = world.prime.owner.ok("GET", path)
    assert report["report"] == "3-1" and report["company"]["representative"] == "𠮷野 次郎"


def test_the_company_profile_csv_reads_back_in_both_encodings_and_an_empty_item_is_an_empty_cell(
        world: World) -> None:
    rows = world.csv_both(world.lower.owner, f"/companies/{world.lower.id}/reports/profile")
    assert rows == [PROFILE_HEADER, lower_profile(world)]
    bare = world.csv_both(world.upper.owner, f"/companies/{world.upper.id}/reports/profile")
    assert bare == [PROFILE_HEADER, [world.upper.ccus_id, "(有)上位工業", "", "", "", "", ""]]


def test_a_company_profile_opens_to_the_company_its_workers_the_prime_and_the_companies_above_it_only(
        world: World) -> None:
    api, path = world.api, f"/companies/{world.lower.id}/reports/profile"
    me = api.worker_login(world.lower, world.worker)
    staff = api.staff(world.lower, "site_manager", site_ids=[])
    for reader in (world.lower.owner, staff, me, api.worker_login(world.lower, world.unlisted), world.prime.owner,
                   world.upper.owner, world.other_prime.owner):
        assert reader.ok("GET", path)["company"]["name"] == "𠮷野設備(株)"
    # A company beside it, below it (an invitee under it), or on no site with it is not told it exists;
    # nor is a 現場管理者 of the 元請 bound to none of its sites.
    prime_elsewhere = api.staff(world.prime, "site_manager", site_ids=[world.store.id])
    for reader in (world.side.owner, world.invitee.owner, world.stranger.owner, prime_elsewhere):
        for fmt in ("json", "csv", "xlsx"):
            reader.fail("GET", path, status=404, code="company_not_found", format=fmt)
    # The lower company may not read the profile of the company above it, nor its worker another company's.
    world.lower.owner.fail("GET", f"/companies/{world.upper.id}/reports/profile", status=404, code="company_not_found")
    me.fail("GET", f"/companies/{world.upper.id}/reports/profile", status=404, code="company_not_found")
    api.operator.fail("GET", path, status=403, code="report_forbidden")
    world.prime.owner.fail("GET", "/companies/999999/reports/profile", status=404, code="company_not_found")


# -- 4-1 現場・契約情報 ---------------------------------------------------------------------------------------


FULL_SITE = ["現場ID", "現場名", "住所", "元請事業者名", "元請事業者ID", "発注区分", START, END, "現場担当者名",
             "日付の区切り"]
PUBLIC_SITE = ["現場ID", "現場名", "元請事業者名", "元請事業者ID", START, END]


def test_the_prime_downloads_every_item_of_its_site_as_excel(world: World) -> None:
    ws, rows = world.sheet(world.prime.owner, f"/sites/{world.site.id}/reports/site")
    assert ws.title == "現場・契約情報"
    header, row = rows
    assert header[:len(FULL_SITE)] == FULL_SITE and header[-1] == "公開設定の項目"
    cells = dict(zip(header, row, strict=True))
    assert cells["現場ID"] == world.site.ccus_id and cells["現場名"] == "報告ビル新築工事"
    assert cells["住所"] == "東京都 港区 虎ノ門" and cells["元請事業者名"] == "(株)報告建設"
    assert cells["元請事業者ID"] == world.prime.ccus_id and cells["発注区分"] == "民間工事"
    assert (cells["就業履歴蓄積期間（開始）"], cells["就業履歴蓄積期間（終了）"]) == ("2026-04-01", "2027-09-30")
    assert cells["現場担当者名"] == "現場 花子" and cells["日付の区切り"] == "04:00"
    assert cells["公開設定の項目"] == "就業履歴蓄積期間、元請事業者"
    report = world.prime.owner.ok("GET", f"/sites/{world.site.id}/reports/site")
    assert report["report"] == "4-1" and report["is_prime"] and report["site"]["manager_name"] == "現場 花子"


def test_subcontractors_and_workers_on_the_site_see_only_the_items_the_prime_made_public(world: World) -> None:
    path = f"/sites/{world.site.id}/reports/site"
    expected = [world.site.ccus_id, "報告ビル新築工事", "(株)報告建設", world.prime.ccus_id, "2026-04-01", "2027-09-30"]
    me = world.api.worker_login(world.lower, world.worker)
    for reader in (world.upper.owner, world.lower.owner, world.side.owner, world.invitee.owner, me):
        header, *rows = world.csv_both(reader, path)
        assert header[:len(PUBLIC_SITE)] == PUBLIC_SITE and set(header) - set(PUBLIC_SITE) <= {"タイムゾーン"}
        assert rows[0][:len(expected)] == expected and len(rows) == 1
        report = reader.ok("GET", path)
        assert not report["is_prime"] and "manager_name" not in report["site"] and "address" not in report["site"]
    _, (header, _) = world.sheet(world.upper.owner, path)
    assert "現場担当者名" not in header and "住所" not in header and "公開設定の項目" not in header
    # 報告第二倉庫 discloses nothing: a reader there would see only the site's ID and name (nobody but the
    # 元請 is on it, so the others are not told it exists).
    off_roster = world.api.worker_login(world.lower, world.unlisted)
    for reader in (world.stranger.owner, world.other_prime.owner, world.upper.owner, off_roster):
        for fmt in ("json", "csv", "xlsx"):
            reader.fail("GET", f"/sites/{world.store.id}/reports/site", status=404, code="site_not_found", format=fmt)
    world.stranger.owner.fail("GET", path, status=404, code="site_not_found")
    off_roster.fail("GET", path, status=404, code="site_not_found")


# -- 4-2 自社に関する現場一覧 ------------------------------------------------------------------------------------


def test_a_subcontractor_lists_its_sites_with_the_items_each_prime_made_public(world: World) -> None:
    path = f"/companies/{world.lower.id}/reports/sites"
    ws, rows = world.sheet(world.lower.owner, path)
    assert ws.title == "自社に関する現場一覧" and ws.freeze_panes == "D2"
    assert rows == [
        SITES_HEADER,
        [1, world.site.ccus_id, "報告ビル新築工事", "(株)報告建設", "2次", "登録", "2026-04-01", "2027-09-30"],
        [2, world.other_site.ccus_id, "他元請の現場", "非公開", "1次", "登録", "非公開", "非公開"],
        ["合計", "2現場", None, None, None, None, None, None],
    ]
    assert world.csv_both(world.lower.owner, path) == [
        SITES_HEADER,
        ["1", world.site.ccus_id, "報告ビル新築工事", "(株)報告建設", "2次", "登録", "2026-04-01", "2027-09-30"],
        ["2", world.other_site.ccus_id, "他元請の現場", "非公開", "1次", "登録", "非公開", "非公開"],
    ]
    report = world.lower.owner.ok("GET", path)
    assert report["report"] == "4-2" and [s["is_prime"] for s in report["sites"]] == [False, False]
    assert "prime" not in report["sites"][1]["site"] and "manager_name" not in report["sites"][0]["site"]
    disposition = world.get(world.lower.owner, path, format="csv").headers["content-disposition"]
    assert f'filename="company-sites_{world.lower.ccus_id}.csv"' in disposition


def test_the_prime_lists_its_own_sites_with_every_item_and_an_invitee_sees_its_pending_site(world: World) -> None:
    rows = world.csv_both(world.prime.owner, f"/companies/{world.prime.id}/reports/sites")
    assert rows[1:] == [
        ["1", world.site.ccus_id, "報告ビル新築工事", "(株)報告建設", "元請", "登録", "2026-04-01", "2027-09-30"],
        ["2", world.store.ccus_id, "報告第二倉庫", "(株)報告建設", "元請", "登録", "2026-05-01", "2026-12-31"],
    ]
    bound = world.api.staff(world.prime, "site_manager", site_ids=[world.store.id])
    assert [s["site"]["name"] for s in bound.ok("GET", f"/companies/{world.prime.id}/reports/sites")["sites"]] == [
        "報告第二倉庫"]
    pending = world.invitee.owner.ok("GET", f"/companies/{world.invitee.id}/reports/sites")["sites"]
    assert [(s["site"]["name"], s["tier_label"], s["status_label"]) for s in pending] == [
        ("報告ビル新築工事", "3次", "未承認")]
    assert world.stranger.owner.ok("GET", f"/companies/{world.stranger.id}/reports/sites")["sites"] == []


def test_only_the_companys_own_accounts_open_its_site_list_and_a_worker_may_not(world: World) -> None:
    path = f"/companies/{world.lower.id}/reports/sites"
    for reader in (world.prime.owner, world.upper.owner, world.stranger.owner):
        for fmt in ("json", "csv", "xlsx"):
            reader.fail("GET", path, status=404, code="company_not_found", format=fmt)
    me = world.api.worker_login(world.lower, world.worker)
    for fmt in ("json", "csv", "xlsx"):
        me.fail("GET", path, status=403, code="report_forbidden", format=fmt)


# -- 現場利用料 -------------------------------------------------------------------------------------------------


def test_the_prime_estimates_the_months_site_fee_from_the_month_views_worker_days(world: World) -> None:
    path = f"/sites/{world.site.id}/reports/fee"
    month = world.prime.owner.ok("GET", f"/sites/{world.site.id}/attendance/month", month=MONTH)
    assert month["summary"]["site_fee_days"] == 9
    report = world.prime.owner.ok("GET", path, month=MONTH)
    assert (report["worker_days"], report["fee_per_worker_day"], report["estimate"]) == (9, 10, 90)
    assert [(e["employer"]["name"], e["workers"], e["worker_days"], e["estimate"]) for e in report["by_employer"]] == [
        ("(有)上位工業", 2, 3, 30), ("(株)報告建設", 1, 3, 30), ("𠮷野設備(株)", 1, 3, 30)]
    ws, rows = world.sheet(world.prime.owner, path, month=MONTH)
    assert ws.title == "現場利用料（概算）"
    assert rows == [
        FEE_HEADER,
        [1, "(有)上位工業", 2, 3, 10, 30],
        [2, "(株)報告建設", 1, 3, 10, 30],
        [3, "𠮷野設備(株)", 1, 3, 10, 30],
        ["合計", None, 4, 9, 10, 90],
    ]
    assert world.csv_both(world.prime.owner, path, month=MONTH) == [
        FEE_HEADER, ["1", "(有)上位工業", "2", "3", "10", "30"], ["2", "(株)報告建設", "1", "3", "10", "30"],
        ["3", "𠮷野設備(株)", "1", "3", "10", "30"]]
    disposition = world.get(world.prime.owner, path, month=MONTH, format="xlsx").headers["content-disposition"]
    assert f'filename="site-fee_{world.site.ccus_id}_{MONTH}.xlsx"' in disposition


def test_the_fee_per_worker_day_comes_from_the_servers_settings_and_a_month_without_records_costs_nothing(
        world: World) -> None:
    world.api.ctx.site_fee_per_worker_day = 12
    report = world.prime.owner.ok("GET", f"/sites/{world.site.id}/reports/fee", month=MONTH)
    assert (report["worker_days"], report["fee_per_worker_day"], report["estimate"]) == (9, 12, 108)
    empty = world.prime.owner.ok("GET", f"/sites/{world.site.id}/reports/fee", month="2026-10")
    assert (empty["worker_days"], empty["estimate"], empty["by_employer"]) == (0, 0, [])
    world.prime.owner.fail("GET", f"/sites/{world.site.id}/reports/fee", status=422, code="invalid_month",
                           month="2026-13")


def test_only_the_prime_sees_the_site_fee_others_on_the_site_are_refused_and_strangers_not_told(
        world: World) -> None:
    path = f"/sites/{world.site.id}/reports/fee"
    me = world.api.worker_login(world.lower, world.worker)
    for reader in (world.upper.owner, world.lower.owner, world.side.owner, me):
        for fmt in ("json", "csv", "xlsx"):
            reader.fail("GET", path, status=403, code="prime_only", month=MONTH, format=fmt)
    for reader in (world.stranger.owner, world.other_prime.owner, world.api.worker_login(world.lower, world.unlisted),
                   world.api.staff(world.prime, "site_manager", site_ids=[world.store.id])):
        reader.fail("GET", path, status=404, code="site_not_found", month=MONTH)
    bound = world.api.staff(world.prime, "site_manager", site_ids=[world.site.id])
    assert bound.ok("GET", path, month=MONTH)["estimate"] == 90
