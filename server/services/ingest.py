"""Taps from the gates, stored idempotently; the service both ingest entrypoints call (MQTT now,
HTTP later). The Ack for a batch is built only from what this transaction committed."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from protocol.messages import AckItem, Card, TapEvent
from server.domain import taps
from server.services import records
from server.services.common import as_aware, load_tree, site_or_404
from server.services.context import Context
from server.store import tables as t
from server.store.unit_of_work import UnitOfWork

log = logging.getLogger("genba.ingest")


@dataclass
class Counters:
    recorded: int = 0
    duplicate: int = 0
    conflict: int = 0
    held: int = 0
    rejected: dict[str, int] = field(default_factory=dict)

    def reject(self, reason: str) -> None:
        self.rejected[reason] = self.rejected.get(reason, 0) + 1

    def add(self, other: Counters) -> None:
        self.recorded += other.recorded
        self.duplicate += other.duplicate
        self.conflict += other.conflict
        self.held += other.held
        for reason, n in other.rejected.items():
            self.rejected[reason] = self.rejected.get(reason, 0) + n

    def summary(self) -> str:
        rejected = ", ".join(f"{k}: {v}" for k, v in sorted(self.rejected.items())) or "none"
        return (f"recorded {self.recorded}, duplicate {self.duplicate}, conflict {self.conflict}, "
                f"held {self.held}, rejected {rejected}")


def ingest_taps(ctx: Context, topic_device_id: str, events: Sequence[TapEvent],
                counters: Counters | None = None, *, uow: UnitOfWork | None = None) -> list[AckItem]:
    """One gate's taps in one transaction (see ``ingest_batch``)."""
    return ingest_batch(ctx, [(topic_device_id, e) for e in events], counters, uow=uow)


