"""就業履歴 records in the store: rebuilt from taps, clock correction, unlinked cards attributed.

Every change that can move a record (a new tap, a card linked later, a clock re-dated, an
approved correction, a roster edit) ends in ``rebuild`` for the (site, worker, work day) it
touches, inside the caller's transaction. ``rebuild`` reads *all* of that day's taps and the
approved correction and writes the one record the domain builds from them, so the order in which
taps arrive, re-deliveries and a second ingest worker cannot change the result.

Concurrency: on PostgreSQL two ingest workers may commit taps of the same worker and day at
once. ``rebuild`` first takes a transaction-scoped lock on the (site, worker) key
(``RecordRepository.lock_for_rebuild``, an advisory lock: the record may not exist yet), and only
then reads the taps: under READ COMMITTED each statement sees what was committed before it, so
whichever worker locks last sees both taps and writes the complete record (one INSERT … ON
CONFLICT DO UPDATE, new or stored alike). On SQLite writes are serialised by BEGIN IMMEDIATE, so
the question does not arise.

``rebuild_many`` does the same for a set of records in a handful of statements: the keys are
locked in worker order, the same order in every transaction. The
ingest calls it once per site per batch, with the records its clock re-dating touched included
(``clock_reading`` returns them rather than rebuilding): a transaction that locked records in two
calls could hold one another worker waits for while waiting for one that worker holds (a deadlock
the review of the set-based ingest found on PostgreSQL).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from datetime import UTC, date, datetime
from typing import Any

from server.domain import attendance as rules
from server.domain import taps as tap_rules
from server.domain.hierarchy import Status, Tree
from server.errors import worker_not_found
from server.services.common import as_aware, entry_fields, load_tree, site_or_404
from server.services.context import Context
from server.store import tables as t
from server.store.unit_of_work import UnitOfWork


def utc(at: datetime) -> datetime:
    """What we store: UTC. SQLite keeps a DateTime as text without its offset, so an aware JST
    time stored as is would come back nine hours off; converting first makes both backends agree."""
    return at.astimezone(UTC)


def rule_of(site: t.Site) -> rules.DayRule:
    return _rule(site.day_boundary, site.time_zone)


@functools.lru_cache(maxsize=256)
def _rule(day_boundary: str, time_zone: str) -> rules.DayRule:
    """Parsed once per setting, not once per tap: the ingest asks for a site's rule for every tap
    and record of a batch. (A DayRule is immutable; a site whose setting changes asks anew.)"""
    return rules.DayRule(boundary=rules.parse_boundary(day_boundary), tz=rules.parse_time_zone(time_zone))


def _domain_tap(row: Any) -> rules.Tap:
    """A stored tap (an ORM object or a plain row of its columns) as the domain reads it."""
    # The tap's row id stands in for seq: seq is per gate buffer, the id is unique on the site.
    return rules.Tap(
        seq=row.id,
        direction=rules.Direction(row.direction),
        at=as_aware(row.effective_at),
        clock_trusted=row.clock_trusted,
        worker_id=row.worker_id,
        site_id=row.site_id,
    )


def rebuild(uow: UnitOfWork, site: t.Site, worker_id: int, day: date, now: datetime,
            tree: Tree | None = None) -> None:
    """The one record of (site, worker, day) from everything known now; removed when nothing is left."""
    rebuild_many(uow, site, [(worker_id, day)], now, tree)


def rebuild_many(uow: UnitOfWork, site: t.Site, keys: Iterable[tuple[int, date]], now: datetime,
                 tree: Tree | None = None) -> None:
    """The records of many (worker, day) pairs of one site, set-based: a handful of statements
    whatever the number of records (the ingest rebuilds a whole batch's records at once).

    Order of work, for the concurrency argument in the module docstring: the (site, worker) keys
    are locked in worker order (``lock_for_rebuild``: two transactions lock overlapping sets in the
    same order, so they queue rather than deadlock), only then are the taps, corrections and roster
    entries read, and every record is written in one upsert (a new one inserted as built, never as
    an empty row filled later)."""
    wanted = sorted(set(keys))
    if not wanted:
        return
    rule = rule_of(site)
    # Pending ORM changes (taps re-dated by ``clock_reading``) must be in the database before the
    # inputs are read with Core statements, which do not flush by themselves.
    uow.flush()
    workers = sorted({w for w, _ in wanted})
    uow.records.lock_for_rebuild(site.id, workers)
    days = sorted({d for _, d in wanted})
    # The inputs of every wanted record, one query each.
    first, _ = rules.day_window(days[0], rule)
    _, last = rules.day_window(days[-1], rule)
    taps: dict[tuple[int, date], list[Any]] = {}
    for tap in uow.taps.of_workers_between(site.id, workers, utc(first), utc(last)):
        taps.setdefault((tap.worker_id, rules.work_day(as_aware(tap.effective_at), rule)), []).append(tap)
    corrections: dict[tuple[int, date], list[t.Correction]] = {}
    for c in uow.records.approved_corrections(site.id, workers, days):
        corrections.setdefault((c.worker_id, c.work_day), []).append(c)
    entries = uow.roster.entries_of_workers(site.id, workers)
    employers = uow.workers.employers_of(workers)
    tree = tree or load_tree(uow, site.id)

    built: list[dict[str, Any]] = []
    empty: list[dict[str, Any]] = []
    for key in wanted:
        worker_id, day = key
        day_taps, day_corrections = taps.get(key, []), corrections.get(key, [])
        record_key = {"site_id": site.id, "worker_id": worker_id, "work_day": day}
        if not day_taps and not day_corrections:
            empty.append(record_key)  # e.g. a clock correction moved the day's only tap to another day
            continue
        if worker_id not in employers:
            raise worker_not_found()
        built.append({**record_key, **_fill(site, tree, worker_id, day, day_taps, day_corrections,
                                            entries.get(worker_id), employers[worker_id], rule, now)})
    uow.records.delete_rebuilt(empty)
    uow.records.save_rebuilt(built)  # one statement for all, new and stored alike


def _fill(site: t.Site, tree: Tree, worker_id: int, day: date, taps: list[Any],
          corrections: list[t.Correction], entry: Any, employer_id: int | None,
          rule: rules.DayRule, now: datetime) -> dict[str, Any]:
    """One record's columns from its inputs, by the domain's rules."""
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

    return {
        "entry_at": utc(record.entry_at) if record.entry_at else None,
        "exit_at": utc(record.exit_at) if record.exit_at else None,
        "device_entry_at": utc(device.entry_at) if device and device.entry_at else None,
        "device_exit_at": utc(device.exit_at) if device and device.exit_at else None,
        "entry_tap_id": device.entry_seq if device else None,
        "exit_tap_id": device.exit_seq if device else None,
        "tap_count": len(taps),
        "clock_unverified": record.clock_unverified,
        "employer_id": employer_id,
        "node_id": node_id,
        "tier": tree.tier(node_id) if node_id in tree.nodes else None,
        "on_roster": entry is not None,
        "trade_major": entry.trade_major if entry else None,
        "trade_minor": entry.trade_minor if entry else None,
        "position": entry.position if entry else None,
        "valid": validity.valid,
        "reasons": list(validity.reasons),
        "correction_id": correction.id if correction else None,
        "updated_at": now,
    }


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


def _day_inputs(uow: UnitOfWork, site: t.Site, worker_id: int,
                day: date) -> tuple[list[t.Tap], list[t.Correction]]:
    """What a record is made of: the worker's taps in the work day's window, and the approved
    corrections in the order they were decided."""
    start, end = rules.day_window(day, rule_of(site))
    taps = uow.taps.of_worker_between(site.id, worker_id, utc(start), utc(end))
    corrections = uow.records.approved_corrections_of_day(site.id, worker_id, day)
    return list(taps), list(corrections)


def current_record(uow: UnitOfWork, site: t.Site, worker_id: int, day: date) -> rules.AttendanceDay | None:
    """The record as it stands (device times and approved corrections), for checking a new correction."""
    taps, approved = _day_inputs(uow, site, worker_id, day)
    device = rules.build_record([_domain_tap(x) for x in taps], rule_of(site)) if taps else None
    return _apply_corrections(device, worker_id, site.id, day, approved)


def rebuild_days(uow: UnitOfWork, days: Iterable[tuple[int, int, date]], now: datetime) -> None:
    """Rebuild several (site, worker, day) records: per site, set-based (``rebuild_many``)."""
    by_site: dict[int, set[tuple[int, date]]] = {}
    for site_id, worker_id, day in days:
        by_site.setdefault(site_id, set()).add((worker_id, day))
    for site_id in sorted(by_site):
        rebuild_many(uow, site_or_404(uow, site_id), by_site[site_id], now)


def rebuild_site(ctx: Context, uow: UnitOfWork, site: t.Site) -> int:
    """Every record of a site again, after its day boundary or 蓄積期間 changed: the days the taps
    fall on now, plus the days that had a record before (which may now be empty). Rare and bounded
    by the site's history, so done in the editing transaction rather than in the background."""
    keys = {(site.id, w, d) for w, d in uow.records.keys_of_site(site.id)}
    keys |= {(site.id, w, day_of(site, at)) for w, at in uow.taps.worker_times_of_site(site.id)}
    keys |= {(site.id, w, d) for w, d in uow.records.approved_correction_keys_of_site(site.id)}
    rebuild_days(uow, keys, ctx.now())
    return len(keys)


def day_of(site: t.Site, at: datetime) -> date:
    return rules.work_day(as_aware(at), rule_of(site))


def refresh_today(ctx: Context, uow: UnitOfWork, site_id: int, worker_id: int) -> None:
    """After a roster edit: today's record takes the entry in force now (職種, 立場, validity).
    Earlier days keep what was in force when they were built."""
    site = site_or_404(uow, site_id)
    today = rules.work_day(ctx.now(), rule_of(site))
    if uow.records.id_of(site_id, worker_id, today) is not None:
        rebuild(uow, site, worker_id, today, ctx.now())


def attribute_card(ctx: Context, uow: UnitOfWork, uid: str, worker_id: int) -> int:
    """A card linked now: its earlier taps (kept with no worker) become the worker's, and the days
    they fall on get their records. Returns how many taps were attributed."""
    # A UID revoked before (a card reported lost): who used it while nobody held it is not known.
    # Linked back to the same worker (found again), the taps since the revocation are theirs; linked
    # to someone else, they stay unlinked and listed (the 元請 can enter that day by a correction).
    revoked = uow.workers.last_revoked_card(uid)
    if revoked is not None and revoked.worker_id != worker_id:
        return 0
    taps = uow.taps.unattributed_of_card(uid, revoked.revoked_at if revoked is not None else None)
    days: set[tuple[int, int, date]] = set()
    site_cache: dict[int, t.Site] = {}
    for tap in taps:
        tap.worker_id = worker_id
        site = site_cache.setdefault(tap.site_id, site_or_404(uow, tap.site_id))
        days.add((tap.site_id, worker_id, day_of(site, tap.effective_at)))
    uow.flush()
    rebuild_days(uow, days, ctx.now())
    return len(taps)


def attribute_orphans(ctx: Context, *, uow: UnitOfWork | None = None) -> int:
    """Taps stored without a worker whose card has been linked since: attribute them now.

    ``link_card`` attributes what it can see, but on PostgreSQL an ingest transaction that read the
    card table just before the link committed can store its tap without a worker after the link's
    own sweep ran. The ingest's housekeeping calls this every few seconds, so such a tap joins its
    record shortly after instead of never."""
    with ctx.write(uow) as uow:
        pairs = uow.taps.linked_cards_with_unattributed_taps()
        return sum(attribute_card(ctx, uow, uid, worker_id) for uid, worker_id in pairs)


def reference_of(device: t.Device) -> tap_rules.ClockReading | None:
    """The gate's latest synchronised clock reading, as the domain reads it."""
    if device.sync_boot_id and device.sync_at is not None and device.sync_mono_ms is not None:
        return tap_rules.ClockReading(device.sync_boot_id, as_aware(device.sync_at), device.sync_mono_ms)
    return None


def clock_reference(ctx: Context, uow: UnitOfWork, device: t.Device, boot_id: str, at: datetime, mono_ms: int) -> int:
    """A synchronised reading of the device clock (from a synced tap or status): remember it,
    re-date the taps this boot took before sync, and rebuild the records they leave and join.
    Returns how many taps were re-dated."""
    redated, days = clock_reading(uow, device, boot_id, at, mono_ms, ctx.now())
    rebuild_days(uow, days, ctx.now())
    return redated


def clock_reading(uow: UnitOfWork, device: t.Device, boot_id: str, at: datetime,
                  mono_ms: int, now: datetime) -> tuple[int, set[tuple[int, int, date]]]:
    """``clock_reference`` without the rebuild: (taps re-dated, the (site, worker, day) records to
    rebuild). The ingest rebuilds these together with its batch's own, in one call per site, so a
    transaction locks its records once and in one order (two calls could lock in two orders and
    deadlock with another ingest worker).

    The formula is ``domain.taps.redate``. A different boot has a different monotonic origin, so its
    taps stay untrusted and their records flagged."""
    if not boot_id:
        return 0, set()
    reading = tap_rules.ClockReading(boot_id, at, mono_ms)
    current = reference_of(device)
    if current is not None and current.boot_id == boot_id:
        # This boot already has a reading, so none of its taps is waiting for one: taps stored since
        # were re-dated on arrival. Keep the newest reading (NTP may have slewed since).
        if reading.newer_than(current):
            device.sync_at, device.sync_mono_ms = utc(at), mono_ms
        return 0, set()
    device.sync_boot_id, device.sync_at, device.sync_mono_ms = boot_id, utc(at), mono_ms
    stale = uow.taps.waiting_for_clock(device.id, boot_id)
    days: set[tuple[int, int, date]] = set()
    site_cache: dict[int, t.Site] = {}
    for tap in stale:
        site = site_cache.setdefault(tap.site_id, site_or_404(uow, tap.site_id))
        if (dated := tap_rules.redate_within(reading, tap.mono_ms, now, rule_of(site))) is None:
            continue  # no uptime explains it, or out of the time window: it stays unverified (clock_unverified)
        if tap.worker_id is not None:
            days.add((tap.site_id, tap.worker_id, day_of(site, tap.effective_at)))
        tap.effective_at = utc(dated)
        tap.clock_trusted = True
        if tap.worker_id is not None:
            days.add((tap.site_id, tap.worker_id, day_of(site, tap.effective_at)))
    uow.flush()
    return len(stale), days


def local_time(at: datetime | None, rule: rules.DayRule) -> str | None:
    return as_aware(at).astimezone(rule.tz).isoformat() if at else None
