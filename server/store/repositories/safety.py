"""Queries the safety documents (安全書類 AZ2–AZ7) need beyond the roster's and the hierarchy's own."""

from __future__ import annotations

from collections.abc import Collection
from datetime import date

from sqlalchemy import func, select

from server.store import tables as t
from server.store.repositories.base import Repository


class SafetyRepository(Repository):
    def first_days(self, site_id: int, worker_ids: Collection[int]) -> dict[int, date]:
        """worker id → its first work day with a 就業履歴 on the site (the 作業員名簿's 入場年月日), for
        the workers given that have one."""
        if not worker_ids:
            return {}
        a = t.Attendance
        rows = self.s.execute(
            select(a.worker_id, func.min(a.work_day))
            .where(a.site_id == site_id, self.among(a.worker_id, worker_ids))
            .group_by(a.worker_id)
        ).all()
        return {worker_id: day for worker_id, day in rows}