def ingest_batch(ctx: Context, items: Sequence[tuple[str, TapEvent]],
                 counters: Counters | None = None, *, uow: UnitOfWork | None = None) -> list[AckItem]:
    """Store each tap once per (device, buffer, seq); answer recorded, duplicate, or rejected with a
    reason, one AckItem per item in order. One transaction for the whole batch, and set-based: one
    query for the batch's cards, one multi-row INSERT … ON CONFLICT DO NOTHING for its taps, and the
    touched records rebuilt together per site (``records.rebuild_many``). One commit (one fsync on
    SQLite) for many taps is what makes a morning rush cheap.

    The site comes from the server's record of the device, never from the message, so a gate cannot
    write into another site. A card not yet linked to a worker is kept (worker_id NULL) and attributed
    when the card is linked later. A new tap of a linked card rebuilds that worker's record for the
    day in the same transaction, so the Ack also confirms the 就業履歴.

    ``counters`` count what was committed: given the caller's ``uow``, what this call stored is
    counted when it returns, before the caller commits."""
    counted = Counters()  # merged into ``counters`` only after the commit
    acks: list[AckItem | None] = [None] * len(items)
    with ctx.write(uow) as uow:
        now = ctx.now()
        # Lock the batch's gates, in one order for every process (no deadlock between two ingest
        # workers): a gate's clock reference and its taps then change under one lock, so a tap
        # stored without a reference can never miss the re-dating of a concurrent synced reading.
        wanted = sorted({device_id for device_id, _ in items})
        devices: dict[str, t.Device | None] = dict.fromkeys(wanted)
        for d in uow.devices.lock_by_device_ids(wanted):
            devices[d.device_id] = d

        # Acceptance (the domain's rule). A key repeated inside the batch is decided against its first.
        accepted: list[tuple[int, t.Device, TapEvent]] = []
        repeats: list[tuple[int, t.Device, TapEvent]] = []
        first_of: dict[tuple[int, str, int], TapEvent] = {}
        first_index: dict[tuple[int, str, int], int] = {}
        held: dict[tuple[str, str, int], dict[str, Any]] = {}
        for i, (topic_device_id, e) in enumerate(items):
            device = devices[topic_device_id]
            gate = None if device is None else taps.GateRecord(retired=device.retired_at is not None,
                                                               placed=device.site_id is not None)
            reason = taps.refusal(topic_device_id, e.device_id, gate, e.at, e.mono_ms)
            if taps.is_held(reason):
                assert reason is not None
                held.setdefault((topic_device_id, e.buffer_id, e.seq), _held_row(topic_device_id, e, reason, now))
                counted.held += 1
                acks[i] = AckItem(seq=e.seq, outcome="held", reason=reason)
            elif reason is not None or device is None:
                counted.reject(reason or "?")
                log.warning("rejected tap %s/%s seq %d: %s", topic_device_id, e.buffer_id, e.seq, reason)
                acks[i] = AckItem(seq=e.seq, outcome="rejected", reason=reason)
            elif (device.id, e.buffer_id, e.seq) in first_of:
                repeats.append((i, device, e))
            else:
                first_of[(device.id, e.buffer_id, e.seq)] = e
                first_index[(device.id, e.buffer_id, e.seq)] = i
                accepted.append((i, device, e))

        # What is stored already: a re-send (duplicate) or the same key with other content
        # (conflict). Decided before any time is computed, so a re-sent reading of an older boot
        # never moves a gate's clock reference. Race-free: the gates are locked, and a gate's keys
        # are only ever written under its lock.
        stored = uow.taps.stored([(d.id, e.buffer_id, e.seq) for _, d, e in accepted])
        fresh = [(i, d, e) for i, d, e in accepted if (d.id, e.buffer_id, e.seq) not in stored]

        # Who each card belongs to: one query for the batch.
        holders = uow.workers.card_holders(sorted({e.card.uid for _, _, e in fresh}))

        # Times: each gate's new taps in order against its clock reference; a synchronised tap is a
        # reading that also dates this batch's earlier unsynchronised taps of its boot.
        reference = {d.id: records.reference_of(d) for d in devices.values() if d is not None}
        waiting: dict[tuple[int, str], list[dict[str, Any]]] = {}
        rows: list[dict[str, Any]] = []
        out_of_window: dict[int, str] = {}  # item index → the time rule's reason
        index_of: dict[int, int] = {}  # id(row) → item index
        sites: dict[int, t.Site] = {}

        def site_of(site_id: int) -> t.Site:  # once per site and batch, not once per tap
            if site_id not in sites:
                sites[site_id] = site_or_404(uow, site_id)
            return sites[site_id]

        for i, device, e in fresh:
            at = records.utc(e.at)
            site = site_of(device.site_id)
            rule = records.rule_of(site)
            if e.clock_synced and (reason := taps.time_refusal(at, True, now, rule)):
                out_of_window[i] = reason  # a synchronised clock this far off is no reading either
                continue
            row: dict[str, Any] = {
                "device_pk": device.id, "buffer_id": e.buffer_id, "seq": e.seq, "site_id": device.site_id,
                "card_tech": e.card.tech, "card_uid": e.card.uid, "worker_id": holders.get(e.card.uid),
                "direction": e.direction, "at": at, "clock_synced": e.clock_synced, "boot_id": e.boot_id,
                "mono_ms": e.mono_ms, "shown": e.shown, "received_at": now,
            }
            if e.clock_synced and e.boot_id:
                reading = taps.ClockReading(e.boot_id, at, e.mono_ms)
                if reading.newer_than(reference[device.id]):
                    reference[device.id] = reading
                for earlier in waiting.pop((device.id, e.boot_id), []):
                    if (dated := taps.redate_within(reading, earlier["mono_ms"], now, rule)) is not None:
                        earlier["effective_at"], earlier["clock_trusted"] = records.utc(dated), True
            effective_at, trusted = taps.tap_time(reference[device.id], at, e.clock_synced, e.boot_id, e.mono_ms,
                                                  now, rule)
            row["effective_at"], row["clock_trusted"] = records.utc(effective_at), trusted
            if not trusted:
                waiting.setdefault((device.id, e.boot_id), []).append(row)
            rows.append(row)
            index_of[id(row)] = i
        # The time window, now that this batch's readings have dated what they could (the domain's rule).
        for row in rows:
            site = sites[row["site_id"]]
            reason = taps.time_refusal(row["effective_at"], row["clock_trusted"], now, records.rule_of(site))
            if reason:
                out_of_window[index_of[id(row)]] = reason
        for i, device, e in fresh:
            if (reason := out_of_window.get(i)) is None:
                continue
            # Kept with the reason (the gate showed the worker a recorded tap), never a tap of a day.
            held.setdefault((device.device_id, e.buffer_id, e.seq), _held_row(device.device_id, e, reason, now))
            if taps.is_held(reason):
                counted.held += 1
                acks[i] = AckItem(seq=e.seq, outcome="held", reason=reason)
            else:
                counted.reject(reason)
                log.warning("rejected tap %s/%s seq %d: %s (at %s)", device.device_id, e.buffer_id, e.seq, reason,
                            e.at.isoformat())
                acks[i] = AckItem(seq=e.seq, outcome="rejected", reason=reason)
        rows = [r for r in rows if index_of[id(r)] not in out_of_window]

        uow.taps.hold(list(held.values()))  # a re-sent held tap is skipped: held once per key
        new_ids = uow.taps.insert_new(rows)
        row_of = {(r["device_pk"], r["buffer_id"], r["seq"]): r for r in rows}

        # Answers, in item order; conflicts kept once beside the version that was stored first.
        conflicts: list[dict[str, Any]] = []
        touched: set[tuple[int, int, date]] = set()
        for i, device, e in accepted + repeats:
            key = (device.id, e.buffer_id, e.seq)
            if first_index[key] in out_of_window:  # refused by time (a repeat: answered as its first)
                first = acks[first_index[key]]
                assert first is not None
                acks[i] = AckItem(seq=e.seq, outcome=first.outcome, reason=first.reason)
                continue
            first_id = new_ids.get(key) or (stored[key].id if key in stored else None)
            if key in new_ids and acks[i] is None and first_of[key] is e:
                counted.recorded += 1
                acks[i] = AckItem(seq=e.seq, outcome="recorded")
                row = row_of[key]
                if row["worker_id"] is not None:
                    site = site_of(device.site_id)
                    touched.add((site.id, row["worker_id"], records.day_of(site, row["effective_at"])))
                continue
            original = _content_of_tap(stored[key]) if key in stored else _content_of_event(first_of[key])
            if first_id is not None and _content_of_event(e) != original:
                conflicts.append(_conflict_row(device, e, first_id, now))
                counted.conflict += 1
                log.warning("conflict: %s/%s seq %d is stored with other content; kept both", device.device_id,
                            e.buffer_id, e.seq)
                acks[i] = AckItem(seq=e.seq, outcome="conflict", reason="seq already stored with other content")
            else:
                counted.duplicate += 1
                acks[i] = AckItem(seq=e.seq, outcome="duplicate")
        uow.taps.add_conflicts(_unique_conflicts(conflicts))

        # The new readings become the gates' references, in order; each re-dates the taps of its boot
        # kept from earlier batches (this batch's were dated above).
        for _, device, e in fresh:
            key = (device.id, e.buffer_id, e.seq)
            if e.clock_synced and e.boot_id and key in new_ids:
                touched |= records.clock_reading(uow, device, e.boot_id, row_of[key]["at"], e.mono_ms, now)[1]
        # One rebuild per site for every (worker, day) the batch touched, clock re-dating included,
        # after all of its taps are in: each record locked once, in one order (no deadlock between
        # two ingest workers).
        by_site: dict[int, set[tuple[int, date]]] = {}
        for site_id, worker_id, day in touched:
            by_site.setdefault(site_id, set()).add((worker_id, day))
        for site_id in sorted(by_site):
            site = site_of(site_id)
            records.rebuild_many(uow, site, by_site[site_id], now, load_tree(uow, site_id))
        # Taps held for want of a clock (CLOCK_UNSET) whose boot got its first reading now: dated by
        # it. The inner batch holds no reading (its taps are unsynchronised), so this never recurses
        # further; one indexed query per batch with readings (usually finding nothing).
        read: dict[str, set[str]] = {}
        for _, device, e in fresh:
            if e.clock_synced and e.boot_id and (device.id, e.buffer_id, e.seq) in new_ids:
                read.setdefault(device.device_id, set()).add(e.boot_id)
        waiting_for_clock = uow.taps.held_of_devices(read, (taps.CLOCK_UNSET,)) if read else {}
        for device_id, held_taps in sorted(waiting_for_clock.items()):
            _retry_held(ctx, uow, device_id, held_taps)
    if counters is not None:  # committed: only now do the taps count, and may the caller publish the Ack
        counters.add(counted)
    return [a for a in acks if a is not None]


