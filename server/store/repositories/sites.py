"""Queries on sites (現場), the hierarchy (施工体制) nodes and hierarchy patterns."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from sqlalchemy import func, select

from server.store import tables as t
from server.store.repositories.base import Repository


class SiteRepository(Repository):
    # -- sites --------------------------------------------------------------------------------------
    def get(self, site_id: int, *, lock: bool = False) -> t.Site | None:
        return self.s.get(t.Site, site_id, with_for_update=lock or None)

    def id_of(self, ccus_id: str) -> int | None:
        """The site registered under this 現場ID, if any."""
        return self.s.scalar(select(t.Site.id).where(t.Site.ccus_id == ccus_id))

    def all_with_prime(self) -> Sequence[tuple[t.Site, t.Company]]:
        """Every site with its 元請, by 現場ID (the order staff read them in)."""
        rows = self.s.execute(
            select(t.Site, t.Company).join(t.Company, t.Company.id == t.Site.prime_id).order_by(t.Site.ccus_id)
        ).all()
        return [(r[0], r[1]) for r in rows]

    def gates_in_service(self) -> dict[int, int]:
        """site id → how many gates (devices not retired) are assigned there; sites without any are left out."""
        rows = self.s.execute(
            select(t.Device.site_id, func.count(t.Device.id))
            .where(t.Device.site_id.is_not(None), t.Device.retired_at.is_(None))
            .group_by(t.Device.site_id)
        ).all()
        return {site_id: count for site_id, count in rows}

    def ids_of_prime(self, company_id: int) -> list[int]:
        """The sites where the company is the 元請."""
        return list(self.s.scalars(select(t.Site.id).where(t.Site.prime_id == company_id).order_by(t.Site.id)))

    def by_ids(self, site_ids: Collection[int]) -> Sequence[t.Site]:
        """These sites in id order (unknown ids are left out)."""
        return self.s.scalars(select(t.Site).where(t.Site.id.in_(site_ids)).order_by(t.Site.id)).all()

    # -- hierarchy nodes ----------------------------------------------------------------------------
    def nodes(self, site_id: int, *, lock: bool = False) -> Sequence[t.HierarchyNode]:
        """The site's hierarchy rows in id order; ``lock`` takes their row locks on PostgreSQL so
        deciding rules see settled state."""
        q = select(t.HierarchyNode).where(t.HierarchyNode.site_id == site_id).order_by(t.HierarchyNode.id)
        if lock:
            q = q.with_for_update()
        return self.s.scalars(q).all()

    def node(self, node_id: int, *, lock: bool = False) -> t.HierarchyNode | None:
        """One hierarchy row. With ``lock`` it is read again under its row lock (PostgreSQL), so a
        row this unit already holds shows what another transaction committed before the lock."""
        return self.s.get(t.HierarchyNode, node_id, with_for_update=lock or None, populate_existing=lock)

    def children(self, node_id: int) -> Sequence[t.HierarchyNode]:
        """The rows directly below this one, whatever their status."""
        return self.s.scalars(select(t.HierarchyNode).where(t.HierarchyNode.parent_id == node_id)).all()

    def node_statuses_of_company(self, company_id: int | None, *, except_status: str) -> dict[int, str]:
        """site id → the company's status there, over the company's rows not in ``except_status``."""
        rows = self.s.execute(
            select(t.HierarchyNode.site_id, t.HierarchyNode.status).where(
                t.HierarchyNode.company_id == company_id, t.HierarchyNode.status != except_status
            )
        ).all()
        return {r.site_id: r.status for r in rows}

    def nodes_of_company(self, company_id: int | None, status: str) -> Sequence[t.HierarchyNode]:
        """The company's rows in this status on any site, oldest invitation first."""
        return self.s.scalars(
            select(t.HierarchyNode)
            .where(t.HierarchyNode.company_id == company_id, t.HierarchyNode.status == status)
            .order_by(t.HierarchyNode.invited_at, t.HierarchyNode.id)
        ).all()

    def companies_on_site(self, site_id: int) -> set[int]:
        """The companies with a hierarchy row on the site that has not declined."""
        return {c for c in self.s.scalars(
            select(t.HierarchyNode.company_id).where(
                t.HierarchyNode.site_id == site_id, t.HierarchyNode.company_id.is_not(None),
                t.HierarchyNode.status != "declined")) if c is not None}

    # -- hierarchy patterns (施工体制パターン) -------------------------------------------------------
    def pattern_id_by_name(self, company_id: int, name: str) -> int | None:
        """The company's pattern saved under this name, if any."""
        return self.s.scalar(
            select(t.HierarchyPattern.id).where(
                t.HierarchyPattern.company_id == company_id, t.HierarchyPattern.name == name
            )
        )

    def patterns_of_company(self, company_id: int | None) -> Sequence[t.HierarchyPattern]:
        return self.s.scalars(select(t.HierarchyPattern).where(t.HierarchyPattern.company_id == company_id)).all()
