"""帳票 2-3 / 2-4 就業履歴（月別カレンダー） as JSON, CSV (UTF-8 with BOM, cp932) and Excel: every file is read
back (openpyxl, the csv module) and checked cell by cell, and each party of the seed's 帳票 table gets what
it may see (元請, upper, the employer, lower, unrelated, the worker). On SQLite and PostgreSQL."""

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
from server.exports import Cell, xlsx
from server.exports.csv import ENCODINGS, CsvWriter
from server.services import ingest

JST = ZoneInfo("Asia/Tokyo")
NOW = datetime(2026, 11, 25, 21, 0, tzinfo=JST)
BUF = "cd" * 16
MONTH = "2026-11"
_seq = count(1)
_uids = (f"0114B1B2C3D4E{n:03X}" for n in count(1))


@dataclass
class Month:
    """A site in November 2026: 元請 ── upper (1次) ── lower (2次), and a side 1次; a worker of each, one
    of lower's as 職長, one of the 元請's not on the roster (its days are △), one stranger company."""

    api: Api
    site: Site
    prime: Company
    upper: Company
    lower: Company
    side: Company
    stranger: Company
    workers: dict[str, dict[str, Any]]

    def path(self, fmt: str = "json", **q: str) -> tuple[str, dict[str, str]]:
        return f"/sites/{self.site.id}/reports/attendance-calendar", {"month": MONTH, "format": fmt, **q}

    def site_calendar(self, by: Session) -> dict[str, Any]:
        path, q = self.path()
        result: dict[str, Any] = by.ok("GET", path, **q)
        return result

    def download(self, by: Session, path: str, **q: str) -> Any:
        r = by.call("GET", path, **q)
        assert r.status_code == 200, r.text
        return r


def _tap(api: Api, uid: str, at: datetime) -> None:
    event = TapEvent(device_id="gate-in", buffer_id=BUF, seq=next(_seq), card=Card(tech="felica", uid=uid),
                     direction="in", at=at, clock_synced=True, boot_id="boot-1", mono_ms=next(_seq) * 1000)
    assert ingest.ingest_taps(api.ctx, "gate-in", [event])[0].outcome == "recorded"


@pytest.fixture
def month(api: Api) -> Month:
    api.ctx.clock = lambda: NOW.astimezone(UTC)  # the server takes taps only near its own time
    prime = api.company("(株)暦建設")
    site = api.site(prime, name="暦ビル新築工事")
    prime.owner.ok("POST", f"/sites/{site.id}/devices", {"device_id": "gate-in", "name": "正門", "direction": "in"},
                   status=201)
    names = ("(有)上位工業", "(株)下位設備", "(株)別系統", "(株)無関係")
    upper, lower, side, stranger = (api.company(n) for n in names)
    up_node = api.registered(site, prime, site.root, upper)
    api.registered(site, upper, up_node, lower)
    api.registered(site, prime, site.root, side)

    def worker(key: str, employer: Company, name: str, days: list[int], *, roster: bool = True,
               **fields: Any) -> None:
        w = api.worker(employer, name)
        uid = next(_uids)
        employer.owner.ok("POST", f"/workers/{w['id']}/cards", {"uid": uid}, status=201)
        if roster:
            api.on_roster(site, employer, w, **fields)
        for n, day in enumerate(days):
            _tap(api, uid, datetime(2026, 11, day, 7, 30 + n, tzinfo=JST))
        workers[key] = w

    workers: dict[str, dict[str, Any]] = {}
    worker("prime", prime, "元請 一郎", [2, 3, 4])
    worker("unlisted", prime, "名簿 無し", [5], roster=False)
    worker("upper", upper, "上位 二郎", [10, 11])
    worker("lower", lower, "𠮷田 三郎", [2, 24, 25], position="foreman")
    worker("side", side, "別系 四郎", [20])
    return Month(api, site, prime, upper, lower, side, stranger, workers)


def _names(calendar: dict[str, Any]) -> set[str]:
    return {row["worker"]["name"] for row in calendar["workers"]}


