"""就業履歴 in the store: records rebuilt from taps, clock correction, unlinked cards, the views.

Every change that can move a record (a new tap, a card linked later, a clock re-dated, an
approved correction, a roster edit) ends in ``rebuild`` for the (site, worker, work day) it
touches, inside the caller's transaction. ``rebuild`` reads *all* of that day's taps and the
approved correction and writes the one record the domain builds from them, so the order in which
taps arrive, re-deliveries and a second ingest worker cannot change the result.

Concurrency: on PostgreSQL two ingest workers may commit taps of the same worker and day at
once. ``rebuild`` first makes sure the record row exists (INSERT … ON CONFLICT DO NOTHING, which
waits for the other transaction's insert), then locks it (SELECT … FOR UPDATE), and only then
reads the taps: under READ COMMITTED each statement sees what was committed before it, so
whichever worker locks last sees both taps and writes the complete record. On SQLite writes are
serialised by BEGIN IMMEDIATE, so the question does not arise.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from server.domain import attendance as rules
from server.domain import taps as tap_rules
from server.domain.accounts import Actor, Role
from server.domain.hierarchy import Status, Tree
from server.domain.roster import POSITIONS
from server.domain.trades import trade_table
from server.domain.visibility import sees_attendance
from server.errors import Conflict, Forbidden, InvalidInput, NotFound, site_not_found, worker_not_found
from server.services.common import as_aware, audit, entry_fields, load_tree, site_or_404, snapshot, worker_or_404
from server.services.context import Context
from server.store import tables as t
from server.store.upsert import insert_many_or_skip


def utc(at: datetime) -> datetime:
    """What we store: UTC. SQLite keeps a DateTime as text without its offset, so an aware JST
    time stored as is would come back nine hours off; converting first makes both backends agree."""
    return at.astimezone(UTC)


def rule_of(site: t.Site) -> rules.DayRule:
    return rules.DayRule(boundary=rules.parse_boundary(site.day_boundary))


def local_today(ctx: Context, rule: rules.DayRule) -> date:
    return ctx.now().astimezone(rule.tz).date()


def _domain_tap(row: t.Tap) -> rules.Tap:
    # The tap's row id stands in for seq: seq is per gate buffer, the id is unique on the site.
    return rules.Tap(
        seq=row.id,
        direction=rules.Direction(row.direction),
        at=as_aware(row.effective_at),
        clock_trusted=row.clock_trusted,
        worker_id=row.worker_id,
        site_id=row.site_id,
    )


def _roster_entry(s: Session, site_id: int, worker_id: int) -> t.RosterEntry | None:
    return s.scalar(
        select(t.RosterEntry).where(t.RosterEntry.site_id == site_id, t.RosterEntry.worker_id == worker_id)
    )


def rebuild(s: Session, site: t.Site, worker_id: int, day: date, now: datetime,
            tree: Tree | None = None) -> t.Attendance | None:
    """The one record of (site, worker, day) from everything known now; None when nothing is left."""
    return rebuild_many(s, site, [(worker_id, day)], now, tree)[(worker_id, day)]


_EMPTY_RECORD = {"tap_count": 0, "clock_unverified": False, "on_roster": False, "valid": False, "reasons": []}


def rebuild_many(s: Session, site: t.Site, keys: Iterable[tuple[int, date]], now: datetime,
                 tree: Tree | None = None) -> dict[tuple[int, date], t.Attendance | None]:
    """The records of many (worker, day) pairs of one site, set-based: a handful of statements
    whatever the number of records (the ingest rebuilds a whole batch's records at once).

    Order of work, for the concurrency argument in the module docstring: every record row exists
    (one INSERT … ON CONFLICT DO NOTHING for all), the rows are locked in id order (one SELECT … FOR
    UPDATE: two workers lock overlapping sets in the same order, so they queue rather than
    deadlock), and only then are the taps, corrections and roster entries read."""
    wanted = sorted(set(keys))
    if not wanted:
        return {}
    rule = rule_of(site)
    # An earlier rebuild in this transaction may have deleted one of these rows (its taps moved to
    # another day); flush it first, or the insert below would be skipped for a row about to vanish.
    s.flush()
    insert_many_or_skip(
        s, t.Attendance,
        [{"site_id": site.id, "worker_id": w, "work_day": d, **_EMPTY_RECORD, "updated_at": now} for w, d in wanted],
        ("site_id", "worker_id", "work_day"),
    )
    workers = sorted({w for w, _ in wanted})
    days = sorted({d for _, d in wanted})
    rows = {
        (r.worker_id, r.work_day): r
        for r in s.scalars(
            select(t.Attendance)
            .where(t.Attendance.site_id == site.id, t.Attendance.worker_id.in_(workers),
                   t.Attendance.work_day.in_(days))
            .order_by(t.Attendance.id).with_for_update().execution_options(populate_existing=True))
    }
    # The inputs of every wanted record, one query each.
    first, _ = rules.day_window(days[0], rule)
    _, last = rules.day_window(days[-1], rule)
    taps: dict[tuple[int, date], list[t.Tap]] = {}
    for tap in s.scalars(
        select(t.Tap)
        .where(t.Tap.site_id == site.id, t.Tap.worker_id.in_(workers),
               t.Tap.effective_at >= utc(first), t.Tap.effective_at < utc(last))
        .order_by(t.Tap.effective_at, t.Tap.id)
    ):
        assert tap.worker_id is not None
        taps.setdefault((tap.worker_id, rules.work_day(as_aware(tap.effective_at), rule)), []).append(tap)
    corrections: dict[tuple[int, date], list[t.Correction]] = {}
    for c in s.scalars(
        select(t.Correction)
        .where(t.Correction.site_id == site.id, t.Correction.worker_id.in_(workers),
               t.Correction.work_day.in_(days), t.Correction.state == "approved")
        .order_by(t.Correction.decided_at, t.Correction.id)
    ):
        corrections.setdefault((c.worker_id, c.work_day), []).append(c)
    entries = {e.worker_id: e for e in s.scalars(
        select(t.RosterEntry).where(t.RosterEntry.site_id == site.id, t.RosterEntry.worker_id.in_(workers)))}
    employers: dict[int, int | None] = {
        wid: emp for wid, emp in s.execute(select(t.Worker.id, t.Worker.employer_id).where(t.Worker.id.in_(workers)))}
    tree = tree or load_tree(s, site.id)

    out: dict[tuple[int, date], t.Attendance | None] = {}
    for key in wanted:
        worker_id, day = key
        row = rows[key]
        day_taps, day_corrections = taps.get(key, []), corrections.get(key, [])
        if not day_taps and not day_corrections:
            s.delete(row)  # e.g. a clock correction moved the day's only tap to another day
            out[key] = None
            continue
        if worker_id not in employers:
            raise worker_not_found()
        _fill(row, site, tree, worker_id, day, day_taps, day_corrections, entries.get(worker_id),
              employers[worker_id], rule, now)
        out[key] = row
    return out


def _fill(row: t.Attendance, site: t.Site, tree: Tree, worker_id: int, day: date, taps: list[t.Tap],
          corrections: list[t.Correction], entry: t.RosterEntry | None, employer_id: int | None,
          rule: rules.DayRule, now: datetime) -> None:
    """One record row from its inputs, by the domain's rules."""
    device = rules.build_record([_domain_tap(x) for x in taps], rule) if taps else None
    record = _apply_corrections(device, worker_id, site.id, day, corrections)
    correction = corrections[-1] if corrections else None
    assert record is not None
    node_id = entry.node_id if entry else None
    if node_id is None:
        own = tree.node_of_company(employer_id) if employer_id is not None else None
        node_id = own.id if own and own.status == Status.REGISTERED else None
    fields = entry_fields(entry) if entry else None
    validity = rules.validity(record, fields, (site.period_start, site.period_end), card_linked=True)

    row.entry_at = utc(record.entry_at) if record.entry_at else None
    row.exit_at = utc(record.exit_at) if record.exit_at else None
    row.device_entry_at = utc(device.entry_at) if device and device.entry_at else None
    row.device_exit_at = utc(device.exit_at) if device and device.exit_at else None
    row.entry_tap_id = device.entry_seq if device else None
    row.exit_tap_id = device.exit_seq if device else None
    row.tap_count = len(taps)
    row.clock_unverified = record.clock_unverified
    row.employer_id = employer_id
    row.node_id = node_id
    row.tier = tree.tier(node_id) if node_id in tree.nodes else None
    row.on_roster = entry is not None
    row.trade_major = entry.trade_major if entry else None
    row.trade_minor = entry.trade_minor if entry else None
    row.position = entry.position if entry else None
    row.valid = validity.valid
    row.reasons = list(validity.reasons)
    row.correction_id = correction.id if correction else None
    row.updated_at = now


def _apply_corrections(device: rules.AttendanceDay | None, worker_id: int, site_id: int, day: date,
                       corrections: Iterable[t.Correction]) -> rules.AttendanceDay | None:
    """The approved corrections in the order they were decided, each on top of the last: an
    entry-only correction and a later exit-only one both stand."""
    record = device
    for c in corrections:
        record = rules.corrected(record, worker_id, site_id, day,
                                 as_aware(c.entry_at) if c.entry_at else None,
                                 as_aware(c.exit_at) if c.exit_at else None)
    return record


def _day_inputs(s: Session, site: t.Site, worker_id: int, day: date) -> tuple[list[t.Tap], list[t.Correction]]:
    """What a record is made of: the worker's taps in the work day's window, and the approved
    corrections in the order they were decided."""
    start, end = rules.day_window(day, rule_of(site))
    taps = s.scalars(
        select(t.Tap)
        .where(t.Tap.site_id == site.id, t.Tap.worker_id == worker_id,
               t.Tap.effective_at >= utc(start), t.Tap.effective_at < utc(end))
        .order_by(t.Tap.effective_at, t.Tap.id)
    ).all()
    corrections = s.scalars(
        select(t.Correction).filter_by(site_id=site.id, worker_id=worker_id, work_day=day, state="approved")
        .order_by(t.Correction.decided_at, t.Correction.id)
    ).all()
    return list(taps), list(corrections)


def _current(s: Session, site: t.Site, worker_id: int, day: date) -> rules.AttendanceDay | None:
    """The record as it stands (device times and approved corrections), for checking a new correction."""
    taps, approved = _day_inputs(s, site, worker_id, day)
    device = rules.build_record([_domain_tap(x) for x in taps], rule_of(site)) if taps else None
    return _apply_corrections(device, worker_id, site.id, day, approved)


def rebuild_days(s: Session, days: Iterable[tuple[int, int, date]], now: datetime) -> None:
    """Rebuild several (site, worker, day) records: per site, set-based (``rebuild_many``)."""
    by_site: dict[int, set[tuple[int, date]]] = {}
    for site_id, worker_id, day in days:
        by_site.setdefault(site_id, set()).add((worker_id, day))
    for site_id in sorted(by_site):
        rebuild_many(s, site_or_404(s, site_id), by_site[site_id], now)


def rebuild_site(ctx: Context, s: Session, site: t.Site) -> int:
    """Every record of a site again, after its day boundary or 蓄積期間 changed: the days the taps
    fall on now, plus the days that had a record before (which may now be empty). Rare and bounded
    by the site's history, so done in the editing transaction rather than in the background."""
    keys = {(site.id, w, d) for w, d in s.execute(
        select(t.Attendance.worker_id, t.Attendance.work_day).where(t.Attendance.site_id == site.id))}
    keys |= {(site.id, w, day_of(site, at)) for w, at in s.execute(
        select(t.Tap.worker_id, t.Tap.effective_at).where(t.Tap.site_id == site.id, t.Tap.worker_id.is_not(None)))}
    keys |= {(site.id, w, d) for w, d in s.execute(
        select(t.Correction.worker_id, t.Correction.work_day).where(
            t.Correction.site_id == site.id, t.Correction.state == "approved"))}
    rebuild_days(s, keys, ctx.now())
    return len(keys)


def day_of(site: t.Site, at: datetime) -> date:
    return rules.work_day(as_aware(at), rule_of(site))


def refresh_today(ctx: Context, s: Session, site_id: int, worker_id: int) -> None:
    """After a roster edit: today's record takes the entry in force now (職種, 立場, validity).
    Earlier days keep what was in force when they were built."""
    site = site_or_404(s, site_id)
    today = rules.work_day(ctx.now(), rule_of(site))
    exists = s.scalar(select(t.Attendance.id).filter_by(site_id=site_id, worker_id=worker_id, work_day=today))
    if exists is not None:
        rebuild(s, site, worker_id, today, ctx.now())


def attribute_card(ctx: Context, s: Session, uid: str, worker_id: int) -> int:
    """A card linked now: its earlier taps (kept with no worker) become the worker's, and the days
    they fall on get their records. Returns how many taps were attributed."""
    # A UID revoked before (a card reported lost): who used it while nobody held it is not known.
    # Linked back to the same worker (found again), the taps since the revocation are theirs; linked
    # to someone else, they stay unlinked and listed (the 元請 can enter that day by a correction).
    revoked = s.scalars(select(t.Card).where(t.Card.uid == uid, t.Card.revoked_at.is_not(None))
                        .order_by(t.Card.revoked_at.desc()).limit(1)).first()
    q = select(t.Tap).where(t.Tap.card_uid == uid, t.Tap.worker_id.is_(None))
    if revoked is not None:
        if revoked.worker_id != worker_id:
            return 0
        q = q.where(t.Tap.received_at > revoked.revoked_at)
    taps = s.scalars(q).all()
    days: set[tuple[int, int, date]] = set()
    site_cache: dict[int, t.Site] = {}
    for tap in taps:
        tap.worker_id = worker_id
        site = site_cache.setdefault(tap.site_id, site_or_404(s, tap.site_id))
        days.add((tap.site_id, worker_id, day_of(site, tap.effective_at)))
    s.flush()
    rebuild_days(s, days, ctx.now())
    return len(taps)


def attribute_orphans(ctx: Context) -> int:
    """Taps stored without a worker whose card has been linked since: attribute them now.

    ``link_card`` attributes what it can see, but on PostgreSQL an ingest transaction that read the
    card table just before the link committed can store its tap without a worker after the link's
    own sweep ran. The ingest's housekeeping calls this every few seconds, so such a tap joins its
    record shortly after instead of never."""
    with ctx.store.write() as s:
        pairs = s.execute(
            select(t.Card.uid, t.Card.worker_id).distinct()
            .join(t.Tap, t.Tap.card_uid == t.Card.uid)
            .where(t.Card.revoked_at.is_(None), t.Tap.worker_id.is_(None))
        ).all()
        return sum(attribute_card(ctx, s, uid, worker_id) for uid, worker_id in pairs)


def reference_of(device: t.Device) -> tap_rules.ClockReading | None:
    """The gate's latest synchronised clock reading, as the domain reads it."""
    if device.sync_boot_id and device.sync_at is not None and device.sync_mono_ms is not None:
        return tap_rules.ClockReading(device.sync_boot_id, as_aware(device.sync_at), device.sync_mono_ms)
    return None


def clock_reference(ctx: Context, s: Session, device: t.Device, boot_id: str, at: datetime, mono_ms: int) -> int:
    """A synchronised reading of the device clock (from a synced tap or status): remember it, and
    re-date the taps this boot took before sync (``domain.taps.redate``). Returns how many taps were
    re-dated. A different boot has a different monotonic origin, so its taps stay untrusted and
    their records flagged."""
    if not boot_id:
        return 0
    reading = tap_rules.ClockReading(boot_id, at, mono_ms)
    current = reference_of(device)
    if current is not None and current.boot_id == boot_id:
        # This boot already has a reading, so none of its taps is waiting for one: taps stored since
        # were re-dated on arrival. Keep the newest reading (NTP may have slewed since).
        if reading.newer_than(current):
            device.sync_at, device.sync_mono_ms = utc(at), mono_ms
        return 0
    device.sync_boot_id, device.sync_at, device.sync_mono_ms = boot_id, utc(at), mono_ms
    stale = s.scalars(
        select(t.Tap).where(t.Tap.device_pk == device.id, t.Tap.boot_id == boot_id, t.Tap.clock_trusted.is_(False))
    ).all()
    days: set[tuple[int, int, date]] = set()
    site_cache: dict[int, t.Site] = {}
    for tap in stale:
        site = site_cache.setdefault(tap.site_id, site_or_404(s, tap.site_id))
        if tap.worker_id is not None:
            days.add((tap.site_id, tap.worker_id, day_of(site, tap.effective_at)))
        tap.effective_at = utc(tap_rules.redate(reading, tap.mono_ms))
        tap.clock_trusted = True
        if tap.worker_id is not None:
            days.add((tap.site_id, tap.worker_id, day_of(site, tap.effective_at)))
    s.flush()
    rebuild_days(s, days, ctx.now())
    return len(stale)


# --- reading ---------------------------------------------------------------------------------------


def _local(at: datetime | None, rule: rules.DayRule) -> str | None:
    return as_aware(at).astimezone(rule.tz).isoformat() if at else None


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
        "entry_at": _local(r.entry_at, rule),
        "exit_at": _local(r.exit_at, rule),
        "device_entry_at": _local(r.device_entry_at, rule),
        "device_exit_at": _local(r.device_exit_at, rule),
        "corrected": r.correction_id is not None,
        "tap_count": r.tap_count,
        "clock_unverified": r.clock_unverified,
        "on_roster": r.on_roster,
        "valid_for_skill_evaluation": r.valid,
        "invalid_reasons": list(r.reasons),
    }


