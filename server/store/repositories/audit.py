"""Queries on the audit log (監査ログ)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select

from server.domain.visibility import AuditScope
from server.store import tables as t
from server.store.repositories.base import Repository, audit_clause


class AuditRepository(Repository):
    def latest(self, limit: int, scope: AuditScope) -> Sequence[t.AuditEntry]:
        """The newest ``limit`` entries the policy's audit scope admits, newest first."""
        a = t.AuditEntry
        q = (select(a).where(audit_clause(scope, site=a.site_id, company=a.company_id, account=a.account_id))
             .order_by(a.id.desc()).limit(limit))
        return self.s.scalars(q).all()

    def newest_id(self) -> int | None:
        """The audit log's newest entry: every edit a config is made of writes one, so it moves
        whenever a gate's config may have changed."""
        return self.s.scalar(select(func.max(t.AuditEntry.id)))
