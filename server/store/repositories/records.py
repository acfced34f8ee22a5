"""Queries on 就業履歴 records (attendance), 事後補正 (corrections), and what a record is built from
and shown with (roster entries, workers and their employers).

A site's month is counted in the database (``month_groups``): one row per worker and the company,
place and tier its records carry, instead of every record read into Python. The counting rules are
the domain's (``domain.attendance.count_work_days``, ``count_leader_days``, ``site_fee_days``); this
query is what they come to on stored records, where (site, worker, work day) is unique: a worker's
就業日数 on one site is the number of its records, its days as 職長/班長 the valid records with a
leader 立場, the site fee one worker-day per record. tests/integration/test_attendance_records.py checks the
month view against the domain's counts on the same records.

The month's 帳票 (2-1, 2-2, 2-4) read the same records the other way round, streamed
(``month_of_site``): one query, every visible record of the month with what its row prints, read from a
cursor in batches, so a 5,000-worker month is never held in Python as a whole.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import (
    BigInteger,
    Integer,
    String,
    Table,
    bindparam,
    case,
    cast,
    delete,
    exists,
    func,
    inspect,
    literal_column,
    select,
)

from server.domain.visibility import Scope
from server.store import tables as t
from server.store.repositories import bulk
from server.store.repositories.base import Repository, scope_clause

_RECORDS: Table = t.Attendance.__table__  # type: ignore[assignment]
_SITES: Table = t.Site.__table__  # type: ignore[assignment]
_WORKERS: Table = t.Worker.__table__  # type: ignore[assignment]
_COMPANIES: Table = t.Company.__table__  # type: ignore[assignment]
_ENTRIES: Table = t.RosterEntry.__table__  # type: ignore[assignment]
_DISCLOSURES: Table = t.Disclosure.__table__  # type: ignore[assignment]

#: Rows fetched from the cursor at a time by ``month_of_site``: large enough that the round trips do
#: not show, small enough that a batch is a few hundred KiB whatever the month's size.
MONTH_BATCH = 2000
#: A rebuild of more workers than this locks the whole site (``lock_for_rebuild``): above the
#: ingest's largest batch (500), below what PostgreSQL's default lock table holds for one transaction.
SITE_LOCK_ABOVE = 1000


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


class RecordRepository(Repository):
    # -- records: the rebuild (services/records.rebuild_many) -----------------------------------------
    def lock_for_rebuild(self, site_id: int, worker_ids: Collection[int]) -> None:
        """Serialise rebuilders of these workers' records on the site until this transaction ends.

        PostgreSQL, in this order (the same in every transaction, so two queue rather than deadlock):

        1. KEY SHARE on the site's row and the workers' rows, the locks the record upsert's foreign
           keys take anyway. Taken first, a site or worker editor holding its row FOR UPDATE is
           waited for here, before any lock below is held that the editor's own rebuild would want;
           taken by the upsert, after them, the two waited for each other (found by review: a card
           link against a day-boundary edit).
        2. The site's key (``pg_advisory_xact_lock_shared(site id)``), exclusive instead for a
           rebuild of more than ``SITE_LOCK_ABOVE`` workers (a whole site after its day boundary
           changed): one lock for all, where one per worker would fill PostgreSQL's lock table
           (``max_locks_per_transaction``; 20,000 failed with the defaults).
        3. A lock per (site, worker) (``pg_advisory_xact_lock(site id, worker id)``, the two-integer
           key space, used for nothing else), in worker order.

        Only then are the records' inputs read: a rebuild waits for one in flight and then, under
        READ COMMITTED, reads what that one committed. A lock on a key rather than on the record
        row, because the record may not exist yet: no empty row is written only to be locked and
        then filled. SQLite: nothing to do, BEGIN IMMEDIATE already serialises every writer."""
        if not self.is_postgresql or not worker_ids:
            return
        workers = sorted(worker_ids)
        self.s.execute(select(literal_column("1")).select_from(_SITES).where(_SITES.c.id == site_id)
                       .with_for_update(key_share=True, read=True)).all()
        self.s.execute(select(_WORKERS.c.id).where(self.among(_WORKERS.c.id, workers)).order_by(_WORKERS.c.id)
                       .with_for_update(key_share=True, read=True)).all()
        site = bindparam("site", site_id, type_=Integer)
        if len(workers) > SITE_LOCK_ABOVE:
            self.s.execute(select(func.pg_advisory_xact_lock(cast(site, BigInteger)))).all()
            return
        self.s.execute(select(func.pg_advisory_xact_lock_shared(cast(site, BigInteger)))).all()
        ordered = select(func.unnest(bindparam("workers", workers, type_=bulk.BinaryArray(Integer)))
                         .column_valued("w")).order_by(literal_column("w")).subquery()
        self.s.execute(select(func.pg_advisory_xact_lock(site, ordered.c.w)).select_from(ordered)).all()

    def save_rebuilt(self, rows: Sequence[dict[str, Any]]) -> None:
        """Rebuilt records, each replacing the stored one of its (site, worker, work day) or inserted
        if none is stored, in one statement; the caller holds ``lock_for_rebuild`` for them."""
        bulk.upsert(self.s, _RECORDS, rows, ("site_id", "worker_id", "work_day"))
        self._forget(rows)

    def delete_rebuilt(self, rows: Sequence[dict[str, Any]]) -> None:
        """Records left with nothing to be built from (e.g. a clock correction moved the day's only
        tap to another day), by (site, worker, work day) in ``rows``; absent ones are no matter."""
        if rows:
            a = _RECORDS.c
            self.s.execute(delete(_RECORDS).where(self.among_keys(
                (a.site_id, a.worker_id, a.work_day), [(r["site_id"], r["worker_id"], r["work_day"]) for r in rows])))
            self._forget(rows)

    def _forget(self, rows: Sequence[dict[str, Any]]) -> None:
        """Written past the ORM: a record object this session loaded earlier is stale; expired, the
        next read of it loads what is stored (or finds it gone)."""
        keys = {(r["site_id"], r["worker_id"], r["work_day"]) for r in rows}
        for obj in list(self.s.identity_map.values()):
            if isinstance(obj, t.Attendance):
                loaded = inspect(obj).dict  # what is loaded: reading an expired attribute would query
                if (loaded.get("site_id"), loaded.get("worker_id"), loaded.get("work_day")) in keys:
                    self.s.expire(obj)

    # -- records: single questions --------------------------------------------------------------------
    def id_of(self, site_id: int, worker_id: int, day: date) -> int | None:
        """The id of the worker's record of that work day on the site, if there is one."""
        return self.s.scalar(
            select(t.Attendance.id).filter_by(site_id=site_id, worker_id=worker_id, work_day=day))

    def keys_of_site(self, site_id: int) -> list[tuple[int, date]]:
        """(worker id, work day) of every record on the site."""
        rows = self.s.execute(
            select(t.Attendance.worker_id, t.Attendance.work_day).where(t.Attendance.site_id == site_id))
        return [(w, d) for w, d in rows]

    def of_worker_between(self, worker_id: int, first: date, last: date) -> Sequence[t.Attendance]:
        """The worker's records on every site from ``first`` to ``last`` (inclusive), by day and entry."""
        return self.s.scalars(
            select(t.Attendance)
            .where(t.Attendance.worker_id == worker_id, t.Attendance.work_day >= first,
                   t.Attendance.work_day <= last)
            .order_by(t.Attendance.work_day, t.Attendance.entry_at)
        ).all()

    def rows_of_site(self, site_id: int, first: date, last: date, scope: Scope,
                     columns: Sequence[str] | None = None) -> Sequence[Any]:
        """The site's records from ``first`` to ``last`` (inclusive) as plain read-only rows (all
        columns, or ``columns``), by day, tier, employer and worker. Not ORM objects: a month of a
        large site is 200,000 rows, and an identity-mapped object per row (and decoding columns
        nobody reads) was most of the time. Only the rows the policy's ``scope`` admits."""
        a = _RECORDS.c
        return self.s.execute(
            select(*[a[name] for name in columns] if columns else _RECORDS.columns)
            .where(a.site_id == site_id, a.work_day >= first, a.work_day <= last, _visible(scope))
            .order_by(a.work_day, a.tier, a.employer_id, a.worker_id)
        ).all()

    def month_groups(self, site_id: int, first: date, last: date, scope: Scope,
                     leader_positions: Collection[str]) -> list[MonthGroup]:
        """The site's records from ``first`` to ``last`` that ``scope`` admits, counted per
        (worker, employer, node, tier)."""
        a = _RECORDS.c
        valid = case((a.valid.is_(True), 1), else_=0)
        leader = case((a.valid.is_(True) & a.position.in_(sorted(leader_positions)), 1), else_=0)
        if self.is_postgresql:  # to_char: ISO whatever the server's DateStyle
            days_list = func.string_agg(func.to_char(a.work_day, "YYYY-MM-DD"), ",")
        else:  # SQLite keeps a date as ISO text
            days_list = func.group_concat(cast(a.work_day, String), ",")
        rows = self.s.execute(
            select(a.worker_id, a.employer_id, a.node_id, a.tier, func.count(), func.sum(cast(valid, Integer)),
                   func.sum(cast(leader, Integer)), func.max(a.work_day), days_list)
            .where(a.site_id == site_id, a.work_day >= first, a.work_day <= last, _visible(scope))
            .group_by(a.worker_id, a.employer_id, a.node_id, a.tier)
        ).all()
        return [
            MonthGroup(worker_id=w, employer_id=e, node_id=n, tier=tier, days=int(count), valid_days=int(v or 0),
                       leader_days=int(ld or 0), last_day=last_day if isinstance(last_day, date) else
                       date.fromisoformat(str(last_day)),
                       work_days=tuple(sorted(date.fromisoformat(d) for d in str(listed).split(","))))
            for w, e, n, tier, count, v, ld, last_day, listed in rows
        ]

    def any_of_site(self, site_id: int, first: date, last: date, scope: Scope) -> bool:
        """Whether ``scope`` admits at least one of the site's records from ``first`` to ``last``."""
        a = _RECORDS.c
        return self.s.scalar(select(
            exists().where(a.site_id == site_id, a.work_day >= first, a.work_day <= last, _visible(scope)))) is True

    def month_of_site(self, site_id: int, first: date, last: date, scope: Scope, *, details: bool = False,
                      disclosed: Sequence[str] = (), batch: int = MONTH_BATCH) -> Iterator[Any]:
        """The site's records from ``first`` to ``last`` that ``scope`` admits, streamed: plain rows
        read from the cursor ``batch`` at a time (``yield_per``: a server-side cursor on PostgreSQL;
        SQLite's cursor steps through the result as it is fetched), never the whole month at once.

        Ordered by worker, then day, the workers as the month view lists them: by the 次数 of their
        latest record in the range (元請, 1次, 2次, …; not on the roster last), then by id. That 次数 is
        a window over the worker's own records (``first_value … OVER (PARTITION BY worker)``), so the
        database sorts and the caller can group a worker's days as they pass, one worker in hand.

        Each row: ``worker_id``, ``work_day``, ``valid``, ``position``, ``tier``, the worker's
        ``worker_ccus_id`` / ``worker_name`` / ``employer_id`` and its employer's ``employer_name``.
        With ``details`` (帳票 2-2) also the record's ``entry_at`` / ``exit_at`` / ``trade_major`` /
        ``trade_minor`` / ``on_roster`` / ``reasons``, the worker's current roster entry on the site
        (``roster_node_id``, ``work_description``, ``hazardous``, ``hazardous_other``), its insurance
        and 建退共 states, and for each item of ``disclosed`` a ``disclosed_<item>`` flag: both the
        worker and the employer agreed to disclose it (as ``worker_scope_clause`` reads 開示設定)."""
        a, w, c = _RECORDS.c, _WORKERS.c, _COMPANIES.c
        latest_tier = func.first_value(a.tier).over(partition_by=a.worker_id, order_by=a.work_day.desc())
        order_tier = func.coalesce(latest_tier, 99).label("order_tier")
        columns: list[Any] = [a.worker_id, a.work_day, a.valid, a.position, a.tier,
                              w.ccus_id.label("worker_ccus_id"), w.name.label("worker_name"), w.employer_id,
                              c.name.label("employer_name"), order_tier]
        source = _RECORDS.join(_WORKERS, w.id == a.worker_id).outerjoin(_COMPANIES, c.id == w.employer_id)
        if details:
            e, d = _ENTRIES.c, _DISCLOSURES.c
            source = source.outerjoin(_ENTRIES, (e.site_id == a.site_id) & (e.worker_id == a.worker_id))
            columns += [a.entry_at, a.exit_at, a.trade_major, a.trade_minor, a.on_roster, a.reasons,
                        e.node_id.label("roster_node_id"), e.work_description, e.hazardous, e.hazardous_other,
                        w.health_insurance, w.pension_insurance, w.employment_insurance, w.kentaikyo]
            columns += [exists().where(d.worker_id == a.worker_id, d.item == item, d.worker_agrees.is_(True),
                                       d.employer_agrees.is_(True)).label(f"disclosed_{item}")
                        for item in disclosed]
        stmt = (select(*columns).select_from(source)
                .where(a.site_id == site_id, a.work_day >= first, a.work_day <= last, _visible(scope))
                .order_by(order_tier, a.worker_id, a.work_day))
        result = self.s.execute(stmt, execution_options={"yield_per": batch})
        try:
            yield from result
        finally:
            result.close()

    # -- corrections ----------------------------------------------------------------------------------
    def approved_corrections(self, site_id: int, worker_ids: Collection[int],
                             days: Collection[date]) -> Sequence[t.Correction]:
        """The approved corrections of these workers and days on the site, in the order decided."""
        return self.s.scalars(
            select(t.Correction)
            .where(t.Correction.site_id == site_id, self.among(t.Correction.worker_id, worker_ids),
                   self.among(t.Correction.work_day, days), t.Correction.state == "approved")
            .order_by(t.Correction.decided_at, t.Correction.id)
        ).all()

    def approved_corrections_of_day(self, site_id: int, worker_id: int, day: date) -> Sequence[t.Correction]:
        """The worker's approved corrections of that work day on the site, in the order decided."""
        return self.s.scalars(
            select(t.Correction).filter_by(site_id=site_id, worker_id=worker_id, work_day=day, state="approved")
            .order_by(t.Correction.decided_at, t.Correction.id)
        ).all()

    def approved_correction_keys_of_site(self, site_id: int) -> list[tuple[int, date]]:
        """(worker id, work day) of every approved correction on the site."""
        rows = self.s.execute(
            select(t.Correction.worker_id, t.Correction.work_day).where(
                t.Correction.site_id == site_id, t.Correction.state == "approved"))
        return [(w, d) for w, d in rows]

    def corrections_of_day(self, site_id: int, worker_id: int, day: date) -> Sequence[t.Correction]:
        """Every correction asked for the worker's work day on the site, in the order asked."""
        return self.s.scalars(
            select(t.Correction).filter_by(site_id=site_id, worker_id=worker_id, work_day=day)
            .order_by(t.Correction.id)
        ).all()

    def pending_correction_id(self, site_id: int, worker_id: int, day: date) -> int | None:
        """The correction of that work day waiting for a decision, if any (at most one)."""
        return self.s.scalar(
            select(t.Correction.id).filter_by(site_id=site_id, worker_id=worker_id, work_day=day, state="pending"))

    def count_pending_corrections(self, site_id: int) -> int:
        return int(self.s.scalar(
            select(func.count()).select_from(t.Correction).where(
                t.Correction.site_id == site_id, t.Correction.state == "pending")
        ) or 0)

    def corrections(self, scope: Scope, *, limit: int, site_id: int | None = None,
                    state: str | None = None) -> Sequence[t.Correction]:
        """Corrections the policy's ``scope`` admits (the site's 元請, the worker's employer, the
        worker), newest work day first, at most ``limit``; ``site_id`` and ``state`` narrow them."""
        c = t.Correction
        q = (select(c)
             .join(t.Site, t.Site.id == c.site_id)
             .join(t.Worker, t.Worker.id == c.worker_id)
             .where(scope_clause(scope, site=c.site_id, worker=c.worker_id, employer=t.Worker.employer_id,
                                 prime=t.Site.prime_id))
             .order_by(c.work_day.desc(), c.id.desc()))
        if site_id is not None:
            q = q.where(c.site_id == site_id)
        if state is not None:
            q = q.where(c.state == state)
        return self.s.scalars(q.limit(limit)).all()


def _visible(scope: Scope) -> Any:
    """The records ``scope`` admits (``Visibility.records``)."""
    a = _RECORDS.c
    return scope_clause(scope, site=a.site_id, worker=a.worker_id, employer=a.employer_id, node=a.node_id)