class _Viewer:
    """Who sees which records of one site: the domain rule, with the Tree questions answered once."""

    def __init__(self, actor: Actor, site: t.Site, tree: Tree) -> None:
        self.actor, self.site, self.tree = actor, site, tree
        mine = tree.node_of_company(actor.company_id)
        self.node = mine.id if mine is not None and mine.status == Status.REGISTERED else None
        self._under: dict[int | None, bool] = {}  # node → in the actor's subtree (asked once per node)

    def _in_subtree(self, node_id: int | None) -> bool:
        if node_id not in self._under:
            self._under[node_id] = (self.node is not None and node_id is not None and node_id in self.tree.nodes
                                    and self.tree.in_subtree(self.node, node_id))
        return self._under[node_id]

    def sees(self, r: Any, employer_id: int | None, node_id: int | None) -> bool:
        """``r``: a record or correction (ORM object or plain row) with a ``worker_id``."""
        return sees_attendance(
            self.actor, worker_id=r.worker_id, employer_id=employer_id, site_id=self.site.id,
            prime_id=self.site.prime_id, actor_node=self.node, record_node=node_id,
            in_subtree=self._in_subtree(node_id),
        )

    @property
    def on_site(self) -> bool:
        if self.actor.role == Role.SITE_MANAGER and self.site.id not in self.actor.site_ids:
            return False
        return self.node is not None or self.actor.company_id == self.site.prime_id

    @property
    def is_prime(self) -> bool:
        return self.actor.company_id == self.site.prime_id and self.actor.is_company and self.on_site


