"""就業履歴 as people read it: the site's day, the month per worker, a worker's calendar (参考資料2-3),
one record with its taps and corrections. Who sees which record: ``Visibility.records``."""


from __future__ import annotations

import calendar
from collections.abc import Iterable
from datetime import date, timedelta
from typing import Any

from server.domain import attendance as rules
from server.domain.accounts import Actor
from server.domain.hierarchy import Tree
from server.domain.roster import LEADER_POSITIONS, POSITIONS
from server.domain.trades import trade_table
from server.domain.visibility import Visibility
from server.errors import InvalidInput, NotFound, site_not_found, worker_not_found
from server.services.common import load_tree, site_or_404, worker_or_404
from server.services.context import Context
from server.services.corrections import correction_view
from server.services.records import local_time, rule_of, utc
from server.store import tables as t
from server.store.repositories.records import MonthGroup
from server.store.unit_of_work import UnitOfWork


def record_view(r: t.Attendance, worker: t.Worker, employer: t.Company | None, rule: rules.DayRule) -> dict[str, Any]:
    return {
        "id": r.id,
        "site_id": r.site_id,
        "work_day": r.work_day.isoformat(),
        "worker": {"id": worker.id, "ccus_id": worker.ccus_id, "name": worker.name},
        "employer": {"id": employer.id, "name": employer.name} if employer else None,
        "tier": r.tier,
        "trade": {"major": r.trade_major, "minor": r.trade_minor,
                  "label": trade_table().label_of(r.trade_major, r.trade_minor)}
        if r.trade_major and r.trade_minor else None,
        "position": r.position,
        "position_label": POSITIONS.get(r.position or ""),
        "entry_at": local_time(r.entry_at, rule),
        "exit_at": local_time(r.exit_at, rule),
        "device_entry_at": local_time(r.device_entry_at, rule),
        "device_exit_at": local_time(r.device_exit_at, rule),
        "corrected": r.correction_id is not None,
        "tap_count": r.tap_count,
        "clock_unverified": r.clock_unverified,
        "on_roster": r.on_roster,
        "valid_for_skill_evaluation": r.valid,
        "invalid_reasons": list(r.reasons),
    }


class _Viewer:
    """The policy's answers for one site, asked once: which records the actor sees (``scope``, also
    handed to the repositories as SQL), whether it is on the site and whether it is the 元請."""

    def __init__(self, actor: Actor, site: t.Site, tree: Tree) -> None:
        policy = Visibility(actor)
        self.scope = policy.records(tree, site.prime_id)
        self.on_site = policy.member_node(tree) is not None
        self.is_prime = policy.is_prime(site.id, site.prime_id)
        self.site_id = site.id

    def sees(self, r: Any) -> bool:
        """``r``: a record (ORM object or plain row) with its worker, employer and node."""
        return self.scope.admits(site_id=self.site_id, worker_id=r.worker_id, employer_id=r.employer_id,
                                 node_id=r.node_id)


def _load_people(uow: UnitOfWork, rows: Iterable[Any]) -> tuple[dict[int, t.Worker], dict[int, t.Company]]:
    return uow.workers.people({r.worker_id for r in rows})


def site_rows(uow: UnitOfWork, actor: Actor, site_id: int, first: date, last: date,
              columns: tuple[str, ...] | None = None) -> tuple[t.Site, _Viewer, list[Any]]:
    """The records of a site in a date range that the actor sees, as plain rows (all columns, or
    ``columns``). Not ORM objects: a month of a large site is 200,000 read-only rows, and an
    identity-mapped object per row (and decoding columns nobody reads) was most of the time."""
    site = site_or_404(uow, site_id)
    viewer = _Viewer(actor, site, load_tree(uow, site_id))
    visible = list(uow.records.rows_of_site(site_id, first, last, viewer.scope, columns))
    if not visible and not viewer.on_site:
        raise site_not_found()
    return site, viewer, visible


