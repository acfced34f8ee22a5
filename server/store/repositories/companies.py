"""Queries on companies (事業者), proxy consents (代理手続きの同意)."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from sqlalchemy import or_, select

from server.store import tables as t
from server.store.repositories.base import Repository


class CompanyRepository(Repository):
    def id_of(self, ccus_id: str) -> int | None:
        """The company registered under this 事業者ID, if any."""
        return self.s.scalar(select(t.Company.id).where(t.Company.ccus_id == ccus_id))

    def search(self, *, ccus_id: str | None, name_part: str | None, limit: int) -> Sequence[t.Company]:
        """Companies in id order, by exact 事業者ID and/or a part of the name (taken literally: % and _
        are not wildcards), at most ``limit``."""
        q = select(t.Company).order_by(t.Company.id).limit(limit)
        if ccus_id is not None:
            q = q.where(t.Company.ccus_id == ccus_id)
        if name_part is not None:
            q = q.where(t.Company.name.contains(name_part, autoescape=True))
        return self.s.scalars(q).all()

    def proxy_consents_of(self, company_id: int) -> Sequence[t.ProxyConsent]:
        """The consents the company gave (as employer) and those it received (as agent)."""
        return self.s.scalars(
            select(t.ProxyConsent).where(
                or_(t.ProxyConsent.employer_id == company_id, t.ProxyConsent.agent_id == company_id)
            )
        ).all()

    def by_ids(self, company_ids: Collection[int]) -> Sequence[t.Company]:
        """These companies, for views that show many rows at once (unknown ids are left out)."""
        return self.s.scalars(select(t.Company).where(t.Company.id.in_(company_ids))).all()

    def names_in_id_order(self) -> list[tuple[int, str, str]]:
        """(id, 事業者ID, name) of every company, in id order."""
        rows = self.s.execute(select(t.Company.id, t.Company.ccus_id, t.Company.name).order_by(t.Company.id))
        return [(r.id, r.ccus_id, r.name) for r in rows]
