"""就業履歴 month calendars, the 帳票 2-3 (one worker) and 2-4 (a site's workers): a row per worker and a
column per day of the month, with the worker's totals, ready for JSON, CSV or Excel. Also the one way a
site's month of records is read for a report (``site_month_access`` and ``MonthRecords``), which 2-1 and
2-2 (``services.attendance_reports``) share.

**Streaming.** A site's month is 5,000 workers × 22 days = 110,000 records at the sizes this product is
meant for. 2-4 reads them with one query (``RecordRepository.month_of_site``), ordered by worker then
day, from a cursor in batches, and folds each worker's days into its ``CalendarRow`` as they pass: one
worker's records in hand at a time, and the 合計 row counted as it goes. The CSV and Excel writers take
the rows as an iterator (``server.exports``), so the file goes out while the records are still being
read and memory stays flat (tests/bench/reports.py measures it). The JSON form lists every worker in one
document and so holds them all; for 5,000 workers that is a few MiB, which is fine.

**Where the read unit of work lives.** Whether the account may open the report at all, and which
records it sees (the policy's ``Scope``), is decided by the service in a short read unit of work
*before* any byte is sent, so a refusal is still a clean 403/404. The rows are read later, when the
router's StreamingResponse (or the CLI, or a test) iterates them: ``MonthRecords`` then opens its own
read unit of work and holds it exactly as long as the iteration — the ``with`` block sits inside the
generator, so it ends when the last row is read, or when the generator is closed or released (a
client that disconnects halfway: Starlette stops pulling, drops the iterator, and CPython closes the
generator as its last reference goes, which runs the ``with``'s exit). Why that is
safe: the read never waits for and never blocks a writer (SQLite WAL, PostgreSQL MVCC); it is one
transaction, so every row comes from one consistent snapshot; the scope it reads through was decided
moments earlier from the same policy (an account that lost its place in the 施工体制 in between gets the
rows it was allowed at the time of its request, never another site's); and StreamingResponse pulls a
sync iterator from worker threads one ``next`` at a time, never two at once, which a SQLAlchemy
session and the SQLite connection (``check_same_thread=False``) allow. A caller that passes its own
``uow`` keeps it open while it consumes the report (``Context.read`` then uses it).

Visibility is the month view's (``attendance.site_month``): ``Visibility.records`` turned into the same
SQL filter by the repository, the same refusal (404 ``site_not_found``) for a company that is not a
registered member of the site and sees no record there, and ``REPORT_READERS`` (403) before either.

Day cells: ``○`` a day with a record valid for skill evaluation (能力評価に有効), ``△`` a day with a record
that is not (not on the roster, outside the period, an unverified clock, …), empty otherwise. On the
worker's calendar across sites a day is ○ when any of its records is valid (two sites on one day are one
就業日, as CCUS counts).

The CSV's shape and CCUS's own: the 建退共 就労実績報告作成ツール reads CCUS's 「月別カレンダーCSVファイル」
(下請個別作業方式; e.g. https://gf-officea.com/app/news/157 describes the flow), but no published column
layout of that file was found (searched: CCUS 就業履歴 CSV 建退共 出力, 月別カレンダーCSVファイル 項目, 就業履歴一覧
（月別カレンダー） CSV レイアウト). So the columns and marks here are this product's documented choice, not a
copy of CCUS's file, and the 建退共 tool is not promised to read it: when the layout is known, only
``LEADING`` / ``TRAILING`` / the marks change.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from itertools import groupby
from operator import attrgetter
from typing import Any

from server.domain.accounts import Actor
from server.domain.hierarchy import Tree
from server.domain.roster import LEADER_POSITIONS
from server.domain.visibility import Scope, Visibility
from server.errors import site_not_found
from server.exports import Row
from server.exports.report import Layout
from server.services import attendance
from server.services.common import load_tree, require_reader, site_or_404, tier_label, worker_or_404
from server.services.context import Context
from server.store import tables as t
from server.store.unit_of_work import UnitOfWork

VALID = "○"
INVALID = "△"
WEEKDAYS = "月火水木金土日"
SITE_TITLE = "就業履歴一覧（月別カレンダー）"
WORKER_TITLE = "就業履歴（月別カレンダー）"
LEADING = ("No.", "技能者ID", "氏名", "所属事業者", "次数")
TRAILING = ("就業日数", "能力評価に有効な日数", "職長・班長日数")


# -- a site's month, as every month report reads it ------------------------------------------------------


@dataclass(frozen=True)
class SiteMonthAccess:
    """What was decided before the first byte: the site, the month's range, the records the account sees
    (``scope``) and the policy's other answers a report may need (``tree``)."""

    site: t.Site
    tree: Tree
    first: date
    last: date
    scope: Scope

    @property
    def subject(self) -> dict[str, Any]:
        return {"id": self.site.id, "ccus_id": self.site.ccus_id, "name": self.site.name}