def site_day(ctx: Context, actor: Actor, site_id: int, day: date | None = None, *,
             uow: UnitOfWork | None = None) -> dict[str, Any]:
    """The day's 就業履歴 on one site as this account may see it, with the 元請's to-do lists:
    cards seen today that are not linked to anyone, and corrections waiting for a decision.
    Without ``day``, the site's current work day: before its day boundary (04:00 unless set) that
    is still yesterday's date, as the night's taps are."""
    with ctx.read(uow) as uow:
        if day is None:
            day = rules.work_day(ctx.now(), rule_of(site_or_404(uow, site_id)))
        site, viewer, rows = site_rows(uow, actor, site_id, day, day)
        rule = rule_of(site)
        workers, companies = _load_people(uow, rows)
        records = [record_view(r, workers[r.worker_id], companies.get(workers[r.worker_id].employer_id), rule)
                   for r in rows]
        out: dict[str, Any] = {
            "site": {"id": site.id, "name": site.name, "day_boundary": site.day_boundary,
                     "time_zone": site.time_zone},
            "work_day": day.isoformat(),
            "records": records,
            "summary": {
                "workers": len(records),
                "valid": sum(1 for r in records if r["valid_for_skill_evaluation"]),
                "invalid": sum(1 for r in records if not r["valid_for_skill_evaluation"]),
                "no_exit": sum(1 for r in records if r["exit_at"] is None),
            },
        }
        if viewer.is_prime:
            out["unlinked_cards"] = _unlinked(uow, site, day)
            out["pending_corrections"] = uow.records.count_pending_corrections(site.id)
        return out


def _unlinked(uow: UnitOfWork, site: t.Site, day: date) -> list[dict[str, Any]]:
    """Cards tapped on the site that day that no worker holds yet: the 元請 links them (or finds the
    visitor), and the taps become that worker's record when linked."""
    rule = rule_of(site)
    start, end = rules.day_window(day, rule)
    rows = uow.taps.unlinked_cards_between(site.id, utc(start), utc(end))
    return [{"card_uid": uid, "tech": tech, "taps": n, "first_at": local_time(lo, rule),
             "last_at": local_time(hi, rule)} for uid, tech, n, lo, hi in rows]


def parse_month(text: str) -> tuple[date, date]:
    try:
        year, month = (int(p) for p in text.split("-"))
        first = date(year, month, 1)
    except ValueError:
        raise InvalidInput("invalid_month", ja="月は YYYY-MM で指定してください（例: 2026-11）",
                           en="a month is YYYY-MM, e.g. 2026-11", value=text[:20]) from None
    return first, date(year, month, calendar.monthrange(year, month)[1])


def site_month(ctx: Context, actor: Actor, site_id: int, month: str, *,
               uow: UnitOfWork | None = None) -> dict[str, Any]:
    """A month on one site: per worker the days on site and the days that count, and the totals
    the 元請 is charged and reports (就業日数, 現場利用料の人日). Counted in the database per worker
    (``RecordRepository.month_groups``), visibility decided once per (company, place) group, not per record."""
    first, last = parse_month(month)
    with ctx.read(uow) as uow:
        site = site_or_404(uow, site_id)
        viewer = _Viewer(actor, site, load_tree(uow, site_id))
        groups = uow.records.month_groups(site_id, first, last, viewer.scope, LEADER_POSITIONS)
        if not groups and not viewer.on_site:
            raise site_not_found()
        workers, companies = _load_people(uow, groups)
        per: dict[int, list[MonthGroup]] = {}
        for g in groups:
            per.setdefault(g.worker_id, []).append(g)
        out_rows: list[dict[str, Any]] = []
        for worker_id, mine in per.items():
            w = workers[worker_id]
            employer = companies.get(w.employer_id)
            out_rows.append({
                "worker": {"id": w.id, "ccus_id": w.ccus_id, "name": w.name},
                "employer": {"id": employer.id, "name": employer.name} if employer else None,
                "tier": max(mine, key=lambda g: g.last_day).tier,  # the tier of the latest day's record
                "days": sum(g.days for g in mine),
                "valid_days": sum(g.valid_days for g in mine),
                "leader_days": sum(g.leader_days for g in mine),
                "work_days": sorted(d.isoformat() for g in mine for d in g.work_days),
            })
        out_rows.sort(key=lambda x: (x["tier"] if x["tier"] is not None else 99, x["worker"]["id"]))
        return {
            "site": {"id": site.id, "name": site.name},
            "month": first.strftime("%Y-%m"),
            "workers": out_rows,
            "summary": {"site_fee_days": sum(g.days for g in groups), "workers": len(out_rows)},
        }


