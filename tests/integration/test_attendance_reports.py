"""帳票 2-1 就業履歴（月別計） and 2-2 就業履歴一覧（月別集約） as JSON, CSV (UTF-8 with BOM, cp932) and Excel, and
the site month reports (2-1, 2-2, 2-4) streamed: every file is read back (openpyxl, the csv module) and checked
cell by cell; each party of the seed's 帳票 table gets what it may see (元請, upper, the employer, lower,
unrelated, the worker itself, another worker); a large-ish site's files come out while the records are read.
On SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import inspect
import io
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from itertools import count
from typing import Any, Literal
from urllib.parse import unquote
from zoneinfo import ZoneInfo

import openpyxl
import pytest
from world import Api, Company, Session, Site

from protocol.messages import Card, TapEvent
from server.domain.accounts import Actor, Role
from server.exports import xlsx
from server.services import attendance_reports, calendars, ingest
from server.services.context import Context
from server.store import tables as t
from server.store.unit_of_work import UnitOfWork

JST = ZoneInfo("Asia/Tokyo")
NOW = datetime(2026, 11, 25, 21, 0, tzinfo=JST)
BUF = "ef" * 16
MONTH = "2026-11"
_seq = count(1)
_uids = (f"0114B1B2C3D5F{n:03X}" for n in count(1))

LIST_HEADER = ["No.", "日付", "技能者ID", "氏名", "所属事業者", "次数", "入場時刻", "退場時刻", "職種", "立場",
               "作業内容", "有害物質", "健康保険", "年金保険", "雇用保険", "建退共", "能力評価", "対象外の理由"]
TOTALS_HEADER = ["No.", "技能者ID", "氏名", "所属事業者", "次数", "就業日数", "能力評価に有効な日数", "職長・班長日数",
                 "初回就業日", "最終就業日"]


@dataclass
class Month:
    """November 2026 on 暦ビル: 元請 ── upper (1次) ── lower (2次), and a side 1次; a stranger company with a
    worker of its own on no site. Lower's 𠮷田 is 職長, works a night shift (out after midnight) and also
    on a second site of the 元請 (暦倉庫) on one of the same days; lower's 花子 disclosed her 建退共; one of
    the 元請's workers is not on the roster (its day does not count)."""

    api: Api
    site: Site
    site2: Site
    prime: Company
    upper: Company
    lower: Company
    side: Company
    stranger: Company
    workers: dict[str, dict[str, Any]]
    logins: dict[str, Session] = field(default_factory=dict)

    def path(self, report: str) -> str:
        return f"/sites/{self.site.id}/reports/{report}"

    def get(self, by: Session, report: str, **q: str) -> Any:
        return by.ok("GET", self.path(report), month=MONTH, **q)

    def download(self, by: Session, path: str, **q: str) -> Any:
        r = by.call("GET", path, **{"month": MONTH, **q})
        assert r.status_code == 200, r.text
        return r

    def login(self, key: str) -> Session:
        """The worker's own account (made on first use)."""
        if key in self.logins:
            return self.logins[key]
        employer = {"prime": self.prime, "unlisted": self.prime, "upper": self.upper, "lower": self.lower,
                    "hanako": self.lower, "side": self.side, "stranger": self.stranger}[key]
        self.logins[key] = self.api.worker_login(employer, self.workers[key])
        return self.logins[key]


def _tap(api: Api, device: str, uid: str, at: datetime, direction: Literal["in", "out"]) -> None:
    event = TapEvent(device_id=device, buffer_id=BUF, seq=next(_seq), card=Card(tech="felica", uid=uid),
                     direction=direction, at=at, clock_synced=True, boot_id="boot-1", mono_ms=next(_seq) * 1000)
    assert ingest.ingest_taps(api.ctx, device, [event])[0].outcome == "recorded"


def _gates(site: Site, prime: Company, prefix: str) -> None:
    for direction in ("in", "out"):
        prime.owner.ok("POST", f"/sites/{site.id}/devices",
                       {"device_id": f"{prefix}-{direction}", "name": f"{prefix} {direction}", "direction": direction},
                       status=201)