def site_month_access(uow: UnitOfWork, actor: Actor, site_id: int, first: date, last: date) -> SiteMonthAccess:
    """The account's view of a site's month, or the view's refusal (404 ``site_not_found``): a company
    that is not a registered member of the site, or a worker not on its roster, is not told the site
    exists unless it sees a record there (an employer's own workers filed under another company's
    branch). The same rule as ``attendance.site_month``, asked of the same policy (``Visibility.is_member``)."""
    site = site_or_404(uow, site_id)
    tree = load_tree(uow, site_id)
    policy = Visibility(actor)
    scope = policy.records(tree, site.prime_id)
    on_roster = actor.worker_id is not None and uow.roster.is_on_roster(site_id, actor.worker_id)
    if not policy.is_member(tree, on_roster=on_roster) and not uow.records.any_of_site(site_id, first, last, scope):
        raise site_not_found()
    return SiteMonthAccess(site, tree, first, last, scope)


@dataclass(frozen=True)
class MonthRecords:
    """The records of ``access``'s month, read when iterated, in a read unit of work of their own that
    lasts as long as the iteration (see the module docstring); ``details`` and ``disclosed`` as
    ``RecordRepository.month_of_site``. Iterable more than once: each pass is a new read."""

    ctx: Context
    access: SiteMonthAccess
    details: bool = False
    disclosed: tuple[str, ...] = ()
    uow: UnitOfWork | None = None

    def __iter__(self) -> Iterator[Any]:
        a = self.access
        with self.ctx.read(self.uow) as uow:
            yield from uow.records.month_of_site(a.site.id, a.first, a.last, a.scope, details=self.details,
                                                 disclosed=self.disclosed)

    def by_worker(self) -> Iterator[list[Any]]:
        """The records one worker at a time (its days in order): the rows come ordered by worker."""
        for _, records in groupby(self, key=attrgetter("worker_id")):
            yield list(records)


# -- the calendar ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CalendarRow:
    """One worker's month: a mark per day of the month (``VALID``, ``INVALID`` or "") and the counts,
    with the first and last day it has a record (None: none)."""

    worker: dict[str, Any]
    employer: dict[str, Any] | None
    tier: int | None
    marks: tuple[str, ...]
    work_days: int
    valid_days: int
    leader_days: int
    first_day: date | None = None
    last_day: date | None = None


def worker_row(records: list[Any], days: tuple[date, ...]) -> CalendarRow:
    """A worker's ``CalendarRow`` from its records of one site in the month (``MonthRecords.by_worker``),
    counted as ``attendance.site_month`` counts: (site, worker, day) is unique, so its 就業日数 is the
    number of records, its days as 職長/班長 the valid ones with a leader 立場; its 次数 is the latest
    record's."""
    valid = {r.work_day: bool(r.valid) for r in records}
    head, latest = records[0], records[-1]
    return CalendarRow(
        worker={"id": head.worker_id, "ccus_id": head.worker_ccus_id, "name": head.worker_name},
        employer={"id": head.employer_id, "name": head.employer_name} if head.employer_name is not None else None,
        tier=latest.tier,
        marks=tuple("" if d not in valid else VALID if valid[d] else INVALID for d in days),
        work_days=len(records),
        valid_days=sum(1 for v in valid.values() if v),
        leader_days=sum(1 for r in records if r.valid and r.position in LEADER_POSITIONS),
        first_day=head.work_day,
        last_day=latest.work_day,
    )


@dataclass(frozen=True)
class Calendar:
    """A month calendar (帳票 ``number``) of a site or a worker, and what the file is named after.
    ``source`` makes the rows; ``rows`` asks it anew each time (a site's: read as they are iterated)."""

    number: str
    title: str
    month: str
    days: tuple[date, ...]
    subject: dict[str, Any]
    source: Callable[[], Iterator[CalendarRow]]

    @property
    def rows(self) -> Iterator[CalendarRow]:
        return self.source()

    @property
    def file_stem(self) -> str:
        """The file name without extension: the report, the 現場ID or 技能者ID staff know, the month."""
        return f"{self.title}_{self.subject['ccus_id']}_{self.month}"

    @property
    def ascii_stem(self) -> str:
        """The same for clients that only read a plain ASCII filename."""
        return f"attendance-calendar_{self.subject['ccus_id']}_{self.month}"

    @property
    def layout(self) -> Layout:
        leading, trailing = len(LEADING), len(TRAILING)
        return Layout(widths=[5, 16, 18, 24, 6, *([4.5] * len(self.days)), 10, 12, 10], freeze="F2",
                      centered=[False] * leading + [True] * len(self.days) + [False] * trailing)

    def header(self) -> list[str]:
        return [*LEADING, *(f"{d.day}({WEEKDAYS[d.weekday()]})" for d in self.days), *TRAILING]

    def table(self, *, totals: bool = False) -> Iterator[Row]:
        """The rows as cells, in the header's order, as they are read; ``totals``: a last 合計 row
        (workers per day and the summed counts: the site's worker-days), counted on the way."""
        per_day = [0] * len(self.days)
        sums = [0, 0, 0]
        n = 0
        for n, r in enumerate(self.rows, 1):
            for i, mark in enumerate(r.marks):
                if mark:
                    per_day[i] += 1
            sums[0] += r.work_days
            sums[1] += r.valid_days
            sums[2] += r.leader_days
            yield [n, r.worker["ccus_id"], r.worker["name"], r.employer["name"] if r.employer else "",
                   tier_label(r.tier), *r.marks, r.work_days, r.valid_days, r.leader_days]
        if totals:
            yield ["合計", "", f"{n}人", "", "", *per_day, *sums]

    def as_json(self) -> dict[str, Any]:
        key = "site" if self.number == "2-4" else "worker"
        rows = list(self.rows)
        return {
            "report": self.number,
            "title": self.title,
            key: self.subject,
            "month": self.month,
            "marks": {"valid": VALID, "invalid": INVALID, "none": ""},
            "days": [{"date": d.isoformat(), "weekday": WEEKDAYS[d.weekday()]} for d in self.days],
            "workers": [
                {"worker": r.worker, "employer": r.employer, "tier": r.tier, "marks": list(r.marks),
                 "work_days": r.work_days, "valid_days": r.valid_days, "leader_days": r.leader_days}
                for r in rows
            ],
            "summary": {"workers": len(rows), "work_days": sum(r.work_days for r in rows),
                        "valid_days": sum(r.valid_days for r in rows)},
        }


