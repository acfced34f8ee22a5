"""就業履歴 month calendars, the 帳票 2-3 (one worker) and 2-4 (a site's workers): a row per worker and a
column per day of the month, with the worker's totals, ready for JSON, CSV or Excel.

Built on the month views (``attendance.site_month``, ``attendance.worker_month``) and through the same
visibility policy, so a report never shows a record the view would not, and a party who may not see
the view gets the same refusal (404 ``site_not_found`` / ``worker_not_found``), never an empty file.

Day cells: CCUS's own calendar export was not available to check, so the marks are this product's
documented choice: ``○`` a day with a record valid for skill evaluation (能力評価に有効), ``△`` a day
with a record that is not (not on the roster, outside the period, an unverified clock, …), empty
otherwise. On the worker's calendar across sites a day is ○ when any of its records is valid (two
sites on one day are one 就業日, as CCUS counts).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from server.domain.accounts import Actor
from server.domain.roster import LEADER_POSITIONS
from server.exports import Row
from server.exports.report import Layout
from server.services import attendance
from server.services.common import require_reader, site_or_404, tier_label, worker_or_404
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


@dataclass(frozen=True)
class CalendarRow:
    """One worker's month: a mark per day of the month (``VALID``, ``INVALID`` or "") and the counts."""

    worker: dict[str, Any]
    employer: dict[str, Any] | None
    tier: int | None
    marks: tuple[str, ...]
    work_days: int
    valid_days: int
    leader_days: int


@dataclass(frozen=True)
class Calendar:
    """A month calendar (帳票 ``number``) of a site or a worker, and what the file is named after."""

    number: str
    title: str
    month: str
    days: tuple[date, ...]
    subject: dict[str, Any]
    rows: list[CalendarRow] = field(default_factory=list)

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
        """The rows as cells, in the header's order; ``totals``: a last 合計 row (workers per day and
        the summed counts: the site's worker-days), for the printed sheet."""
        per_day = [0] * len(self.days)
        sums = [0, 0, 0]
        for n, r in enumerate(self.rows, 1):
            for i, mark in enumerate(r.marks):
                per_day[i] += 1 if mark else 0
            sums = [sums[0] + r.work_days, sums[1] + r.valid_days, sums[2] + r.leader_days]
            yield [n, r.worker["ccus_id"], r.worker["name"], r.employer["name"] if r.employer else "",
                   tier_label(r.tier), *r.marks, r.work_days, r.valid_days, r.leader_days]
        if totals:
            yield ["合計", "", f"{len(self.rows)}人", "", "", *per_day, *sums]

    def as_json(self) -> dict[str, Any]:
        key = "site" if self.number == "2-4" else "worker"
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
                for r in self.rows
            ],
            "summary": {"workers": len(self.rows), "work_days": sum(r.work_days for r in self.rows),
                        "valid_days": sum(r.valid_days for r in self.rows)},
        }


def _days(month: str) -> tuple[date, date, tuple[date, ...]]:
    first, last = attendance.parse_month(month)
    return first, last, tuple(first + timedelta(days=i) for i in range((last - first).days + 1))


def site_calendar(ctx: Context, actor: Actor, site_id: int, month: str, *,
                  uow: UnitOfWork | None = None) -> Calendar:
    """2-4 就業履歴一覧（月別カレンダー）: the site's workers this account sees (``site_month``), each
    with its day marks. The marks come from the same scoped read as the site's day view."""
    first, last, days = _days(month)
    require_reader(actor, "2-4")
    with ctx.read(uow) as uow:
        view = attendance.site_month(ctx, actor, site_id, month, uow=uow)
        site = site_or_404(uow, site_id)
        marks: dict[int, dict[date, str]] = {}
        if view["workers"]:
            _, _, rows = attendance.site_rows(uow, actor, site_id, first, last, ("worker_id", "work_day", "valid"))
            for r in rows:
                marks.setdefault(r.worker_id, {})[r.work_day] = VALID if r.valid else INVALID
        out = [
            CalendarRow(worker=w["worker"], employer=w["employer"], tier=w["tier"],
                        marks=tuple(marks.get(w["worker"]["id"], {}).get(d, "") for d in days),
                        work_days=w["days"], valid_days=w["valid_days"], leader_days=w["leader_days"])
            for w in view["workers"]
        ]
        return Calendar("2-4", SITE_TITLE, view["month"], days,
                        {"id": site.id, "ccus_id": site.ccus_id, "name": site.name}, out)


def worker_calendar(ctx: Context, actor: Actor, worker_id: int, month: str, site_id: int | None = None, *,
                    uow: UnitOfWork | None = None) -> Calendar:
    """2-3 就業履歴（月別カレンダー）: one worker's month as this account sees it (``worker_month``),
    on every site, or on ``site_id`` only. Counted as CCUS does: a day with records on two sites is
    one 就業日; a day as 職長/班長 needs a valid record with a leader 立場."""
    _, _, days = _days(month)
    require_reader(actor, "2-3")
    with ctx.read(uow) as uow:
        view = attendance.worker_month(ctx, actor, worker_id, month, uow=uow)
        worker = worker_or_404(uow, worker_id)
        employer = uow.get(t.Company, worker.employer_id)
        by_day: dict[str, list[dict[str, Any]]] = {
            d["date"]: [r for r in d["records"] if site_id is None or r["site"]["id"] == site_id]
            for d in view["days"]
        }
        marks = tuple(
            "" if not by_day.get(d.isoformat()) else
            VALID if any(r["valid_for_skill_evaluation"] for r in by_day[d.isoformat()]) else INVALID
            for d in days
        )
        records = [r for rs in by_day.values() for r in rs]
        tiers = {r["tier"] for r in records}
        row = CalendarRow(
            worker=view["worker"],
            employer={"id": employer.id, "name": employer.name} if employer else None,
            tier=tiers.pop() if site_id is not None and len(tiers) == 1 else None,
            marks=marks,
            work_days=sum(1 for m in marks if m),
            valid_days=sum(1 for m in marks if m == VALID),
            leader_days=sum(1 for rs in by_day.values()
                            if any(r["valid_for_skill_evaluation"] and r["position"] in LEADER_POSITIONS
                                   for r in rs)),
        )
        subject = dict(view["worker"])
        if site_id is not None:
            subject["site_id"] = site_id
        return Calendar("2-3", WORKER_TITLE, view["month"], days, subject, [row])
