"""Queries the 施工体制台帳 family of safety documents (AZ1, AZ3–AZ5) needs beyond the tree and the
companies: who holds which 立場 on a site's roster (主任技術者, 監理技術者, 現場代理人, 安全衛生責任者, …)."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import select

from server.domain.visibility import Scope
from server.store import tables as t
from server.store.repositories.base import Repository, scope_clause


@dataclass(frozen=True)
class PositionHolder:
    """A roster entry holding a 立場 a form prints, with what the form prints of it."""

    node_id: int
    position: str
    worker_name: str
    qualifications: tuple[str, ...]  # names of the qualifications the entry lists, in the entry's order


class LedgerRepository(Repository):
    def position_holders(self, site_id: int, scope: Scope, positions: Collection[str]) -> list[PositionHolder]:
        """The site's roster entries with one of ``positions`` that ``scope`` (the policy's roster scope)
        admits, by hierarchy row then entry: two queries whatever the number of companies."""
        if not positions:
            return []
        e, w = t.RosterEntry, t.Worker
        rows = self.s.execute(
            select(e.node_id, e.position, w.name, e.qualification_ids)
            .join(w, w.id == e.worker_id)
            .where(e.site_id == site_id, self.among(e.position, positions),
                   scope_clause(scope, site=e.site_id, worker=e.worker_id, node=e.node_id))
            .order_by(e.node_id, e.id)
        ).all()
        wanted = {int(q) for r in rows for q in r.qualification_ids}
        names: dict[int, str] = {}
        if wanted:
            q = t.Qualification
            names = {i: n for i, n in self.s.execute(select(q.id, q.name).where(self.among(q.id, wanted)))}
        return [
            PositionHolder(r.node_id, r.position, r.name,
                           tuple(names[int(i)] for i in r.qualification_ids if int(i) in names))
            for r in rows
        ]