def worker_month(ctx: Context, actor: Actor, worker_id: int, month: str, *,
                 uow: UnitOfWork | None = None) -> dict[str, Any]:
    """One worker's month (the calendar of 参考資料2-3): every day, with the sites and times the
    account may see; the counts follow CCUS (two sites on one day are one 就業日)."""
    first, last = parse_month(month)
    with ctx.read(uow) as uow:
        worker = worker_or_404(uow, worker_id)
        rows = uow.records.of_worker_between(worker_id, first, last)
        visible: list[t.Attendance] = []
        sites: dict[int, tuple[t.Site, _Viewer]] = {}
        for r in rows:
            if r.site_id not in sites:
                site = site_or_404(uow, r.site_id)
                sites[r.site_id] = (site, _Viewer(actor, site, load_tree(uow, r.site_id)))
            if sites[r.site_id][1].sees(r):
                visible.append(r)
        if not visible and not (actor.worker_id == worker_id or actor.company_id == worker.employer_id):
            raise worker_not_found()
        employer = uow.get(t.Company, worker.employer_id)
        by_day: dict[date, list[dict[str, Any]]] = {}
        for r in visible:
            site = sites[r.site_id][0]
            view = record_view(r, worker, employer, rule_of(site))
            view["site"] = {"id": site.id, "name": site.name}
            by_day.setdefault(r.work_day, []).append(view)
        days = []
        d = first
        while d <= last:
            days.append({"date": d.isoformat(), "weekday": "月火水木金土日"[d.weekday()], "records": by_day.get(d, [])})
            d += timedelta(days=1)
        return {
            "worker": {"id": worker.id, "ccus_id": worker.ccus_id, "name": worker.name},
            "month": first.strftime("%Y-%m"),
            "days": days,
            "summary": {
                "work_days": rules.count_work_days(visible),
                "valid_work_days": rules.count_work_days(r for r in visible if r.valid),
                "leader_days": rules.count_leader_days((r, r.position) for r in visible if r.valid),
            },
        }


def record_detail(ctx: Context, actor: Actor, record_id: int, *,
                  uow: UnitOfWork | None = None) -> dict[str, Any]:
    """One record with its history: every tap the gates sent (with the gate and any re-dating) and
    every correction asked for that day, with who decided what."""
    with ctx.read(uow) as uow:
        r = uow.get(t.Attendance, record_id)
        if r is None:
            raise NotFound("attendance_not_found", ja="就業履歴が見つかりません", en="no such attendance record")
        site = site_or_404(uow, r.site_id)
        viewer = _Viewer(actor, site, load_tree(uow, site.id))
        if not viewer.sees(r):
            raise NotFound("attendance_not_found", ja="就業履歴が見つかりません", en="no such attendance record")
        rule = rule_of(site)
        worker = worker_or_404(uow, r.worker_id)
        view = record_view(r, worker, uow.get(t.Company, worker.employer_id), rule)
        start, end = rules.day_window(r.work_day, rule)
        taps = uow.taps.with_gates_of_worker_between(site.id, r.worker_id, utc(start), utc(end))
        view["taps"] = [
            {"id": tap.id, "device_id": dev, "device_name": name, "direction": tap.direction,
             "at": local_time(tap.effective_at, rule), "device_clock_at": local_time(tap.at, rule),
             "clock_trusted": tap.clock_trusted, "redated": tap.effective_at != tap.at,
             "used_as": "entry" if tap.id == r.entry_tap_id else "exit" if tap.id == r.exit_tap_id else None}
            for tap, dev, name in taps
        ]
        view["corrections"] = [
            correction_view(uow, c, rule)
            for c in uow.records.corrections_of_day(site.id, r.worker_id, r.work_day)
        ]
        return view