@pytest.fixture
def month(api: Api) -> Month:
    api.ctx.clock = lambda: NOW.astimezone(UTC)  # the server takes taps only near its own time
    prime = api.company("(株)暦建設")
    site = api.site(prime, name="暦ビル新築工事")
    site2 = api.site(prime, name="暦倉庫改修工事")
    _gates(site, prime, "bldg")
    _gates(site2, prime, "depot")
    names = ("(有)上位工業", "(株)下位設備", "(株)別系統", "(株)無関係")
    upper, lower, side, stranger = (api.company(n) for n in names)
    up_node = api.registered(site, prime, site.root, upper)
    api.registered(site, upper, up_node, lower)
    api.registered(site, prime, site.root, side)
    api.registered(site2, prime, site2.root, lower)
    workers: dict[str, dict[str, Any]] = {}
    uids: dict[str, str] = {}

    def worker(key: str, employer: Company, name: str, *, roster: bool = True, on: Site | None = None,
               insurance: dict[str, str] | None = None, **fields: Any) -> None:
        w = api.worker(employer, name, **(insurance or {}))
        uids[key] = next(_uids)
        employer.owner.ok("POST", f"/workers/{w['id']}/cards", {"uid": uids[key]}, status=201)
        if roster:
            api.on_roster(on or site, employer, w, **fields)
        workers[key] = w

    def day(key: str, d: int, *, gate: str = "bldg", at: tuple[int, int] = (7, 30),
            out: tuple[int, int] | None = None) -> None:
        start = datetime(2026, 11, d, *at, tzinfo=JST)
        _tap(api, f"{gate}-in", uids[key], start, "in")
        if out is not None:
            hour, minute = out
            end = datetime(2026, 11, d, tzinfo=JST) + timedelta(hours=hour, minutes=minute)
            _tap(api, f"{gate}-out", uids[key], end, "out")

    enrolled = {"health_insurance": "enrolled", "pension_insurance": "enrolled",
                "employment_insurance": "exempt", "kentaikyo": "enrolled"}
    worker("prime", prime, "元請 一郎", insurance=enrolled)
    worker("unlisted", prime, "名簿 無し", roster=False)
    worker("upper", upper, "上位 二郎")
    worker("lower", lower, "𠮷田 三郎", insurance=enrolled, position="foreman", work_description="配管工事",
           hazardous=["asbestos", "other"], hazardous_other="シンナー")
    api.on_roster(site2, lower, workers["lower"], position="foreman")
    worker("hanako", lower, "下位 花子", insurance={**enrolled, "kentaikyo": "not_enrolled"})
    worker("side", side, "別系 四郎")
    worker("stranger", stranger, "無関係 五郎", roster=False)
    lower.owner.ok("PUT", f"/workers/{workers['hanako']['id']}/disclosure", {"items": {"kentaikyo": True}})
    hanako = api.worker_login(lower, workers["hanako"])
    hanako.ok("PUT", f"/workers/{workers['hanako']['id']}/disclosure", {"items": {"kentaikyo": True}})

    for d in (2, 3, 4):
        day("prime", d, out=(17, 0))
    day("unlisted", 5)
    day("upper", 10)
    day("upper", 11)
    day("lower", 2, out=(17, 30))
    day("lower", 24, at=(20, 0), out=(24 + 1, 30))  # the night shift: out at 01:30 on the 25th
    day("lower", 2, gate="depot", at=(18, 30))  # the second site, the same day
    day("lower", 3, gate="depot")
    day("hanako", 12)
    day("side", 20)
    return Month(api, site, site2, prime, upper, lower, side, stranger, workers, {"hanako": hanako})


def _csv(content: bytes, encoding: str = "utf-8-sig") -> list[list[str]]:
    return list(csv.reader(io.StringIO(content.decode(encoding))))


def _sheet(content: bytes) -> Any:
    return openpyxl.load_workbook(io.BytesIO(content)).active


def _cells(ws: Any, min_row: int = 2) -> list[list[Any]]:
    return [[c.value for c in row] for row in ws.iter_rows(min_row=min_row)]


# -- 2-2 就業履歴一覧（月別集約） ----------------------------------------------------------------------------