def test_the_prime_downloads_the_site_calendar_as_excel_with_a_row_per_worker_its_days_and_totals(
        month: Month) -> None:
    path, q = month.path("xlsx")
    r = month.download(month.prime.owner, path, **q)
    assert r.headers["content-type"] == xlsx.MEDIA_TYPE
    wb = openpyxl.load_workbook(io.BytesIO(r.content))
    ws = wb.active
    assert ws.title == "就業履歴一覧（月別カレンダー）" and ws.freeze_panes == "F2"
    header = [c.value for c in ws[1]]
    assert header[:5] == ["No.", "技能者ID", "氏名", "所属事業者", "次数"]
    assert header[5] == "1(日)" and header[5 + 29] == "30(月)" and len(header) == 5 + 30 + 3
    assert header[-3:] == ["就業日数", "能力評価に有効な日数", "職長・班長日数"]
    assert ws["A1"].font.b and ws["C2"].font.name == xlsx.FONT_NAME
    rows = {r[2]: r for r in ([c.value for c in row] for row in ws.iter_rows(min_row=2))}
    assert set(rows) == {w["name"] for w in month.workers.values()} | {"5人"}  # and the 合計 row
    day = {d: 4 + d for d in range(1, 31)}  # the column of day d
    prime, lower, unlisted = rows["元請 一郎"], rows["𠮷田 三郎"], rows["名簿 無し"]
    assert prime[1] == month.workers["prime"]["ccus_id"] and prime[3] == "(株)暦建設" and prime[4] == "元請"
    assert [prime[day[d]] for d in (1, 2, 3, 4, 5)] == [None, "○", "○", "○", None]
    assert prime[-3:] == [3, 3, 0]
    assert lower[4] == "2次" and [lower[day[d]] for d in (2, 24, 25)] == ["○", "○", "○"]
    assert lower[-3:] == [3, 3, 3]  # 職長 on every valid day
    assert unlisted[day[5]] == "△" and unlisted[-3:] == [1, 0, 0]  # a record, not valid for skill evaluation
    totals = rows["5人"]
    assert totals[0] == "合計" and totals[day[2]] == 2 and totals[day[5]] == 1 and totals[-3:] == [10, 9, 3]
    json = month.site_calendar(month.prime.owner)
    site_month = month.prime.owner.ok("GET", f"/sites/{month.site.id}/attendance/month", month=MONTH)
    assert json["summary"]["work_days"] == site_month["summary"]["site_fee_days"] == 10


def test_the_site_calendar_csv_reads_back_in_utf8_with_a_bom_and_in_cp932_with_the_replacement_counted(
        month: Month) -> None:
    path, q = month.path("csv")
    r = month.download(month.prime.owner, path, **q)
    assert r.headers["content-type"] == "text/csv; charset=utf-8"
    assert r.content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert rows[0][:3] == ["No.", "技能者ID", "氏名"] and len(rows) == 1 + 5  # no totals row: the file is data
    lower = next(row for row in rows if row[2] == "𠮷田 三郎")
    assert lower[5 + 23] == "○" and lower[5] == "" and lower[-3:] == ["3", "3", "3"]

    sjis = month.download(month.prime.owner, path, **{**q, "encoding": "cp932"})
    assert sjis.headers["content-type"] == "text/csv; charset=Shift_JIS"
    assert not sjis.content.startswith(b"\xef\xbb\xbf")
    rows_sjis = list(csv.reader(io.StringIO(sjis.content.decode("cp932"))))
    assert [row[2] for row in rows_sjis] == [row[2].replace("𠮷", "〓") for row in rows]
    assert rows_sjis[1:] != [] and [row[5:] for row in rows_sjis] == [row[5:] for row in rows]


def test_the_file_is_named_after_the_sites_ccus_id_and_the_month_in_ascii_and_rfc_5987(month: Month) -> None:
    path, q = month.path("xlsx")
    disposition = month.download(month.prime.owner, path, **q).headers["content-disposition"]
    plain, encoded = disposition.split("; filename*=UTF-8''")
    assert plain == f'attachment; filename="attendance-calendar_{month.site.ccus_id}_{MONTH}.xlsx"'
    assert unquote(encoded) == f"就業履歴一覧（月別カレンダー）_{month.site.ccus_id}_{MONTH}.xlsx"


def test_each_party_sees_the_site_calendar_of_the_workers_the_seed_allows_and_a_stranger_gets_no_file(
        month: Month) -> None:
    m, w = month, month.workers
    assert _names(m.site_calendar(m.prime.owner)) == {x["name"] for x in w.values()}
    assert _names(m.site_calendar(m.upper.owner)) == {w["upper"]["name"], w["lower"]["name"]}
    assert _names(m.site_calendar(m.lower.owner)) == {w["lower"]["name"]}
    assert _names(m.site_calendar(m.side.owner)) == {w["side"]["name"]}
    # The worker is not a reader of 2-4 in the seed: refused, in every format, not given its own row.
    me = m.api.worker_login(m.lower, w["lower"])
    for fmt in ("json", "csv", "xlsx"):
        path, q = m.path(fmt)
        me.fail("GET", path, status=403, code="report_forbidden", **q)
    for fmt in ("json", "csv", "xlsx"):
        path, q = m.path(fmt)
        m.stranger.owner.fail("GET", path, status=404, code="site_not_found", **q)


