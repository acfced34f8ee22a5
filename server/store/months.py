"""A site's month of 就業履歴 counted in the database: one row per worker (and the company, place and
tier its records carry), instead of every record read into Python.

The counting rules are the domain's (``domain.attendance.count_work_days``, ``count_leader_days``,
``site_fee_days``); this query is what they come to on stored records, where (site, worker, work day)
is unique: a worker's 就業日数 on one site is the number of its records, its days as 職長/班長 the valid
records with a leader 立場, the site fee one worker-day per record. tests/test_attendance_records.py
checks the month view against the domain's counts on the same records.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import date

from sqlalchemy import Integer, String, case, cast, func, select
from sqlalchemy.orm import Session

from server.store import tables as t


@dataclass(frozen=True)
class MonthGroup:
    """The records of one worker with one (employer, node, tier) in the range."""

    worker_id: int
    employer_id: int | None
    node_id: int | None
    tier: int | None
    days: int
    valid_days: int
    leader_days: int
    last_day: date
    work_days: tuple[date, ...]


def month_groups(s: Session, site_id: int, first: date, last: date,
                 leader_positions: Collection[str]) -> list[MonthGroup]:
    a = t.Attendance.__table__.c
    valid = case((a.valid.is_(True), 1), else_=0)
    leader = case((a.valid.is_(True) & a.position.in_(sorted(leader_positions)), 1), else_=0)
    if s.get_bind().dialect.name == "postgresql":  # to_char: ISO whatever the server's DateStyle
        days_list = func.string_agg(func.to_char(a.work_day, "YYYY-MM-DD"), ",")
    else:  # SQLite keeps a date as ISO text
        days_list = func.group_concat(cast(a.work_day, String), ",")
    rows = s.execute(
        select(a.worker_id, a.employer_id, a.node_id, a.tier, func.count(), func.sum(cast(valid, Integer)),
               func.sum(cast(leader, Integer)), func.max(a.work_day), days_list)
        .where(a.site_id == site_id, a.work_day >= first, a.work_day <= last)
        .group_by(a.worker_id, a.employer_id, a.node_id, a.tier)
    ).all()
    return [
        MonthGroup(worker_id=w, employer_id=e, node_id=n, tier=tier, days=int(count), valid_days=int(v or 0),
                   leader_days=int(ld or 0), last_day=last_day if isinstance(last_day, date) else
                   date.fromisoformat(str(last_day)),
                   work_days=tuple(sorted(date.fromisoformat(d) for d in str(listed).split(","))))
        for w, e, n, tier, count, v, ld, last_day, listed in rows
    ]