def test_the_prime_downloads_the_monthly_list_as_excel_a_row_per_day_with_times_work_and_insurance(
        month: Month) -> None:
    r = month.download(month.prime.owner, month.path("attendance-list"), format="xlsx")
    assert r.headers["content-type"] == xlsx.MEDIA_TYPE
    ws = _sheet(r.content)
    assert ws.title == "就業履歴一覧（月別集約）" and ws.freeze_panes == "E2"
    assert [c.value for c in ws[1]] == LIST_HEADER and ws["A1"].font.b and ws["D2"].font.name == xlsx.FONT_NAME
    rows = _cells(ws)
    body, totals = rows[:-1], rows[-1]
    assert [row[0] for row in body] == list(range(1, 11))
    # The 元請's workers first (one not on the roster is still filed under its employer's node), then 1次,
    # then 2次 (the tier of each worker's latest record), each worker's days in order.
    assert [(row[3], row[1]) for row in body] == [
        ("元請 一郎", "2026-11-02"), ("元請 一郎", "2026-11-03"), ("元請 一郎", "2026-11-04"),
        ("名簿 無し", "2026-11-05"), ("上位 二郎", "2026-11-10"), ("上位 二郎", "2026-11-11"),
        ("別系 四郎", "2026-11-20"), ("𠮷田 三郎", "2026-11-02"), ("𠮷田 三郎", "2026-11-24"),
        ("下位 花子", "2026-11-12")]
    by = {(row[3], row[1]): row for row in body}
    prime = by[("元請 一郎", "2026-11-02")]
    assert prime[2] == month.workers["prime"]["ccus_id"] and prime[4] == "(株)暦建設" and prime[5] == "元請"
    assert prime[6:8] == ["07:30", "17:00"] and prime[8] == "とび工 / とび工" and prime[9] == "一般"
    assert prime[12:16] == ["加入", "加入", "適用除外", "加入"]  # the employer sees its own worker's 建退共
    assert prime[16] == "有効" and prime[17] is None
    day = by[("𠮷田 三郎", "2026-11-02")]
    assert day[5] == "2次" and day[6:8] == ["07:30", "17:30"] and day[9] == "職長"
    assert day[10] == "配管工事" and day[11] == "石綿、その他（シンナー）"
    # The 元請 sees the social insurance of a worker on its roster, not its 建退共 (not disclosed).
    assert day[12:16] == ["加入", "加入", "適用除外", "非開示"]
    assert by[("𠮷田 三郎", "2026-11-24")][6:8] == ["20:00", "翌01:30"]  # the night shift, in Japan time
    assert by[("下位 花子", "2026-11-12")][15] == "未加入"  # disclosed by both: every company sees it
    assert by[("上位 二郎", "2026-11-10")][7] is None  # no exit tapped
    unlisted = by[("名簿 無し", "2026-11-05")]
    assert unlisted[5] == "元請" and unlisted[9] is None and unlisted[12:16] == ["未確認", "未確認", "未確認", "未確認"]
    assert unlisted[16] == "対象外" and "作業員名簿" in unlisted[17]
    assert totals[0] == "合計" and totals[1] == "10件" and totals[3] == "6人" and totals[16] == "有効 9件"


def test_the_monthly_list_csv_reads_back_in_utf8_with_a_bom_and_in_cp932(month: Month) -> None:
    path = month.path("attendance-list")
    r = month.download(month.upper.owner, path, format="csv")
    assert r.headers["content-type"] == "text/csv; charset=utf-8" and r.content.startswith(b"\xef\xbb\xbf")
    rows = _csv(r.content)
    assert rows[0] == LIST_HEADER and len(rows) == 1 + 5  # upper: its own and lower's; no totals row in a CSV
    assert [(row[3], row[1]) for row in rows[1:]] == [
        ("上位 二郎", "2026-11-10"), ("上位 二郎", "2026-11-11"), ("𠮷田 三郎", "2026-11-02"),
        ("𠮷田 三郎", "2026-11-24"), ("下位 花子", "2026-11-12")]
    night = rows[4]
    assert night[6:8] == ["20:00", "翌01:30"] and night[12:16] == ["加入", "加入", "適用除外", "非開示"]
    assert rows[5][15] == "未加入"

    sjis = month.download(month.upper.owner, path, format="csv", encoding="cp932")
    assert sjis.headers["content-type"] == "text/csv; charset=Shift_JIS" and not sjis.content.startswith(b"\xef")
    rows_sjis = _csv(sjis.content, "cp932")
    assert [row[3] for row in rows_sjis] == [row[3].replace("𠮷", "〓") for row in rows]
    assert [row[:3] + row[4:] for row in rows_sjis] == [row[:3] + row[4:] for row in rows]