def _load_people(s: Session, rows: Iterable[t.Attendance]) -> tuple[dict[int, t.Worker], dict[int, t.Company]]:
    rows = list(rows)
    workers = {w.id: w for w in s.scalars(select(t.Worker).where(t.Worker.id.in_({r.worker_id for r in rows})))}
    companies = {c.id: c for c in s.scalars(
        select(t.Company).where(t.Company.id.in_({w.employer_id for w in workers.values()})))}
    return workers, companies


def _site_rows(s: Session, actor: Actor, site_id: int, first: date, last: date,
               columns: tuple[str, ...] | None = None) -> tuple[t.Site, _Viewer, list[Any]]:
    """The records of a site in a date range that the actor sees, as plain rows (all columns, or
    ``columns``). Not ORM objects: a month of a large site is 200,000 read-only rows, and an
    identity-mapped object per row (and decoding columns nobody reads) was most of the time."""
    site = site_or_404(s, site_id)
    viewer = _Viewer(actor, site, load_tree(s, site_id))
    a = t.Attendance.__table__.c
    rows = s.execute(
        select(*[a[name] for name in columns] if columns else t.Attendance.__table__.columns)
        .where(a.site_id == site_id, a.work_day >= first, a.work_day <= last)
        .order_by(a.work_day, a.tier, a.employer_id, a.worker_id)
    ).all()
    visible = [r for r in rows if viewer.sees(r, r.employer_id, r.node_id)]
    if not visible and not viewer.on_site:
        raise site_not_found()
    return site, viewer, visible


