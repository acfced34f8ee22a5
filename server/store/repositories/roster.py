"""Queries on roster entries (作業員名簿) and roster patterns."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import Row, Table, func, select

from server.domain.visibility import Scope
from server.store import tables as t
from server.store.repositories.base import Repository, scope_clause

_ENTRIES: Table = t.RosterEntry.__table__  # type: ignore[assignment]


class RosterRepository(Repository):
    # -- entries ------------------------------------------------------------------------------------
    def is_on_roster(self, site_id: int, worker_id: int | None) -> bool:
        """Whether the worker has an entry on this site's roster."""
        return self.s.scalar(
            select(t.RosterEntry.id).where(t.RosterEntry.site_id == site_id, t.RosterEntry.worker_id == worker_id)
        ) is not None

    def completeness_of_site(self, site_id: int) -> list[tuple[int, bool]]:
        """(worker id, whether its entry has 職種 and 立場) for every entry on the site's roster: what a
        gate's config says of each card, read as plain rows (a roster of thousands, pushed often)."""
        e = _ENTRIES.c
        rows = self.s.execute(select(e.worker_id, e.trade_major, e.position).where(e.site_id == site_id)).all()
        return [(worker_id, bool(trade and position)) for worker_id, trade, position in rows]

    def visible_entries(self, site_id: int, scope: Scope) -> Sequence[t.RosterEntry]:
        """The site's entries the policy's roster scope admits, grouped by hierarchy row (node id, then
        entry id)."""
        e = t.RosterEntry
        return self.s.scalars(
            select(e)
            .where(e.site_id == site_id, scope_clause(scope, site=e.site_id, worker=e.worker_id, node=e.node_id))
            .order_by(e.node_id, e.id)
        ).all()

    def entries_of_worker(self, worker_id: int) -> Sequence[t.RosterEntry]:
        """The worker's entries on every site's roster."""
        return self.s.scalars(select(t.RosterEntry).where(t.RosterEntry.worker_id == worker_id)).all()

    def site_ids_of_worker(self, worker_id: int | None) -> set[int]:
        """The sites whose roster the worker is on."""
        return set(self.s.scalars(select(t.RosterEntry.site_id).where(t.RosterEntry.worker_id == worker_id)))

    def count_on_node(self, node_id: int) -> int:
        """How many entries are registered under this hierarchy row."""
        return int(
            self.s.scalar(select(func.count()).select_from(t.RosterEntry).where(t.RosterEntry.node_id == node_id))
            or 0
        )

    def counts_by_node(self, site_id: int) -> dict[int, int]:
        """hierarchy row id → its number of entries, on one site (rows without entries are absent)."""
        rows = self.s.execute(
            select(t.RosterEntry.node_id, func.count())
            .where(t.RosterEntry.site_id == site_id)
            .group_by(t.RosterEntry.node_id)
        ).all()
        return {node_id: n for node_id, n in rows}

    def entries_of_workers(self, site_id: int, worker_ids: Collection[int]) -> dict[int, Row[Any]]:
        """worker id → its entry on the site's roster, for the workers given (those on it), as a plain
        row of what a 就業履歴 record takes from it (the rebuild reads one per record of a batch: no
        ORM object each)."""
        e = _ENTRIES.c
        return {r.worker_id: r for r in self.s.execute(
            select(e.worker_id, e.node_id, e.trade_major, e.trade_minor, e.position, e.work_description,
                   e.hazardous, e.hazardous_other, e.health_checks, e.health_checks_other, e.qualification_ids)
            .where(e.site_id == site_id, self.among(e.worker_id, worker_ids))).all()}

    # -- patterns (作業員名簿パターン) ----------------------------------------------------------------
    def pattern_id_by_name(self, company_id: int, name: str) -> int | None:
        """The company's pattern saved under this name, if any."""
        return self.s.scalar(
            select(t.RosterPattern.id).where(t.RosterPattern.company_id == company_id, t.RosterPattern.name == name)
        )

    def patterns_of_company(self, company_id: int | None) -> Sequence[t.RosterPattern]:
        """The company's saved patterns, by name (a list the user picks from reads the same each time)."""
        return self.s.scalars(select(t.RosterPattern).where(t.RosterPattern.company_id == company_id)
                              .order_by(t.RosterPattern.name, t.RosterPattern.id)).all()