def test_each_party_gets_the_monthly_list_of_the_records_the_seed_allows_and_a_worker_is_refused(
        month: Month) -> None:
    m = month

    def names(by: Session) -> list[str]:
        return sorted({r["worker"]["name"] for r in m.get(by, "attendance-list")["records"]})

    assert names(m.prime.owner) == sorted(w["name"] for k, w in m.workers.items() if k != "stranger")
    assert names(m.upper.owner) == ["上位 二郎", "下位 花子", "𠮷田 三郎"]
    assert names(m.lower.owner) == ["下位 花子", "𠮷田 三郎"]
    assert names(m.side.owner) == ["別系 四郎"]
    mine = m.get(m.lower.owner, "attendance-list")["records"]
    assert {r["kentaikyo"] for r in mine} == {"enrolled", "not_enrolled"}  # the employer sees everything
    yoshida = next(r for r in mine if r["work_day"] == "2026-11-24")
    assert yoshida["entry_at"] == "2026-11-24T20:00:00+09:00" and yoshida["exit_at"] == "2026-11-25T01:30:00+09:00"
    assert yoshida["social_insurance"] == {"health": "enrolled", "pension": "enrolled", "employment": "exempt"}
    prime_view = next(r for r in m.get(m.prime.owner, "attendance-list")["records"] if r["work_day"] == "2026-11-24")
    assert prime_view["kentaikyo"] is None and prime_view["social_insurance"] is not None
    for fmt in ("json", "csv", "xlsx"):
        m.login("lower").fail("GET", m.path("attendance-list"), status=403, code="report_forbidden", month=MONTH,
                              format=fmt)
        m.stranger.owner.fail("GET", m.path("attendance-list"), status=404, code="site_not_found", month=MONTH,
                              format=fmt)


# -- 2-1 就業履歴（月別計） ----------------------------------------------------------------------------------


def test_the_prime_downloads_the_monthly_totals_as_excel_a_row_per_worker_with_days_and_first_and_last(
        month: Month) -> None:
    r = month.download(month.prime.owner, month.path("attendance-totals"), format="xlsx")
    ws = _sheet(r.content)
    assert ws.title == "就業履歴（月別計）" and [c.value for c in ws[1]] == TOTALS_HEADER
    rows = {row[2]: row for row in _cells(ws)}
    assert rows["元請 一郎"][1:] == [month.workers["prime"]["ccus_id"], "元請 一郎", "(株)暦建設", "元請", 3, 3, 0,
                                 "2026-11-02", "2026-11-04"]
    assert rows["𠮷田 三郎"][4:] == ["2次", 2, 2, 2, "2026-11-02", "2026-11-24"]  # 職長 on both: this site only
    assert rows["名簿 無し"][4:] == ["元請", 1, 0, 0, "2026-11-05", "2026-11-05"]
    assert rows["6人"][0] == "合計" and rows["6人"][5:8] == [10, 9, 2]
    json = month.get(month.prime.owner, "attendance-totals")
    assert json["report"] == "2-1" and json["summary"] == {"workers": 6, "work_days": 10, "valid_days": 9,
                                                           "leader_days": 2}
    calendar = month.get(month.prime.owner, "attendance-calendar")
    assert calendar["summary"]["work_days"] == json["summary"]["work_days"]


def test_the_monthly_totals_csv_reads_back_in_both_encodings_and_is_named_after_the_site_and_month(
        month: Month) -> None:
    path = month.path("attendance-totals")
    r = month.download(month.lower.owner, path, format="csv")
    rows = _csv(r.content)
    assert rows[0] == TOTALS_HEADER and [row[2] for row in rows[1:]] == ["𠮷田 三郎", "下位 花子"]
    assert rows[1][5:] == ["2", "2", "2", "2026-11-02", "2026-11-24"]
    sjis = _csv(month.download(month.lower.owner, path, format="csv", encoding="cp932").content, "cp932")
    assert sjis[1][2] == "〓田 三郎" and sjis[1][5:] == rows[1][5:] and sjis[2] == rows[2]
    disposition = month.download(month.lower.owner, path, format="xlsx").headers["content-disposition"]
    plain, encoded = disposition.split("; filename*=UTF-8''")
    assert plain == f'attachment; filename="attendance-totals_{month.site.ccus_id}_{MONTH}.xlsx"'
    assert unquote(encoded) == f"就業履歴（月別計）_{month.site.ccus_id}_{MONTH}.xlsx"


