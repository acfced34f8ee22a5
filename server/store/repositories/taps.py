"""Queries on taps (the raw history behind 就業履歴), tap conflicts, and the card lookups the tap path
makes (who holds a card now, which cards were linked after their taps were stored).

The tap path is set-based and these statements are what keeps it cheap: one query for a batch's
stored keys, one for its cards, one INSERT … ON CONFLICT DO NOTHING for its taps (``bulk``). Keep
them so (no per-row queries), and keep the inserts on the Core tables (no ORM bulk machinery).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, Table, delete, exists, func, select, update

from server.store import tables as t
from server.store.repositories import bulk
from server.store.repositories.base import Repository

TapKey = tuple[int, str, int]  # (device_pk, buffer_id, seq): a tap's identity, unique in the store


_TAPS: Table = t.Tap.__table__  # type: ignore[assignment]
_CONFLICTS: Table = t.TapConflict.__table__  # type: ignore[assignment]
_HELD: Table = t.HeldTap.__table__  # type: ignore[assignment]


class TapRepository(Repository):
    # -- the tap path (services/ingest) --------------------------------------------------------------
    def stored(self, keys: Collection[TapKey]) -> dict[TapKey, t.Tap]:
        """The taps already stored under these keys (a re-send, or the same key with other content)."""
        if not keys:
            return {}
        return {(x.device_pk, x.buffer_id, x.seq): x for x in self.s.scalars(
            select(t.Tap).where(self.among_keys((t.Tap.device_pk, t.Tap.buffer_id, t.Tap.seq), keys)))}

    def insert_new(self, rows: Sequence[dict[str, Any]]) -> dict[TapKey, int]:
        """Store the taps not stored yet (one statement for all); (device_pk, buffer_id, seq) → new id
        of each one this call inserted. A key another transaction stored first is skipped, not an error."""
        return {(dp, b, q): tap_id for dp, b, q, tap_id in bulk.insert_or_skip(
            self.s, _TAPS, rows, ("device_pk", "buffer_id", "seq"), returning=("device_pk", "buffer_id", "seq", "id"))}

    # -- held taps (gates not registered or not placed when the tap arrived) --------------------------
    def hold(self, rows: Sequence[dict[str, Any]]) -> None:
        """Keep taps of gates the server cannot place yet, once per (device ID, buffer, seq)."""
        bulk.insert_or_skip(self.s, _HELD, rows, ("device_id", "buffer_id", "seq"))

    def held_of_device(self, device_id: str, reasons: Collection[str],
                       boot_ids: Collection[str] | None = None) -> Sequence[t.HeldTap]:
        """The gate's taps held for one of ``reasons`` (of these boots), in the order it took them."""
        q = select(t.HeldTap).where(t.HeldTap.device_id == device_id, self.among(t.HeldTap.reason, reasons))
        if boot_ids is not None:
            q = q.where(self.among(t.HeldTap.boot_id, boot_ids))
        return self.s.scalars(q.order_by(t.HeldTap.buffer_id, t.HeldTap.seq)).all()

    def held_of_devices(self, boots: Mapping[str, Collection[str]],
                        reasons: Collection[str]) -> dict[str, list[t.HeldTap]]:
        """``held_of_device`` for many gates at once: device ID → its taps held for one of ``reasons``
        of the given boots, in the order it took them; gates with none are left out."""
        keys = sorted((device_id, boot_id) for device_id, boot_ids in boots.items() for boot_id in boot_ids)
        q = (select(t.HeldTap)
             .where(self.among_keys((t.HeldTap.device_id, t.HeldTap.boot_id), keys),
                    self.among(t.HeldTap.reason, reasons))
             .order_by(t.HeldTap.device_id, t.HeldTap.buffer_id, t.HeldTap.seq))
        out: dict[str, list[t.HeldTap]] = {}
        for h in self.s.scalars(q).all():
            out.setdefault(h.device_id, []).append(h)
        return out

    def set_held_reason(self, ids: Collection[int], reason: str) -> None:
        """Held taps that were tried again and are now refused for another reason keep that one."""
        if ids:
            self.s.execute(update(t.HeldTap).where(self.among(t.HeldTap.id, ids)).values(reason=reason))

    def drop_held(self, ids: Collection[int]) -> None:
        """Forget held taps that became taps of their gate's site."""
        if ids:
            self.s.execute(delete(t.HeldTap).where(self.among(t.HeldTap.id, ids)))

    def held_device_ids_now_placed(self, reasons: Collection[str]) -> list[str]:
        """Device IDs with taps held for one of ``reasons`` whose gate is now registered on a site and
        not retired (a tap held while its gate was being registered, in a transaction that did not
        see the registration)."""
        return list(self.s.scalars(
            select(t.HeldTap.device_id).distinct()
            .join(t.Device, t.Device.device_id == t.HeldTap.device_id)
            .where(t.Device.site_id.is_not(None), t.Device.retired_at.is_(None),
                   self.among(t.HeldTap.reason, reasons))
            .order_by(t.HeldTap.device_id)))

    def held_summary(self, roster_sites: Collection[int] | None = None
                     ) -> list[tuple[str, str, int, datetime, datetime, datetime]]:
        """(device ID, reason, taps, first tap, last tap, last received) per gate and reason. With
        ``roster_sites``, only the held taps of cards whose worker is on one of those sites' rosters."""
        q = select(t.HeldTap.device_id, t.HeldTap.reason, func.count(), func.min(t.HeldTap.at),
                   func.max(t.HeldTap.at), func.max(t.HeldTap.received_at))
        if roster_sites is not None:
            q = q.where(exists(
                select(t.Card.uid).join(t.RosterEntry, t.RosterEntry.worker_id == t.Card.worker_id)
                .where(t.Card.uid == t.HeldTap.card_uid, t.Card.revoked_at.is_(None),
                       self.among(t.RosterEntry.site_id, roster_sites))))
        rows = self.s.execute(
            q.group_by(t.HeldTap.device_id, t.HeldTap.reason).order_by(t.HeldTap.device_id, t.HeldTap.reason)
        ).all()
        return [(d, r, n, lo, hi, last) for d, r, n, lo, hi, last in rows]

    def add_conflicts(self, rows: Sequence[dict[str, Any]]) -> None:
        """Keep other versions of stored taps, once per (gate, buffer, seq, content)."""
        bulk.insert_or_skip(self.s, _CONFLICTS, rows, ("device_pk", "buffer_id", "seq", "content"))

    def waiting_for_clock(self, device_pk: int, boot_id: str) -> Sequence[t.Tap]:
        """The gate's taps of this boot whose time nobody has vouched for yet (taken before sync)."""
        return self.s.scalars(
            select(t.Tap).where(t.Tap.device_pk == device_pk, t.Tap.boot_id == boot_id, t.Tap.clock_trusted.is_(False))
        ).all()

    # -- a worker's days ------------------------------------------------------------------------------
    def of_workers_between(self, site_id: int, worker_ids: Collection[int], start: datetime,
                           end: datetime) -> Sequence[Row[Any]]:
        """The workers' taps on the site with ``start <= effective_at < end`` (UTC), in time order, as
        plain rows of what a record is built from (the rebuild reads hundreds per batch: no ORM
        object per tap)."""
        x = _TAPS.c
        return self.s.execute(
            select(x.id, x.direction, x.effective_at, x.clock_trusted, x.worker_id, x.site_id)
            .where(x.site_id == site_id, self.among(x.worker_id, worker_ids),
                   x.effective_at >= start, x.effective_at < end)
            .order_by(x.effective_at, x.id)
        ).all()

    def of_worker_between(self, site_id: int, worker_id: int, start: datetime, end: datetime) -> Sequence[t.Tap]:
        """One worker's taps on the site with ``start <= effective_at < end`` (UTC), in time order."""
        return self.s.scalars(
            select(t.Tap)
            .where(t.Tap.site_id == site_id, t.Tap.worker_id == worker_id,
                   t.Tap.effective_at >= start, t.Tap.effective_at < end)
            .order_by(t.Tap.effective_at, t.Tap.id)
        ).all()

    def with_gates_of_worker_between(self, site_id: int, worker_id: int, start: datetime,
                                     end: datetime) -> list[tuple[t.Tap, str, str]]:
        """As ``of_worker_between``, each tap with its gate's device ID and name."""
        rows = self.s.execute(
            select(t.Tap, t.Device.device_id, t.Device.name)
            .join(t.Device, t.Device.id == t.Tap.device_pk)
            .where(t.Tap.site_id == site_id, t.Tap.worker_id == worker_id,
                   t.Tap.effective_at >= start, t.Tap.effective_at < end)
            .order_by(t.Tap.effective_at, t.Tap.id)
        ).all()
        return [(tap, device_id, name) for tap, device_id, name in rows]

    def worker_times_of_site(self, site_id: int) -> list[tuple[int, datetime]]:
        """(worker id, effective_at) of every tap on the site that has a worker."""
        rows = self.s.execute(
            select(t.Tap.worker_id, t.Tap.effective_at).where(t.Tap.site_id == site_id, t.Tap.worker_id.is_not(None)))
        return [(w, at) for w, at in rows]

    # -- taps of cards nobody held when they were made ------------------------------------------------
    def unattributed_of_card(self, uid: str, received_after: datetime | None = None) -> Sequence[t.Tap]:
        """The card's taps stored without a worker (received after ``received_after`` if given)."""
        q = select(t.Tap).where(t.Tap.card_uid == uid, t.Tap.worker_id.is_(None))
        if received_after is not None:
            q = q.where(t.Tap.received_at > received_after)
        return self.s.scalars(q).all()

    def linked_cards_with_unattributed_taps(self) -> list[tuple[str, int]]:
        """(UID, worker id) of every active card that has taps stored without a worker."""
        rows = self.s.execute(
            select(t.Card.uid, t.Card.worker_id).distinct()
            .join(t.Tap, t.Tap.card_uid == t.Card.uid)
            .where(t.Card.revoked_at.is_(None), t.Tap.worker_id.is_(None))
        ).all()
        return [(uid, wid) for uid, wid in rows]

    def unlinked_cards_between(self, site_id: int, start: datetime,
                               end: datetime) -> list[tuple[str, str, int, datetime, datetime]]:
        """(UID, tech, taps, first, last) of each card tapped on the site with ``start <= effective_at
        < end`` whose taps have no worker, by first tap."""
        rows = self.s.execute(
            select(t.Tap.card_uid, t.Tap.card_tech, func.count(),
                   func.min(t.Tap.effective_at), func.max(t.Tap.effective_at))
            .where(t.Tap.site_id == site_id, t.Tap.worker_id.is_(None),
                   t.Tap.effective_at >= start, t.Tap.effective_at < end)
            .group_by(t.Tap.card_uid, t.Tap.card_tech)
            .order_by(func.min(t.Tap.effective_at))
        ).all()
        return [(uid, tech, n, lo, hi) for uid, tech, n, lo, hi in rows]

    # -- conflicts ------------------------------------------------------------------------------------
    def conflicts_of_site(self, site_id: int) -> list[tuple[t.TapConflict, t.Tap, str]]:
        """Each conflict on the site with the tap stored under its key and the gate's device ID, in the
        order they arrived."""
        rows = self.s.execute(
            select(t.TapConflict, t.Tap, t.Device.device_id)
            .join(t.Tap, t.Tap.id == t.TapConflict.stored_tap_id)
            .join(t.Device, t.Device.id == t.TapConflict.device_pk)
            .where(t.TapConflict.site_id == site_id)
            .order_by(t.TapConflict.received_at, t.TapConflict.id)
        ).all()
        return [(c, tap, device_id) for c, tap, device_id in rows]