def month_days(month: str) -> tuple[date, date, tuple[date, ...]]:
    """The month's first and last day and every day in it (``month``: YYYY-MM, else 422 invalid_month)."""
    first, last = attendance.parse_month(month)
    return first, last, tuple(first + timedelta(days=i) for i in range((last - first).days + 1))


def _site_rows(records: MonthRecords, days: tuple[date, ...]) -> Iterator[CalendarRow]:
    return (worker_row(mine, days) for mine in records.by_worker())


def site_calendar(ctx: Context, actor: Actor, site_id: int, month: str, *,
                  uow: UnitOfWork | None = None) -> Calendar:
    """2-4 就業履歴一覧（月別カレンダー）: the site's workers this account sees, each with its day marks,
    streamed from one query (module docstring). Refused before anything is read: 403 for an account the
    seed's table does not list, 404 as the month view."""
    first, last, days = month_days(month)
    require_reader(actor, "2-4")
    with ctx.read(uow) as check:
        access = site_month_access(check, actor, site_id, first, last)
    records = MonthRecords(ctx, access, uow=uow)
    return Calendar("2-4", SITE_TITLE, first.strftime("%Y-%m"), days, access.subject,
                    lambda: _site_rows(records, days))


def worker_calendar(ctx: Context, actor: Actor, worker_id: int, month: str, site_id: int | None = None, *,
                    uow: UnitOfWork | None = None) -> Calendar:
    """2-3 就業履歴（月別カレンダー）: one worker's month as this account sees it (``worker_month``),
    on every site, or on ``site_id`` only. Counted as CCUS does: a day with records on two sites is
    one 就業日; a day as 職長/班長 needs a valid record with a leader 立場. One row: built at once."""
    _, _, days = month_days(month)
    require_reader(actor, "2-3")
    with ctx.read(uow) as uow:
        view = attendance.worker_month(ctx, actor, worker_id, month, uow=uow)
        worker = worker_or_404(uow, worker_id)
        employer = uow.get(t.Company, worker.employer_id)
        row = worker_month_row(view, {"id": employer.id, "name": employer.name} if employer else None, days,
                               site_id)
        subject = dict(view["worker"])
        if site_id is not None:
            subject["site_id"] = site_id
        return Calendar("2-3", WORKER_TITLE, view["month"], days, subject, lambda: iter([row]))


def worker_month_row(view: dict[str, Any], employer: dict[str, Any] | None, days: tuple[date, ...],
                     site_id: int | None = None) -> CalendarRow:
    """A worker's ``CalendarRow`` from its month view (``attendance.worker_month``), across sites or on
    ``site_id`` only: a day is ○ when any of its records is valid."""
    by_day = _records_by_day(view, site_id)
    marks = tuple(
        "" if not by_day.get(d.isoformat()) else
        VALID if any(r["valid_for_skill_evaluation"] for r in by_day[d.isoformat()]) else INVALID
        for d in days
    )
    tiers = {r["tier"] for rs in by_day.values() for r in rs}
    worked = [d for d in days if by_day.get(d.isoformat())]
    return CalendarRow(
        worker=view["worker"],
        employer=employer,
        tier=tiers.pop() if site_id is not None and len(tiers) == 1 else None,
        marks=marks,
        work_days=sum(1 for m in marks if m),
        valid_days=sum(1 for m in marks if m == VALID),
        leader_days=_leader_days(by_day.values()),
        first_day=worked[0] if worked else None,
        last_day=worked[-1] if worked else None,
    )


def _records_by_day(view: dict[str, Any], site_id: int | None) -> dict[str, list[dict[str, Any]]]:
    return {d["date"]: [r for r in d["records"] if site_id is None or r["site"]["id"] == site_id]
            for d in view["days"]}


def _leader_days(days: Iterable[list[dict[str, Any]]]) -> int:
    return sum(1 for rs in days
               if any(r["valid_for_skill_evaluation"] and r["position"] in LEADER_POSITIONS for r in rs))
