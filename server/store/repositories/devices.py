"""Queries on gates (devices) and their clock references, and on what a gate's retained config is
made of (the site's companies, their workers' active cards, the audit log's newest entry)."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from sqlalchemy import select

from server.store import tables as t
from server.store.repositories.base import Repository


class DeviceRepository(Repository):
    def by_device_id(self, device_id: str, *, lock: bool = False) -> t.Device | None:
        """The gate registered under this device ID; ``lock`` takes its row lock (PostgreSQL), the
        lock the ingest takes: a gate's clock reference and the taps it re-dates change together."""
        q = select(t.Device).where(t.Device.device_id == device_id)
        if lock:
            q = q.with_for_update()
        return self.s.scalar(q)

    def id_of(self, device_id: str) -> int | None:
        return self.s.scalar(select(t.Device.id).where(t.Device.device_id == device_id))

    def lock_by_device_ids(self, device_ids: Collection[str]) -> Sequence[t.Device]:
        """The gates of these device IDs, locked in id order: the same order in every process, so two
        ingest workers locking overlapping sets queue rather than deadlock."""
        return self.s.scalars(select(t.Device).where(self.among(t.Device.device_id, device_ids))
                              .order_by(t.Device.id).with_for_update()).all()

    def of_site(self, site_id: int, *, include_retired: bool = False) -> Sequence[t.Device]:
        """The site's gates by device ID."""
        q = select(t.Device).where(t.Device.site_id == site_id).order_by(t.Device.device_id)
        if not include_retired:
            q = q.where(t.Device.retired_at.is_(None))
        return self.s.scalars(q).all()

    def all(self) -> Sequence[t.Device]:
        """Every gate, in id order."""
        return self.s.scalars(select(t.Device).order_by(t.Device.id)).all()
