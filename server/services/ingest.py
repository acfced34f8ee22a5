"""Taps from the gates, stored idempotently; the service both ingest entrypoints call (MQTT now,
HTTP later). The Ack for a batch is built only from what this transaction committed."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import select

from protocol.messages import AckItem, TapEvent
from server.services.context import Context
from server.store import tables as t
from server.store.upsert import insert_or_skip

log = logging.getLogger("genba.ingest")


@dataclass
class Counters:
    recorded: int = 0
    duplicate: int = 0
    rejected: dict[str, int] = field(default_factory=dict)


def ingest_taps(ctx: Context, topic_device_id: str, events: Sequence[TapEvent],
                counters: Counters | None = None) -> list[AckItem]:
    """Store each tap once per (device, buffer, seq); answer recorded, duplicate, or rejected with a reason.

    The site comes from the server's record of the device, never from the message, so a gate cannot
    write into another site. A card not yet linked to a worker is kept (worker_id NULL) and attributed
    when the card is linked later."""
    counters = counters or Counters()
    acks: list[AckItem] = []
    with ctx.store.write() as s:
        device = s.scalar(select(t.Device).where(t.Device.device_id == topic_device_id))
        now = ctx.now()
        for e in events:
            reason = None
            if e.device_id != topic_device_id:
                reason = "device_id in the body differs from the topic"
            elif device is None:
                reason = "unknown device"
            elif device.retired_at is not None:
                reason = "device retired"
            elif device.site_id is None:
                reason = "device not placed on a site"
            if reason is not None or device is None or device.site_id is None:
                counters.rejected[reason or "?"] = counters.rejected.get(reason or "?", 0) + 1
                log.warning("rejected tap %s/%s seq %d: %s", topic_device_id, e.buffer_id, e.seq, reason)
                acks.append(AckItem(seq=e.seq, outcome="rejected", reason=reason))
                continue
            card = s.scalar(select(t.Card).where(t.Card.uid == e.card.uid, t.Card.revoked_at.is_(None)))
            new_id = insert_or_skip(
                s,
                t.Tap,
                {
                    "device_pk": device.id, "buffer_id": e.buffer_id, "seq": e.seq, "site_id": device.site_id,
                    "card_tech": e.card.tech, "card_uid": e.card.uid, "worker_id": card.worker_id if card else None,
                    "direction": e.direction, "at": e.at, "clock_synced": e.clock_synced, "boot_id": e.boot_id,
                    "mono_ms": e.mono_ms, "shown": e.shown, "received_at": now,
                },
                ("device_pk", "buffer_id", "seq"),
            )
            if new_id is None:
                counters.duplicate += 1
                acks.append(AckItem(seq=e.seq, outcome="duplicate"))
            else:
                counters.recorded += 1
                acks.append(AckItem(seq=e.seq, outcome="recorded"))
    return acks  # committed: only now may the caller publish the Ack