def test_the_worker_calendar_is_for_the_worker_its_employer_the_prime_and_upper_only(month: Month) -> None:
    m, w = month, month.workers
    path = f"/workers/{w['lower']['id']}/reports/attendance-calendar"
    me = m.api.worker_login(m.lower, w["lower"])
    for by in (me, m.lower.owner, m.upper.owner, m.prime.owner):
        cal = by.ok("GET", path, month=MONTH)
        assert cal["report"] == "2-3" and len(cal["workers"]) == 1
        row = cal["workers"][0]
        assert [i + 1 for i, mark in enumerate(row["marks"]) if mark] == [2, 24, 25]
        assert (row["work_days"], row["valid_days"], row["leader_days"]) == (3, 3, 3)
    for by in (m.side.owner, m.stranger.owner, m.api.worker_login(m.upper, w["upper"])):
        for fmt in ("json", "csv", "xlsx"):
            by.fail("GET", path, status=404, code="worker_not_found", month=MONTH, format=fmt)
    r = m.download(me, path, month=MONTH, format="xlsx", site_id=str(m.site.id))
    ws = openpyxl.load_workbook(io.BytesIO(r.content)).active
    assert ws.title == "就業履歴（月別カレンダー）"
    rows = [[c.value for c in row] for row in ws.iter_rows(min_row=2)]
    assert rows[0][2] == "𠮷田 三郎" and rows[0][4] == "2次" and rows[0][5 + 1] == "○" and rows[0][-3:] == [3, 3, 3]
    assert w["lower"]["ccus_id"] in r.headers["content-disposition"]
    elsewhere = me.ok("GET", path, month=MONTH, site_id=str(m.site.id + 1000))
    assert elsewhere["workers"][0]["marks"] == [""] * 30 and elsewhere["workers"][0]["work_days"] == 0
    csv_rows = list(csv.reader(io.StringIO(m.download(me, path, month=MONTH, format="csv").content
                                           .decode("utf-8-sig"))))
    assert len(csv_rows) == 2 and csv_rows[1][1] == w["lower"]["ccus_id"]


def test_a_bad_month_format_or_encoding_is_a_clear_error(month: Month) -> None:
    path, q = month.path("csv")
    month.prime.owner.fail("GET", path, status=422, code="invalid_month", **{**q, "month": "2026-13"})
    month.prime.owner.fail("GET", path, status=422, **{**q, "format": "pdf"})
    month.prime.owner.fail("GET", path, status=422, **{**q, "encoding": "euc-jp"})


def test_a_name_a_spreadsheet_would_run_as_a_formula_stays_text_in_csv_and_excel() -> None:
    rows = [["=HYPERLINK(\"http://x\")", "@SUM(A1)", "山田"]]
    text = b"".join(CsvWriter(["a", "b", "c"], iter(rows)).chunks()).decode("utf-8-sig")
    assert list(csv.reader(io.StringIO(text)))[1] == ["'=HYPERLINK(\"http://x\")", "'@SUM(A1)", "山田"]
    ws = openpyxl.load_workbook(io.BytesIO(b"".join(xlsx.chunks(["a", "b", "c"], iter(rows), title="t")))).active
    assert ws["A2"].data_type == "s" and ws["A2"].value == "=HYPERLINK(\"http://x\")"


def test_a_control_character_excel_cannot_hold_becomes_geta_in_excel_and_stays_as_stored_in_csv() -> None:
    """A name stored with a control character (imported before the import refused them) must not break
    the file: Excel's XML cannot hold it, so the sheet shows 〓 there, as the cp932 CSV does for what
    Shift_JIS lacks; tab and line breaks are kept. The CSV holds it as stored, in both encodings."""
    assert xlsx.printable("審査\x0b二郎\x00\x1f") == "審査〓二郎〓〓"
    assert xlsx.printable("東京都\t千代田区\r\n丸の内") == "東京都\t千代田区\r\n丸の内"
    assert xlsx.printable("=1+1") == "=1+1"  # only the characters; the formula guard is the writer's
    rows: list[list[Cell]] = [["審査\x0b二郎", "=\x0c", 3, None]]
    body = b"".join(xlsx.chunks(["氏名\x01", "b", "c", "d"], iter(rows), title="一覧\x1b"))
    wb = openpyxl.load_workbook(io.BytesIO(body))
    ws = wb.active
    assert ws is not None and ws.title == "一覧〓"
    assert [c.value for c in ws[1]] == ["氏名〓", "b", "c", "d"]
    assert [c.value for c in ws[2][:3]] == ["審査〓二郎", "=〓", 3] and ws["B2"].data_type == "s"
    for encoding in ENCODINGS:
        writer = CsvWriter(["氏名"], iter([["審査\x0b二郎"]]), encoding=encoding)
        text = b"".join(writer.chunks()).decode("utf-8-sig" if encoding == "utf-8" else "cp932")
        assert list(csv.reader(io.StringIO(text, newline=""))) == [["氏名"], ["審査\x0b二郎"]]
        assert writer.replaced == 0