def test_each_party_gets_the_site_totals_the_seed_allows_the_worker_only_its_own_line(month: Month) -> None:
    m = month

    def names(by: Session) -> list[str]:
        return sorted(x["worker"]["name"] for x in m.get(by, "attendance-totals")["workers"])

    assert names(m.upper.owner) == ["上位 二郎", "下位 花子", "𠮷田 三郎"]
    assert names(m.lower.owner) == ["下位 花子", "𠮷田 三郎"]
    assert names(m.side.owner) == ["別系 四郎"]
    assert names(m.login("lower")) == ["𠮷田 三郎"]
    assert names(m.login("upper")) == ["上位 二郎"]  # another worker on the roster: its own line, never 𠮷田's
    for fmt in ("json", "csv", "xlsx"):
        m.stranger.owner.fail("GET", m.path("attendance-totals"), status=404, code="site_not_found", month=MONTH,
                              format=fmt)
        m.login("stranger").fail("GET", m.path("attendance-totals"), status=404, code="site_not_found",
                                 month=MONTH, format=fmt)


def test_the_workers_totals_have_a_line_per_site_and_the_month_counted_as_ccus_does(month: Month) -> None:
    m = month
    path = f"/workers/{m.workers['lower']['id']}/reports/attendance-totals"
    for by in (m.login("lower"), m.lower.owner, m.prime.owner):
        got = m.download(by, path).json()
        assert got["report"] == "2-1" and got["worker"]["name"] == "𠮷田 三郎"
        assert [(s["site"]["name"], s["work_days"], s["leader_days"]) for s in got["sites"]] == [
            ("暦ビル新築工事", 2, 2), ("暦倉庫改修工事", 2, 2)]
        # The 2nd on both sites is one 就業日: 2, 3 and 24.
        assert got["summary"] == {"tier": None, "work_days": 3, "valid_days": 3, "leader_days": 3,
                                  "first_day": "2026-11-02", "last_day": "2026-11-24"}
    upper = m.download(m.upper.owner, path).json()  # upper is above 𠮷田 on the building only
    assert [s["site"]["name"] for s in upper["sites"]] == ["暦ビル新築工事"] and upper["summary"]["work_days"] == 2
    ws = _sheet(m.download(m.prime.owner, path, format="xlsx").content)
    assert [c.value for c in ws[1]][:4] == ["No.", "現場ID", "現場名", "次数"]
    rows = _cells(ws)
    assert rows[0][1:] == [m.site.ccus_id, "暦ビル新築工事", "2次", 2, 2, 2, "2026-11-02", "2026-11-24"]
    assert rows[1][1:4] == [m.site2.ccus_id, "暦倉庫改修工事", "1次"] and rows[1][7:] == ["2026-11-02", "2026-11-03"]
    assert rows[2] == ["合計", None, "2現場", None, 3, 3, 3, "2026-11-02", "2026-11-24"]
    csv_rows = _csv(m.download(m.login("lower"), path, format="csv", encoding="cp932").content, "cp932")
    assert [row[2] for row in csv_rows[1:]] == ["暦ビル新築工事", "暦倉庫改修工事"]
    for by in (m.side.owner, m.stranger.owner, m.login("hanako")):
        for fmt in ("json", "csv", "xlsx"):
            by.fail("GET", path, status=404, code="worker_not_found", month=MONTH, format=fmt)


# -- streaming -------------------------------------------------------------------------------------------


def _count_reads(ctx: Context) -> dict[str, int]:
    """Wrap the store's read units of work to count how many are open at a time."""
    state = {"open": 0, "opened": 0}
    inner = ctx.store.read

    @contextmanager
    def counted() -> Iterator[UnitOfWork]:
        with inner() as uow:
            state["open"] += 1
            state["opened"] += 1
            try:
                yield uow
            finally:
                state["open"] -= 1

    ctx.store.read = counted  # type: ignore[method-assign]
    return state


def test_a_site_report_reads_its_records_only_while_its_rows_are_iterated_in_a_unit_of_work_of_its_own(
        month: Month) -> None:
    ctx = month.api.ctx
    prime = Actor(account_id=0, role=Role.COMPANY_OWNER, company_id=month.prime.id)
    reads = _count_reads(ctx)
    report = attendance_reports.site_list(ctx, prime, month.site.id, MONTH)
    assert reads == {"open": 0, "opened": 1}  # the refusal check, done and closed before any row
    assert inspect.isgenerator(report.rows)
    rows = report.table(totals=True)
    first = next(rows)
    assert first[3] == "元請 一郎" and reads == {"open": 1, "opened": 2}  # reading, in a unit of its own
    rest = list(rows)
    assert rest[-1][0] == "合計" and len(rest) == 10 and reads["open"] == 0  # closed with the last row
    half = calendars.site_calendar(ctx, prime, month.site.id, MONTH).table()
    assert inspect.isgenerator(half)
    next(half)
    assert reads["open"] == 1
    half.close()  # a client that goes away halfway: the generator closes, and the unit of work with it
    assert reads["open"] == 0