def site_day(ctx: Context, actor: Actor, site_id: int, day: date) -> dict[str, Any]:
    """The day's 就業履歴 on one site as this account may see it, with the 元請's to-do lists:
    cards seen today that are not linked to anyone, and corrections waiting for a decision."""
    with ctx.store.read() as s:
        site, viewer, rows = _site_rows(s, actor, site_id, day, day)
        rule = rule_of(site)
        workers, companies = _load_people(s, rows)
        records = [record_view(r, workers[r.worker_id], companies.get(workers[r.worker_id].employer_id), rule)
                   for r in rows]
        out: dict[str, Any] = {
            "site": {"id": site.id, "name": site.name, "day_boundary": site.day_boundary},
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
            out["unlinked_cards"] = _unlinked(s, site, day)
            out["pending_corrections"] = s.scalar(
                select(func.count()).select_from(t.Correction).where(
                    t.Correction.site_id == site.id, t.Correction.state == "pending")
            )
        return out


def _unlinked(s: Session, site: t.Site, day: date) -> list[dict[str, Any]]:
    """Cards tapped on the site that day that no worker holds yet: the 元請 links them (or finds the
    visitor), and the taps become that worker's record when linked."""
    rule = rule_of(site)
    start, end = rules.day_window(day, rule)
    rows = s.execute(
        select(t.Tap.card_uid, t.Tap.card_tech, func.count(),
               func.min(t.Tap.effective_at), func.max(t.Tap.effective_at))
        .where(t.Tap.site_id == site.id, t.Tap.worker_id.is_(None),
               t.Tap.effective_at >= utc(start), t.Tap.effective_at < utc(end))
        .group_by(t.Tap.card_uid, t.Tap.card_tech)
        .order_by(func.min(t.Tap.effective_at))
    ).all()
    return [{"card_uid": uid, "tech": tech, "taps": n, "first_at": _local(lo, rule), "last_at": _local(hi, rule)}
            for uid, tech, n, lo, hi in rows]


def parse_month(text: str) -> tuple[date, date]:
    try:
        year, month = (int(p) for p in text.split("-"))
        first = date(year, month, 1)
    except ValueError:
        raise InvalidInput("invalid_month", ja="月は YYYY-MM で指定してください（例: 2026-11）",
                           en="a month is YYYY-MM, e.g. 2026-11", value=text[:20]) from None
    return first, date(year, month, calendar.monthrange(year, month)[1])


def site_month(ctx: Context, actor: Actor, site_id: int, month: str) -> dict[str, Any]:
    """A month on one site: per worker the days on site and the days that count, and the totals
    the 元請 is charged and reports (就業日数, 現場利用料の人日)."""
    first, last = parse_month(month)
    with ctx.store.read() as s:
        site, _viewer, rows = _site_rows(s, actor, site_id, first, last, columns=(
            "worker_id", "site_id", "work_day", "tier", "employer_id", "node_id", "valid", "position"))
        workers, companies = _load_people(s, rows)
        per: dict[int, list[Any]] = {}
        for r in rows:
            per.setdefault(r.worker_id, []).append(r)
        out_rows: list[dict[str, Any]] = []
        for worker_id, recs in per.items():
            w = workers[worker_id]
            employer = companies.get(w.employer_id)
            out_rows.append({
                "worker": {"id": w.id, "ccus_id": w.ccus_id, "name": w.name},
                "employer": {"id": employer.id, "name": employer.name} if employer else None,
                "tier": recs[-1].tier,
                "days": rules.count_work_days(recs),
                "valid_days": rules.count_work_days(r for r in recs if r.valid),
                "leader_days": rules.count_leader_days((r, r.position) for r in recs if r.valid),
                "work_days": [r.work_day.isoformat() for r in recs],
            })
        out_rows.sort(key=lambda x: (x["tier"] if x["tier"] is not None else 99, x["worker"]["id"]))
        return {
            "site": {"id": site.id, "name": site.name},
            "month": first.strftime("%Y-%m"),
            "workers": out_rows,
            "summary": {"site_fee_days": rules.site_fee_days(rows), "workers": len(out_rows)},
        }


def worker_month(ctx: Context, actor: Actor, worker_id: int, month: str) -> dict[str, Any]:
    """One worker's month (the calendar of 参考資料2-3): every day, with the sites and times the
    account may see; the counts follow CCUS (two sites on one day are one 就業日)."""
    first, last = parse_month(month)
    with ctx.store.read() as s:
        worker = worker_or_404(s, worker_id)
        rows = s.scalars(
            select(t.Attendance)
            .where(t.Attendance.worker_id == worker_id, t.Attendance.work_day >= first, t.Attendance.work_day <= last)
            .order_by(t.Attendance.work_day, t.Attendance.entry_at)
        ).all()
        visible: list[t.Attendance] = []
        sites: dict[int, tuple[t.Site, _Viewer]] = {}
        for r in rows:
            if r.site_id not in sites:
                site = site_or_404(s, r.site_id)
                sites[r.site_id] = (site, _Viewer(actor, site, load_tree(s, r.site_id)))
            if sites[r.site_id][1].sees(r, r.employer_id, r.node_id):
                visible.append(r)
        if not visible and not (actor.worker_id == worker_id or actor.company_id == worker.employer_id):
            raise worker_not_found()
        employer = s.get(t.Company, worker.employer_id)
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


def record_detail(ctx: Context, actor: Actor, record_id: int) -> dict[str, Any]:
    """One record with its history: every tap the gates sent (with the gate and any re-dating) and
    every correction asked for that day, with who decided what."""
    with ctx.store.read() as s:
        r = s.get(t.Attendance, record_id)
        if r is None:
            raise NotFound("attendance_not_found", ja="就業履歴が見つかりません", en="no such attendance record")
        site = site_or_404(s, r.site_id)
        viewer = _Viewer(actor, site, load_tree(s, site.id))
        if not viewer.sees(r, r.employer_id, r.node_id):
            raise NotFound("attendance_not_found", ja="就業履歴が見つかりません", en="no such attendance record")
        rule = rule_of(site)
        worker = worker_or_404(s, r.worker_id)
        view = record_view(r, worker, s.get(t.Company, worker.employer_id), rule)
        start, end = rules.day_window(r.work_day, rule)
        taps = s.execute(
            select(t.Tap, t.Device.device_id, t.Device.name)
            .join(t.Device, t.Device.id == t.Tap.device_pk)
            .where(t.Tap.site_id == site.id, t.Tap.worker_id == r.worker_id,
                   t.Tap.effective_at >= utc(start), t.Tap.effective_at < utc(end))
            .order_by(t.Tap.effective_at, t.Tap.id)
        ).all()
        view["taps"] = [
            {"id": tap.id, "device_id": dev, "device_name": name, "direction": tap.direction,
             "at": _local(tap.effective_at, rule), "device_clock_at": _local(tap.at, rule),
             "clock_trusted": tap.clock_trusted, "redated": tap.effective_at != tap.at,
             "used_as": "entry" if tap.id == r.entry_tap_id else "exit" if tap.id == r.exit_tap_id else None}
            for tap, dev, name in taps
        ]
        view["corrections"] = [
            correction_view(s, c, rule)
            for c in s.scalars(select(t.Correction).filter_by(site_id=site.id, worker_id=r.worker_id,
                                                                work_day=r.work_day).order_by(t.Correction.id))
        ]
        return view


# --- corrections (事後補正 / 直接入力) -------------------------------------------------------------

STATE_LABELS = {"pending": "申請中", "approved": "承認", "rejected": "否認"}


def correction_view(s: Session, c: t.Correction, rule: rules.DayRule) -> dict[str, Any]:
    names = {a.id: a.display_name for a in s.scalars(
        select(t.Account).where(t.Account.id.in_({c.submitted_by, c.decided_by} - {None})))}
    return {
        "id": c.id,
        "site_id": c.site_id,
        "worker_id": c.worker_id,
        "worker": {"id": c.worker_id, "name": worker.name if (worker := s.get(t.Worker, c.worker_id)) else None},
        "work_day": c.work_day.isoformat(),
        "entry_at": _local(c.entry_at, rule),
        "exit_at": _local(c.exit_at, rule),
        "reason": c.reason,
        "state": c.state,
        "state_label": STATE_LABELS[c.state],
        "submitted_by": names.get(c.submitted_by) if c.submitted_by else None,
        "submitted_at": _local(c.submitted_at, rule),
        "decided_by": names.get(c.decided_by) if c.decided_by else None,
        "decided_at": _local(c.decided_at, rule),
        "comment": c.comment,
        "deadline": rules.correction_deadline(c.work_day).isoformat(),
    }


def _text(label_ja: str, value: str | None, limit: int, required: bool) -> str | None:
    value = (value or "").strip()
    if not value:
        if required:
            raise InvalidInput("text_required", ja=f"{label_ja}を入力してください", en=f"{label_ja} is required")
        return None
    if len(value) > limit:
        raise InvalidInput("text_too_long", ja=f"{label_ja}は{limit}文字以内です", en=f"at most {limit} characters")
    return value


def submit_correction(ctx: Context, actor: Actor, site_id: int, worker_id: int, day: date,
                      entry_at: datetime | None, exit_at: datetime | None, reason: str) -> dict[str, Any]:
    """The worker or the employer asks; until the end of the month after the work day."""
    reason_text = _text("補正理由", reason, 500, required=True)
    with ctx.store.write() as s:
        site = site_or_404(s, site_id)
        worker = worker_or_404(s, worker_id)
        try:
            rules.check_may_submit(actor, worker.id, worker.employer_id, site.id)
        except Forbidden:
            raise worker_not_found() from None  # a stranger is not told the worker exists
        rule = rule_of(site)
        has_record = s.scalar(select(t.Attendance.id).filter_by(site_id=site.id, worker_id=worker.id, work_day=day))
        if has_record is None and _roster_entry(s, site.id, worker.id) is None:
            raise site_not_found()  # neither a record nor a roster entry: nothing to correct on this site
        rules.check_correction_window(day, local_today(ctx, rule))
        rules.check_correction(day, entry_at, exit_at, rule)
        rules.check_corrected_record(rules.corrected(_current(s, site, worker.id, day), worker.id, site.id, day,
                                                     entry_at, exit_at))
        if s.scalar(select(t.Correction.id).filter_by(site_id=site.id, worker_id=worker.id, work_day=day,
                                                       state="pending")):
            raise Conflict("correction_pending",
                           ja="この就業日には承認待ちの事後補正があります。元請の判断を待つか、取り下げてください",
                           en="a correction for this day is already waiting for a decision")
        c = t.Correction(site_id=site.id, worker_id=worker.id, work_day=day,
                         entry_at=utc(entry_at) if entry_at else None, exit_at=utc(exit_at) if exit_at else None,
                         reason=reason_text, state="pending", submitted_by=actor.account_id,
                         submitted_by_company_id=actor.company_id, submitted_at=ctx.now())
        s.add(c)
        s.flush()
        audit(ctx, s, actor, "correction.submit", "correction", c.id, after=snapshot(c), site_id=site.id)
        return correction_view(s, c, rule)


def decide_correction(ctx: Context, actor: Actor, correction_id: int, approve: bool,
                      comment: str | None) -> dict[str, Any]:
    """The 元請 approves (the record changes, keeping what the gates said) or rejects with a comment."""
    comment_text = _text("コメント", comment, 500, required=not approve)
    with ctx.store.write() as s:
        c = s.get(t.Correction, correction_id, with_for_update=True)
        if c is None:
            raise NotFound("correction_not_found", ja="事後補正が見つかりません", en="no such correction")
        site = site_or_404(s, c.site_id)
        rules.check_may_decide(actor, site.prime_id, site.id)
        if c.state != "pending":
            raise Conflict("correction_decided", ja=f"この事後補正はすでに{STATE_LABELS[c.state]}されています",
                           en=f"this correction is already {c.state}")
        if approve:  # the record may have moved since it was asked (a later tap, another correction)
            rules.check_corrected_record(rules.corrected(
                _current(s, site, c.worker_id, c.work_day), c.worker_id, site.id, c.work_day,
                as_aware(c.entry_at) if c.entry_at else None, as_aware(c.exit_at) if c.exit_at else None))
        before = snapshot(c)
        c.state = "approved" if approve else "rejected"
        c.decided_by, c.decided_at, c.comment = actor.account_id, ctx.now(), comment_text
        s.flush()
        if approve:
            rebuild(s, site, c.worker_id, c.work_day, ctx.now())
        audit(ctx, s, actor, f"correction.{c.state}", "correction", c.id, before, snapshot(c), site_id=site.id)
        return correction_view(s, c, rule_of(site))


def list_corrections(ctx: Context, actor: Actor, site_id: int | None = None,
                     state: str | None = None) -> list[dict[str, Any]]:
    """The 元請 sees its sites' requests; the worker and the employer see the ones about them."""
    if state is not None and state not in STATE_LABELS:
        raise InvalidInput("invalid_state", ja="状態は pending / approved / rejected のいずれかです",
                           en="state is pending, approved or rejected")
    with ctx.store.read() as s:
        q = (select(t.Correction)
             .join(t.Site, t.Site.id == t.Correction.site_id)
             .join(t.Worker, t.Worker.id == t.Correction.worker_id)
             .order_by(t.Correction.work_day.desc(), t.Correction.id.desc()))
        if site_id is not None:
            q = q.where(t.Correction.site_id == site_id)
        if state is not None:
            q = q.where(t.Correction.state == state)
        # Who sees which, in SQL so the limit below applies to what the account may see.
        if actor.role == Role.WORKER:
            q = q.where(t.Correction.worker_id == actor.worker_id)
        elif actor.is_company:
            q = q.where((t.Site.prime_id == actor.company_id) | (t.Worker.employer_id == actor.company_id))
            if actor.role == Role.SITE_MANAGER:
                q = q.where(t.Correction.site_id.in_(actor.site_ids))
        else:
            return []
        out = []
        sites: dict[int, t.Site] = {}
        for c in s.scalars(q.limit(2000)):
            site = sites.setdefault(c.site_id, site_or_404(s, c.site_id))
            out.append(correction_view(s, c, rule_of(site)))
        if site_id is not None and not out and actor.role != Role.WORKER:
            site_or_404(s, site_id)
        return out