_CONTENT = ("card_tech", "card_uid", "direction", "at", "clock_synced", "boot_id", "mono_ms")


def _content_of_event(e: TapEvent) -> tuple[Any, ...]:
    return (e.card.tech, e.card.uid, e.direction, records.utc(e.at), e.clock_synced, e.boot_id, e.mono_ms)


def _content_of_tap(x: t.Tap) -> tuple[Any, ...]:
    return (x.card_tech, x.card_uid, x.direction, records.utc(as_aware(x.at)), x.clock_synced, x.boot_id, x.mono_ms)


RELEASE_CHUNK = 500  # held taps per ingest_batch call when a gate is placed (bounded statements)


def release_held(ctx: Context, device_id: str, *, uow: UnitOfWork | None = None) -> int:
    """The gate's held taps become taps of its site now that it is registered or placed (see
    ``_retry_held``). Returns how many became taps."""
    with ctx.write(uow) as uow:
        released = _retry_held(ctx, uow, device_id, uow.taps.held_of_device(device_id, taps.HOLDABLE))
    if released:
        log.info("gate %s placed: %d held taps stored", device_id, released)
    return released


def release_clock_held(ctx: Context, device_id: str, boot_ids: Collection[str], *,
                       uow: UnitOfWork | None = None) -> int:
    """Taps held for want of a clock ("clock not set") of these boots, now that the gate's reference
    is a reading of one of them: dated by it (see ``_retry_held``). Returns how many became taps."""
    with ctx.write(uow) as uow:
        return _retry_held(ctx, uow, device_id, uow.taps.held_of_device(device_id, (taps.CLOCK_UNSET,), boot_ids))


