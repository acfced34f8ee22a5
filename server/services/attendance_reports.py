"""就業履歴 month reports: 帳票 2-1 就業履歴（月別計） and 2-2 就業履歴一覧（月別集約）, ready for JSON, CSV or Excel.

- 2-1, a site's month: a row per worker with its 就業日数, the days valid for skill evaluation (能力評価に
  有効な日数), its days as 職長・班長 and its first and last day there; a worker's month: a row per site
  it worked on, and the month as CCUS counts it (two sites on one day are one 就業日). Readers (seed's
  帳票 table): the worker itself, its employer, the 元請, upper companies.
- 2-2, a site's month: a row per record (worker-day) with the times in and out, the 就業内容 (職種・立場・
  作業内容・有害物質の取扱い) and the insurance and 建退共 states (seed 【2-2】: 日毎の就業履歴、就業内容、保険加入
  状況表示). Readers: the employer, the 元請, upper companies; a worker is refused (403).

Both site reports stream exactly as 2-4 does (``services.calendars``: the one query, ordered by worker
then day, read in its own read unit of work while the file is written; the 合計 row counted on the
way), with the same visibility and the same refusals. The worker's 2-1 is one worker's month, built on
its month view (``attendance.worker_month``) at once.

What 2-2 shows of a worker's personal items is the policy's (``Visibility.worker_items``): the employer
sees everything; the 元請 and upper companies the social insurance of a worker on the site's roster under
them (the 作業員名簿 holds it); anyone else, and 建退共 for anyone but the employer, only what both the
worker and the employer agreed to disclose. A cell the reader may not see says 非開示, never a guess.
"Under them" is read from this site's roster (the entry's node), not the worker's other sites: a
company that sees the worker on another site's roster only is shown 非開示 here, the safe side.

作業内容 and 有害物質 are the worker's roster entry on the site as it stands (a record keeps the 職種 and
立場 it was built with, not the whole entry). Times are in the site's time zone (``site_zone``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from server.domain.accounts import Actor
from server.domain.roster import HAZARDOUS, POSITIONS
from server.domain.trades import trade_table
from server.domain.visibility import Scope, Visibility
from server.exports import Cell, Row
from server.exports.report import Layout
from server.services import attendance
from server.services.calendars import (
    CalendarRow,
    MonthRecords,
    SiteMonthAccess,
    month_days,
    site_month_access,
    worker_month_row,
    worker_row,
)
from server.services.common import as_aware, require_reader, tier_label, worker_or_404
from server.services.companies import INSURANCE_STATES
from server.services.context import Context
from server.services.disclosure import proxy_principals
from server.services.records import rule_of
from server.store import tables as t
from server.store.unit_of_work import UnitOfWork

TOTALS_TITLE = "就業履歴（月別計）"
LIST_TITLE = "就業履歴一覧（月別集約）"
COUNTS = ("就業日数", "能力評価に有効な日数", "職長・班長日数", "初回就業日", "最終就業日")
SITE_LEADING = ("No.", "技能者ID", "氏名", "所属事業者", "次数")
WORKER_LEADING = ("No.", "現場ID", "現場名", "次数")
LIST_HEADER = ("No.", "日付", "技能者ID", "氏名", "所属事業者", "次数", "入場時刻", "退場時刻", "職種", "立場",
               "作業内容", "有害物質", "健康保険", "年金保険", "雇用保険", "建退共", "能力評価", "対象外の理由")
HIDDEN = "非開示"
VALID_LABEL = "有効"
INVALID_LABEL = "対象外"
# The personal items 2-2 prints, each behind the policy (``Visibility.worker_items``).
SHOWN_ITEMS = ("social_insurance", "kentaikyo")


def site_zone(site: t.Site) -> ZoneInfo:
    """The zone a site's times are printed in: the one home of that choice, so a per-site zone is one
    change here. Today the site's day rule's (Japan time unless the site says otherwise)."""
    return rule_of(site).tz


def clock(local: datetime | None, work_day: date) -> str:
    """A time in or out (``local``: already in the site's zone) as the office reads it next to its 日付:
    ``07:50``; ``翌01:30`` for the small hours after midnight that still belong to the work day (before
    the site's day boundary); the full date for anything further away (a corrected time, say); empty
    when there is none."""
    if local is None:
        return ""
    hhmm = f"{local.hour:02d}:{local.minute:02d}"
    if local.date() == work_day:
        return hhmm
    if local.date() == work_day + timedelta(days=1):
        return "翌" + hhmm
    return f"{local.date().isoformat()} {hhmm}"


def _iso(d: date | None) -> str:
    return d.isoformat() if d else ""


def _counts(r: CalendarRow) -> list[Cell]:
    return [r.work_days, r.valid_days, r.leader_days, _iso(r.first_day), _iso(r.last_day)]


def _counts_json(r: CalendarRow) -> dict[str, Any]:
    return {"tier": r.tier, "work_days": r.work_days, "valid_days": r.valid_days, "leader_days": r.leader_days,
            "first_day": _iso(r.first_day) or None, "last_day": _iso(r.last_day) or None}


# -- 2-1 就業履歴（月別計） -------------------------------------------------------------------------------


@dataclass(frozen=True)
class TotalsLine:
    """One line of 2-1: a worker's month on the site (``per`` site) or the worker's month on one site
    (``per`` worker: ``site`` names it)."""

    row: CalendarRow
    site: dict[str, Any] | None = None


@dataclass(frozen=True)
class AttendanceTotals:
    """2-1 of a site (a line per worker, read as it is iterated) or of a worker (a line per site, and
    ``overall``: the month across sites as CCUS counts it)."""

    per: Literal["site", "worker"]
    month: str
    subject: dict[str, Any]
    source: Callable[[], Iterator[TotalsLine]]
    overall: CalendarRow | None = None

    number = "2-1"
    title = TOTALS_TITLE

    @property
    def lines(self) -> Iterator[TotalsLine]:
        return self.source()

    @property
    def file_stem(self) -> str:
        return f"{self.title}_{self.subject['ccus_id']}_{self.month}"

    @property
    def ascii_stem(self) -> str:
        return f"attendance-totals_{self.subject['ccus_id']}_{self.month}"

    @property
    def layout(self) -> Layout:
        if self.per == "site":
            return Layout(widths=[5, 16, 18, 24, 6, 10, 12, 10, 12, 12], freeze="D2")
        return Layout(widths=[5, 16, 30, 6, 10, 12, 10, 12, 12], freeze="D2")

    def header(self) -> list[str]:
        return [*(SITE_LEADING if self.per == "site" else WORKER_LEADING), *COUNTS]

    def table(self, *, totals: bool = False) -> Iterator[Row]:
        """The lines as cells, in the header's order; ``totals``: a last 合計 row, the site's
        worker-days summed (a site) or the worker's month across sites (a worker)."""
        sums = [0, 0, 0]
        n = 0
        for n, line in enumerate(self.lines, 1):
            r = line.row
            sums = [sums[0] + r.work_days, sums[1] + r.valid_days, sums[2] + r.leader_days]
            if line.site is None:
                who: list[Cell] = [r.worker["ccus_id"], r.worker["name"], r.employer["name"] if r.employer else ""]
            else:
                who = [line.site["ccus_id"], line.site["name"]]
            yield [n, *who, tier_label(r.tier), *_counts(r)]
        if not totals:
            return
        if self.per == "site":
            yield ["合計", "", f"{n}人", "", "", *sums, "", ""]
        elif self.overall is not None:
            yield ["合計", "", f"{n}現場", "", *_counts(self.overall)]

    def as_json(self) -> dict[str, Any]:
        lines = list(self.lines)
        out: dict[str, Any] = {"report": self.number, "title": self.title, self.per: self.subject,
                               "month": self.month}
        if self.per == "site":
            out["workers"] = [{"worker": x.row.worker, "employer": x.row.employer, **_counts_json(x.row)}
                              for x in lines]
            out["summary"] = {"workers": len(lines), "work_days": sum(x.row.work_days for x in lines),
                              "valid_days": sum(x.row.valid_days for x in lines),
                              "leader_days": sum(x.row.leader_days for x in lines)}
        else:
            out["sites"] = [{"site": x.site, **_counts_json(x.row)} for x in lines]
            out["summary"] = _counts_json(self.overall) if self.overall else None
        return out


def site_totals(ctx: Context, actor: Actor, site_id: int, month: str, *,
                uow: UnitOfWork | None = None) -> AttendanceTotals:
    """2-1 of a site: a line per worker the account sees (the worker itself: its own line only),
    streamed from the one month query. Refused before anything is read (403, or the view's 404)."""
    first, last, _ = month_days(month)
    require_reader(actor, "2-1")
    with ctx.read(uow) as check:
        access = site_month_access(check, actor, site_id, first, last)
    records = MonthRecords(ctx, access, uow=uow)

    def lines() -> Iterator[TotalsLine]:
        return (TotalsLine(worker_row(mine, ())) for mine in records.by_worker())

    return AttendanceTotals("site", first.strftime("%Y-%m"), access.subject, lines)


def worker_totals(ctx: Context, actor: Actor, worker_id: int, month: str, *,
                  uow: UnitOfWork | None = None) -> AttendanceTotals:
    """2-1 of a worker: a line per site of its month that the account sees (``attendance.worker_month``:
    the worker, its employer, the 元請 and upper companies of each site; anyone else 404), and the month
    across them counted as CCUS does."""
    _, _, days = month_days(month)
    require_reader(actor, "2-1")
    with ctx.read(uow) as uow:
        view = attendance.worker_month(ctx, actor, worker_id, month, uow=uow)
        worker = worker_or_404(uow, worker_id)
        company = uow.get(t.Company, worker.employer_id)
        employer = {"id": company.id, "name": company.name} if company else None
        site_ids = sorted({r["site"]["id"] for d in view["days"] for r in d["records"]})
        sites = {s.id: s for s in (uow.sites.get(i) for i in site_ids) if s is not None}
        per_site = [TotalsLine(worker_month_row(view, employer, days, s.id),
                               {"id": s.id, "ccus_id": s.ccus_id, "name": s.name}) for s in sites.values()]
    per_site.sort(key=lambda x: (x.row.first_day or date.max, x.site["id"] if x.site else 0))  # as worked
    subject = {**view["worker"], "employer": employer}
    return AttendanceTotals("worker", view["month"], subject, lambda: iter(per_site),
                            overall=worker_month_row(view, employer, days))


# -- 2-2 就業履歴一覧（月別集約） ---------------------------------------------------------------------------


@dataclass(slots=True)
class ListRow:
    """One record of 2-2 as printed: every value already what the reader may see (``HIDDEN`` where not).
    Not frozen: a frozen dataclass sets each of its fields through ``object.__setattr__``, which for one
    row per record of a 5,000-worker month was a visible part of the time."""

    work_day: date
    worker: dict[str, Any]
    employer: dict[str, Any] | None
    tier: int | None
    entry: str
    exit: str
    entry_at: str | None
    exit_at: str | None
    trade: dict[str, str] | None
    position: str | None
    work_description: str
    hazardous: tuple[str, ...]
    hazardous_label: str
    insurance: dict[str, str] | None  # health, pension, employment states; None: hidden
    kentaikyo: str | None  # None: hidden
    valid: bool
    reasons: tuple[str, ...]

    def cells(self, n: int) -> list[Cell]:
        def state(v: str | None) -> str:
            return HIDDEN if v is None else INSURANCE_STATES.get(v, v)

        ins = self.insurance or {}
        return [n, self.work_day.isoformat(), self.worker["ccus_id"], self.worker["name"],
                self.employer["name"] if self.employer else "", tier_label(self.tier), self.entry, self.exit,
                self.trade["label"] if self.trade else "", POSITIONS.get(self.position or "", self.position or ""),
                self.work_description, self.hazardous_label, state(ins.get("health")), state(ins.get("pension")),
                state(ins.get("employment")), state(self.kentaikyo), VALID_LABEL if self.valid else INVALID_LABEL,
                "、".join(self.reasons)]

    def as_json(self) -> dict[str, Any]:
        return {
            "work_day": self.work_day.isoformat(), "worker": self.worker, "employer": self.employer,
            "tier": self.tier, "entry_at": self.entry_at, "exit_at": self.exit_at, "trade": self.trade,
            "position": self.position, "position_label": POSITIONS.get(self.position or ""),
            "work_description": self.work_description, "hazardous": list(self.hazardous),
            "social_insurance": self.insurance, "kentaikyo": self.kentaikyo,
            "valid_for_skill_evaluation": self.valid, "invalid_reasons": list(self.reasons),
        }


@dataclass(frozen=True)
class AttendanceList:
    """2-2 of a site: a row per record the account sees, read as it is iterated."""

    month: str
    subject: dict[str, Any]
    source: Callable[[], Iterator[ListRow]]

    number = "2-2"
    title = LIST_TITLE

    @property
    def rows(self) -> Iterator[ListRow]:
        return self.source()

    @property
    def file_stem(self) -> str:
        return f"{self.title}_{self.subject['ccus_id']}_{self.month}"

    @property
    def ascii_stem(self) -> str:
        return f"attendance-list_{self.subject['ccus_id']}_{self.month}"

    @property
    def layout(self) -> Layout:
        return Layout(widths=[6, 11, 16, 18, 24, 6, 8, 8, 22, 12, 24, 18, 9, 9, 9, 9, 8, 40], freeze="E2")

    def header(self) -> list[str]:
        return list(LIST_HEADER)

    def table(self, *, totals: bool = False) -> Iterator[Row]:
        """The records as cells; ``totals``: a last 合計 row (records, workers, records that count),
        counted on the way (the rows come a worker at a time)."""
        n = workers = valid = 0
        last_worker = None
        for n, r in enumerate(self.rows, 1):
            if r.worker["id"] != last_worker:
                workers, last_worker = workers + 1, r.worker["id"]
            valid += r.valid
            yield r.cells(n)
        if totals:
            blank: list[Cell] = [""] * (len(LIST_HEADER) - 6)
            yield ["合計", f"{n}件", "", f"{workers}人", "", "", *blank[:-2], f"{VALID_LABEL} {valid}件", ""]

    def as_json(self) -> dict[str, Any]:
        rows = [r.as_json() for r in self.rows]
        return {"report": self.number, "title": self.title, "site": self.subject, "month": self.month,
                "records": rows,
                "summary": {"records": len(rows), "workers": len({r["worker"]["id"] for r in rows}),
                            "valid": sum(1 for r in rows if r["valid_for_skill_evaluation"])}}


class _ItemsOf:
    """What the reader sees of each worker's insurance and 建退共 (``Visibility.worker_items``), asked
    once per worker as the rows pass (they come a worker at a time)."""

    def __init__(self, actor: Actor, access: SiteMonthAccess, agents: frozenset[int]) -> None:
        self.policy = Visibility(actor)
        self.roster: Scope = self.policy.roster(access.tree)
        self.agents = agents
        self._worker: int | None = None
        self._items: frozenset[str] = frozenset()

    def of(self, r: Any) -> frozenset[str]:
        if r.worker_id != self._worker:
            on_roster_here = r.roster_node_id is not None and self.roster.admits(node_id=r.roster_node_id)
            items = self.policy.worker_items(
                worker_id=r.worker_id, employer_id=r.employer_id, sees_roster=on_roster_here,
                is_proxy_agent=r.employer_id in self.agents,
                disclosed={i for i in SHOWN_ITEMS if getattr(r, f"disclosed_{i}")})
            self._worker, self._items = r.worker_id, items or frozenset()
        return self._items


def _list_rows(records: MonthRecords, items_of: _ItemsOf, zone: ZoneInfo) -> Iterator[ListRow]:
    """The records as ``ListRow``s. What belongs to the worker (who, its roster entry, what the reader
    sees of its insurance) is made once per worker as its records pass; per record only its own values."""
    trades = trade_table()
    trade_labels: dict[tuple[str, str], dict[str, str]] = {}
    for mine in records.by_worker():
        head = mine[0]
        items = items_of.of(head)
        hazardous = tuple(head.hazardous or ())
        labels = [HAZARDOUS.get(h, h) for h in hazardous if h != "other"]
        if "other" in hazardous:
            labels.append(f"その他（{head.hazardous_other}）" if head.hazardous_other else HAZARDOUS["other"])
        worker = {"id": head.worker_id, "ccus_id": head.worker_ccus_id, "name": head.worker_name}
        employer = {"id": head.employer_id, "name": head.employer_name} if head.employer_name is not None else None
        insurance = {"health": head.health_insurance, "pension": head.pension_insurance,
                     "employment": head.employment_insurance} if "social_insurance" in items else None
        kentaikyo = head.kentaikyo if "kentaikyo" in items else None
        for r in mine:
            entry = as_aware(r.entry_at).astimezone(zone) if r.entry_at else None
            exit_ = as_aware(r.exit_at).astimezone(zone) if r.exit_at else None
            trade = None
            if r.trade_major and r.trade_minor:
                key = (r.trade_major, r.trade_minor)
                if key not in trade_labels:
                    trade_labels[key] = {"major": key[0], "minor": key[1], "label": trades.label_of(*key)}
                trade = trade_labels[key]
            yield ListRow(
                work_day=r.work_day, worker=worker, employer=employer, tier=r.tier,
                entry=clock(entry, r.work_day), exit=clock(exit_, r.work_day),
                entry_at=entry.isoformat() if entry else None, exit_at=exit_.isoformat() if exit_ else None,
                trade=trade, position=r.position, work_description=head.work_description or "",
                hazardous=hazardous, hazardous_label="、".join(labels), insurance=insurance, kentaikyo=kentaikyo,
                valid=bool(r.valid), reasons=tuple(x.get("message", "") for x in (r.reasons or ())),
            )


def site_list(ctx: Context, actor: Actor, site_id: int, month: str, *,
              uow: UnitOfWork | None = None) -> AttendanceList:
    """2-2 of a site: a row per record the account sees (the employer, the 元請, upper companies; a
    worker 403), streamed from the one month query with the record's roster entry and the worker's
    insurance. Refused before anything is read (403, or the view's 404)."""
    first, last, _ = month_days(month)
    require_reader(actor, "2-2")
    with ctx.read(uow) as check:
        access = site_month_access(check, actor, site_id, first, last)
        agents = proxy_principals(check, actor.company_id)
    records = MonthRecords(ctx, access, details=True, disclosed=SHOWN_ITEMS, uow=uow)
    zone = site_zone(access.site)
    return AttendanceList(first.strftime("%Y-%m"), access.subject,
                          lambda: _list_rows(records, _ItemsOf(actor, access, agents), zone))
