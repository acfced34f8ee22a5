"""Taps from the gates, stored idempotently; the service both ingest entrypoints call (MQTT now,
HTTP later). The Ack for a batch is built only from what this transaction committed."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from sqlalchemy import select

from protocol.messages import AckItem, TapEvent
from server.domain.hierarchy import Tree
from server.services import attendance
from server.services.common import load_tree, site_or_404
from server.services.context import Context
from server.store import tables as t
from server.store.upsert import insert_or_skip

log = logging.getLogger("genba.ingest")

# A gate clock outside these is broken, not late: refused with a reason rather than stored.
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)
MAX_MONO_MS = 2**53  # JSON-safe; 285,000 years of uptime


@dataclass
class Counters:
    recorded: int = 0
    duplicate: int = 0
    rejected: dict[str, int] = field(default_factory=dict)

    def reject(self, reason: str) -> None:
        self.rejected[reason] = self.rejected.get(reason, 0) + 1

    def add(self, other: Counters) -> None:
        self.recorded += other.recorded
        self.duplicate += other.duplicate
        for reason, n in other.rejected.items():
            self.rejected[reason] = self.rejected.get(reason, 0) + n

    def summary(self) -> str:
        rejected = ", ".join(f"{k}: {v}" for k, v in sorted(self.rejected.items())) or "none"
        return f"recorded {self.recorded}, duplicate {self.duplicate}, rejected {rejected}"


def ingest_taps(ctx: Context, topic_device_id: str, events: Sequence[TapEvent],
                counters: Counters | None = None) -> list[AckItem]:
    """One gate's taps in one transaction (see ``ingest_batch``)."""
    return ingest_batch(ctx, [(topic_device_id, e) for e in events], counters)


def ingest_batch(ctx: Context, items: Sequence[tuple[str, TapEvent]],
                 counters: Counters | None = None) -> list[AckItem]:
    """Store each tap once per (device, buffer, seq); answer recorded, duplicate, or rejected with a
    reason, one AckItem per item in order. One transaction for the whole batch: one commit (one
    fsync on SQLite) for many taps is what makes a morning rush cheap.

    The site comes from the server's record of the device, never from the message, so a gate cannot
    write into another site. A card not yet linked to a worker is kept (worker_id NULL) and attributed
    when the card is linked later. A new tap of a linked card rebuilds that worker's record for the
    day in the same transaction, so the Ack also confirms the 就業履歴."""
    counted = Counters()  # merged into ``counters`` only after the commit
    acks: list[AckItem] = []
    with ctx.store.write() as s:
        now = ctx.now()
        # Lock the batch's gates, in one order for every process (no deadlock between two ingest
        # workers): a gate's clock reference and its taps then change under one lock, so a tap
        # stored without a reference can never miss the re-dating of a concurrent synced reading.
        wanted = sorted({device_id for device_id, _ in items})
        devices: dict[str, t.Device | None] = dict.fromkeys(wanted)
        for d in s.scalars(select(t.Device).where(t.Device.device_id.in_(wanted))
                           .order_by(t.Device.id).with_for_update()):
            devices[d.device_id] = d
        sites: dict[int, tuple[t.Site, Tree]] = {}
        touched: set[tuple[int, int, date]] = set()
        for topic_device_id, e in items:
            device = devices[topic_device_id]
            reason = None
            if e.device_id != topic_device_id:
                reason = "device_id in the body differs from the topic"
            elif device is None:
                reason = "unknown device"
            elif device.retired_at is not None:
                reason = "device retired"
            elif device.site_id is None:
                reason = "device not placed on a site"
            elif not EARLIEST <= e.at <= LATEST or e.mono_ms > MAX_MONO_MS:
                reason = "time out of range"  # a broken clock: stored, it would break every day it touches
            if reason is not None or device is None or device.site_id is None:
                counted.reject(reason or "?")
                log.warning("rejected tap %s/%s seq %d: %s", topic_device_id, e.buffer_id, e.seq, reason)
                acks.append(AckItem(seq=e.seq, outcome="rejected", reason=reason))
                continue
            card = s.scalar(select(t.Card).where(t.Card.uid == e.card.uid, t.Card.revoked_at.is_(None)))
            worker_id = card.worker_id if card else None
            effective_at, trusted = attendance.tap_time(device, e.at, e.clock_synced, e.boot_id, e.mono_ms)
            new_id = insert_or_skip(
                s,
                t.Tap,
                {
                    "device_pk": device.id, "buffer_id": e.buffer_id, "seq": e.seq, "site_id": device.site_id,
                    "card_tech": e.card.tech, "card_uid": e.card.uid, "worker_id": worker_id,
                    "direction": e.direction, "at": attendance.utc(e.at), "clock_synced": e.clock_synced,
                    "boot_id": e.boot_id, "mono_ms": e.mono_ms, "shown": e.shown, "received_at": now,
                    "effective_at": attendance.utc(effective_at), "clock_trusted": trusted,
                },
                ("device_pk", "buffer_id", "seq"),
            )
            if new_id is None:
                counted.duplicate += 1
                acks.append(AckItem(seq=e.seq, outcome="duplicate"))
                continue
            counted.recorded += 1
            acks.append(AckItem(seq=e.seq, outcome="recorded"))
            if device.site_id not in sites:
                sites[device.site_id] = (site_or_404(s, device.site_id), load_tree(s, device.site_id))
            site, tree = sites[device.site_id]
            if e.clock_synced:  # also re-dates this boot's earlier unsynced taps, if any
                attendance.clock_reference(ctx, s, device, e.boot_id, e.at, e.mono_ms)
            if worker_id is not None:
                touched.add((device.site_id, worker_id, attendance.day_of(site, effective_at)))
        # One rebuild per (site, worker, day) the batch touched, after all of its taps are in.
        for site_id, worker_id, day in sorted(touched):
            site, tree = sites[site_id]
            attendance.rebuild(s, site, worker_id, day, now, tree)
    if counters is not None:  # committed: only now do the taps count, and may the caller publish the Ack
        counters.add(counted)
    return acks