def _retry_held(ctx: Context, uow: UnitOfWork, device_id: str, held: Sequence[t.HeldTap]) -> int:
    """Held taps tried again now that what they waited for happened: each goes through
    ``ingest_batch`` as if it had just arrived (the same acceptance, times, records), in the caller's
    transaction, and is then forgotten. Returns how many became taps (a re-send of one already stored
    counts as stored). A tap now refused for another reason (the gate retired meanwhile, its day past
    the correction deadline) stays held with that reason: nothing the gate once showed as recorded is
    dropped here."""
    released = 0
    for start in range(0, len(held), RELEASE_CHUNK):
        chunk = held[start:start + RELEASE_CHUNK]
        acks = ingest_batch(ctx, [(device_id, _held_event(h)) for h in chunk], uow=uow)
        stored = ("recorded", "duplicate", "conflict")
        done = [h.id for h, a in zip(chunk, acks, strict=True) if a.outcome in stored]
        uow.taps.drop_held(done)
        released += len(done)
        for h, a in zip(chunk, acks, strict=True):
            if a.outcome not in stored and a.reason and a.reason != h.reason:
                uow.taps.set_held_reason([h.id], a.reason)
    return released


def release_all_placed(ctx: Context) -> int:
    """Housekeeping (the ingest's sweep): release the held taps of every gate that is placed now. A tap
    can be held while its gate is being registered (the ingest's transaction did not see the
    registration commit, and the registration's release did not see the tap); this finds it."""
    with ctx.read() as uow:
        device_ids = uow.taps.held_device_ids_now_placed(taps.HOLDABLE)
    return sum(release_held(ctx, d) for d in device_ids)


def _held_row(device_id: str, e: TapEvent, reason: str, now: datetime) -> dict[str, Any]:
    return {"device_id": device_id, "buffer_id": e.buffer_id, "seq": e.seq, "card_tech": e.card.tech,
            "card_uid": e.card.uid, "direction": e.direction, "at": records.utc(e.at),
            "clock_synced": e.clock_synced, "boot_id": e.boot_id, "mono_ms": e.mono_ms, "shown": e.shown,
            "reason": reason, "received_at": now}


def _held_event(h: t.HeldTap) -> TapEvent:
    """A held tap as the gate sent it, to go through ``ingest_batch`` once its gate is placed."""
    return TapEvent(device_id=h.device_id, buffer_id=h.buffer_id, seq=h.seq,
                    card=Card(tech=h.card_tech, uid=h.card_uid),  # type: ignore[arg-type]
                    direction=h.direction,  # type: ignore[arg-type]
                    at=as_aware(h.at), clock_synced=h.clock_synced, boot_id=h.boot_id, mono_ms=h.mono_ms,
                    shown=h.shown)


def _conflict_row(device: t.Device, e: TapEvent, stored_tap_id: int, now: datetime) -> dict[str, Any]:
    content = _content_of_event(e)
    return {"device_pk": device.id, "buffer_id": e.buffer_id, "seq": e.seq, "site_id": device.site_id,
            **dict(zip(_CONTENT, content, strict=True)), "stored_tap_id": stored_tap_id,
            "content": hashlib.sha256(repr(content).encode()).hexdigest(), "received_at": now}


def _unique_conflicts(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (gate, buffer, seq, content): a re-sent conflicting tap is kept once."""
    seen: dict[tuple[Any, ...], dict[str, Any]] = {}
    for f in found:
        seen.setdefault((f["device_pk"], f["buffer_id"], f["seq"], f["content"]), f)
    return list(seen.values())