N_WORKERS = 300
N_DAYS = 20


def _bulk_month(ctx: Context, prime: Company, site: Site) -> None:
    """A month of N_WORKERS workers of the 元請, N_DAYS records each (a handful of invalid ones), written
    through the repositories' bulk path as the ingest writes records."""
    now = ctx.now()
    with ctx.write() as uow:
        workers = [t.Worker(ccus_id=f"7{i:013d}", name=f"技能者 {i}", employer_id=prime.id, created_at=now)
                   for i in range(N_WORKERS)]
        uow.add_all(list(workers))
        uow.flush()
        rows = [{"site_id": site.id, "worker_id": w.id, "work_day": date(2026, 11, 1 + d),
                 "entry_at": datetime(2026, 11, 1 + d, 8, 0, tzinfo=JST).astimezone(UTC),
                 "exit_at": datetime(2026, 11, 1 + d, 17, 0, tzinfo=JST).astimezone(UTC),
                 "tap_count": 2, "clock_unverified": False, "employer_id": prime.id, "node_id": site.root, "tier": 0,
                 "on_roster": True, "trade_major": "06", "trade_minor": "01",
                 "position": "foreman" if i % 10 == 0 else "general", "valid": d != 0 or i % 3 != 0,
                 "reasons": [], "updated_at": now}
                for i, w in enumerate(workers) for d in range(N_DAYS)]
        uow.records.save_rebuilt(rows)


def test_a_large_site_streams_its_month_as_csv_and_excel_with_every_row_and_the_right_totals(api: Api) -> None:
    prime = api.company("(株)大規模建設")
    site = api.site(prime, name="大規模現場")
    _bulk_month(api.ctx, prime, site)
    invalid = len(range(0, N_WORKERS, 3))
    leaders = len(range(0, N_WORKERS, 10)) * N_DAYS - len(range(0, N_WORKERS, 30))  # a 職長's invalid day is none
    records = N_WORKERS * N_DAYS
    path = f"/sites/{site.id}/reports"

    ws = _sheet(prime.owner.call("GET", f"{path}/attendance-calendar", month=MONTH, format="xlsx").content)
    rows = _cells(ws)
    assert len(rows) == N_WORKERS + 1 and [row[0] for row in rows[:-1]] == list(range(1, N_WORKERS + 1))
    totals = rows[-1]
    assert totals[2] == f"{N_WORKERS}人" and totals[5] == N_WORKERS and totals[5 + N_DAYS] == 0
    assert totals[-3:] == [records, records - invalid, leaders]
    cal_csv = _csv(prime.owner.call("GET", f"{path}/attendance-calendar", month=MONTH, format="csv").content)
    assert len(cal_csv) == 1 + N_WORKERS and {row[5 + 1] for row in cal_csv[1:]} == {"○"}
    assert sum(row[5] == "△" for row in cal_csv[1:]) == invalid

    listed = _csv(prime.owner.call("GET", f"{path}/attendance-list", month=MONTH, format="csv",
                                   encoding="cp932").content, "cp932")
    assert len(listed) == 1 + records and listed[-1][0] == str(records)
    assert sum(row[16] == "対象外" for row in listed[1:]) == invalid
    assert {row[6] for row in listed[1:]} == {"08:00"} and {row[7] for row in listed[1:]} == {"17:00"}
    list_ws = _sheet(prime.owner.call("GET", f"{path}/attendance-list", month=MONTH, format="xlsx").content)
    assert list_ws.max_row == 1 + records + 1 and list_ws.cell(list_ws.max_row, 2).value == f"{records}件"

    totals_ws = _sheet(prime.owner.call("GET", f"{path}/attendance-totals", month=MONTH, format="xlsx").content)
    sums = _cells(totals_ws)[-1]
    assert sums[2] == f"{N_WORKERS}人" and sums[5:8] == [records, records - invalid, leaders]
